/**
 * Data for MID: colour images on [0,1] (interleaved RGB) and the scene split of the PolyU real-noise crops.
 *
 * PolyU names are `<camera>_<settings>_<scene>_<crop>_{real,mean}.JPG`; a scene is everything before `_<crop>_`
 * (trailing underscores dropped, so `plant__4` is a crop of `plant`). Crops of one scene share their noise and
 * content, so the split is by scene, never by crop.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Rng } from '../util/random.js';

export interface ColourImage {
  name: string;
  /** Interleaved RGB, row-major, on [0, 1]. */
  data: Float32Array;
  width: number;
  height: number;
}

/** Reads an image as 8-bit sRGB RGB (alpha dropped, grey expanded) on [0,1]. */
export async function loadColourImage(path: string, name = path): Promise<ColourImage> {
  const { data, info } = await sharp(path)
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`${path}: expected 3 channels, got ${info.channels}`);
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i] / 255;
  return { name, data: out, width: info.width, height: info.height };
}

export interface PolyuPair {
  scene: string;
  crop: string;
  real: string;
  mean: string;
}

/** The scene of a PolyU file name. */
export function polyuScene(fileName: string): { scene: string; crop: string } | null {
  const match = /^(.*?)_+(\d+)_(real|mean)\.jpe?g$/i.exec(fileName);
  if (!match) return null;
  return { scene: match[1], crop: match[2] };
}

/** Every noisy/mean pair in a PolyU folder, sorted by file name. */
export async function listPolyuPairs(dir: string): Promise<PolyuPair[]> {
  const names = (await readdir(dir)).sort();
  const pairs: PolyuPair[] = [];
  for (const name of names) {
    if (!/_real\.jpe?g$/i.test(name)) continue;
    const parsed = polyuScene(name);
    const mean = name.replace(/_real(\.jpe?g)$/i, '_mean$1');
    if (!parsed || !names.includes(mean)) continue;
    pairs.push({ ...parsed, real: join(dir, name), mean: join(dir, mean) });
  }
  return pairs;
}

export interface PolyuSplit {
  rule: string;
  /** Scenes whose noisy shots form the noisy set (their means are never read). */
  noisyScenes: string[];
  /** Scenes whose means join the clean set (their noisy shots are never read). */
  cleanScenes: string[];
  /** Scenes held out for validation (noisy vs mean). */
  validationScenes: string[];
}

/**
 * The fixed scene split: scenes sorted by name, scene i goes to validation when i % 4 == 1, to the clean set when
 * i % 4 == 3, and to the noisy training set otherwise (10 / 5 / 5 of the 20 scenes). Deterministic and spread over
 * the cameras, since neighbouring names share a camera.
 */
export function splitPolyuScenes(pairs: PolyuPair[]): PolyuSplit {
  const scenes = [...new Set(pairs.map((p) => p.scene))].sort();
  return {
    rule: 'scenes sorted by name; index % 4 == 1 -> validation, == 3 -> clean set (means only), else noisy set (noisy shots only)',
    noisyScenes: scenes.filter((_, i) => i % 4 === 0 || i % 4 === 2),
    cleanScenes: scenes.filter((_, i) => i % 4 === 3),
    validationScenes: scenes.filter((_, i) => i % 4 === 1),
  };
}

/** A random size x size crop of an interleaved colour image, randomly flipped (no transposes, like the noise). */
export function sampleColourPatch(images: ColourImage[], size: number, rng: Rng): Float32Array {
  const image = images[rng.int(images.length)];
  const top = rng.int(image.height - size + 1);
  const left = rng.int(image.width - size + 1);
  const flipRows = rng.uniform() < 0.5;
  const flipCols = rng.uniform() < 0.5;
  const out = new Float32Array(size * size * 3);
  for (let r = 0; r < size; r++) {
    const sr = top + (flipRows ? size - 1 - r : r);
    for (let c = 0; c < size; c++) {
      const sc = left + (flipCols ? size - 1 - c : c);
      const from = (sr * image.width + sc) * 3;
      const to = (r * size + c) * 3;
      out[to] = image.data[from];
      out[to + 1] = image.data[from + 1];
      out[to + 2] = image.data[from + 2];
    }
  }
  return out;
}
