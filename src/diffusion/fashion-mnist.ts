/**
 * Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017) from the IDX gzip files of the Debian package
 * `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist). Used to train `ddpm-fashion-mnist` (training split
 * only) and to evaluate on the test split.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

export interface IdxImages {
  count: number;
  height: number;
  width: number;
  /** count * height * width bytes, row-major, 0 = background. */
  pixels: Uint8Array;
}

/** Parses an IDX3 unsigned-byte image file (magic 2051), gzipped or not. */
export function parseIdxImages(bytes: Uint8Array): IdxImages {
  const data = bytes[0] === 0x1f && bytes[1] === 0x8b ? new Uint8Array(gunzipSync(bytes)) : bytes;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const magic = view.getInt32(0, false);
  if (magic !== 2051) throw new Error(`not an IDX3 image file (magic ${magic}, expected 2051)`);
  const count = view.getInt32(4, false);
  const height = view.getInt32(8, false);
  const width = view.getInt32(12, false);
  const pixels = data.subarray(16, 16 + count * height * width);
  if (pixels.length !== count * height * width) throw new Error('IDX file is truncated');
  return { count, height, width, pixels };
}

/** Parses an IDX1 unsigned-byte label file (magic 2049), gzipped or not. */
export function parseIdxLabels(bytes: Uint8Array): Uint8Array {
  const data = bytes[0] === 0x1f && bytes[1] === 0x8b ? new Uint8Array(gunzipSync(bytes)) : bytes;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const magic = view.getInt32(0, false);
  if (magic !== 2049) throw new Error(`not an IDX1 label file (magic ${magic}, expected 2049)`);
  const count = view.getInt32(4, false);
  return data.subarray(8, 8 + count);
}

export async function loadFashionMnistImages(
  split: 'train' | 't10k',
  dir = FASHION_MNIST_DIR,
): Promise<IdxImages> {
  return parseIdxImages(new Uint8Array(await readFile(join(dir, `${split}-images-idx3-ubyte.gz`))));
}

/**
 * Image `index` as the diffusion models see it: [-1, 1] (byte / 127.5 - 1), zero-padded (i.e. -1, the
 * background) by `pad` pixels on every side (28x28 -> 32x32 with pad 2), written into `out` at `offset`.
 */
export function writePaddedImage(
  images: IdxImages,
  index: number,
  pad: number,
  out: Float32Array,
  offset = 0,
): void {
  const { height, width, pixels } = images;
  const size = width + 2 * pad;
  out.fill(-1, offset, offset + size * (height + 2 * pad));
  const source = index * height * width;
  for (let r = 0; r < height; r++) {
    for (let c = 0; c < width; c++) {
      out[offset + (r + pad) * size + c + pad] = pixels[source + r * width + c] / 127.5 - 1;
    }
  }
}
