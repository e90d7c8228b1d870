/**
 * Dynamic batching and the GPU memory budget through the service (wasm workers; the batcher itself, on wasm and
 * webgpu, is tested in test/nn/batcher.test.ts): concurrent requests on one worker share network calls, a request
 * whose network would exceed GPU_MEMORY_BUDGET_MB gets a coded 413, and with several tasks per worker a timed-out
 * task does not take the other tasks of its worker down.
 */
import { cpSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp, repoRoot, waitFor } from '../helpers.js';

function modelsRepo(): string {
  const repo = mkdtempSync(path.join(os.tmpdir(), 'tweedie-batching-'));
  const n2s = path.join(repoRoot, 'models', 'noise2score-gaussian', 'v7');
  cpSync(n2s, path.join(repo, 'noise2score-gaussian', 'v7'), { recursive: true });
  return repo;
}

async function greyPng(seed: number, w = 32, h = 32): Promise<Buffer> {
  const px = Buffer.alloc(w * h);
  for (let i = 0; i < px.length; i++)
    px[i] = 128 + Math.round(60 * Math.sin((i + seed) / 9)) + ((i * 37) % 21) - 10;
  return sharp(px, { raw: { width: w, height: h, channels: 1 } })
    .png()
    .toBuffer();
}

type App = Awaited<ReturnType<typeof makeApp>>;

const denoise = (app: App, png: Buffer) =>
  app.inject({
    method: 'POST',
    url: '/v1/denoise?noise=gaussian&level=25',
    headers: { 'content-type': 'image/png' },
    payload: png,
  });

describe('BATCH_MAX_SIZE through the service', () => {
  let app: App;
  beforeAll(async () => {
    app = await makeApp({
      MODELS_DIR: modelsRepo(),
      BATCH_MAX_SIZE: 8,
      BATCH_MAX_DELAY_MS: 200,
      WORKER_CANCEL_GRACE_MS: 300,
    });
    await waitFor(() => app.compute.up, 60_000);
    await app.models.settled;
  }, 90_000);
  afterAll(() => app?.close());

  it('four concurrent requests on one worker share network calls, and get what they get alone', async () => {
    const pngs = await Promise.all([1, 2, 3, 4].map((s) => greyPng(s)));
    const info = () => app.compute.pool.run('system.info', {});
    const before = (await info()).batching!;
    expect(before.maxSize).toBe(8);
    const together = await Promise.all(pngs.map((png) => denoise(app, png)));
    const after = (await info()).batching!;
    for (const res of together) expect(res.statusCode, res.body).toBe(200);
    // Alone, a request makes one network call (its colour planes together, if the PNG decodes as RGB): fewer calls
    // than requests means that requests met in a batch on the worker.
    const items = after.items - before.items;
    expect(items % 4).toBe(0);
    expect(after.calls - before.calls).toBeLessThan(4);
    for (let i = 0; i < pngs.length; i++) {
      const alone = await denoise(app, pngs[i]);
      expect(alone.statusCode).toBe(200);
      expect(Buffer.compare(alone.rawPayload, together[i].rawPayload)).toBe(0);
    }
  }, 60_000);

  it('a task cancelled before its worker takes it never runs', async () => {
    const pool = app.compute.pool;
    expect(pool.concurrentTasksPerWorker).toBe(8);
    const started = Date.now();
    const first = pool.run('test.busy', { ms: 400 });
    // Sent to the same worker, which is busy: cancelled after 100 ms, before it starts.
    const cancelled = pool.run('test.busy', { ms: 5000 }, { timeoutMs: 100 });
    await expect(cancelled).rejects.toMatchObject({ code: 'TW_DEADLINE_EXCEEDED' });
    await first;
    await pool.run('test.busy', { ms: 1 });
    expect(Date.now() - started).toBeLessThan(3000);
  }, 30_000);

  it('a task still running WORKER_CANCEL_GRACE_MS after its deadline has its worker stopped', async () => {
    const pool = app.compute.pool;
    const started = Date.now();
    const stuck = pool.run('test.busy', { ms: 10_000 }, { timeoutMs: 100 });
    await expect(stuck).rejects.toMatchObject({ code: 'TW_DEADLINE_EXCEEDED' });
    expect(Date.now() - started).toBeLessThan(1000);
    // The worker is stopped 300 ms after the deadline (what runs on it then fails with it) and replaced: a task
    // sent after that does not wait for the 10 s.
    await new Promise((r) => setTimeout(r, 600));
    await pool.run('test.busy', { ms: 1 }, { timeoutMs: 20_000 });
    expect(Date.now() - started).toBeLessThan(7000);
  }, 30_000);
});

describe('GPU_MEMORY_BUDGET_MB through the service', () => {
  let app: App;
  beforeAll(async () => {
    app = await makeApp({ MODELS_DIR: modelsRepo(), GPU_MEMORY_BUDGET_MB: 1 });
    await waitFor(() => app.compute.up, 60_000);
    await app.models.settled;
  }, 90_000);
  afterAll(() => app?.close());

  it('a request whose network cannot fit in the budget gets 413 TW_GPU_MEMORY_EXCEEDED, and the worker lives', async () => {
    const res = await denoise(app, await greyPng(1));
    expect(res.statusCode).toBe(413);
    expect(res.json().error.code).toBe('TW_GPU_MEMORY_EXCEEDED');
    expect(res.json().error.message).toMatch(/GPU_MEMORY_BUDGET_MB/);
    const busy = await app.inject({ method: 'POST', url: '/v1/_test/busy', payload: { ms: 5 } });
    expect(busy.statusCode).toBe(200);
  }, 60_000);
});
