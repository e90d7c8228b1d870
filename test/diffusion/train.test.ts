import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDiffusionModel } from '../../src/diffusion/model.js';
import { predictEps, type UnetArchitecture } from '../../src/diffusion/unet.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { parseModelManifest } from '../../src/nn/manifest.js';
import { ddpmLearningRate, emaDecayAt, trainDdpm } from '../../tools/train/ddpm.js';

const tiny: UnetArchitecture = {
  kind: 'unet-eps',
  channels: [8, 8],
  resBlocks: 1,
  timeEmbedding: 8,
  groups: 4,
  spaceToDepth: 2,
  normTwicePerBlock: false,
};

let tf: Tf;
let dir: string;
beforeAll(async () => {
  tf = (await initTfjs('wasm')).tf;
  dir = await mkdtemp(join(tmpdir(), 'ddpm-train-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('DDPM training command', () => {
  it('runs 3 steps, exports a loadable model with manifest and samples, and resumes', async () => {
    const lines: string[] = [];
    const options = {
      dataset: 'fashion-mnist' as const,
      dataDir: '/usr/share/datasets/fashion-mnist',
      steps: 3,
      batch: 4,
      lr: 1e-3,
      size: 32,
      out: join(dir, 'models', 'ddpm-test', '1'),
      checkpointDir: join(dir, 'ckpt'),
      checkpointMinutes: 60,
      sampleMinutes: 60,
      resume: false,
      seed: 1,
      emaDecay: 0.999,
      sampleSteps: 3,
      sampleCount: 4,
      architecture: tiny,
      limitImages: 20,
      commandLine: 'test command',
      log: (line: string) => lines.push(line),
    };
    const result = await trainDdpm(tf, options);
    expect(result.steps).toBe(3);
    expect(result.finalLoss).toBeGreaterThan(0);
    const manifest = JSON.parse(
      await readFile(join(dir, 'models', 'ddpm-test', '1', 'manifest.json'), 'utf8'),
    );
    expect(manifest).toMatchObject({
      name: 'ddpm-test',
      task: 'diffusion-eps',
      format: 'layers',
      valueRange: [-1, 1],
      channels: 1,
      trainingSteps: 3,
      trainingCommand: 'test command',
    });
    expect(manifest.parameters).toBeGreaterThan(100);
    expect(parseModelManifest(manifest).ok).toBe(true);
    expect(manifest.metrics.status).toBe('complete');
    expect(manifest.metrics.finalTrainingLoss).toBeCloseTo(result.finalLoss!, 4);
    expect(manifest.extra.schedule).toMatchObject({ timesteps: 1000, betaStart: 1e-4, betaEnd: 0.02 });
    const png = await sharp(join(dir, 'models', 'ddpm-test', '1', 'samples.png')).metadata();
    expect(png.width).toBe(2 * 32 + 3 * 2);

    const model = await loadDiffusionModel(tf, join(dir, 'models', 'ddpm-test', '1'));
    const x = tf.randomNormal([1, 32, 32, 1]);
    const eps = predictEps(tf, model, x, 10);
    expect(eps.shape).toEqual([1, 32, 32, 1]);
    tf.dispose([x, eps]);
    model.dispose();

    const resumedLines: string[] = [];
    const resumed = await trainDdpm(tf, {
      ...options,
      steps: 5,
      resume: true,
      log: (l) => resumedLines.push(l),
    });
    expect(resumedLines.some((l) => l.includes('resumed from step 3'))).toBe(true);
    expect(resumed.steps).toBe(5);
    const again = JSON.parse(await readFile(join(dir, 'models', 'ddpm-test', '1', 'manifest.json'), 'utf8'));
    expect(again.trainingSteps).toBe(5);
    expect(again.metrics.resumedAtStep).toBe(3);
    expect((await stat(join(dir, 'ckpt', 'latest.json'))).isFile()).toBe(true);
  }, 60_000);

  it('warms up then decays the learning rate, and warms up the EMA decay', () => {
    expect(ddpmLearningRate(1e-3, 0, 1000)).toBeCloseTo(1e-3 / 20, 12);
    expect(ddpmLearningRate(1e-3, 19, 1000)).toBeCloseTo(1e-3, 12);
    expect(ddpmLearningRate(1e-3, 999, 1000)).toBeCloseTo(1e-4, 6);
    expect(emaDecayAt(0.999, 0)).toBeCloseTo(0.1, 12);
    expect(emaDecayAt(0.999, 1e6)).toBe(0.999);
  });
});
