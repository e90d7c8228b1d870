/**
 * npm run train -- classifier on the core loop: its command line, a tiny run stopped and resumed that gives the
 * bytes of an uninterrupted one, and the manifest (data, command, lineage, test accuracy; --init-from carries the
 * previous run's steps and command).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { parseModelManifest } from '../../src/nn/manifest.js';
import {
  type ClassifierTrainingOptions,
  parseClassifierArgs,
  trainClassifier,
} from '../../tools/train/classifier.js';
import { UsageError } from '../../tools/train/core/options.js';

let dir: string;
let tf: Tf;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'classifier-train-'));
  tf = (await initTfjs('wasm')).tf;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('npm run train -- classifier', () => {
  it('parses the shared options with its defaults; --init is --init-from; no GPU port', () => {
    expect(parseClassifierArgs(['--help'])).toBeNull();
    expect(
      parseClassifierArgs(['--version', '3', '--init', 'models/classifier-fashion-mnist/1']),
    ).toMatchObject({
      out: 'models/classifier-fashion-mnist/3',
      steps: 2800,
      batch: 64,
      lr: 1e-3,
      checkpointDir: 'checkpoints/classifier-fashion-mnist',
      checkpointMinutes: 5,
      initFrom: 'models/classifier-fashion-mnist/1',
    });
    expect(() => parseClassifierArgs(['--device', 'cuda'])).toThrow(/no GPU port/);
    expect(() => parseClassifierArgs(['--init', 'a/1', '--init-from', 'b/1'])).toThrow(UsageError);
    expect(() => parseClassifierArgs(['--checkpoint-steps', '5'])).toThrow(UsageError);
    expect(() => parseClassifierArgs(['--out', 'x/bad version'])).toThrow(/model version 'bad version'/);
  });

  it('a run stopped at step 3 and resumed gives the bytes of an uninterrupted run', async () => {
    const lines: string[] = [];
    const options = (
      name: string,
      over: Partial<ClassifierTrainingOptions> = {},
    ): ClassifierTrainingOptions => ({
      ...{
        steps: 6,
        batch: 8,
        lr: 2e-3,
        seed: 3,
        limitImages: 40,
        backend: 'wasm',
        log: (l) => lines.push(l),
      },
      ...{ out: join(dir, 'models', name, '1'), checkpointDir: join(dir, 'ck', name), checkpointMinutes: 60 },
      ...{ resume: false, commandLine: `npm run train -- classifier (test ${name})`, ...over },
    });
    const whole = await trainClassifier(tf, options('whole'));
    expect(whole).toMatchObject({ steps: 6, testAccuracy: expect.any(Number) });
    // 40 images, batch 8: the stream crosses an epoch (a reshuffle) at step 5, after the resume.
    const stopped = await trainClassifier(tf, options('split', { stopAtStep: 3 }));
    expect(stopped).toMatchObject({ steps: 3, testAccuracy: null });
    expect(lines).toContain('stopped at step 3 of 6 (continue with --resume)');
    await expect(trainClassifier(tf, options('split', { resume: true, seed: 4 }))).rejects.toThrow(
      /made with seed 3, not seed 4/,
    );
    const resumed = await trainClassifier(tf, options('split', { resume: true }));
    expect(resumed.steps).toBe(6);
    const bytes = (name: string) => readFile(join(dir, 'models', name, '1', 'weights.bin'));
    expect((await bytes('split')).equals(await bytes('whole'))).toBe(true);
    expect(resumed.finalLoss).toBe(whole.finalLoss);

    const manifest = JSON.parse(await readFile(join(dir, 'models', 'split', '1', 'manifest.json'), 'utf8'));
    expect(parseModelManifest(manifest).ok).toBe(true);
    expect(manifest).toMatchObject({ name: 'split', version: '1', task: 'classifier', trainingSteps: 6 });
    expect(manifest.metrics).toMatchObject({ testAccuracy: resumed.testAccuracy, testImages: 40 });
    expect(manifest.trainingData).toMatch(/Fashion-MNIST training split .*40 images/);
    expect(manifest.extra.lineage).toMatch(
      /classifier\.ts .* on the CPU, resumed at step 3 from .*ck\/split/,
    );

    const init = join(dir, 'models', 'whole', '1');
    await trainClassifier(
      tf,
      options('tuned', { steps: 2, initFrom: init, commandLine: 'npm run train -- next' }),
    );
    const tuned = JSON.parse(await readFile(join(dir, 'models', 'tuned', '1', 'manifest.json'), 'utf8'));
    expect(tuned.trainingSteps).toBe(8);
    expect(tuned.trainingCommand).toBe('npm run train -- classifier (test whole) && npm run train -- next');
    expect(tuned.extra.lineage).toMatch(new RegExp(`^fine-tuned from ${init}`));
  }, 60_000);
});
