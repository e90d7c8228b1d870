import { beforeAll, describe, expect, it } from 'vitest';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { tidyValues } from '../../src/nn/read.js';

let tf: Tf;
beforeAll(async () => {
  ({ tf } = await initTfjs('wasm'));
});

describe('tidyValues', () => {
  it('returns the values of the tensor the function returns and frees it and everything else made', async () => {
    const before = tf.memory().numTensors;
    const values = await tidyValues(tf, () => tf.add(tf.tensor1d([1, 2, 3]), tf.scalar(0.5)));
    expect(Array.from(values)).toEqual([1.5, 2.5, 3.5]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('frees the tensors when reading fails, and passes the error on', async () => {
    const before = tf.memory().numTensors;
    await expect(async () =>
      tidyValues(tf, () => {
        tf.ones([2]);
        throw new Error('no tensor');
      }),
    ).rejects.toThrow('no tensor');
    expect(tf.memory().numTensors).toBe(before);
  });
});
