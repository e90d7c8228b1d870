/**
 * RED-Diff settings sweep behind each diffusion model's manifest `extra.redDiff` (start, largest timestep, lambda,
 * lr): runs bench/restore.ts's problems with the given settings and prints PSNR, SSIM, PSNR on the missing pixels,
 * the residual and seconds per image. No peers and no RESULTS.md: `npm run bench:restore` is the benchmark.
 *
 *   npx tsx bench/restore-sweep.ts fashion|set12|heldout '<JSON list of RedDiffOptions without seed>' [modelDir]
 *   e.g. npx tsx bench/restore-sweep.ts set12 '[{"steps":100,"lambda":0.1,"lr":0.005,"init":"smooth","tMax":30}]'
 * heldout: the selection set for the natural prior's defaults (never Set12): centre 64x64 crops (SIZE=176: nearly
 * the whole 180x180 image) of train400's last 40 images (reserved as held out), every 7th from test_361 (HELDOUT =
 * how many, default 6; more are spread evenly over the 40), with 50% random-pixel masks (seed 50_200 + image
 * number; heldout-mask50) and a centred 32x32 hole (heldout-box32; BOX=12: 12x12), with scikit-image's
 * inpaint_biharmonic (bench/restore-peers.py, /usr/bin/python3) printed first as the classical reference.
 * selection: the unseen selection photographs of bench/denoise/heldout.ts (brick, chelsea, coins, gravel,
 * motorcycle_left; never seen by the prior, which was trained on all of train400): grey centre crops of SIZE
 * (default 256), each with one 32x32 hole (BOX) at POSITIONS places (default 3: the centre, then at fractions
 * (0.2, 0.75) and (0.8, 0.3) of the free range (row, column); up to 6: then (0.25, 0.2), (0.75, 0.8), (0.5, 0.1)),
 * problem `selection-box32`; one batch per place.
 * Environment: N = Fashion-MNIST images (default 60), ONLY = comma-separated problem ids (fashion-mask80, set12-sr2, ...),
 * AVERAGE = K: also the mean of K runs of each setting (noise seeds 0, 1000, ..., 1000 (K - 1)).
 * PER_IMAGE=1: also each image's PSNR on the missing pixels.
 * BLEND = w1,w2,...: also w x + (1 - w) biharmonic for each weight (heldout and selection).
 * The first line per problem is the smooth start alone (src/diffusion/initial.ts), for reference.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initialEstimate } from '../src/diffusion/initial.js';
import { loadDiffusionModel } from '../src/diffusion/model.js';
import { centredBoxMask, randomPixelMask } from '../src/diffusion/operators.js';
import type { RedDiffOptions } from '../src/diffusion/red-diff.js';
import { linearSchedule } from '../src/diffusion/schedule.js';
import { initTfjs } from '../src/nn/backend.js';
import { heldoutSplit, loadHeldoutImage, train400CentreCrops } from './denoise/heldout.js';
import { REPO_ROOT, set12Names } from './denoise/inputs.js';
import {
  fashionProblems,
  measurement,
  operatorFor,
  type Problem,
  runRedDiff,
  score,
  set12Problems,
  stackMasks,
} from './restore.js';

const SIZE = 64;

/**
 * Held-out train400 crops (see the header): 50% random-pixel masks and, as `heldout-box32`, a centred 32x32 hole.
 * Up to 6 images every 7th from test_361 (the original selection set), more evenly spread over the 40.
 */
async function heldoutProblems(count: number, size = SIZE, box = 32): Promise<Problem[]> {
  const stride = count <= 6 ? 7 : Math.max(1, Math.floor(40 / count));
  const numbers = Array.from({ length: count }, (_, i) => 361 + stride * i).filter((n) => n <= 400);
  const x = await train400CentreCrops(numbers, size);
  const mask = new Float32Array(x.length);
  for (const [b, n] of numbers.entries())
    mask.set(randomPixelMask(size, size, 0.5, 50_200 + n), b * size * size);
  return [
    {
      id: 'heldout-mask50',
      dataset: 'Set12', // only picks the natural prior's defaults in bench/restore.ts; these are train400 crops
      label: 'train400 held-out crops, random pixels, 50% missing',
      kind: 'mask',
      modelDir: 'models/ddpm-natural-grey/20261129',
      count: numbers.length,
      height: size,
      width: size,
      x,
      mask,
      region: { top: 0, left: 0, height: size, width: size },
      batch: size <= 64 ? 4 : 1,
    },
    {
      id: `heldout-box${box}`,
      dataset: 'Set12',
      label: `train400 held-out crops, centred ${box}x${box} hole`,
      kind: 'mask',
      modelDir: 'models/ddpm-natural-grey/20261129',
      count: numbers.length,
      height: size,
      width: size,
      x,
      mask: stackMasks(numbers.length, () => centredBoxMask(size, size, box)),
      region: { top: 0, left: 0, height: size, width: size },
      batch: size <= 64 ? 4 : 1,
    },
  ];
}

/** The hole places of the selection problems: fractions (row, column) of the free range size - box. */
const SELECTION_PLACES: [number, number][] = [
  [0.5, 0.5],
  [0.2, 0.75],
  [0.8, 0.3],
  [0.25, 0.2],
  [0.75, 0.8],
  [0.5, 0.1],
];

/** The selection photographs (see the header): `places` x 5 crops, place-major, one 32x32 hole each. */
async function selectionProblems(size: number, box: number, places: number): Promise<Problem[]> {
  const files = heldoutSplit().selection;
  const images = await Promise.all(files.map((f) => loadHeldoutImage(f, size)));
  for (const image of images)
    if (image.width !== size || image.height !== size)
      throw new Error(`${image.name} is smaller than ${size}`);
  if (!(places >= 1 && places <= SELECTION_PLACES.length))
    throw new Error(`POSITIONS must be 1 to ${SELECTION_PLACES.length}, got ${places}`);
  const count = places * images.length;
  const x = new Float32Array(count * size * size);
  const mask = new Float32Array(count * size * size).fill(1);
  for (let k = 0; k < places; k++) {
    const [fr, fc] = SELECTION_PLACES[k];
    const top = Math.round(fr * (size - box));
    const left = Math.round(fc * (size - box));
    for (const [i, image] of images.entries()) {
      const b = k * images.length + i;
      x.set(Float32Array.from(image.x), b * size * size);
      for (let r = top; r < top + box; r++)
        mask.fill(0, b * size * size + r * size + left, b * size * size + r * size + left + box);
    }
  }
  return [
    {
      id: `selection-box${box}`,
      dataset: 'Set12', // only picks the natural prior's defaults in bench/restore.ts; these are scikit-image photographs
      label: `scikit-image selection photographs, ${size}x${size}, ${box}x${box} hole at ${places} places`,
      kind: 'mask',
      modelDir: 'models/ddpm-natural-grey/20261129',
      count,
      height: size,
      width: size,
      x,
      mask,
      region: { top: 0, left: 0, height: size, width: size },
      batch: images.length,
    },
  ];
}

/** scikit-image's inpaint_biharmonic on a mask problem, through bench/restore-peers.py; images on [0, 1]. */
function biharmonic(p: Problem): Float32Array {
  const dir = mkdtempSync(join(tmpdir(), 'restore-sweep-'));
  try {
    writeFileSync(join(dir, 'y.f32'), Buffer.from(measurement(p).buffer));
    writeFileSync(join(dir, 'mask.f32'), Buffer.from((p.mask as Float32Array).buffer));
    const index = {
      problems: [
        {
          id: p.id,
          kind: 'mask',
          count: p.count,
          height: p.height,
          width: p.width,
          y: 'y.f32',
          mask: 'mask.f32',
        },
      ],
    };
    writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
    const r = spawnSync(
      '/usr/bin/python3',
      [join(REPO_ROOT, 'bench/restore-peers.py'), join(dir, 'index.json')],
      {
        encoding: 'utf8',
      },
    );
    if (r.status !== 0) throw new Error(`restore-peers.py failed (${r.status}): ${r.stderr}`);
    const buf = readFileSync(join(dir, `${p.id}.biharmonic.f32`));
    return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4).slice();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const [which = 'set12', configsJson = '[]', modelDirArg] = process.argv.slice(2);
const configs = JSON.parse(configsJson) as Omit<RedDiffOptions, 'seed'>[];
const { tf } = await initTfjs('wasm');
const problems =
  which === 'set12'
    ? await set12Problems(set12Names(), 64)
    : which === 'heldout'
      ? await heldoutProblems(
          Number(process.env.HELDOUT ?? 6),
          Number(process.env.SIZE ?? SIZE),
          Number(process.env.BOX ?? 32),
        )
      : which === 'selection'
        ? await selectionProblems(
            Number(process.env.SIZE ?? 256),
            Number(process.env.BOX ?? 32),
            Number(process.env.POSITIONS ?? 3),
          )
        : await fashionProblems(Number(process.env.N ?? 60));
const only = process.env.ONLY?.split(',');
for (const p of problems) {
  if (only && !only.includes(p.id)) continue;
  const dir = modelDirArg ?? p.modelDir;
  const model = await loadDiffusionModel(tf, join(REPO_ROOT, dir));
  const manifest = JSON.parse(readFileSync(join(REPO_ROOT, dir, 'manifest.json'), 'utf8'));
  const schedule = linearSchedule(manifest.extra?.schedule ?? {});
  const size = p.height * p.width;
  const start = new Float32Array(p.count * size);
  for (let s = 0; s < p.count; s += p.batch) {
    const n = Math.min(p.batch, p.count - s);
    const op = operatorFor(p, s, n);
    const clean = Float32Array.from(p.x.subarray(s * size, (s + n) * size), (v) => 2 * v - 1);
    const y = tf.tidy(() => op.forward(tf, tf.tensor4d(clean, [n, p.height, p.width, 1])));
    const x0 = await initialEstimate(tf, op, y, 'smooth');
    const d = await x0.data();
    for (let i = 0; i < d.length; i++) start[s * size + i] = (d[i] + 1) / 2;
    tf.dispose([x0, y]);
    op.dispose();
  }
  const line = (label: string, x: Float32Array, seconds?: number) => {
    const s = score(p, x);
    console.log(
      `${p.id} ${label} psnr ${s.psnr.toFixed(2)} ssim ${s.ssim.toFixed(3)} missing ${s.psnrMissing?.toFixed(2) ?? '-'} ` +
        `residual ${s.residual.toExponential(1)}${seconds === undefined ? '' : ` ${seconds.toFixed(2)} s/image`}`,
    );
    if (process.env.PER_IMAGE === '1')
      console.log(`  missing per image: ${s.perImageMissing.map((v) => v.toFixed(2)).join(' ')}`);
  };
  const classical = which === 'heldout' || which === 'selection' ? biharmonic(p) : null;
  if (classical) line('biharmonic (scikit-image)', classical);
  const blends = (x: Float32Array) => {
    if (!classical) return;
    for (const w of (process.env.BLEND ?? '').split(',').filter(Boolean).map(Number))
      line(
        `  blend ${w} with biharmonic`,
        Float32Array.from(x, (v, i) => w * v + (1 - w) * classical[i]),
      );
  };
  line('smooth start alone', start);
  for (const c of configs) {
    const r = await runRedDiff(tf, model, schedule, p, c);
    line(JSON.stringify(c), r.x, r.seconds / p.count);
    blends(r.x);
    // AVERAGE=K: the mean of K runs with noise seeds 0, 1000, ... (an estimate of the posterior mean).
    const sum = Float32Array.from(r.x);
    for (let k = 1; k < Number(process.env.AVERAGE ?? 1); k++) {
      const more = await runRedDiff(tf, model, schedule, p, c, 1000 * k);
      for (let i = 0; i < sum.length; i++) sum[i] += more.x[i];
      const meanOfRuns = Float32Array.from(sum, (v) => v / (k + 1));
      line(`mean of ${k + 1} runs`, meanOfRuns);
      blends(meanOfRuns);
    }
  }
  model.dispose();
}
