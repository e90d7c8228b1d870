/**
 * The benchmark's inputs: Set12 clean images and their seeded noisy versions, shared by bench/denoise/run.ts and
 * test/denoise/quality.test.ts so that the test's figures are the benchmark's figures for the same images.
 *
 * Protocol (../shared/data/README.md): x = u8 / 255; y = x + sigma z with z ~ N(0, 1), no clipping or rounding.
 * Noise comes from src/util/random.ts `Rng` (xoshiro128** + Box-Muller) seeded per family and image, so every image
 * has its own reproducible stream and a subset of images gets the same noise as the full run.
 * Arrays are float32 (what the network sees); metrics compare against x in float64.
 */
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { addNoise, type NoiseFamily } from '../../src/denoise/noise.js';
import { Rng } from '../../src/util/random.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SET12_DIR = resolve(REPO_ROOT, '../shared/data/set12');

/** The levels of the benchmark, in library units: sigma on [0,1], zeta, k. */
export const BENCH_LEVELS: Record<NoiseFamily, number> = {
  gaussian: 25 / 255,
  poisson: 0.01,
  gamma: 100,
};

/** Seed of image `NN.png` for a family: BASE + NN (e.g. Gaussian 01 -> 2501). */
export const NOISE_SEED_BASE: Record<NoiseFamily, number> = { gaussian: 2500, poisson: 1000, gamma: 10_000 };

export function noiseSeed(family: NoiseFamily, name: string): number {
  return NOISE_SEED_BASE[family] + Number.parseInt(name, 10);
}

export interface CleanImage {
  /** File stem, e.g. "01". */
  name: string;
  width: number;
  height: number;
  u8: Uint8Array;
  /** x = u8 / 255 in float64, the reference for PSNR. */
  x: Float64Array;
}

export function set12Names(): string[] {
  return readdirSync(SET12_DIR)
    .filter((f) => f.endsWith('.png'))
    .map((f) => f.replace(/\.png$/, ''))
    .sort();
}

export async function loadSet12Image(name: string): Promise<CleanImage> {
  const { data, info } = await sharp(join(SET12_DIR, `${name}.png`))
    .greyscale()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 1) throw new Error(`${name}.png decoded to ${info.channels} channels, expected 1`);
  const u8 = new Uint8Array(data.buffer, data.byteOffset, info.width * info.height).slice();
  const x = new Float64Array(u8.length);
  for (let i = 0; i < u8.length; i++) x[i] = u8[i] / 255;
  return { name, width: info.width, height: info.height, u8, x };
}

/** The seeded noisy version of a Set12 image at the benchmark level (or another level). */
export function noisyVersion(
  image: CleanImage,
  family: NoiseFamily,
  level = BENCH_LEVELS[family],
): Float32Array {
  const x32 = Float32Array.from(image.x);
  return addNoise(family, x32, level, new Rng(noiseSeed(family, image.name)));
}
