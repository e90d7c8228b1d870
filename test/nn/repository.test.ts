import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileSystemIO } from '../../src/nn/fs-io.js';
import type { ModelManifestInput } from '../../src/nn/manifest.js';
import {
  clearModelCache,
  compareVersions,
  getModel,
  ModelLoadError,
  registerCustomLayers,
  resolveModel,
  scanModelRepository,
  warmupModel,
  warmupShape,
} from '../../src/nn/repository.js';
import { validManifest } from './helpers.js';

let root: string;

/** Writes a real (tiny) layers model plus manifest to root/name/version. */
async function writeModel(name: string, version: string, overrides: Partial<ModelManifestInput> = {}) {
  const dir = path.join(root, name, version);
  const model = tf.sequential();
  model.add(tf.layers.conv2d({ inputShape: [null, null, 1], filters: 1, kernelSize: 3, padding: 'same' }));
  await model.save(fileSystemIO(dir));
  model.dispose();
  const manifest = validManifest({ name, version, parameters: 10, ...overrides });
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  return dir;
}

async function editModelJson(dir: string, edit: (json: any) => void) {
  const file = path.join(dir, 'model.json');
  const json = JSON.parse(await readFile(file, 'utf8'));
  edit(json);
  await writeFile(file, JSON.stringify(json));
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  root = await mkdtemp(path.join(os.tmpdir(), 'nn-repo-'));
  await writeModel('good', '1');
  await writeModel('good', '2');
  await writeModel('good', '10');
  await writeFile(path.join(root, 'good', '10', 'model.json'), '{"modelTopology": {'); // corrupt: not the default
  await writeModel('missing-shard', '1');
  await rm(path.join(root, 'missing-shard', '1', 'weights.bin'));
  await editModelJson(await writeModel('escape', '1'), (json) => {
    json.weightsManifest[0].paths = ['../../good/1/weights.bin'];
  });
  await writeModel('mismatch', '1', { name: 'other' });
  await writeModel('bad-manifest', '1', { valueRange: [2, 1] });
  await writeModel('graph-claim', '1', { format: 'graph' });
  await mkdir(path.join(root, 'Bad Name', '1'), { recursive: true });
  await mkdir(path.join(root, 'empty'), { recursive: true });
  await mkdir(path.join(root, '.git'), { recursive: true });
  await writeFile(path.join(root, 'README.md'), 'not a model');
});

afterAll(async () => {
  await clearModelCache();
  await rm(root, { recursive: true, force: true });
});

describe('scanModelRepository', () => {
  it('lists every version folder, valid or not, each broken one with a reason', async () => {
    const entries = await scanModelRepository(root);
    const byKey = new Map(entries.map((e) => [`${e.name}@${e.version}`, e]));
    expect([...byKey.keys()].sort()).toEqual(
      [
        'Bad Name@',
        'bad-manifest@1',
        'empty@',
        'escape@1',
        'good@1',
        'good@10',
        'good@2',
        'graph-claim@1',
        'mismatch@1',
        'missing-shard@1',
      ].sort(),
    );
    for (const e of entries)
      expect(Boolean(e.manifest) !== Boolean(e.error), `${e.name}@${e.version}`).toBe(true);
    expect(byKey.get('good@1')?.manifest?.name).toBe('good');
    expect(byKey.get('good@2')?.error).toBeUndefined();
    expect(byKey.get('good@10')?.error).toMatch(/not valid JSON/);
    expect(byKey.get('missing-shard@1')?.error).toMatch(/weights\.bin' is missing/);
    expect(byKey.get('escape@1')?.error).toMatch(/outside the model folder/);
    expect(byKey.get('mismatch@1')?.error).toMatch(/says other@1 but the folder is mismatch\/1/);
    expect(byKey.get('bad-manifest@1')?.error).toMatch(/valueRange/);
    expect(byKey.get('graph-claim@1')?.error).toMatch(/format 'graph' but model.json is a layers model/);
    expect(byKey.get('Bad Name@')?.error).toMatch(/invalid model name/);
    expect(byKey.get('empty@')?.error).toMatch(/no version folders/);
    expect(byKey.get('good@1')?.dir).toBe(path.join(root, 'good', '1'));
  });

  it('resolves the highest valid version by default and an explicit one as asked', async () => {
    const entries = await scanModelRepository(root);
    expect(resolveModel(entries, 'good')?.version).toBe('2'); // 10 is corrupt
    expect(resolveModel(entries, 'good', '10')?.error).toBeDefined();
    expect(resolveModel(entries, 'good', '3')).toBeUndefined();
    expect(resolveModel(entries, 'missing-shard')).toBeUndefined();
    expect(compareVersions('v10', 'v9')).toBeGreaterThan(0);
    expect(compareVersions('1.10', '1.9')).toBeGreaterThan(0);
    expect(compareVersions('2', '10')).toBeLessThan(0);
  });

  it('a missing models folder is an error for the caller, not a crash later', async () => {
    await expect(scanModelRepository(path.join(root, 'nope'))).rejects.toThrow(/ENOENT/);
  });
});

describe('getModel', () => {
  it('loads the default version once per worker and caches it', async () => {
    const a = await getModel(tf, root, 'good');
    const b = await getModel(tf, root, 'good');
    expect(a).toBe(b);
    expect(a.version).toBe('2');
    expect(a.model.predict(tf.zeros([1, 4, 4, 1])) as tf.Tensor).toBeInstanceOf(tf.Tensor);
  });

  it('fails with coded errors and does not cache failures', async () => {
    await expect(getModel(tf, root, 'nothing-here')).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' });
    await expect(getModel(tf, root, '../good')).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' });
    await expect(getModel(tf, root, 'good', '10')).rejects.toMatchObject({ code: 'MODEL_INVALID' });
    await expect(getModel(tf, root, 'escape', '1')).rejects.toThrow(/outside the model folder/);
    const error = await getModel(tf, root, 'missing-shard', '1').catch((e) => e);
    expect(error).toBeInstanceOf(ModelLoadError);
    // Fix the folder: the next call loads it.
    await writeFile(
      path.join(root, 'missing-shard', '1', 'weights.bin'),
      await readFile(path.join(root, 'good', '1', 'weights.bin')),
    );
    expect((await getModel(tf, root, 'missing-shard', '1')).version).toBe('1');
  });

  it('runs registered custom-layer hooks before loading', async () => {
    await writeModel('hooked', '1');
    const calls: unknown[] = [];
    const remove = registerCustomLayers((t) => calls.push(t));
    await getModel(tf, root, 'hooked', '1');
    remove();
    expect(calls).toEqual([tf]);
  });

  it('reports a load failure (unknown layer class) with the model name', async () => {
    const dir = await writeModel('unknown-layer', '1');
    await editModelJson(dir, (json) => {
      json.modelTopology.config.layers[0].class_name = 'NoSuchLayer';
    });
    const error = await getModel(tf, root, 'unknown-layer', '1').catch((e) => e);
    expect(error).toMatchObject({ code: 'MODEL_LOAD_FAILED' });
    expect(error.message).toMatch(/unknown-layer@1 failed to load: .*NoSuchLayer/);
  });
});

describe('getModel without a version, when the newest version does not load', () => {
  it('falls back to the newest version that loads, and names the broken one when nothing else is left', async () => {
    await writeModel('hot', '1');
    const broken = await writeModel('hot', '2');
    await editModelJson(broken, (json) => {
      json.modelTopology.config.layers[0].class_name = 'NoSuchLayer';
    });
    // hot@2 passes the repository's checks (manifest, shard sizes) but fails to load: version-less work (jobs)
    // uses hot@1 rather than failing at every call.
    expect((await getModel(tf, root, 'hot')).version).toBe('1');
    expect((await getModel(tf, root, 'hot')).version).toBe('1');
    await expect(getModel(tf, root, 'hot', '2')).rejects.toMatchObject({ code: 'MODEL_LOAD_FAILED' });
    // A newer good version is picked up as soon as it is there.
    await writeModel('hot', '3');
    expect((await getModel(tf, root, 'hot')).version).toBe('3');
    // With only the broken version, its own error is reported.
    const lone = await writeModel('lone', '1');
    await editModelJson(lone, (json) => {
      json.modelTopology.config.layers[0].class_name = 'NoSuchLayer';
    });
    await expect(getModel(tf, root, 'lone')).rejects.toMatchObject({ code: 'MODEL_LOAD_FAILED' });
    await expect(getModel(tf, root, 'lone')).rejects.toMatchObject({ code: 'MODEL_LOAD_FAILED' });
  });
});

describe('warmupModel', () => {
  it('picks batch 1, spatial 32 (or extra.warmupSize) and the channel count for free dims', () => {
    const manifest = { ...validManifest(), required: false, metrics: {}, description: '' } as never;
    expect(warmupShape(manifest)).toEqual([1, 32, 32, 1]);
    expect(warmupShape({ ...(manifest as object), extra: { warmupSize: 16 } } as never)).toEqual([
      1, 16, 16, 1,
    ]);
    expect(warmupShape({ ...(manifest as object), inputShape: [null, 28, 28, 1] } as never)).toEqual([
      1, 28, 28, 1,
    ]);
  });

  it('runs one inference and leaves no tensors behind', async () => {
    const loaded = await getModel(tf, root, 'good', '1');
    const before = tf.memory().numTensors;
    const result = await warmupModel(tf, loaded.model, loaded.manifest);
    expect(result.outputShapes).toEqual([[1, 32, 32, 1]]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
