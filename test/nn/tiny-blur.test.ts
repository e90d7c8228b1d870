import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { getModel, warmupModel } from '../../src/nn/repository.js';
import { gaussianKernel } from '../../tools/train/make-tiny-blur.js';

const modelsDir = fileURLToPath(new URL('../../models', import.meta.url));
let tf: Tf;

beforeAll(async () => {
  ({ tf } = await initTfjs('auto'));
});

describe('models/gaussian-blur (tiny real model)', () => {
  it('is the default version and blurs a delta image into the sigma-1 Gaussian', async () => {
    const loaded = await getModel(tf, modelsDir, 'gaussian-blur');
    expect(loaded.version).toBe('1');
    expect(loaded.manifest.required).toBe(true);
    const size = 11;
    const centre = 5;
    const delta = new Float32Array(size * size);
    delta[centre * size + centre] = 1;
    const out = tf.tidy(
      () => loaded.model.predict(tf.tensor4d(delta, [1, size, size, 1])) as import('@tensorflow/tfjs').Tensor,
    );
    const values = out.dataSync();
    out.dispose();
    const kernel = gaussianKernel(5, 1);
    for (let r = 0; r < size; r++) {
      for (let c = 0; c < size; c++) {
        const dr = r - centre;
        const dc = c - centre;
        const expected = Math.abs(dr) <= 2 && Math.abs(dc) <= 2 ? kernel[(dr + 2) * 5 + (dc + 2)] : 0;
        expect(values[r * size + c]).toBeCloseTo(expected, 6);
      }
    }
    // Independently of the helper: Gaussian ratios and unit mass.
    const at = (dr: number, dc: number) => values[(centre + dr) * size + centre + dc];
    expect(at(0, 1) / at(0, 0)).toBeCloseTo(Math.exp(-0.5), 5);
    expect(at(1, 1) / at(0, 0)).toBeCloseTo(Math.exp(-1), 5);
    expect(at(2, 0) / at(0, 0)).toBeCloseTo(Math.exp(-2), 5);
    expect(Array.from(values as Float32Array).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });

  it('leaks no tensors over 50 inferences through getModel + warmupModel', async () => {
    const first = await getModel(tf, modelsDir, 'gaussian-blur', '1');
    await warmupModel(tf, first.model, first.manifest);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 50; i++) {
      const loaded = await getModel(tf, modelsDir, 'gaussian-blur', '1');
      expect(loaded).toBe(first);
      if (i % 10 === 0) await warmupModel(tf, loaded.model, loaded.manifest);
      const y = tf.tidy(
        () => loaded.model.predict(tf.randomUniform([1, 16, 16, 1])) as import('@tensorflow/tfjs').Tensor,
      );
      await y.data();
      y.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
