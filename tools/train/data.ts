/**
 * Training data for the image models: grey images loaded with sharp, and seeded random patches
 * (crop, flips, 90-degree rotations: the 8 symmetries of the square, under which natural-image statistics and
 * the noise models are invariant).
 */
import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import sharp from 'sharp';
import type { Rng } from '../../src/util/random.js';

export interface GreyImage {
  name: string;
  /** Row-major intensities on [0, 1]. */
  data: Float32Array;
  width: number;
  height: number;
  /** Bits per sample of the file it was read from (loadGreyImage); absent for images made in memory. */
  bits?: 8 | 16;
}

const IMAGE_EXTENSIONS = /\.(png|jpe?g|tiff?|bmp|webp)$/i;

/**
 * Reads one image file as grey [0,1] floats (sharp's greyscale: Rec. 709 luma of sRGB values). A 16-bit file
 * (PNG, TIFF) keeps its 16 bits (`bits: 16`, samples over 65535; sharp's plain greyscale().raw() would round it to
 * 8); every other file is read as 8 bits, as before.
 */
export async function loadGreyImage(path: string): Promise<Omit<GreyImage, 'name'>> {
  const { depth } = await sharp(path).metadata();
  const sixteenBit = depth === 'ushort' || depth === 'short';
  const pipeline = sixteenBit
    ? sharp(path).removeAlpha().toColourspace('grey16').raw({ depth: 'ushort' })
    : sharp(path).greyscale().raw();
  const { data, info } = await pipeline.toBuffer({ resolveWithObject: true });
  if (info.channels !== 1)
    throw new Error(`${path}: expected 1 channel after greyscale, got ${info.channels}`);
  const out = new Float32Array(info.width * info.height);
  const scale = sixteenBit ? 1 / 65535 : 1 / 255;
  // Copy first: the Buffer may sit at an odd offset in sharp's pool, and Uint16Array needs alignment.
  const values = sixteenBit
    ? new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + 2 * out.length))
    : data;
  for (let i = 0; i < out.length; i++) out[i] = values[i] * scale;
  return { data: out, width: info.width, height: info.height, bits: sixteenBit ? 16 : 8 };
}

/** The image files of a folder, any names (sorted, so a seeded run sees the same order everywhere). */
export async function listImages(dir: string): Promise<string[]> {
  const entries = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    throw new Error(error.code === 'ENOENT' ? `${dir}: no such folder` : `${dir}: ${error.message}`);
  });
  const names = entries.filter((n) => IMAGE_EXTENSIONS.test(n)).sort();
  if (names.length === 0) throw new Error(`no images (${IMAGE_EXTENSIONS.source}) in ${dir}`);
  return names.map((name) => join(dir, name));
}

/** Every image in a folder, as grey (colour images through sharp's greyscale), sorted by name. */
export async function loadGreyImages(dir: string): Promise<GreyImage[]> {
  return Promise.all(
    (await listImages(dir)).map(async (path) => ({ name: basename(path), ...(await loadGreyImage(path)) })),
  );
}

/**
 * A random size x size crop of a random image, randomly flipped and rotated by a multiple of 90 degrees.
 * Returns the patch and the index of the image it came from.
 */
export function samplePatch(
  images: GreyImage[],
  size: number,
  rng: Rng,
): { patch: Float32Array; index: number } {
  const index = rng.int(images.length);
  const image = images[index];
  if (image.width < size || image.height < size) {
    throw new RangeError(
      `${image.name} (${image.width}x${image.height}) is smaller than the ${size}px patch`,
    );
  }
  const top = rng.int(image.height - size + 1);
  const left = rng.int(image.width - size + 1);
  const symmetry = rng.int(8); // bit 0: transpose, bit 1: flip rows, bit 2: flip columns
  const patch = new Float32Array(size * size);
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) {
      let sr = symmetry & 1 ? c : r;
      let sc = symmetry & 1 ? r : c;
      if (symmetry & 2) sr = size - 1 - sr;
      if (symmetry & 4) sc = size - 1 - sc;
      patch[r * size + c] = image.data[(top + sr) * image.width + left + sc];
    }
  }
  return { patch, index };
}
