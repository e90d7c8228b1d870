import { cpSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../src/compute/handlers/layers.js';
import { denoiseNoise2Score } from '../../src/denoise/noise2score.js';
import { initTfjs } from '../../src/nn/backend.js';
import { loadModelFromEntry, resolveModel, scanModelRepository } from '../../src/nn/repository.js';
import { makeApp, repoRoot, tinyModelsDir, waitFor } from '../helpers.js';

// TFJS_BACKEND=webgpu end to end: the workers run TF.js on the WebGPU adapter (lavapipe on CI and on machines
// without a GPU) and /readyz, GET /v1/models and /metrics name it. With no adapter at all the workers fall back to
// wasm (tested in test/nn/backend.test.ts): skipped then, unless TEST_WEBGPU=1 demands an adapter. One image route
// end to end: POST /v1/denoise with the trained Noise2Score model answers what wasm computes (to 1/255).
const { getWebGpu, releaseWebGpu } = await import('../../src/gpu/device.js');
const probe = await getWebGpu({ allowSoftware: true });
await releaseWebGpu();
const run = probe.ok || process.env.TEST_WEBGPU === '1';

describe.skipIf(!run)('TFJS_BACKEND=webgpu', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    const repo = mkdtempSync(path.join(os.tmpdir(), 'tweedie-webgpu-'));
    cpSync(path.join(tinyModelsDir(), 'gaussian-blur'), path.join(repo, 'gaussian-blur'), {
      recursive: true,
    });
    const n2s = path.join(repoRoot, 'models', 'noise2score-gaussian', 'v7');
    cpSync(n2s, path.join(repo, 'noise2score-gaussian', 'v7'), { recursive: true });
    app = await makeApp({ TFJS_BACKEND: 'webgpu', MODELS_DIR: repo });
    await waitFor(() => app.compute.up, 60_000);
    await app.models.settled;
  }, 90_000);
  afterAll(() => app?.close());

  it('reports the backend and the adapter on /readyz, GET /v1/models and /metrics', async () => {
    await waitFor(async () => (await app.inject({ url: '/readyz' })).statusCode === 200, 60_000);
    const ready = (await app.inject({ url: '/readyz' })).json();
    expect(ready.backend).toBe('webgpu');
    expect(ready.backendTried).toEqual([{ name: 'webgpu' }]);
    expect(ready.adapter).toMatchObject({ vendor: expect.any(String), software: expect.any(Boolean) });
    expect(ready.adapter.description).toBeTruthy();

    const models = (await app.inject({ url: '/v1/models' })).json();
    expect(models.backend).toBe('webgpu');
    expect(models.adapter).toEqual(ready.adapter);

    const metrics = (await app.inject({ url: '/metrics' })).body;
    const line = metrics.split('\n').find((l) => l.startsWith('tweedie_compute_backend_info{'));
    expect(line).toContain('backend="webgpu"');
    expect(line).toContain(`adapter_vendor="${ready.adapter.vendor}"`);
    expect(line).toContain(`adapter_software="${ready.adapter.software}"`);
    expect(line).toMatch(/ 1$/);
  }, 90_000);

  it('POST /v1/denoise answers on webgpu what wasm computes', async () => {
    const w = 32;
    const h = 32;
    const px = Buffer.alloc(w * h);
    for (let i = 0; i < px.length; i++) px[i] = 128 + Math.round(60 * Math.sin(i / 9)) + ((i * 37) % 21) - 10;
    const png = await sharp(px, { raw: { width: w, height: h, channels: 1 } })
      .png()
      .toBuffer();
    const res = await app.inject({
      method: 'POST',
      url: '/v1/denoise?noise=gaussian&level=25',
      headers: { 'content-type': 'image/png' },
      payload: png,
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['x-model']).toBe('noise2score-gaussian@v7');
    const got = await sharp(res.rawPayload).raw().toBuffer({ resolveWithObject: true });
    expect([got.info.width, got.info.height]).toEqual([w, h]);
    const stride = got.info.channels; // grey, or grey written as RGB

    // The same denoising on wasm in this thread.
    const { tf } = await initTfjs('wasm');
    const entry = resolveModel(
      await scanModelRepository(path.join(repoRoot, 'models')),
      'noise2score-gaussian',
      'v7',
    );
    const model = await loadModelFromEntry(tf, entry!.dir, entry!.manifest!);
    const image = { data: Float32Array.from(px, (v) => v / 255), width: w, height: h, channels: 1 };
    const expected = await denoiseNoise2Score(tf, model, image, {
      noise: 'gaussian',
      level: 25 / 255,
      multiple: 8,
    });
    model.dispose();
    let worst = 0;
    for (let i = 0; i < w * h; i++)
      worst = Math.max(worst, Math.abs(got.data[i * stride] - Math.round(expected.data[i] * 255)));
    expect(worst).toBeLessThanOrEqual(1);
  }, 120_000);
});
