/**
 * Packs a folder of same-sized images into one uint8 stack for the GPU trainers in this folder:
 * `<out>.u8` (count x height x width, row-major) and `<out>.json` ({ count, height, width, names, source }).
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
): Promise<{ count: number; height: number; width: number }> {
  const images = await loadGreyImages(dir);
  const { width, height } = images[0];
  const odd = images.find((im) => im.width !== width || im.height !== height);
  if (odd)
    throw new Error(`${odd.name} is ${odd.width}x${odd.height}, not ${width}x${height} like the others`);
  const stack = new Uint8Array(images.length * width * height);
  images.forEach((im, i) => {
    for (let j = 0; j < im.data.length; j++) stack[i * width * height + j] = Math.round(im.data[j] * 255);
  });
  await mkdir(dirname(out), { recursive: true });
  await writeFile(`${out}.u8`, stack);
  const meta = { count: images.length, height, width, names: images.map((im) => im.name), source: dir };
  await writeFile(`${out}.json`, `${JSON.stringify(meta)}\n`);
  return meta;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, out] = process.argv.slice(2);
  if (!dir || !out) {
    console.error('usage: npx tsx tools/train/torch/pack-images.ts <image folder> <output prefix>');
    process.exit(2);
  }
  const meta = await packImages(dir, out);
  console.log(`${meta.count} images of ${meta.width}x${meta.height} -> ${out}.u8`);
}
