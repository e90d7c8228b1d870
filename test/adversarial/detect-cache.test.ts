/**
 * The detect handler caches an EpsAdDetector (reference set and features, as tensors) per loaded detector model;
 * clearing the repository's model cache must free those tensors with the models.
 */
import { describe, expect, it } from 'vitest';
import { initTfjs } from '../../src/nn/backend.js';
import { clearModelCache } from '../../src/nn/repository.js';
import { detect } from '../../src/operations/detect/task.js';
import { Rng } from '../../src/util/random.js';

describe('detect handler cache', () => {
  it('frees the cached detector with the models on clearModelCache()', async () => {
    const { tf } = await initTfjs('wasm');
    await clearModelCache();
    const before = tf.memory().numTensors;
    const rng = new Rng(3);
    const count = 2;
    const ctx = {
      options: { modelsDir: 'models', tfjsBackend: 'wasm' as const, enableTestTasks: false, tileSize: 512 },
      progress: () => {},
      tfjs: () => initTfjs('wasm'),
    };
    const input = {
      detector: { name: 'eps-ad-fashion-mnist' },
      images: Float32Array.from({ length: count * 28 * 28 }, () => rng.uniform()),
      count,
      seed: 1,
      fpr: 0.05,
      permutations: 20,
    };
    const first = await detect(input, ctx);
    expect(first.scores).toHaveLength(count);
    // The second call reuses the cached detector and computes the same scores.
    const second = await detect(input, ctx);
    expect(second.scores).toEqual(first.scores);
    expect(tf.memory().numTensors).toBeGreaterThan(before);
    await clearModelCache();
    expect(tf.memory().numTensors).toBe(before);
  }, 120_000);
});
