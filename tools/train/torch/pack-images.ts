/**
 * Packs a folder of images into one stack for the GPU trainers in this folder: `<out>.u8` (uint8, count x height x
 * width, row-major) and `<out>.json` ({ count, height, width, names, source }). When any image is a 16-bit file
 * (camera data; tools/train/data.ts reads it at 16 bits) the stack is `<out>.u16` instead (uint16 little-endian,
 * samples over 65535) and the meta says so (`depth: 16`, `maxValue: 65535`), so the PyTorch port trains on the
 * pixels the TypeScript trainers see; 8-bit folders are packed as before, byte for byte.
 * Images of different sizes are padded with zeros at the bottom and right to the largest height and width, and
 * `sizes` ([height, width] of each) tells the trainers where each one ends (crops are drawn inside it).
 * Decoding is the TypeScript trainers' own (tools/train/data.ts: sharp, greyscale), so both see the same pixels.
 *
 *   npx tsx tools/train/torch/pack-images.ts ../shared/data/train400 .gpu/train400
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { loadGreyImages } from '../data.js';

export async function packImages(
  dir: string,
  out: string,
): Promise<{ count: number; height: number; width: number; sizes?: [number, number][]; depth?: 16 }> {
  const images = await loadGreyImages(dir);
  const width = Math.max(...images.map((im) => im.width));
  const height = Math.max(...images.map((im) => im.height));
  const uniform = images.every((im) => im.width === width && im.height === height);
  const sixteenBit = images.some((im) => im.bits === 16);
  const maxValue = sixteenBit ? 65535 : 255;
  const stack = new (sixteenBit ? Uint16Array : Uint8Array)(images.length * width * height);
  images.forEach((im, i) => {
    for (let r = 0; r < im.height; r++)
      for (let c = 0; c < im.width; c++)
        stack[(i * height + r) * width + c] = Math.round(im.data[r * im.width + c] * maxValue);
  });
  await mkdir(dirname(out), { recursive: true });
  await writeFile(`${out}${packSuffix(sixteenBit)}`, sixteenBit ? littleEndian(stack) : stack);
  const meta = {
    count: images.length,
    height,
    width,
    ...(sixteenBit && { depth: 16 as const, maxValue }),
    ...(!uniform && { sizes: images.map((im) => [im.height, im.width] as [number, number]) }),
    names: images.map((im) => im.name),
    source: dir,
  };
  await writeFile(`${out}.json`, `${JSON.stringify(meta)}\n`);
  return meta;
}

/** 16-bit samples as little-endian bytes (what the Python readers read, '<u2'), whatever the machine's order. */
export function littleEndian(samples: ArrayLike<number>): Buffer {
  const bytes = Buffer.alloc(2 * samples.length);
  for (let i = 0; i < samples.length; i++) bytes.writeUInt16LE(samples[i], 2 * i);
  return bytes;
}

/** The file of a packed stack: `.u8`, or `.u16` for a 16-bit one. */
export function packSuffix(sixteenBit: boolean): string {
  return sixteenBit ? '.u16' : '.u8';
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, out] = process.argv.slice(2);
  if (!dir || !out) {
    console.error('usage: npx tsx tools/train/torch/pack-images.ts <image folder> <output prefix>');
    process.exit(2);
  }
  const meta = await packImages(dir, out);
  console.log(
    `${meta.count} images of ${meta.width}x${meta.height} -> ${out}${packSuffix(meta.depth === 16)}`,
  );
}
