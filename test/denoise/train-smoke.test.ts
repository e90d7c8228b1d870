import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNoise2ScoreModel } from '../../src/denoise/model.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { parseModelManifest } from '../../src/nn/manifest.js';
import {
  arDaeLoss,
  loadTrainingImages,
  makeBatch,
  type TrainNoise2ScoreOptions,
  trainNoise2Score,
} from '../../tools/train/noise2score.js';

let tf: Tf;
let dir: string;

beforeAll(async () => {
  tf = (await initTfjs('wasm')).tf;
  dir = await mkdtemp(join(tmpdir(), 'n2s-smoke-'));
  // Three small clean images: smooth gradients with a bright square.
  for (let k = 0; k < 3; k++) {
    const pixels = Buffer.alloc(40 * 40);
    for (let r = 0; r < 40; r++) {
      for (let c = 0; c < 40; c++) {
        const inside = r > 10 + k && r < 28 && c > 8 && c < 30 - k;
        pixels[r * 40 + c] = inside ? 200 : 40 + 3 * c + k * 10;
      }
    }
    await sharp(pixels, { raw: { width: 40, height: 40, channels: 1 } })
      .png()
      .toFile(join(dir, `img${k}.png`));
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('noise2score training (smoke)', () => {
  it('a few steps on tiny patches lower the AR-DAE loss and export a model that loads', async () => {
    const options: TrainNoise2ScoreOptions = {
      noise: 'gaussian',
      cleanDir: dir,
      steps: 16,
      batch: 8,
      patch: 16,
      lr: 3e-3,
      out: join(dir, 'models', 'smoke-gaussian', '1'),
      checkpointDir: join(dir, 'checkpoints'),
      resume: false,
      seed: 5,
      checkpointMinutes: 100,
      architecture: { kind: 'unet', widths: [8, 8, 8], outputScale: 32 },
      commandLine: 'npm run train -- noise2score --noise gaussian (smoke test)',
      validationDir: dir,
      log: () => {},
    };
    const images = await loadTrainingImages(options);
    // A held-out batch (a step index training never uses) at a fixed sigma_a.
    const heldOut = makeBatch(options, images, 1_000_000, 0.05);
    const { buildScoreNetwork } = await import('../../src/denoise/network.js');
    const untrained = buildScoreNetwork(tf, options.architecture, options.seed); // same init as training
    const before = arDaeLoss(tf, untrained, heldOut, options.patch);
    untrained.dispose();

    const result = await trainNoise2Score(tf, options);
    expect(result.steps).toBe(16);

    const { model: loaded, noise, multiple } = await loadNoise2ScoreModel(tf, options.out);
    expect(noise).toBe('gaussian');
    expect(multiple).toBe(8);
    const after = arDaeLoss(tf, loaded, heldOut, options.patch);
    expect(after).toBeLessThan(before);

    const manifest = JSON.parse(await readFile(join(options.out, 'manifest.json'), 'utf8'));
    expect(manifest.task).toBe('denoise-score');
    expect(manifest.noiseFamily).toBe('gaussian');
    expect(manifest.trainingSteps).toBe(16);
    expect(manifest.parameters).toBe(loaded.countParams());
    expect(manifest.trainingCommand).toContain('noise2score');
    expect(parseModelManifest(manifest).ok).toBe(true);
    expect(manifest.metrics.status).toBe('final');
    expect(manifest.metrics.validationPsnr).toBeGreaterThan(10);
    expect(manifest.extra.validationPerImage).toHaveLength(3);
    // Fully convolutional: any multiple-of-8 size goes through.
    const out = tf.tidy(
      () => (loaded.predict(tf.zeros([1, 24, 40, 1])) as import('@tensorflow/tfjs').Tensor).shape,
    );
    expect(out).toEqual([1, 24, 40, 1]);
    loaded.dispose();
  });

  it('--resume continues exactly: 3 steps + resume to 6 equals 6 steps in one run', async () => {
    const base: TrainNoise2ScoreOptions = {
      noise: 'gaussian',
      cleanDir: dir,
      steps: 6,
      batch: 4,
      patch: 16,
      lr: 1e-3,
      out: '',
      checkpointDir: '',
      resume: false,
      seed: 9,
      checkpointMinutes: 100,
      architecture: { kind: 'unet', widths: [8, 8, 8], outputScale: 32 },
      commandLine: 'smoke',
      log: () => {},
    };
    const straight = { ...base, out: join(dir, 'a/straight/1'), checkpointDir: join(dir, 'a/ck') };
    const split = { ...base, out: join(dir, 'b/split/1'), checkpointDir: join(dir, 'b/ck') };
    await trainNoise2Score(tf, straight);
    const partial = await trainNoise2Score(tf, { ...split, stopAtStep: 3 });
    expect(partial.steps).toBe(3);
    await trainNoise2Score(tf, { ...split, resume: true });
    const [a, b] = await Promise.all([
      readFile(join(straight.out, 'weights.bin')),
      readFile(join(split.out, 'weights.bin')),
    ]);
    expect(a.length).toBeGreaterThan(1000);
    expect(a.equals(b)).toBe(true);
  });
});

describe('noise2score training batches', () => {
  it('Gaussian: sigma_a is c times each patch level (relative recipe), u and -u pairs around the same noisy patch', async () => {
    const { FAMILY_TRAINING } = await import('../../tools/train/noise2score.js');
    const options = {
      noise: 'gaussian',
      cleanDir: dir,
      batch: 8,
      patch: 16,
      seed: 9,
    } as TrainNoise2ScoreOptions;
    const images = await loadTrainingImages(options);
    const c = 0.8;
    const batch = makeBatch(options, images, 3, c);
    const pairs = batch.lossScale.length / 2;
    const [lo, hi] = FAMILY_TRAINING.gaussian.levelRange;
    const levels = new Set<number>();
    for (let p = 0; p < pairs; p++) {
      const scale = batch.lossScale[p];
      expect(batch.lossScale[p + pairs]).toBe(scale);
      expect(batch.inputScale[p]).toBe(scale);
      // scale / c is the patch's noise level, drawn from the blind training range
      expect(scale / c).toBeGreaterThanOrEqual(lo * (1 - 1e-6));
      expect(scale / c).toBeLessThanOrEqual(hi * (1 + 1e-6));
      levels.add(+(scale / c).toFixed(6));
      // input(+u) - input(-u) = 2 sigma_a u: the perturbation has exactly the loss's sigma_a
      const base = p * 256;
      const other = (p + pairs) * 256;
      for (let i = 0; i < 256; i += 37) {
        const diff = batch.input[base + i] - batch.input[other + i];
        expect(diff).toBeCloseTo(2 * scale * batch.noise[base + i], 4);
      }
    }
    expect(levels.size).toBe(pairs); // a fresh level per patch
  });
});

describe('noise2score training on noisy images (--images)', () => {
  it('flat or clipped patches still get a positive sigma_a: the score-matching figure stays finite', async () => {
    const noisyDir = join(dir, 'noisy');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(noisyDir, { recursive: true });
    // A flat grey image, a saturated one (a clipped highlight) and a noisy gradient; 16-bit PNG for one of them.
    await sharp(Buffer.alloc(24 * 24, 128), { raw: { width: 24, height: 24, channels: 1 } })
      .png()
      .toFile(join(noisyDir, 'flat.png'));
    await sharp(Buffer.alloc(24 * 24 * 3, 255), { raw: { width: 24, height: 24, channels: 3 } })
      .jpeg()
      .toFile(join(noisyDir, 'IMG 0002.JPG'));
    const rng = new (await import('../../src/util/random.js')).Rng(4);
    const noisy = new Uint16Array(24 * 24).map((_, i) =>
      Math.round(65535 * Math.min(1, Math.max(0, 0.3 + (i % 24) / 60 + 0.08 * rng.normal()))),
    );
    // A Uint16Array (not its bytes as a Buffer) tells sharp the raw samples are 16-bit.
    await sharp(noisy, {
      raw: { width: 24, height: 24, channels: 1, premultiplied: false },
    })
      .toColourspace('grey16')
      .png()
      .toFile(join(noisyDir, 'scan.png'));
    expect((await sharp(join(noisyDir, 'scan.png')).metadata()).depth).toBe('ushort');
    for (const noise of ['gaussian', 'gamma', 'poisson'] as const) {
      const options = { noise, noisyDir, batch: 12, patch: 16, seed: 3 } as TrainNoise2ScoreOptions;
      const images = await loadTrainingImages(options);
      expect(images.map((im) => im.name)).toEqual(['IMG 0002.JPG', 'flat.png', 'scan.png']);
      for (let step = 0; step < 12; step++) {
        const batch = makeBatch(options, images, step, 0.7);
        let uSquared = 0;
        for (const v of batch.noise) uSquared += v * v;
        let scale2 = 0;
        for (const v of batch.lossScale) {
          expect(Number.isFinite(v) && v > 0).toBe(true);
          scale2 += v * v;
        }
        expect(Number.isFinite(uSquared / scale2)).toBe(true);
        for (const v of batch.input) expect(Number.isFinite(v)).toBe(true);
      }
    }
  });
});
