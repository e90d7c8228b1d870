/**
 * How close the blind level estimators (src/denoise/estimate.ts) come to the true level on the held-out photographs
 * (bench/denoise/heldout.ts: 256x256 grey crops, seeded noise, 8-bit clipped as an upload is). Prints, per family
 * and level, the mean of estimate/true over the split's images and the worst image's relative error, then each
 * image's estimates. The estimators' constants were chosen with this on the selection split only: the selection
 * photographs plus the last TRAIN400_HOLDOUT train400 images (180x180, when ../shared/data/train400 is there).
 *
 *   npx tsx bench/denoise/estimator-check.ts [selection|report]
 *
 * `--gamma-sweep [--draws N]` instead reads Gamma's k at 25, 50, 100, 200, 400 and 800, N noise draws per image
 * (default 3), and prints per level the photographs' and the train400 images' mean estimate/true, rms error and
 * how many are more than 10 % off, then the photographs' estimates (the report split: photographs only).
 */

import { estimateNoiseLevel } from '../../src/denoise/estimate.js';
import type { NoiseFamily } from '../../src/denoise/noise.js';
import {
  heldoutNoisy,
  heldoutSplit,
  loadHeldoutImage,
  loadTrain400Image,
  train400Holdout,
} from './heldout.js';

const argv = process.argv.slice(2);
const split = (argv.find((a) => !a.startsWith('--') && !/^\d+$/.test(a)) ?? 'selection') as
  | 'selection'
  | 'report';
const cases: { family: NoiseFamily; level: number; label: string }[] = [
  { family: 'gaussian', level: 15 / 255, label: 'gaussian 15' },
  { family: 'gaussian', level: 25 / 255, label: 'gaussian 25' },
  { family: 'gaussian', level: 50 / 255, label: 'gaussian 50' },
  { family: 'poisson', level: 0.01, label: 'poisson 0.01' },
  { family: 'gamma', level: 25, label: 'gamma 25' },
  { family: 'gamma', level: 100, label: 'gamma 100' },
  { family: 'gamma', level: 400, label: 'gamma 400' },
];
const ratios = new Map<string, { name: string; ratio: number }[]>();
const images = await Promise.all(heldoutSplit()[split].map((file) => loadHeldoutImage(file)));
const photographs = images.length;
if (split === 'selection') images.push(...(await Promise.all(train400Holdout().map(loadTrain400Image))));

if (argv.includes('--gamma-sweep')) {
  const draws = argv.includes('--draws') ? Number(argv[argv.indexOf('--draws') + 1]) : 3;
  const summary = (list: number[]) => {
    const mean = list.reduce((s, r) => s + r, 0) / list.length;
    const rms = Math.sqrt(list.reduce((s, r) => s + (r - 1) ** 2, 0) / list.length);
    const off = list.filter((r) => Math.abs(r - 1) > 0.1).length;
    return `mean ${mean.toFixed(3)}, rms error ${(100 * rms).toFixed(1)} %, over 10 % off: ${off}/${list.length}`;
  };
  console.log(`split: ${split}, Gamma k sweep, ${draws} noise draws per image`);
  for (const k of [25, 50, 100, 200, 400, 800]) {
    const per = images.map((image) =>
      Array.from(
        { length: draws },
        (_, draw) =>
          estimateNoiseLevel('gamma', heldoutNoisy(image, 'gamma', k, draw), image.width, image.height) / k,
      ),
    );
    const photos = per.slice(0, photographs).flat();
    const train = per.slice(photographs).flat();
    console.log(
      `k ${String(k).padStart(3)}  photographs: ${summary(photos)}` +
        (train.length > 0 ? `  |  train400: ${summary(train)}` : ''),
    );
    console.log(
      `       ${images
        .slice(0, photographs)
        .map((image, i) => `${image.name} ${per[i].map((r) => r.toFixed(3)).join('/')}`)
        .join(', ')}`,
    );
  }
  process.exit(0);
}
for (const image of images) {
  for (const c of cases) {
    const y = heldoutNoisy(image, c.family, c.level);
    const ratio = estimateNoiseLevel(c.family, y, image.width, image.height) / c.level;
    ratios.set(c.label, [...(ratios.get(c.label) ?? []), { name: image.name, ratio }]);
  }
}
console.log(
  `split: ${split} (${heldoutSplit()[split].join(', ')}${split === 'selection' ? ` + ${images.length - heldoutSplit().selection.length} train400 images` : ''})`,
);
for (const [label, list] of ratios) {
  const mean = list.reduce((s, r) => s + r.ratio, 0) / list.length;
  const worst = Math.max(...list.map((r) => Math.abs(r.ratio - 1)));
  const rms = Math.sqrt(list.reduce((s, r) => s + (r.ratio - 1) ** 2, 0) / list.length);
  const within = list.filter((r) => Math.abs(r.ratio - 1) <= 0.1).length;
  console.log(
    `${label.padEnd(13)} mean estimate/true ${mean.toFixed(3)}, rms error ${(100 * rms).toFixed(1)} %, ` +
      `worst ${(100 * worst).toFixed(1)} %, within 10 %: ${within}/${list.length}  ` +
      `(${list.map((r) => `${r.name} ${r.ratio.toFixed(3)}`).join(', ')})`,
  );
}
