/**
 * The importers of GPU-trained weights (tools/train/torch/import-*.ts). PyTorch is not needed: a "run" folder is
 * written here the way the Python trainers write it (tf.js weight names and layout, a probe, train.json), from a
 * tf.js network, so the importer must reproduce the probe; a probe the weights do not reproduce must be refused.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildScoreNetwork,
  DEFAULT_ARCHITECTURE,
  registerNoise2ScoreLayers,
  type ScoreNetworkArchitecture,
} from '../../src/denoise/network.js';
import { loadDiffusionModel } from '../../src/diffusion/model.js';
import { buildUnet, DEFAULT_UNET } from '../../src/diffusion/unet.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { fileSystemIO } from '../../src/nn/fs-io.js';
import { parseModelManifest } from '../../src/nn/manifest.js';
import { tidyValues } from '../../src/nn/read.js';
import { Rng } from '../../src/util/random.js';
import { writeTensors } from '../../tools/train/tensor-file.js';
import { importDdpm } from '../../tools/train/torch/import-ddpm.js';
import { importNoise2Score } from '../../tools/train/torch/import-noise2score.js';

type Tensor = import('@tensorflow/tfjs').Tensor;
let tf: Tf;
let dir: string;

beforeAll(async () => {
  ({ tf } = await initTfjs('wasm'));
  dir = await mkdtemp(join(tmpdir(), 'torch-import-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => scale * rng.normal());
}

const summary = (extra: Record<string, unknown>) => ({
  steps: 10,
  batch: 4,
  patch: 64,
  size: 48,
  lr: 1e-4,
  emaDecay: 0.999,
  seed: 1,
  initFrom: null,
  seconds: 1,
  finalLoss: 0.5,
  device: 'test',
  torch: 'none',
  command: 'python3 tools/train/torch/noise2score.py (test)',
  images: { source: '../shared/data/train400', count: 400 },
  log: [{ step: 10, loss: 0.5 }],
  ...extra,
});

describe('import-noise2score', () => {
  async function writeRun(
    name: string,
    corruptProbe: boolean,
    options: { architecture?: ScoreNetworkArchitecture; teacher?: string } = {},
  ) {
    const run = join(dir, name);
    const architecture = options.architecture ?? { ...DEFAULT_ARCHITECTURE, outputScale: 32 };
    const model = buildScoreNetwork(tf, architecture, 5);
    const input = Float32Array.from(randomArray(64 * 64, 9, 0.1), (v, i) => v + (i % 64) / 64);
    const output = tf.tidy(() =>
      (model.predict(tf.tensor4d(input, [1, 64, 64, 1])) as Tensor).dataSync(),
    ) as Float32Array;
    if (corruptProbe) output[100] += 0.01 * Math.max(...output.map(Math.abs));
    await import('node:fs/promises').then((fs) => fs.mkdir(run, { recursive: true }));
    await writeTensors(run, [
      ...model.weights.map((w) => ({
        name: w.originalName,
        shape: w.shape as number[],
        values: w.read().dataSync() as Float32Array,
      })),
      { name: 'probe/input', shape: [1, 64, 64, 1], values: input },
      { name: 'probe/output', shape: [1, 64, 64, 1], values: output },
    ]);
    await writeFile(
      join(run, 'train.json'),
      JSON.stringify(
        summary({
          noise: 'gaussian',
          ...(options.architecture && { architecture: options.architecture }),
          ...(options.teacher && { teacher: options.teacher, teacherEnsemble: 8 }),
        }),
      ),
    );
    const reference = await tidyValues(tf, () => model.predict(tf.tensor4d(input, [1, 64, 64, 1])) as Tensor);
    model.dispose();
    return { run, input, reference };
  }

  /** The written model folder loads and computes what the run's network did on the probe input. */
  async function expectSameOutput(out: string, input: Float32Array, reference: Float32Array) {
    registerNoise2ScoreLayers(tf);
    const loaded = await tf.loadLayersModel(fileSystemIO(out));
    const again = await tidyValues(tf, () => loaded.predict(tf.tensor4d(input, [1, 64, 64, 1])) as Tensor);
    loaded.dispose();
    expect(Math.max(...again.map((v, i) => Math.abs(v - reference[i])))).toBeLessThan(1e-6);
  }

  /** Imports a run (the probe must match) and returns the model folder and its manifest, checked by the schema. */
  async function importRun(run: string, name: string, tradeoff?: string) {
    const out = join(dir, name, 'noise2score-gaussian', 'v9');
    const result = await importNoise2Score({
      from: run,
      out,
      tradeoff,
      commandLine: 'test',
      log: () => {},
    });
    expect(result.probeError).toBeLessThan(1e-6);
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
    expect(parseModelManifest(manifest).ok).toBe(true);
    return { out, manifest };
  }

  it('rebuilds the network from the run, checks the probe and writes a loadable model with a valid manifest', async () => {
    const { run, input, reference } = await writeRun('n2s-ok', false);
    const { out, manifest } = await importRun(run, 'n2s-model');
    expect(manifest.name).toBe('noise2score-gaussian');
    expect(manifest.metrics.backend).toContain('PyTorch');
    await expectSameOutput(out, input, reference);
  });

  it('builds the architecture the run names (add-skips, fewer convolutions) and describes a distilled run', async () => {
    const architecture: ScoreNetworkArchitecture = {
      kind: 'unet',
      widths: [8, 16, 24],
      outputScale: 32,
      skip: 'add',
      convs: [1, 1, 3, 1, 1],
    };
    const { run, input, reference } = await writeRun('n2s-small', false, {
      architecture,
      teacher: 'models/noise2score-gaussian/v7',
    });
    const { out, manifest } = await importRun(run, 'n2s-small-model', 'measured trade-off');
    expect(manifest.architecture).toMatchObject({
      ...architecture,
      multiple: 8,
      tradeoff: 'measured trade-off',
    });
    expect(manifest.metrics.loss).toMatch(
      /^distillation .*noise2score-gaussian\/v7 averaged over 8 symmetries/,
    );
    expect(manifest.description).toMatch(/distilled from models\/noise2score-gaussian\/v7/);
    expect(manifest.extra.teacher).toBe('models/noise2score-gaussian/v7');
    await expectSameOutput(out, input, reference);
  });

  it('refuses weights that do not reproduce the probe', async () => {
    const { run } = await writeRun('n2s-bad', true);
    (
      await expect(
        importNoise2Score({
          from: run,
          out: join(dir, 'n2s-bad-model', 'noise2score-gaussian', 'v9'),
          commandLine: 'test',
          log: () => {},
        }),
      )
    ).rejects.toThrow(/does not compute what PyTorch did/);
  });
});

describe('import-ddpm', () => {
  it('imports the EMA weights after the probe check, and refuses a probe they do not reproduce', async () => {
    const model = buildUnet(tf, DEFAULT_UNET);
    // The last conv starts at zero (eps = 0): give every weight a value so the probe means something.
    model.setWeights(
      model.weights.map((w, i) =>
        tf.tensor(
          randomArray(
            (w.shape as number[]).reduce((a, b) => a * b, 1),
            100 + i,
            0.05,
          ),
          w.shape as number[],
        ),
      ),
    );
    const x = randomArray(2 * 48 * 48, 7);
    const t = Float32Array.from([10, 500]);
    const eps = tf.tidy(() =>
      (model.predict([tf.tensor4d(x, [2, 48, 48, 1]), tf.tensor2d(t, [2, 1])]) as Tensor).dataSync(),
    ) as Float32Array;
    const weights = model.weights.map((w) => ({
      name: w.originalName,
      shape: w.shape as number[],
      values: w.read().dataSync() as Float32Array,
    }));
    model.dispose();
    const write = async (name: string, probe: Float32Array) => {
      const run = join(dir, name);
      await import('node:fs/promises').then((fs) => fs.mkdir(run, { recursive: true }));
      await writeTensors(run, [
        ...weights,
        { name: 'probe/x', shape: [2, 48, 48, 1], values: x },
        { name: 'probe/t', shape: [2, 1], values: t },
        { name: 'probe/eps', shape: [2, 48, 48, 1], values: probe },
      ]);
      await writeFile(
        join(run, 'train.json'),
        JSON.stringify(summary({ command: 'python3 tools/train/torch/ddpm.py (test)' })),
      );
      return run;
    };
    const out = join(dir, 'ddpm-model', 'ddpm-natural-grey', 'test');
    const result = await importDdpm({
      from: await write('ddpm-ok', eps),
      out,
      lineage: 'a test',
      commandLine: 'test',
      sampleSteps: 2,
      log: () => {},
    });
    expect(result.probeError).toBeLessThan(1e-5);
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
    expect(parseModelManifest(manifest).ok).toBe(true);
    expect(manifest.extra.lineage).toBe(
      'trained from a fresh initialisation, by tools/train/torch/ddpm.py (PyTorch none on test) on a CUDA GPU, a test',
    );
    expect(manifest.extra.torch.importCommand).toBe('test');
    const loaded = await loadDiffusionModel(tf, out);
    const again = tf.tidy(() =>
      (loaded.predict([tf.tensor4d(x, [2, 48, 48, 1]), tf.tensor2d(t, [2, 1])]) as Tensor).dataSync(),
    );
    loaded.dispose();
    expect(Math.max(...again.map((v, i) => Math.abs(v - eps[i])))).toBeLessThan(1e-5);

    const bad = Float32Array.from(eps, (v, i) => (i === 7 ? v + 1 : v));
    (
      await expect(
        importDdpm({
          from: await write('ddpm-bad', bad),
          out: join(dir, 'ddpm-bad-model', 'ddpm-natural-grey', 'test'),
          commandLine: 'test',
          sampleSteps: 2,
          log: () => {},
        }),
      )
    ).rejects.toThrow(/does not compute what PyTorch did/);
  });
});
