/**
 * Noisy-only Noise2Score (--images) on the PyTorch path against the TypeScript trainer: recomputes a fixture of
 * tools/train/torch/noisy_fixture.py (levels PyTorch estimated, and an AR-DAE batch and its loss under given
 * weights) with tools/train/noise2score.ts's own functions, and returns the largest relative differences. Used by
 * test/train/noisy-parity.test.ts (the committed fixture) and `npm run check:torch` (a fresh one).
 */
import { readFile } from 'node:fs/promises';
import { estimateNoiseLevel, estimatePoissonZeta } from '../../../src/denoise/estimate.js';
import { buildScoreNetwork } from '../../../src/denoise/network.js';
import type { NoiseFamily } from '../../../src/denoise/noise.js';
import {
  arDaeLoss,
  type Batch,
  clampLevel,
  estimatePatchLevel,
  lossSigma,
  perturbationScale,
} from '../noise2score.js';

type Tf = typeof import('@tensorflow/tfjs');

interface FamilyFixture {
  u8: string;
  outputScale: number;
  cropLevels: number[];
  imageZetas?: number[];
  c: number;
  u: string;
  batchLevels: number[];
  lossScale: number[];
  loss: number;
  /**
   * A larger image textured everywhere and its unclamped level (estimateNoiseLevel), where the fixed fraction of
   * tiles is more than MIN_TILES; Gamma: also the level of that fixed fraction alone (before the noise-consistent
   * rule), which differs from `level`, so the rule is checked.
   */
  wide: {
    height: number;
    width: number;
    u8: string;
    level: number;
    fixedFractionLevel?: number;
    uncorrectedLevel?: number;
  };
}

export interface NoisyFixture {
  about: string;
  height: number;
  width: number;
  levelCrop: number;
  patch: number;
  crops: [number, number, number][];
  architecture: { kind: 'unet'; widths: [number, number, number] };
  weights: { name: string; shape: number[]; f32: string }[];
  families: Record<NoiseFamily, FamilyFixture>;
}

export interface FamilyParity {
  /** Largest relative difference of the estimated levels (crops, the wide image; Poisson: images and the batch's). */
  level: number;
  /** Of the loss's per-crop sigma_a. */
  lossScale: number;
  /** Of the AR-DAE loss: |tf.js - PyTorch| / |PyTorch|. */
  loss: number;
  tfjsLoss: number;
  torchLoss: number;
}

export async function readNoisyFixture(path: string): Promise<NoisyFixture> {
  return JSON.parse(await readFile(path, 'utf8')) as NoisyFixture;
}

function float32(b64: string): Float32Array {
  const bytes = Buffer.from(b64, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

const relative = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

/** [top, left, size, size] crop of image `index` of the stack, as the trainer's [0,1] floats (u8 * (1/255)). */
function crop(u8: Buffer, fx: NoisyFixture, index: number, top: number, left: number, size: number) {
  const out = new Float32Array(size * size);
  const base = index * fx.height * fx.width;
  for (let r = 0; r < size; r++)
    for (let c = 0; c < size; c++) out[r * size + c] = u8[base + (top + r) * fx.width + left + c] * (1 / 255);
  return out;
}

export async function noisyParity(tf: Tf, fx: NoisyFixture): Promise<Record<NoiseFamily, FamilyParity>> {
  const result = {} as Record<NoiseFamily, FamilyParity>;
  for (const [noise, f] of Object.entries(fx.families) as [NoiseFamily, FamilyFixture][]) {
    const u8 = Buffer.from(f.u8, 'base64');
    const count = u8.length / (fx.height * fx.width);
    let level = 0;
    for (let i = 0; i < count; i++) {
      const ts = estimatePatchLevel(noise, crop(u8, fx, i, 0, 0, fx.levelCrop), fx.levelCrop);
      level = Math.max(level, relative(ts, f.cropLevels[i]));
    }
    const wide = Float32Array.from(Buffer.from(f.wide.u8, 'base64'), (v) => v * (1 / 255));
    const wideLevel = estimateNoiseLevel(noise, wide, f.wide.width, f.wide.height);
    level = Math.max(level, relative(wideLevel, f.wide.level));
    const zetas: number[] = new Array(count).fill(1);
    if (noise === 'poisson') {
      for (let i = 0; i < count; i++) {
        const image = Float32Array.from(
          u8.subarray(i * fx.height * fx.width, (i + 1) * fx.height * fx.width),
          (v) => v * (1 / 255),
        );
        zetas[i] = clampLevel('poisson', estimatePoissonZeta(image, fx.width, fx.height));
        level = Math.max(level, relative(zetas[i], f.imageZetas?.[i] ?? Number.NaN));
      }
    }
    // The batch, as makeBatch() builds it from noisy crops: pairs (+u, -u).
    const u = float32(f.u);
    const pairs = fx.crops.length;
    const pixels = fx.patch * fx.patch;
    const batch: Batch = {
      input: new Float32Array(2 * pairs * pixels),
      noise: new Float32Array(2 * pairs * pixels),
      inputScale: new Float32Array(2 * pairs),
      lossScale: new Float32Array(2 * pairs),
    };
    let lossScale = 0;
    for (const [p, [index, top, left]] of fx.crops.entries()) {
      const noisy = crop(u8, fx, index, top, left, fx.patch);
      const patchLevel = noise === 'poisson' ? zetas[index] : estimatePatchLevel(noise, noisy, fx.patch);
      level = Math.max(level, relative(patchLevel, f.batchLevels[p]));
      const mean = noisy.reduce((s, v) => s + v, 0) / pixels;
      const perturbation = perturbationScale(noise, f.c, patchLevel, mean);
      const scale = noise === 'poisson' ? patchLevel * perturbation : perturbation;
      batch.inputScale[p] = batch.inputScale[p + pairs] = scale;
      batch.lossScale[p] = batch.lossScale[p + pairs] = lossSigma(noise, f.c, perturbation);
      lossScale = Math.max(lossScale, relative(batch.lossScale[p], f.lossScale[p]));
      for (let i = 0; i < pixels; i++) {
        const v = u[p * pixels + i];
        batch.noise[p * pixels + i] = v;
        batch.noise[(p + pairs) * pixels + i] = -v;
        batch.input[p * pixels + i] = noisy[i] + scale * v;
        batch.input[(p + pairs) * pixels + i] = noisy[i] - scale * v;
      }
    }
    const model = buildScoreNetwork(tf, { ...fx.architecture, outputScale: f.outputScale }, 1);
    const weights = new Map(fx.weights.map((w) => [w.name, w]));
    model.setWeights(
      model.weights.map((w) => {
        const found = weights.get(w.originalName);
        if (!found) throw new Error(`the fixture has no weight ${w.originalName}`);
        return tf.tensor(float32(found.f32), found.shape);
      }),
    );
    const tfjsLoss = arDaeLoss(tf, model, batch, fx.patch);
    model.dispose();
    result[noise] = {
      level,
      lossScale,
      loss: relative(tfjsLoss, f.loss),
      tfjsLoss,
      torchLoss: f.loss,
    };
  }
  return result;
}
