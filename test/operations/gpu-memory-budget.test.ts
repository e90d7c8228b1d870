/**
 * GPU_MEMORY_BUDGET_MB covers every model (src/nn/batcher.ts), not only Noise2Score and MID: a RED-Diff restoration
 * is admitted for one step at its padded shape, an EPS-AD detection for its largest batch of perturbations and its
 * deep kernel. The budget is backend-independent accounting, so wasm workers show it: under the budget a request
 * succeeds, beyond it the route answers 413 TW_GPU_MEMORY_EXCEEDED before any network runs, and the worker lives.
 */
import { cpSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp, multipartForm, repoRoot } from '../helpers.js';

function modelsRepo(): string {
  const repo = mkdtempSync(path.join(os.tmpdir(), 'tweedie-budget-'));
  for (const name of ['gaussian-blur', 'ddpm-fashion-mnist', 'ddpm-natural-grey', 'eps-ad-fashion-mnist'])
    cpSync(path.join(repoRoot, 'models', name), path.join(repo, name), { recursive: true });
  return repo;
}

async function greyPng(side: number, seed: number): Promise<Buffer> {
  const px = Buffer.alloc(side * side);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37 + seed * 11 + ((i / side) | 0) * 5) % 256;
  return sharp(px, { raw: { width: side, height: side, channels: 1 } })
    .png()
    .toBuffer();
}

describe('GPU_MEMORY_BUDGET_MB for RED-Diff and EPS-AD', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    // 24 MB: one 28x28 RED-Diff step or 20 perturbations of one image fit; a 256x256 step or a batch of 64 do not.
    app = await makeApp({ MODELS_DIR: modelsRepo(), GPU_MEMORY_BUDGET_MB: 24 });
    await app.models.settled;
  }, 120_000);
  afterAll(() => app?.close());

  const restore = async (side: number) =>
    app.inject({
      method: 'POST',
      url: '/v1/restore?task=inpaint&maskRatio=0.5&seed=1&steps=2',
      headers: { 'content-type': 'image/png' },
      payload: await greyPng(side, 1),
    });

  const detect = async (count: number) => {
    const pngs = await Promise.all(Array.from({ length: count }, (_, i) => greyPng(28, i + 2)));
    const { headers, payload } = multipartForm(pngs.map((png, i) => ['image', `${i}.png`, png]));
    return app.inject({ method: 'POST', url: '/v1/detect/adversarial', headers, payload });
  };

  it('RED-Diff: a small image is restored, a large one is refused with 413 before it runs', async () => {
    const small = await restore(28);
    expect(small.statusCode, small.body).toBe(200);
    const large = await restore(256);
    expect(large.statusCode, large.body).toBe(413);
    expect(large.json().error.code).toBe('TW_GPU_MEMORY_EXCEEDED');
    expect(large.json().error.message).toMatch(/GPU_MEMORY_BUDGET_MB/);
    // The worker lives, and its reservation was released: the small image still fits.
    expect((await restore(28)).statusCode).toBe(200);
  }, 120_000);

  it('EPS-AD: one image is scored, a batch whose perturbations need more is refused with 413', async () => {
    const one = await detect(1);
    expect(one.statusCode, one.body).toBe(200);
    const four = await detect(4);
    expect(four.statusCode, four.body).toBe(413);
    expect(four.json().error.code).toBe('TW_GPU_MEMORY_EXCEEDED');
    expect(four.json().error.message).toMatch(/fewer images/);
    expect((await detect(1)).statusCode).toBe(200);
  }, 120_000);
});
