/**
 * The data of a MID run: a noisy set (the images to learn the noise of), a clean set (unpaired clean images the
 * synthetic pairs are made on) and, when there are references, validation pairs (a noisy image and its clean
 * reference, held out of training). Two sources:
 *
 * - a folder of the user's noisy images (`--images`, any names) with a folder of clean photographs (`--clean`,
 *   never paired with them) and optionally clean references (`--references`: a reference named like a noisy
 *   image, whatever the extension, makes that image a validation pair);
 * - the PolyU recipe (`--polyu-dir`): split by scene into noisy, clean (means) and validation scenes.
 */
import { basename, extname } from 'node:path';
import {
  type ColourImage,
  listPolyuPairs,
  loadColourImage,
  type PolyuPair,
  splitPolyuScenes,
} from '../../src/mid/data.js';
import { listImages } from './data.js';

export interface MidDataOptions {
  polyuDir?: string;
  noisyDir?: string;
  cleanDir?: string;
  /** Extra clean colour photos (files), unpaired with anything. */
  extraClean: string[];
  referencesDir?: string;
  patch: number;
  /** The noisy set and validation use the centre evalCrop x evalCrop of each image (0: whole). */
  evalCrop: number;
}

export interface MidData {
  noisy: ColourImage[];
  clean: ColourImage[];
  validation: { noisy: ColourImage; mean: ColourImage }[];
  /** The manifest's trainingData. */
  description: string;
  /** How the data was split, for the manifest's extra. */
  split: Record<string, unknown>;
}

/** The centre size x size of an image (the image itself when size is 0 or not smaller). */
export function centreCrop(image: ColourImage, size: number): ColourImage {
  if (size <= 0 || (size >= image.width && size >= image.height)) return image;
  const w = Math.min(size, image.width);
  const h = Math.min(size, image.height);
  const top = (image.height - h) >> 1;
  const left = (image.width - w) >> 1;
  const data = new Float32Array(w * h * 3);
  for (let r = 0; r < h; r++) {
    data.set(
      image.data.subarray(((top + r) * image.width + left) * 3, ((top + r) * image.width + left + w) * 3),
      r * w * 3,
    );
  }
  return { name: image.name, data, width: w, height: h };
}

const stem = (path: string) => basename(path, extname(path));

export async function loadMidData(options: MidDataOptions): Promise<MidData> {
  if (!options.polyuDir === !options.noisyDir)
    throw new Error('give the noisy images: --images DIR (or the PolyU recipe, --polyu-dir DIR), not both');
  const data = options.polyuDir ? await loadPolyu(options, options.polyuDir) : await loadFolders(options);
  const small = data.clean.filter((im) => im.width < options.patch || im.height < options.patch);
  data.clean = data.clean.filter((im) => !small.includes(im));
  if (data.clean.length === 0)
    throw new Error(`no clean image of at least ${options.patch}x${options.patch} (--clean / --extra-clean)`);
  if (data.noisy.length === 0)
    throw new Error('no noisy image left for training (all of them have references?)');
  return data;
}

async function loadFolders(options: MidDataOptions): Promise<MidData> {
  if (!options.cleanDir && options.extraClean.length === 0)
    throw new Error(
      'MID learns from synthetic pairs made on clean images: give --clean DIR (any clean photographs, never ' +
        'paired with your noisy ones)',
    );
  const noisyFiles = await listImages(options.noisyDir!);
  const references = new Map(
    options.referencesDir ? (await listImages(options.referencesDir)).map((f) => [stem(f), f] as const) : [],
  );
  const noisy: ColourImage[] = [];
  const validation: MidData['validation'] = [];
  for (const file of noisyFiles) {
    const image = centreCrop(await loadColourImage(file, basename(file)), options.evalCrop);
    const reference = references.get(stem(file));
    if (!reference) noisy.push(image);
    else
      validation.push({
        noisy: image,
        mean: centreCrop(await loadColourImage(reference, stem(file)), options.evalCrop),
      });
  }
  const cleanFiles = [...(options.cleanDir ? await listImages(options.cleanDir) : []), ...options.extraClean];
  const clean = await Promise.all(cleanFiles.map((f) => loadColourImage(f, basename(f))));
  return {
    noisy,
    clean,
    validation,
    description:
      `${options.noisyDir} (${noisy.length} noisy images, used as they are) and ${clean.length} clean images ` +
      `(${[options.cleanDir, ...options.extraClean].filter(Boolean).join(', ')}), never paired` +
      (validation.length > 0
        ? `; validation: ${validation.length} noisy images with a reference in ${options.referencesDir}, held out`
        : '; no references, no validation figures'),
    split: {
      noisyDir: options.noisyDir,
      cleanDir: options.cleanDir,
      extraClean: options.extraClean,
      referencesDir: options.referencesDir,
      validationImages: validation.map((v) => v.noisy.name),
    },
  };
}

async function loadPolyu(options: MidDataOptions, polyuDir: string): Promise<MidData> {
  const pairs = await listPolyuPairs(polyuDir);
  const split = splitPolyuScenes(pairs);
  const inScenes = (scenes: string[]) => pairs.filter((p) => scenes.includes(p.scene));
  const load = (p: PolyuPair, which: 'real' | 'mean') =>
    loadColourImage(p[which], `${p.scene}_${p.crop}_${which}`);
  const noisy = (await Promise.all(inScenes(split.noisyScenes).map((p) => load(p, 'real')))).map((im) =>
    centreCrop(im, options.evalCrop),
  );
  const cleanPolyu = await Promise.all(inScenes(split.cleanScenes).map((p) => load(p, 'mean')));
  const extra = await Promise.all(options.extraClean.map((f) => loadColourImage(f, f)));
  const validation = await Promise.all(
    inScenes(split.validationScenes).map(async (p) => ({
      noisy: centreCrop(await load(p, 'real'), options.evalCrop),
      mean: centreCrop(await load(p, 'mean'), options.evalCrop),
    })),
  );
  return {
    noisy,
    clean: [...cleanPolyu, ...extra],
    validation,
    description:
      `PolyU (${polyuDir}) split by scene: noisy set = noisy shots of ${split.noisyScenes.length} scenes; ` +
      `clean set = means of ${split.cleanScenes.length} other scenes + ${extra.length} colour photos; ` +
      `validation = ${split.validationScenes.length} held-out scenes. Never paired.`,
    split: { ...split, polyuDir, extraClean: options.extraClean },
  };
}
