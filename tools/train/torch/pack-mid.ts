/**
 * Packs the data of a MID run for the PyTorch port (tools/train/torch/mid.py): the noisy, clean and validation
 * images exactly as tools/train/mid-data.ts reads them (names, centre crops, sharp's decoding), as 8-bit RGB in
 * one file, with what the run needs from the TypeScript side: round 0's per-channel sigma (mid.ts's
 * initialSigma), the statistics of the reference real noise and the noisy PSNR of the validation pairs, and the
 * data's description and split for the manifest.
 *
 *   <dir>/images.u8    interleaved RGB rows of every image, back to back
 *   <dir>/images.json  { noisy, clean: [{ name, width, height, offset }], validation: [{ name, noisy, mean }],
 *                        sigma0, reference, validationNoisyPsnr, description, split, evalCrop }
 *
 *   npx tsx tools/train/torch/pack-mid.ts --images DIR --clean DIR [--references DIR] [--eval-crop 256] --out DIR
 *   (or --polyu-dir DIR [--extra-clean a.png,b.jpg] for the PolyU recipe)
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ColourImage } from '../../../src/mid/data.js';
import { initialSigma, referenceFigures } from '../mid.js';
import { loadMidData, type MidDataOptions } from '../mid-data.js';

interface PackedImage {
  name: string;
  width: number;
  height: number;
  offset: number;
}

export async function packMidData(
  options: MidDataOptions,
  dir: string,
): Promise<{ noisy: number; clean: number; validation: number }> {
  const data = await loadMidData(options);
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const pack = (image: ColourImage): PackedImage => {
    const bytes = Uint8Array.from(image.data, (v) => Math.round(v * 255));
    chunks.push(bytes);
    offset += bytes.length;
    return { name: image.name, width: image.width, height: image.height, offset: offset - bytes.length };
  };
  const meta = {
    noisy: data.noisy.map(pack),
    clean: data.clean.map(pack),
    validation: data.validation.map((v) => ({
      name: v.mean.name.replace(/_mean$/, ''),
      noisy: pack(v.noisy),
      mean: pack(v.mean),
    })),
    sigma0: initialSigma(data.noisy),
    ...referenceFigures(data),
    description: data.description,
    split: data.split,
    evalCrop: options.evalCrop,
  };
  const all = new Uint8Array(offset);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  const staging = `${dir}.partial`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  await writeFile(join(staging, 'images.u8'), all);
  await writeFile(join(staging, 'images.json'), `${JSON.stringify(meta)}\n`);
  await rm(dir, { recursive: true, force: true });
  await rename(staging, dir);
  return { noisy: meta.noisy.length, clean: meta.clean.length, validation: meta.validation.length };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: Object.fromEntries(
      ['images', 'clean', 'references', 'polyu-dir', 'extra-clean', 'eval-crop', 'patch', 'out'].map((n) => [
        n,
        { type: 'string' as const },
      ]),
    ),
  });
  if (!values.out || !values.images === !values['polyu-dir']) {
    console.error(
      'usage: npx tsx tools/train/torch/pack-mid.ts (--images DIR --clean DIR [--references DIR] | ' +
        '--polyu-dir DIR [--extra-clean a.png,b.jpg]) [--eval-crop 256] [--patch 48] --out DIR',
    );
    process.exit(2);
  }
  const counts = await packMidData(
    {
      noisyDir: values.images,
      cleanDir: values.clean,
      referencesDir: values.references,
      polyuDir: values['polyu-dir'],
      extraClean: values['extra-clean']?.split(',').filter(Boolean) ?? [],
      evalCrop: Number(values['eval-crop'] ?? 256),
      patch: Number(values.patch ?? 48),
    },
    values.out,
  );
  console.log(`packed ${JSON.stringify(counts)} -> ${values.out}`);
}
