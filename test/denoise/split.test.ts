/**
 * One Noise2Score image on several compute workers (SPLIT_MIN_PIXELS, src/operations/denoise/task.ts): the windows
 * of a score map are planned for the idle workers and computed by them, and the answer equals, bit for bit, the same
 * window plan computed on one worker (blended in the same order), for Gaussian and Poisson noise alike; it differs
 * from the one-window map only by float rounding (the margins cover the receptive field). SPLIT_MIN_PIXELS=0
 * never splits.
 */
import { cpSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TaskResult } from '../../src/compute/task-types.js';
import { denoiseNoise2Score, planScoreWindows } from '../../src/denoise/noise2score.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { getModel } from '../../src/nn/repository.js';
import { Rng } from '../../src/util/random.js';
import { makeApp, repoRoot, waitFor } from '../helpers.js';

const MODEL = 'noise2score-gaussian';
const POISSON = 'noise2score-poisson';

function modelsRepo(): string {
  const repo = mkdtempSync(path.join(os.tmpdir(), 'tweedie-split-'));
  cpSync(path.join(repoRoot, 'models', MODEL, 'v7'), path.join(repo, MODEL, 'v7'), { recursive: true });
  cpSync(path.join(repoRoot, 'models', POISSON), path.join(repo, POISSON), { recursive: true });
  return repo;
}

/** A smooth grey picture with sigma 25/255 noise (values clipped to [0, 1]). */
function noisyImage(width: number, height: number): Float32Array {
  const rng = new Rng(7);
  const data = new Float32Array(width * height);
  for (let r = 0; r < height; r++)
    for (let c = 0; c < width; c++) {
      const v = 0.5 + 0.3 * Math.sin(r / 11) * Math.cos(c / 7) + (25 / 255) * rng.normal();
      data[r * width + c] = Math.min(1, Math.max(0, v));
    }
  return data;
}

type App = Awaited<ReturnType<typeof makeApp>>;

describe('window plans for several workers', () => {
  it('keeps the configured plan for one worker, and cuts a 512x512 map into windows the workers share', () => {
    const one = planScoreWindows(512, 512, { tile: 512 }, 1);
    expect([one.rows.length, one.cols.length]).toEqual([1, 1]);
    for (const parts of [2, 3, 4]) {
      const plan = planScoreWindows(512, 512, { tile: 512 }, parts);
      const windows = plan.rows.length * plan.cols.length;
      const size = (plan.rows[0].end - plan.rows[0].start) * (plan.cols[0].end - plan.cols[0].start);
      // Faster than one window on one worker: each worker's windows cover less than the image.
      expect(windows).toBeGreaterThanOrEqual(2);
      expect(Math.ceil(windows / parts) * size).toBeLessThan(512 * 512);
    }
  });
});

describe('SPLIT_MIN_PIXELS through the pool', () => {
  const width = 256;
  const height = 256;
  const data = noisyImage(width, height);
  const input = {
    model: { name: MODEL, version: 'v7' },
    image: { data, width, height, channels: 1 },
    noise: 'gaussian' as const,
    level: 25 / 255,
    estimator: 'wavelet' as const,
  };
  let tf: Tf;
  let repo: string;
  beforeAll(async () => {
    tf = (await initTfjs('wasm')).tf;
    repo = modelsRepo();
  });

  async function withApp<T>(splitMinPixels: number, work: (app: App) => Promise<T>): Promise<T> {
    const app = await makeApp({
      MODELS_DIR: repo,
      WORKERS: 3,
      SPLIT_MIN_PIXELS: splitMinPixels,
      SPLIT_MAX_LOAD: 0,
    });
    try {
      await waitFor(() => app.compute.up, 60_000);
      await app.models.settled;
      await waitFor(() => app.compute.pool.stats().running === 0, 10_000, 10);
      return await work(app);
    } finally {
      await app.close();
    }
  }

  it('splits a map over the idle workers and answers what one worker answers for the same windows', async () => {
    // Gaussian, and Poisson on the same path.
    const poissonInput = { ...input, model: { name: POISSON }, noise: 'poisson' as const, level: 0.01 };
    const [gaussian, poisson] = await withApp(4096, async (app) => [
      await app.compute.pool.run('denoise.noise2score', { ...input }),
      await app.compute.pool.run('denoise.noise2score', poissonInput),
    ]);
    const image = { data, width, height, channels: 1 };
    for (const [split, name, noise, level] of [
      [gaussian, MODEL, 'gaussian', 25 / 255],
      [poisson, POISSON, 'poisson', 0.01],
    ] as const) {
      expect(split.split.maps).toBe(1);
      expect(split.split.parts).toBe(3);
      expect(split.split.helpers).toBeGreaterThanOrEqual(1);
      expect(split.split.windows).toBeGreaterThanOrEqual(2);
      const { model } = await getModel(tf, repo, name, split.model.version);
      const options = { noise, level, tile: 512, multiple: 8 };
      const oneWorker = await denoiseNoise2Score(tf, model, image, { ...options, split: { parts: () => 3 } });
      if (!('data' in split)) throw new Error('pixels expected');
      expect(Buffer.from(split.data.buffer).equals(Buffer.from(oneWorker.data.buffer))).toBe(true);
      // Against one window over the whole image: float rounding only.
      const whole = await denoiseNoise2Score(tf, model, image, options);
      let maxDiff = 0;
      for (let i = 0; i < whole.data.length; i++)
        maxDiff = Math.max(maxDiff, Math.abs(whole.data[i] - split.data[i]));
      expect(maxDiff).toBeLessThan(1e-4);
    }
  }, 120_000);

  it("MID: the masks' passes on the idle workers, the answer of one worker bit for bit", async () => {
    const midRepo = mkdtempSync(path.join(os.tmpdir(), 'tweedie-split-mid-'));
    cpSync(path.join(repoRoot, 'models', 'mid-rgb'), path.join(midRepo, 'mid-rgb'), { recursive: true });
    const side = 96;
    const grey = noisyImage(side, side);
    const rgb = new Float32Array(side * side * 3);
    for (let i = 0; i < grey.length; i++)
      for (let c = 0; c < 3; c++) rgb[i * 3 + c] = grey[(i + 7 * c) % grey.length];
    const app = await makeApp({ MODELS_DIR: midRepo, WORKERS: 3, SPLIT_MIN_PIXELS: 4096, SPLIT_MAX_LOAD: 0 });
    let split: TaskResult<'denoise.mid'>;
    try {
      await waitFor(() => app.compute.up, 60_000);
      await app.models.settled;
      await waitFor(() => app.compute.pool.stats().running === 0, 10_000, 10);
      split = await app.compute.pool.run('denoise.mid', {
        model: { name: 'mid-rgb' },
        image: { data: rgb, width: side, height: side, channels: 3 },
        masks: 6,
        seed: 3,
      });
    } finally {
      await app.close();
    }
    expect(split.split.maps).toBe(1);
    expect(split.split.helpers).toBeGreaterThanOrEqual(1);
    // How many passes a helper took is a race (a helper that is still starting, or loading the model, may find
    // them all taken on a loaded machine): the answer below must not depend on it.
    expect(split.split.windowsLent).toBeLessThanOrEqual(6);
    const { denoiseMid, midInferenceDefaults } = await import('../../src/mid/denoise.js');
    const loaded = await getModel(tf, midRepo, 'mid-rgb', split.model.version);
    const extra = (loaded.manifest.extra ?? {}) as { maskRatio?: number };
    const oneWorker = await denoiseMid(
      tf,
      loaded.model,
      { data: rgb, width: side, height: side, channels: 3 },
      {
        ...midInferenceDefaults(loaded.manifest.extra),
        masks: 6,
        dropRatio: extra.maskRatio ?? 0.3,
        seed: 3,
        tile: 512,
      },
    );
    if (!('data' in split)) throw new Error('pixels expected');
    expect(Buffer.from(split.data.buffer).equals(Buffer.from(oneWorker.data.buffer))).toBe(true);
  }, 120_000);

  it('SPLIT_MIN_PIXELS=0 never splits', async () => {
    const res = await withApp(0, (app) => app.compute.pool.run('denoise.noise2score', { ...input }));
    expect(res.split).toMatchObject({ maps: 0, parts: 1, helpers: 0 });
  }, 120_000);
});
