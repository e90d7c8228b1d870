/**
 * The custom layers and the pixel-shuffle U-Net live once in src/nn (layers.ts, unet.ts), under the class names the
 * saved models use. Every committed model under models/ loads and gives bit-identical outputs on a fixed input, and
 * the trainers' builders build the same topology (and, seeded, the same weights and outputs), as the code before the
 * move did: test/nn/fixtures/custom-layers.json was written by test/nn/fixtures/custom-layers.ts on that code.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { CUSTOM_LAYER_CLASSES, customLayer, registerCustomLayerClasses } from '../../src/nn/layers.js';
import { computeDigests, FIXTURE } from './fixtures/custom-layers.js';

describe('custom layers, defined once', () => {
  it('every committed model and every builder gives what it gave before the move', async () => {
    const expected = JSON.parse(readFileSync(FIXTURE, 'utf8'));
    const actual = await computeDigests(tf);
    expect(Object.keys(actual.models).length).toBeGreaterThanOrEqual(10);
    expect(actual).toEqual(expected);
  }, 60_000);

  it('each saved class name is registered, and a layer round-trips through its config', async () => {
    await tf.setBackend('cpu');
    registerCustomLayerClasses(tf);
    const layer = customLayer(tf, 'Noise2ScoreSpaceToDepth', { blockSize: 2, name: 's2d' });
    const input = tf.input({ shape: [4, 4, 1] });
    const model = tf.model({ inputs: input, outputs: layer.apply(input) as tf.SymbolicTensor });
    const json = JSON.stringify(model.toJSON(null, false));
    for (const name of Object.keys(CUSTOM_LAYER_CLASSES)) {
      expect(tf.serialization.SerializationMap.getMap().classNameMap[name], name).toBeDefined();
    }
    expect(json).toContain('"class_name":"Noise2ScoreSpaceToDepth"');
    expect(json).toContain('"block_size":2');
    const x = tf.tensor4d(
      Array.from({ length: 16 }, (_, i) => i),
      [1, 4, 4, 1],
    );
    const y = model.predict(x) as tf.Tensor;
    expect(y.shape).toEqual([1, 2, 2, 4]);
    // Block (0, 0) of the 4x4 image: pixels 0, 1, 4, 5.
    expect(Array.from(y.dataSync().slice(0, 4))).toEqual([0, 1, 4, 5]);
    tf.dispose([x, y]);
    model.dispose();
  });
});
