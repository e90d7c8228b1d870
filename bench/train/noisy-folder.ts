/**
 * Makes a stand-in for "a folder of one's own noisy photographs": every image of a folder with seeded Gaussian
 * noise of sigma/255 added, rounded and clipped to 8 bits like a camera file, written as PNG under new names.
 * The noisy folder then trains a denoiser with `npm run train -- noise2score --images <out>` (bench/RESULTS.md).
 *
 *   npx tsx bench/train/noisy-folder.ts <clean folder> <out folder> [sigma, default 25] [seed, default 1]
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../src/util/random.js';
import { loadGreyImages } from '../../tools/train/data.js';

const [from, out, sigmaText = '25', seedText = '1'] = process.argv.slice(2);
if (!from || !out) {
  console.error('usage: npx tsx bench/train/noisy-folder.ts <clean folder> <out folder> [sigma] [seed]');
  process.exit(2);
}
const sigma = Number(sigmaText) / 255;
await mkdir(out, { recursive: true });
const images = await loadGreyImages(from);
for (const [i, image] of images.entries()) {
  const rng = new Rng(Number(seedText) * 100_000 + i);
  const bytes = Uint8Array.from(image.data, (v) =>
    Math.round(255 * Math.min(1, Math.max(0, v + sigma * rng.normal()))),
  );
  await sharp(bytes, { raw: { width: image.width, height: image.height, channels: 1 } })
    .png()
    .toFile(join(out, `shot-${String(i + 1).padStart(4, '0')}.png`));
}
console.log(`${images.length} noisy images (sigma ${sigmaText}/255, 8-bit) in ${out}`);
