import { afterAll, afterEach, describe, expect, it } from 'vitest';
import '../../src/compute/handlers/layers.js';
import { denoiseNoise2Score } from '../../src/denoise/noise2score.js';
import { TweedieError } from '../../src/errors.js';
import { releaseWebGpu } from '../../src/gpu/device.js';
import { denoiseMid } from '../../src/mid/denoise.js';
import { initTfjs } from '../../src/nn/backend.js';
import {
  batcherStats,
  configureBatching,
  estimateDeviceBytes,
  predictBatched,
} from '../../src/nn/batcher.js';
import { loadModelFromEntry, resolveModel, scanModelRepository } from '../../src/nn/repository.js';
import { Rng } from '../../src/util/random.js';
import { repoRoot } from '../helpers.js';

// Dynamic batching (src/nn/batcher.ts) on wasm and on WebGPU (lavapipe on machines without a GPU; skipped when
// there is no adapter, unless TEST_WEBGPU=1): batched outputs equal one-by-one outputs, N calls make fewer network
// calls (counted on the model), a lone call waits at most BATCH_MAX_DELAY_MS, and the device-memory budget refuses
// with 413/503 before anything runs. Tiny inputs: lavapipe is slow.
type LayersModel = import('@tensorflow/tfjs').LayersModel;

const runtime = await initTfjs('webgpu');
const { tf } = runtime;
const onGpu = runtime.backend === 'webgpu';
if (onGpu) await import('@tensorflow/tfjs-backend-wasm');
if (!onGpu && process.env.TEST_WEBGPU === '1') throw new Error('TEST_WEBGPU=1 but no WebGPU adapter');
afterAll(releaseWebGpu);
afterEach(() => {
  configureBatching({ maxSize: 1 });
});

const entries = await scanModelRepository(`${repoRoot}/models`);

async function load(name: string) {
  const entry = resolveModel(entries, name);
  if (!entry?.manifest) throw new Error(`model ${name} not found`);
  return loadModelFromEntry<LayersModel>(tf, entry.dir, entry.manifest);
}

/** Counts the model's network calls (predict) and the inputs they carried. */
function countCalls(model: LayersModel) {
  const counts = { calls: 0, items: 0 };
  const predict = model.predict.bind(model);
  model.predict = ((x: import('@tensorflow/tfjs').Tensor, args?: object) => {
    counts.calls++;
    counts.items += x.shape[0];
    return predict(x, args);
  }) as LayersModel['predict'];
  return counts;
}

function noisyImage(width: number, height: number, channels: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const noise = rng.fillNormal(new Float32Array(width * height * channels));
  return Float32Array.from(noise, (z, i) => {
    const p = Math.floor(i / channels);
    const clean = 0.5 + 0.35 * Math.sin(Math.floor(p / width) / 5) * Math.cos((p % width) / 7);
    return Math.min(1, Math.max(0, clean + 0.05 * z));
  });
}

function maxRelativeDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
  }
  return diff / Math.max(scale, 1e-6);
}

const backends = onGpu ? (['wasm', 'webgpu'] as const) : (['wasm'] as const);

describe.each(backends)('dynamic batching on %s', (backend) => {
  it('Noise2Score windows, ensemble views and colour planes: the same image in fewer network calls', async () => {
    expect(await tf.setBackend(backend)).toBe(true);
    const model = await load('noise2score-gaussian');
    const counts = countCalls(model);
    try {
      // 48x40 RGB with 32-px windows: several windows per plane, x 2 ensemble views x 3 planes.
      const image = { data: noisyImage(48, 40, 3, 1), width: 48, height: 40, channels: 3 };
      const opts = {
        noise: 'gaussian',
        level: 0.1,
        tile: 32,
        margin: 8,
        overlap: 4,
        multiple: 8,
        ensemble: 2,
      };
      configureBatching({ maxSize: 1 });
      const alone = await denoiseNoise2Score(tf, model, image, opts as never);
      const one = { ...counts };
      expect(one.items).toBe(one.calls);
      expect(one.calls).toBeGreaterThanOrEqual(24);
      configureBatching({ maxSize: 8, maxDelayMs: 20 });
      const batched = await denoiseNoise2Score(tf, model, image, opts as never);
      const calls = counts.calls - one.calls;
      expect(counts.items - one.items).toBe(one.calls);
      expect(calls).toBeLessThanOrEqual(Math.ceil(one.calls / 8) + 2);
      expect(maxRelativeDiff(batched.data, alone.data)).toBeLessThanOrEqual(1e-5);
    } finally {
      model.dispose();
    }
  }, 180_000);

  it('MID: K = 4 masks of one image in one network call, same output', async () => {
    expect(await tf.setBackend(backend)).toBe(true);
    const model = await load('mid-rgb');
    const counts = countCalls(model);
    try {
      const image = { data: noisyImage(24, 24, 3, 2), width: 24, height: 24, channels: 3 };
      const opts = { masks: 4, dropRatio: 0.3, seed: 5 };
      configureBatching({ maxSize: 1 });
      const alone = await denoiseMid(tf, model, image, opts);
      expect(counts.calls).toBe(4);
      configureBatching({ maxSize: 4, maxDelayMs: 20 });
      const batched = await denoiseMid(tf, model, image, opts);
      expect(counts.calls).toBe(5);
      expect(counts.items).toBe(8);
      expect(maxRelativeDiff(batched.data, alone.data)).toBeLessThanOrEqual(1e-5);
    } finally {
      model.dispose();
    }
  }, 180_000);

  it('N concurrent calls make ceil(N / BATCH_MAX_SIZE) network calls; each gets its own output', async () => {
    expect(await tf.setBackend(backend)).toBe(true);
    const model = await load('noise2score-gaussian');
    const counts = countCalls(model);
    try {
      const inputs = Array.from({ length: 6 }, (_, i) => noisyImage(16, 16, 1, 10 + i));
      configureBatching({ maxSize: 1 });
      const alone: Float32Array[] = [];
      for (const x of inputs) alone.push(await predictBatched(tf, model, x, [16, 16, 1]));
      expect(counts.calls).toBe(6);
      configureBatching({ maxSize: 4, maxDelayMs: 50 });
      const before = batcherStats();
      const batched = await Promise.all(inputs.map((x) => predictBatched(tf, model, x, [16, 16, 1])));
      expect(counts.calls).toBe(6 + 2);
      const after = batcherStats();
      expect(after.calls - before.calls).toBe(2);
      expect(after.items - before.items).toBe(6);
      batched.forEach((out, i) => {
        expect(maxRelativeDiff(out, alone[i])).toBeLessThanOrEqual(1e-5);
      });
      // Different shapes never share a batch.
      await Promise.all([
        predictBatched(tf, model, inputs[0], [16, 16, 1]),
        predictBatched(tf, model, noisyImage(8, 32, 1, 3), [32, 8, 1]),
      ]);
      expect(counts.calls).toBe(8 + 2);
      // Every queue is dropped once its calls have left: new image sizes do not pile up queues.
      expect(batcherStats().openQueues).toBe(before.openQueues);
      await Promise.all([8, 24, 40].map((s) => predictBatched(tf, model, noisyImage(s, s, 1, s), [s, s, 1])));
      expect(batcherStats().openQueues).toBe(before.openQueues);
    } finally {
      model.dispose();
    }
  }, 180_000);

  it('a lone call waits at most BATCH_MAX_DELAY_MS; a full batch does not wait', async () => {
    expect(await tf.setBackend(backend)).toBe(true);
    const model = await load('noise2score-gaussian');
    try {
      const x = noisyImage(16, 16, 1, 4);
      configureBatching({ maxSize: 1 });
      await predictBatched(tf, model, x, [16, 16, 1]); // warm-up
      let t = performance.now();
      await predictBatched(tf, model, x, [16, 16, 1]);
      const solo = performance.now() - t;

      configureBatching({ maxSize: 8, maxDelayMs: 300 });
      t = performance.now();
      await predictBatched(tf, model, x, [16, 16, 1]);
      const lone = performance.now() - t;
      expect(lone).toBeGreaterThanOrEqual(290);
      expect(lone).toBeLessThan(300 + 5 * solo + 500);

      configureBatching({ maxSize: 4, maxDelayMs: 60_000 });
      t = performance.now();
      await Promise.all(Array.from({ length: 4 }, () => predictBatched(tf, model, x, [16, 16, 1])));
      expect(performance.now() - t).toBeLessThan(30_000);
    } finally {
      model.dispose();
    }
  }, 180_000);

  it('GPU memory budget: 413 for a call that can never fit, 503 + Retry-After when it does not fit now', async () => {
    expect(await tf.setBackend(backend)).toBe(true);
    const model = await load('noise2score-gaussian');
    const counts = countCalls(model);
    try {
      const need32 = await estimateDeviceBytes(tf, model, [1, 32, 32, 1]);
      const need128 = await estimateDeviceBytes(tf, model, [1, 128, 128, 1]);
      // Linear in pixels beyond a fixed part, and close to what a 96x96 call really peaks at.
      expect(need128).toBeGreaterThan(8 * need32 * 0.5);
      let before = 0;
      const profile = await tf.profile(() => {
        before = tf.memory().numBytes;
        const x = tf.zeros([1, 96, 96, 1]);
        const y = model.predict(x) as import('@tensorflow/tfjs').Tensor;
        x.dispose();
        return y;
      });
      tf.dispose(profile.result as import('@tensorflow/tfjs').Tensor);
      const need96 = await estimateDeviceBytes(tf, model, [1, 96, 96, 1]);
      expect(Math.abs(need96 - (profile.peakBytes - before)) / need96).toBeLessThan(0.25);
      const calls = counts.calls;

      const weights = model.countParams() * 4;
      const resident = tf.memory().numBytes;
      // Fits beside what is resident for one 32x32 call, not for two; a 128x128 call never fits.
      configureBatching({ maxSize: 2, maxDelayMs: 100, memoryBudgetBytes: resident + need32 * 1.5 });
      expect(weights + need128).toBeGreaterThan(resident + need32 * 1.5);
      const never = await predictBatched(tf, model, noisyImage(128, 128, 1, 1), [128, 128, 1]).catch(
        (e: unknown) => e,
      );
      expect(never).toBeInstanceOf(TweedieError);
      expect(never).toMatchObject({ code: 'TW_GPU_MEMORY_EXCEEDED', statusCode: 413 });
      const x = noisyImage(32, 32, 1, 2);
      const [first, second] = await Promise.allSettled([
        predictBatched(tf, model, x, [32, 32, 1]),
        predictBatched(tf, model, x, [32, 32, 1]),
      ]);
      expect(first.status).toBe('fulfilled');
      expect(second.status).toBe('rejected');
      expect((second as PromiseRejectedResult).reason).toMatchObject({
        code: 'TW_GPU_MEMORY_BUSY',
        statusCode: 503,
        retryAfter: 1,
      });
      // The refused calls ran nothing; the reservation is given back, so the same call now fits.
      expect(counts.calls).toBe(calls + 1);
      await predictBatched(tf, model, x, [32, 32, 1]);
      expect(counts.calls).toBe(calls + 2);
    } finally {
      model.dispose();
    }
  }, 180_000);
});

describe.skipIf(!onGpu)('webgpu memory', () => {
  it('tf.memory() is flat over repeated batched inferences', async () => {
    expect(await tf.setBackend('webgpu')).toBe(true);
    const model = await load('noise2score-gaussian');
    try {
      configureBatching({ maxSize: 4, maxDelayMs: 5 });
      const x = noisyImage(16, 16, 1, 9);
      const round = () =>
        Promise.all(Array.from({ length: 4 }, () => predictBatched(tf, model, x, [16, 16, 1])));
      await round();
      const before = tf.memory() as { numTensors: number; numBytes: number; numBytesInGPUAllocated?: number };
      for (let i = 0; i < 20; i++) await round();
      const after = tf.memory() as typeof before;
      expect(after.numTensors).toBe(before.numTensors);
      expect(after.numBytes).toBe(before.numBytes);
      expect(after.numBytesInGPUAllocated).toBe(before.numBytesInGPUAllocated);
    } finally {
      model.dispose();
    }
  }, 180_000);
});
