/**
 * The held-out grey images for model and setting selection (issue 18): natural photographs that scikit-image ships
 * in Debian's python3-skimage (/usr/lib/python3/dist-packages/skimage/data), none of them in train400 or Set12.
 *
 * Why not part of train400: every committed Noise2Score model was trained on all 400 train400 images (their
 * manifests' trainingData and trainingCommand), so no train400 image is unseen by them. When models are retrained
 * without TRAIN400_HOLDOUT (the last 40 images in sorted order), those 40 join this set (`train400Holdout`).
 *
 * The photographs are split by a fixed rule (names sorted; index odd -> `selection`, even -> `report`):
 *  - selection: brick, chelsea, coins, gravel, motorcycle_left. Tune on these only (NLM's h, estimator constants).
 *  - report:    astronaut, camera, coffee, grass, moon, rocket. Figures only; never tuned on.
 * Set12 and the PolyU validation scenes are final figures and are not read here.
 *
 * Each photograph is converted to grey by sharp (`greyscale()`, libvips' sRGB luminance) and centre-cropped to
 * CROP x CROP, then x = u8/255. Noisy inputs are what the service receives from an 8-bit upload: y = x + noise,
 * clipped to [0, 1] and rounded to 8 bits (`eightBitClipped`). Noise is seeded per image and level, from
 * src/util/random.ts `Rng` (see heldoutNoiseSeed).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { addNoise, type NoiseFamily } from '../../src/denoise/noise.js';
import { Rng } from '../../src/util/random.js';
import { type CleanImage, REPO_ROOT } from './inputs.js';

export const SKIMAGE_DATA_DIR = '/usr/lib/python3/dist-packages/skimage/data';
export const TRAIN400_DIR = join(REPO_ROOT, '../shared/data/train400');

/** The natural photographs among scikit-image's data files (not text, microscopy, astronomy or synthetic). */
export const HELDOUT_PHOTOS: readonly string[] = [
  'astronaut.png',
  'brick.png',
  'camera.png',
  'chelsea.png',
  'coffee.png',
  'coins.png',
  'grass.png',
  'gravel.png',
  'moon.png',
  'motorcycle_left.png',
  'rocket.jpg',
];

/** Images of train400 (sorted) kept out of training from now on: the last 40. */
export const TRAIN400_HOLDOUT = 40;

export type HeldoutSplit = 'selection' | 'report';

export function heldoutSplit(): Record<HeldoutSplit, string[]> {
  const sorted = [...HELDOUT_PHOTOS].sort();
  return {
    selection: sorted.filter((_, i) => i % 2 === 1),
    report: sorted.filter((_, i) => i % 2 === 0),
  };
}

export const CROP = 256;

/** A photograph as a grey centre crop (at most CROP x CROP, or `crop` when given). */
export async function loadHeldoutImage(file: string, crop = CROP): Promise<CleanImage> {
  const path = join(SKIMAGE_DATA_DIR, file);
  const meta = await sharp(path).metadata();
  const width = Math.min(crop, meta.width ?? 0);
  const height = Math.min(crop, meta.height ?? 0);
  const left = Math.floor(((meta.width ?? 0) - width) / 2);
  const top = Math.floor(((meta.height ?? 0) - height) / 2);
  const { data, info } = await sharp(path)
    .extract({ left, top, width, height })
    .greyscale()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 1) throw new Error(`${file} decoded to ${info.channels} channels, expected 1`);
  const u8 = new Uint8Array(data.buffer, data.byteOffset, width * height).slice();
  const x = new Float64Array(u8.length);
  for (let i = 0; i < u8.length; i++) x[i] = u8[i] / 255;
  return { name: file.replace(/\.(png|jpg)$/, ''), width, height, u8, x };
}

/** The last TRAIN400_HOLDOUT images of train400 (for models trained without them), when the folder is there. */
export function train400Holdout(): string[] {
  if (!existsSync(TRAIN400_DIR)) return [];
  return readdirSync(TRAIN400_DIR)
    .filter((f) => f.endsWith('.png'))
    .sort()
    .slice(-TRAIN400_HOLDOUT);
}

/** One of train400's images (grey PNG, 180x180), named by its file name without the extension. */
export async function loadTrain400Image(file: string): Promise<CleanImage> {
  const { data, info } = await sharp(join(TRAIN400_DIR, file))
    .greyscale()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const u8 = new Uint8Array(data.buffer, data.byteOffset, info.width * info.height).slice();
  const x = Float64Array.from(u8, (v) => v / 255);
  return { name: file.replace(/\.png$/, ''), width: info.width, height: info.height, u8, x };
}

/**
 * Centre size x size crops of train400 images test_<n> (grey, [0, 1]), stacked as [numbers.length, size, size] for
 * a batch: the held-out crops of the RED-Diff sweeps and their quality test.
 */
export async function train400CentreCrops(numbers: number[], size: number): Promise<Float32Array> {
  const x = new Float32Array(numbers.length * size * size);
  for (const [b, n] of numbers.entries()) {
    const { data, info } = await sharp(join(TRAIN400_DIR, `test_${String(n).padStart(3, '0')}.png`))
      .greyscale()
      .raw()
      .toBuffer({ resolveWithObject: true });
    const top = Math.floor((info.height - size) / 2);
    const left = Math.floor((info.width - size) / 2);
    for (let r = 0; r < size; r++)
      for (let c = 0; c < size; c++)
        x[b * size * size + r * size + c] = data[((top + r) * info.width + left + c) * info.channels] / 255;
  }
  return x;
}

/** Seed of one noisy version: a hash of image name, family and level, so each has its own reproducible stream. */
export function heldoutNoiseSeed(name: string, family: NoiseFamily, level: number): number {
  let h = 2166136261;
  for (const ch of `${name}|${family}|${level}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  return h;
}

/** What an 8-bit upload of y is: clipped to [0, 1], rounded to a multiple of 1/255. */
export function eightBitClipped(y: Float32Array): Float32Array {
  return Float32Array.from(y, (v) => Math.round(Math.min(1, Math.max(0, v)) * 255) / 255);
}

/** The seeded, 8-bit clipped noisy version of a held-out image (`draw` > 0: another draw of the noise). */
export function heldoutNoisy(image: CleanImage, family: NoiseFamily, level: number, draw = 0): Float32Array {
  const rng = new Rng(heldoutNoiseSeed(image.name, family, level) + draw);
  return eightBitClipped(addNoise(family, Float32Array.from(image.x), level, rng));
}
