import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileSystemIO, ModelFileError, resolveShardPath } from '../../src/nn/fs-io.js';

let tmp: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = await mkdtemp(path.join(os.tmpdir(), 'nn-fsio-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function smallModel(): tf.LayersModel {
  const model = tf.sequential();
  model.add(tf.layers.conv2d({ inputShape: [6, 6, 1], filters: 3, kernelSize: 3, padding: 'same' }));
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({ units: 2, activation: 'softmax' }));
  return model;
}

describe('fileSystemIO', () => {
  it('round-trips a layers model: same topology, weights and predictions', async () => {
    const dir = path.join(tmp, 'layers');
    const model = smallModel();
    const result = await model.save(fileSystemIO(dir));
    expect(result.modelArtifactsInfo.weightDataBytes).toBe((3 * 3 * 3 + 3 + 108 * 2 + 2) * 4);
    const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
    expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);

    const loaded = await tf.loadLayersModel(fileSystemIO(dir));
    const input = tf.randomNormal([2, 6, 6, 1], 0, 1, 'float32', 5);
    const expected = (model.predict(input) as tf.Tensor).dataSync();
    const actual = (loaded.predict(input) as tf.Tensor).dataSync();
    expect(Array.from(actual)).toEqual(Array.from(expected));
    expect(loaded.layers.map((l) => l.getClassName())).toEqual(['Conv2D', 'Flatten', 'Dense']);
    tf.dispose([input]);
    model.dispose();
    loaded.dispose();
  });

  it('loads and re-saves a graph model', async () => {
    const dir = path.join(tmp, 'graph');
    const modelJson = {
      format: 'graph-model',
      generatedBy: 'test',
      convertedBy: 'hand',
      modelTopology: {
        node: [
          {
            name: 'x',
            op: 'Placeholder',
            attr: { dtype: { type: 'DT_FLOAT' }, shape: { shape: { dim: [{ size: '-1' }, { size: '2' }] } } },
          },
          {
            name: 'scale',
            op: 'Const',
            attr: { dtype: { type: 'DT_FLOAT' }, value: { tensor: { dtype: 'DT_FLOAT' } } },
          },
          { name: 'y', op: 'Mul', input: ['x', 'scale'], attr: { T: { type: 'DT_FLOAT' } } },
        ],
        library: {},
        versions: {},
      },
      weightsManifest: [{ paths: ['scale.bin'], weights: [{ name: 'scale', shape: [2], dtype: 'float32' }] }],
    };
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'model.json'), JSON.stringify(modelJson));
    await writeFile(path.join(dir, 'scale.bin'), Buffer.from(new Float32Array([2, -3]).buffer));
    const graph = await tf.loadGraphModel(fileSystemIO(dir));
    const y = graph.predict(
      tf.tensor2d([
        [1, 1],
        [0.5, 2],
      ]),
    ) as tf.Tensor;
    expect(Array.from(y.dataSync())).toEqual([2, -3, 1, -6]);

    const copyDir = path.join(tmp, 'graph-copy');
    await graph.save(fileSystemIO(copyDir));
    const copy = await tf.loadGraphModel(fileSystemIO(copyDir));
    const y2 = copy.predict(tf.tensor2d([[1, 1]])) as tf.Tensor;
    expect(Array.from(y2.dataSync())).toEqual([2, -3]);
  });

  it('reports a missing shard, a short shard and invalid JSON with reasons', async () => {
    const dir = path.join(tmp, 'broken');
    await smallModel().save(fileSystemIO(dir));
    const weights = await readFile(path.join(dir, 'weights.bin'));
    await writeFile(path.join(dir, 'weights.bin'), weights.subarray(0, weights.length - 4));
    await expect(fileSystemIO(dir).load!()).rejects.toMatchObject({ reason: 'weights-mismatch' });
    await rm(path.join(dir, 'weights.bin'));
    await expect(fileSystemIO(dir).load!()).rejects.toMatchObject({ reason: 'missing-file' });
    await writeFile(path.join(dir, 'model.json'), '{"modelTopology": ');
    await expect(fileSystemIO(dir).load!()).rejects.toBeInstanceOf(ModelFileError);
    await expect(fileSystemIO(dir).load!()).rejects.toMatchObject({ reason: 'invalid-json' });
  });

  it('refuses weight paths that leave the model folder', async () => {
    const dir = path.join(tmp, 'escape');
    await smallModel().save(fileSystemIO(dir));
    const secret = path.join(tmp, 'secret.bin');
    await writeFile(secret, await readFile(path.join(dir, 'weights.bin')));
    const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
    for (const bad of [
      '../secret.bin',
      secret,
      'sub/../../secret.bin',
      'file:///etc/passwd',
      '..\\secret.bin',
    ]) {
      json.weightsManifest[0].paths = [bad];
      await writeFile(path.join(dir, 'model.json'), JSON.stringify(json));
      await expect(fileSystemIO(dir).load!(), bad).rejects.toMatchObject({ reason: 'unsafe-path' });
    }
    expect(resolveShardPath(dir, 'sub/w.bin')).toBe(path.join(dir, 'sub', 'w.bin'));
    expect(() => resolveShardPath(dir, '.')).toThrow(/outside/);
  });
});
