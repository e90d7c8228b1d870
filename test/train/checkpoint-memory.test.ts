/**
 * Saving and restoring a checkpoint (tools/train/core/checkpoint.ts) leaves no tensor behind: reading Adam's state
 * and setting a model's weights allocate nothing that stays, and a resume holds exactly Adam's moments, however
 * often it is done.
 */
import { describe, expect, it } from 'vitest';
import { initTfjs } from '../../src/nn/backend.js';
import {
  modelArrays,
  optimizerArrays,
  restoreOptimizer,
  setModelArrays,
} from '../../tools/train/core/checkpoint.js';

type Tensor = import('@tensorflow/tfjs').Tensor;
type Scalar = import('@tensorflow/tfjs').Scalar;

describe('checkpoint tensors', () => {
  it('save, set weights and resume leak no tensor', async () => {
    const { tf } = await initTfjs('wasm');
    const x = tf.tensor2d(
      Float32Array.from({ length: 24 }, (_, i) => Math.sin(i)),
      [6, 4],
    );
    const build = () => {
      const model = tf.sequential({
        layers: [
          tf.layers.dense({ units: 3, inputShape: [4], activation: 'relu' }),
          tf.layers.dense({ units: 2 }),
        ],
      });
      return { model, optimizer: tf.train.adam(0.01) };
    };
    const loss = (model: ReturnType<typeof build>['model']) => () =>
      tf.mean(tf.square(model.apply(x) as Tensor)) as Scalar;
    const first = build();
    for (let s = 0; s < 3; s++)
      tf.tidy(() => {
        first.optimizer.minimize(loss(first.model));
      });

    let n = tf.memory().numTensors;
    const arrays = [...modelArrays(first.model), ...(await optimizerArrays(first.optimizer))];
    expect(tf.memory().numTensors, 'optimizerArrays').toBe(n);

    const resumed = build();
    n = tf.memory().numTensors;
    setModelArrays(tf, resumed.model, arrays);
    expect(tf.memory().numTensors, 'setModelArrays').toBe(n);
    await restoreOptimizer(tf, resumed.optimizer, arrays, loss(resumed.model));
    // Adam's first and second moment of each weight, nothing else.
    const moments = 2 * resumed.model.weights.length;
    expect(tf.memory().numTensors, 'restoreOptimizer').toBe(n + moments);
    // A second restore on the same optimizer replaces the moments, and frees the ones it replaced.
    await restoreOptimizer(tf, resumed.optimizer, arrays, loss(resumed.model));
    expect(tf.memory().numTensors, 'second restoreOptimizer').toBe(n + moments);
    // And the restored state is the saved one.
    const restored = await optimizerArrays(resumed.optimizer);
    expect(restored.map((a) => [a.name, Array.from(a.values)])).toEqual(
      arrays.filter((a) => a.name.startsWith('optimizer')).map((a) => [a.name, Array.from(a.values)]),
    );
    tf.dispose(x);
  });
});
