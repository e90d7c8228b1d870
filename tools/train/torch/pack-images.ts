/**
 * Packs a folder of images into one uint8 stack for the GPU trainers in this folder:
 * `<out>.u8` (count x height x width, row-major) and `<out>.json` ({ count, height, width, names, source }).
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
): Promise<{ count: number; height: number; width: number; sizes?: [number, number][] }> {
  const images = await loadGreyImages(dir);
  const width = Math.max(...images.map((im) => im.width));
  const height = Math.max(...images.map((im) => im.height));
  const uniform = images.every((im) => im.width === width && im.height === height);
  const stack = new Uint8Array(images.length * width * height);
  images.forEach((im, i) => {
    for (let r = 0; r < im.height; r++)
      for (let c = 0; c < im.width; c++)
        stack[(i * height + r) * width + c] = Math.round(im.data[r * im.width + c] * 255);
  });
  await mkdir(dirname(out), { recursive: true });
  await writeFile(`${out}.u8`, stack);
  const meta = {
    count: images.length,
    height,
    width,
    ...(!uniform && { sizes: images.map((im) => [im.height, im.width] as [number, number]) }),
    names: images.map((im) => im.name),
    source: dir,
  };
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
