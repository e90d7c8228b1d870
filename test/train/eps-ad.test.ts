/**
 * npm run train -- eps-ad on the core loop: its command line, and a tiny detector (EPS of a few Fashion-MNIST
 * training images with the committed score model) whose kernel training, stopped at step 3 and resumed, gives
 * the bytes of an uninterrupted run, with a manifest of data, command, lineage and validation.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { parseModelManifest } from '../../src/nn/manifest.js';
import { UsageError } from '../../tools/train/core/options.js';
import { type EpsAdCli, parseEpsAdArgs, trainEpsAd } from '../../tools/train/eps-ad.js';

let dir: string;
let tf: Tf;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'eps-ad-train-'));
  tf = (await initTfjs('wasm')).tf;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('npm run train -- eps-ad', () => {
  it('parses the shared options with its defaults and refuses what it has not', () => {
    expect(parseEpsAdArgs(['--help'])).toBeNull();
    expect(parseEpsAdArgs(['--version', '2', '--budget', '2/255'])).toMatchObject({
      out: 'models/eps-ad-fashion-mnist/2',
      steps: 1500,
      batch: 100,
      lr: 5e-4,
      budget: 2 / 255,
      trainImages: 600,
      checkpointDir: 'checkpoints/eps-ad-fashion-mnist',
      checkpointMinutes: 5,
      scoreModelDir: 'models/ddpm-fashion-mnist/20261127',
    });
    expect(() => parseEpsAdArgs(['--device', 'cuda'])).toThrow(/no GPU port/);
    expect(() => parseEpsAdArgs(['--init-from', 'models/x/1'])).toThrow(/no --init-from/);
    expect(() => parseEpsAdArgs(['--budget', '2'])).toThrow(UsageError);
    expect(() => parseEpsAdArgs(['--checkpoint-steps', '100'])).toThrow(UsageError);
  });

  it('a kernel stopped at step 3 and resumed gives the bytes of an uninterrupted run', async () => {
    const lines: string[] = [];
    const cli = (name: string, extra: string[] = []) => ({
      ...(parseEpsAdArgs([
        ...['--train-images', '20', '--reference', '8', '--calibration', '8', '--timesteps', '1'],
        ...['--steps', '7', '--batch', '4', '--features', '8', '--lr', '2e-3', '--seed', '3'],
        ...['--cache-dir', join(dir, 'cache'), '--checkpoint-dir', join(dir, 'ck', name)],
        ...['--out', join(dir, 'models', name, '1'), ...extra],
      ]) as EpsAdCli),
      commandLine: `npm run train -- eps-ad (test ${name})`,
      backend: 'wasm',
      log: (l: string) => lines.push(l),
    });
    const whole = await trainEpsAd(tf, cli('whole'));
    expect(whole.steps).toBe(7);
    expect(await trainEpsAd(tf, cli('split', ['--stop-at-step', '3']))).toEqual({
      steps: 3,
      validation: null,
    });
    await expect(trainEpsAd(tf, cli('split'))).rejects.toThrow(/holds a checkpoint: pass --resume/);
    await expect(trainEpsAd(tf, cli('split', ['--resume', '--batch', '5']))).rejects.toThrow(
      /made with batch 4, not batch 5/,
    );
    const resumed = await trainEpsAd(tf, cli('split', ['--resume']));
    expect(resumed).toEqual(whole);
    for (const file of ['weights.bin', 'detector.json', 'reference.f16']) {
      const bytes = (name: string) => readFile(join(dir, 'models', name, '1', file));
      expect((await bytes('split')).equals(await bytes('whole'))).toBe(true);
    }
    expect(lines.join('\n')).toMatch(/eps-ad kernel step 7\/7 loss -?\d.* J -?\d/);

    const manifest = JSON.parse(await readFile(join(dir, 'models', 'split', '1', 'manifest.json'), 'utf8'));
    expect(parseModelManifest(manifest).ok).toBe(true);
    expect(manifest).toMatchObject({
      name: 'split',
      version: '1',
      task: 'adversarial-detector',
      trainingSteps: 7,
    });
    expect(manifest.metrics).toMatchObject({
      ...resumed.validation,
      validationPairs: 4,
      calibrationImages: 8,
    });
    expect(manifest.trainingData).toMatch(
      /Fashion-MNIST training split .*: 20 images .*ddpm-fashion-mnist@20261127/,
    );
    expect(manifest.trainingCommand).toBe('npm run train -- eps-ad (test split)');
    expect(manifest.extra.lineage).toMatch(/eps-ad\.ts .* on the CPU, resumed at step 3 from .*ck\/split/);
  }, 60_000);

  it("reads no attacked image's EPS of another classifier from the cache", async () => {
    // A second classifier: the committed one with every weight negated (other logits, other attacks), version 2.
    const other = join(dir, 'classifiers', 'classifier-fashion-mnist', '2');
    await cp('models/classifier-fashion-mnist/1', other, { recursive: true });
    const manifest = JSON.parse(await readFile(join(other, 'manifest.json'), 'utf8'));
    await writeFile(join(other, 'manifest.json'), JSON.stringify({ ...manifest, version: '2' }));
    const weights = await readFile(join(other, 'weights.bin'));
    const values = new Float32Array(weights.buffer, weights.byteOffset, weights.byteLength / 4);
    await writeFile(
      join(other, 'weights.bin'),
      Float32Array.from(values, (v) => -v),
    );
    const run = (name: string, classifier: string, cache: string) =>
      trainEpsAd(tf, {
        ...(parseEpsAdArgs([
          ...['--train-images', '12', '--reference', '4', '--calibration', '4', '--timesteps', '1'],
          ...['--steps', '2', '--batch', '4', '--features', '8', '--classifier', classifier],
          ...['--cache-dir', join(dir, cache), '--checkpoint-dir', join(dir, 'ck', name)],
          ...['--out', join(dir, 'models', name, '1')],
        ]) as EpsAdCli),
        commandLine: `npm run train -- eps-ad (test ${name})`,
        backend: 'wasm',
        log: () => {},
      });
    await run('first', 'models/classifier-fashion-mnist/1', 'shared-cache');
    // The same cache after another classifier's run, and a fresh one: the same detector.
    await run('shared', other, 'shared-cache');
    await run('fresh', other, 'fresh-cache');
    const bytes = (name: string) => readFile(join(dir, 'models', name, '1', 'weights.bin'));
    expect((await bytes('shared')).equals(await bytes('fresh'))).toBe(true);
    expect((await bytes('first')).equals(await bytes('fresh'))).toBe(false);
  }, 60_000);
});
