/**
 * `npm run bench:restore`: RED-Diff against scikit-image's classical baselines, side by side in one run.
 *
 * 1. Builds the problems and writes them to bench/out/restore/ (raw float32), so both sides read identical bytes:
 *    - Fashion-MNIST, the first N test images (default 200, the issue's protocol), 28x28 zero-padded to 32x32 (the model's domain; the
 *      padding is known background and both sides get it), scored on the 28x28 image: random-pixel masks with 50%
 *      and 80% missing (seeded per image), a centred 12x12 box, x2 super-resolution (2x2 average pooling).
 *    - Set12 with ddpm-natural-grey: centre crops (default 64x64, --set12-size 256 for whole images) with a 50%
 *      random-pixel mask, a centred 32x32 box, x2 super-resolution.
 * 2. Runs bench/restore-peers.py (/usr/bin/python3, scikit-image 0.19): inpaint_biharmonic for masks, bicubic
 *    resize (order 3) for super-resolution.
 * 3. Runs RED-Diff in this process (wasm backend), batched through the U-Net (every image has its own mask), with the
 *    service's defaults for each model (its manifest's extra.redDiff, else src/schemas/restore.ts RESTORE_DEFAULTS),
 *    again with lambda = 0 (no prior: the start itself, when it fits y) to show what the prior contributes, with
 *    the official start and schedule (H^+ y, t from T - 1) and, on random masks, with the official lambda 0.25.
 * 4. Speed on a 256x256 grey image with ddpm-natural-grey: a RED-Diff step (one U-Net forward pass) against a
 *    DPS-style step (forward, Tweedie x0, data loss, backward through the U-Net to x_t), both measured.
 * 5. Writes, per problem, a side-by-side PNG of its first image: degraded (H^+ y: missing pixels mid-grey,
 *    super-resolution nearest up-sampled) | classical peer (biharmonic or bicubic) | RED-Diff at the defaults | truth,
 *    to bench/out/restore/<problem>-side-by-side.png, and prints its path.
 * 6. Writes the section between <!-- restore:begin --> and <!-- restore:end --> of bench/RESULTS.md, and the figures
 *    as JSON to bench/out/restore/results.json.
 *
 * Metrics, for every method alike: PSNR = 10 log10(1 / mse) per image on [0, 1] (no border crop), mean over images;
 * SSIM as scikit-image 0.19 (src/imaging/metrics.ts, Gaussian window); PSNR on the missing pixels only (masks); the
 * measurement residual ||y - H x|| / ||y|| per image on the model's [-1, 1] scale (what the service reports).
 *
 * Flags: --fashion N (0: none), --set12 01,02 (subset), --set12-size S, --steps N, --only id,id (problems, e.g.
 * set12-box32), --defaults-only (no official-start or lambda 0.25 rows), --no-set12, --no-speed, --no-write,
 * --reuse-peers (read bench/out/restore/peers.json instead of running Python),
 * --sequential (one process; by default the Set12 part runs in a second process, so the run takes the wall time of
 * the longer part on a 2-core machine).
 */

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { ddpmEpsModel } from '../src/diffusion/eps-model.js';
import { loadFashionMnistImages } from '../src/diffusion/fashion-mnist.js';
import { loadDiffusionModel } from '../src/diffusion/model.js';
import {
  averagePoolOperator,
  centredBoxMask,
  type DegradationOperator,
  maskOperator,
  randomPixelMask,
} from '../src/diffusion/operators.js';
import { type RedDiffOptions, redDiffRestore } from '../src/diffusion/red-diff.js';
import { type DdpmSchedule, linearSchedule } from '../src/diffusion/schedule.js';
import { predictEps } from '../src/diffusion/unet.js';
import { psnr, ssim } from '../src/imaging/metrics.js';
import { initTfjs, type Tf } from '../src/nn/backend.js';
import { architectureMultiple } from '../src/nn/manifest-sections.js';
import { RESTORE_DEFAULTS } from '../src/operations/restore/schema.js';
import { modelRedDiffDefaults } from '../src/operations/restore/task.js';
import { loadSet12Image, REPO_ROOT, set12Names } from './denoise/inputs.js';
import { writeResultsSection } from './results-file.js';

type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Tensor = import('@tensorflow/tfjs').Tensor;
type Tensor4D = import('@tensorflow/tfjs').Tensor4D;

/** Where inputs, peers' outputs, pictures and results go (RESTORE_OUT: another folder, for runs side by side). */
const OUT_DIR = process.env.RESTORE_OUT ?? join(REPO_ROOT, 'bench/out/restore');
const BEGIN = '<!-- restore:begin -->';
const END = '<!-- restore:end -->';
const FASHION_MODEL = 'models/ddpm-fashion-mnist/20261127';
const NATURAL_MODEL = 'models/ddpm-natural-grey/20261129';
/** RED-Diff's noise seed (the service's default seed). */
const SEED = 0;
/** lambda of the issue's "the prior helps" comparison (the official value), run beside the default if it differs. */
const ISSUE_LAMBDA: number = 0.25;

interface Args {
  fashion: number;
  set12?: string[];
  set12Size: number;
  steps: number;
  runSet12: boolean;
  speed: boolean;
  write: boolean;
  reusePeers: boolean;
  /** Internal: 'set12' runs the Set12 problems and the speed measurement only, into results-set12.json. */
  part: 'all' | 'set12';
  /** Run the Set12 part in a second process beside the Fashion-MNIST one (default on machines with >= 2 cores). */
  parallel: boolean;
  /** Only these problem ids (e.g. set12-box32), when given. */
  only?: string[];
  /** Skip the official-start and lambda-0.25 rows (whole 256x256 images: they double the cost). */
  defaultsOnly: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    fashion: 200,
    set12Size: 64,
    steps: RESTORE_DEFAULTS.steps,
    runSet12: true,
    speed: true,
    write: true,
    reusePeers: false,
    part: 'all',
    parallel: cpus().length >= 2,
    defaultsOnly: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--fashion') args.fashion = Number(argv[++i]);
    else if (a === '--set12') args.set12 = argv[++i].split(',');
    else if (a === '--set12-size') args.set12Size = Number(argv[++i]);
    else if (a === '--steps') args.steps = Number(argv[++i]);
    else if (a === '--no-set12') args.runSet12 = false;
    else if (a === '--no-speed') args.speed = false;
    else if (a === '--no-write') args.write = false;
    else if (a === '--reuse-peers') args.reusePeers = true;
    else if (a === '--part') args.part = argv[++i] as 'set12';
    else if (a === '--sequential') args.parallel = false;
    else if (a === '--only') args.only = argv[++i].split(',');
    else if (a === '--defaults-only') args.defaultsOnly = true;
    else throw new Error(`unknown flag ${a}`);
  }
  return args;
}

/** One restoration problem: `count` images of one size with their measurements. */
export interface Problem {
  id: string;
  dataset: 'Fashion-MNIST' | 'Set12';
  label: string;
  kind: 'mask' | 'sr';
  modelDir: string;
  count: number;
  height: number;
  width: number;
  /** Clean images on [0, 1]. */
  x: Float32Array;
  /** Masks (1 observed, 0 missing), one per image. */
  mask?: Float32Array;
  factor?: number;
  /** The part of the image that is scored (Fashion-MNIST: the 28x28 image inside its padding). */
  region: { top: number; left: number; height: number; width: number };
  batch: number;
}

/** The measurement y on [0, 1]: m . x (mask) or the s x s block means (super-resolution). */
export function measurement(p: Problem): Float32Array {
  const { count, height: h, width: w } = p;
  if (p.kind === 'mask') return Float32Array.from(p.x, (v, i) => v * (p.mask as Float32Array)[i]);
  const s = p.factor as number;
  const hh = h / s;
  const ww = w / s;
  const y = new Float32Array(count * hh * ww);
  for (let b = 0; b < count; b++)
    for (let r = 0; r < hh; r++)
      for (let c = 0; c < ww; c++) {
        let sum = 0;
        for (let i = 0; i < s; i++)
          for (let j = 0; j < s; j++) sum += p.x[b * h * w + (r * s + i) * w + c * s + j];
        y[b * hh * ww + r * ww + c] = sum / (s * s);
      }
  return y;
}

/** Fashion-MNIST test images 0..count-1, zero-padded to 32x32, on [0, 1]. */
export async function fashionImages(count: number): Promise<Float32Array> {
  const images = await loadFashionMnistImages('t10k');
  const x = new Float32Array(count * 32 * 32);
  for (let b = 0; b < count; b++)
    for (let r = 0; r < 28; r++)
      for (let c = 0; c < 28; c++)
        x[b * 1024 + (r + 2) * 32 + c + 2] = images.pixels[b * 784 + r * 28 + c] / 255;
  return x;
}

export function stackMasks(count: number, make: (i: number) => Float32Array): Float32Array {
  const first = make(0);
  const out = new Float32Array(count * first.length);
  out.set(first, 0);
  for (let i = 1; i < count; i++) out.set(make(i), i * first.length);
  return out;
}

/** The Fashion-MNIST problems (seeds: 50% mask of image i = 50_000 + i, 80% = 80_000 + i). */
export async function fashionProblems(count: number): Promise<Problem[]> {
  const x = await fashionImages(count);
  const base = {
    dataset: 'Fashion-MNIST' as const,
    modelDir: FASHION_MODEL,
    count,
    height: 32,
    width: 32,
    x,
    region: { top: 2, left: 2, height: 28, width: 28 },
    batch: 16,
  };
  return [
    {
      ...base,
      id: 'fashion-mask50',
      label: 'random pixels, 50% missing',
      kind: 'mask',
      mask: stackMasks(count, (i) => randomPixelMask(32, 32, 0.5, 50_000 + i)),
    },
    {
      ...base,
      id: 'fashion-mask80',
      label: 'random pixels, 80% missing',
      kind: 'mask',
      mask: stackMasks(count, (i) => randomPixelMask(32, 32, 0.8, 80_000 + i)),
    },
    {
      ...base,
      id: 'fashion-box12',
      label: 'centred 12x12 box',
      kind: 'mask',
      mask: stackMasks(count, () => centredBoxMask(32, 32, 12)),
    },
    { ...base, id: 'fashion-sr2', label: 'x2 super-resolution (2x2 mean)', kind: 'sr', factor: 2 },
  ];
}

/** Set12 centre crops of side `size` (the whole 256x256 image with 256). Mask seeds: 50_100 + image number. */
export async function set12Problems(names: string[], size: number): Promise<Problem[]> {
  const x = new Float32Array(names.length * size * size);
  for (const [b, name] of names.entries()) {
    const image = await loadSet12Image(name);
    const top = Math.floor((image.height - size) / 2);
    const left = Math.floor((image.width - size) / 2);
    for (let r = 0; r < size; r++)
      for (let c = 0; c < size; c++)
        x[b * size * size + r * size + c] = image.x[(top + r) * image.width + left + c];
  }
  const base = {
    dataset: 'Set12' as const,
    modelDir: NATURAL_MODEL,
    count: names.length,
    height: size,
    width: size,
    x,
    region: { top: 0, left: 0, height: size, width: size },
    batch: size <= 128 ? 4 : 1,
  };
  return [
    {
      ...base,
      id: 'set12-mask50',
      label: 'random pixels, 50% missing',
      kind: 'mask',
      mask: stackMasks(names.length, (i) =>
        randomPixelMask(size, size, 0.5, 50_100 + Number.parseInt(names[i], 10)),
      ),
    },
    {
      ...base,
      id: 'set12-box32',
      label: 'centred 32x32 box',
      kind: 'mask',
      mask: stackMasks(names.length, () => centredBoxMask(size, size, 32)),
    },
    { ...base, id: 'set12-sr2', label: 'x2 super-resolution (2x2 mean)', kind: 'sr', factor: 2 },
  ];
}

export function operatorFor(p: Problem, start: number, n: number): DegradationOperator {
  const size = p.height * p.width;
  if (p.kind === 'mask')
    return maskOperator(
      (p.mask as Float32Array).subarray(start * size, (start + n) * size),
      p.height,
      p.width,
    );
  return averagePoolOperator(p.height, p.width, p.factor as number);
}

export interface RedDiffRun {
  /** Restored images on [0, 1]. */
  x: Float32Array;
  seconds: number;
}

/** RED-Diff over all images of a problem, `batch` at a time through the network (noise seed `seed` + first image). */
export async function runRedDiff(
  tf: Tf,
  model: LayersModel,
  schedule: DdpmSchedule,
  p: Problem,
  options: Omit<RedDiffOptions, 'seed'>,
  seed = SEED,
): Promise<RedDiffRun> {
  const size = p.height * p.width;
  const out = new Float32Array(p.count * size);
  const started = performance.now();
  for (let start = 0; start < p.count; start += p.batch) {
    const n = Math.min(p.batch, p.count - start);
    const op = operatorFor(p, start, n);
    const clean = Float32Array.from(p.x.subarray(start * size, (start + n) * size), (v) => 2 * v - 1);
    const y = tf.tidy(() => op.forward(tf, tf.tensor4d(clean, [n, p.height, p.width, 1])));
    const result = await redDiffRestore(tf, ddpmEpsModel(tf, model), schedule, op, y, {
      ...options,
      seed: seed + start,
    });
    y.dispose();
    op.dispose();
    for (let i = 0; i < result.x.length; i++) out[start * size + i] = (result.x[i] + 1) / 2;
  }
  return { x: out, seconds: (performance.now() - started) / 1000 };
}

function cropRegion(p: Problem, data: Float32Array, b: number): Float64Array {
  const { top, left, height, width } = p.region;
  const out = new Float64Array(height * width);
  for (let r = 0; r < height; r++)
    for (let c = 0; c < width; c++)
      out[r * width + c] = data[b * p.height * p.width + (top + r) * p.width + left + c];
  return out;
}

export interface Scores {
  psnr: number;
  ssim: number;
  /** Masks: PSNR over the missing pixels of the scored region. */
  psnrMissing: number | null;
  /** Mean and worst ||y - H x|| / ||y|| on the [-1, 1] scale. */
  residual: number;
  residualMax: number;
  perImagePsnr: number[];
  /** Masks: PSNR over each image's missing pixels. */
  perImageMissing: number[];
}

/** The metrics of restored images `xhat` (on [0, 1]) for a problem. */
export function score(p: Problem, xhat: Float32Array): Scores {
  const psnrs: number[] = [];
  const ssims: number[] = [];
  const missingPsnrs: number[] = [];
  const residuals: number[] = [];
  const y = measurement(p);
  const yhat = measurement({ ...p, x: xhat });
  const ySize = y.length / p.count;
  for (let b = 0; b < p.count; b++) {
    const ref = cropRegion(p, p.x, b);
    const est = cropRegion(p, xhat, b);
    psnrs.push(psnr(ref, est));
    ssims.push(ssim(ref, est, p.region.width, p.region.height, 1));
    if (p.mask) {
      const m = cropRegion(p, p.mask, b);
      const a: number[] = [];
      const e: number[] = [];
      for (let i = 0; i < m.length; i++) {
        if (m[i] !== 0) continue;
        a.push(ref[i]);
        e.push(est[i]);
      }
      if (a.length > 0) missingPsnrs.push(psnr(a, e));
    }
    // Residual on the model's scale: y' = 2y - 1 (masks: m . (2x - 1)), H x' likewise.
    let num = 0;
    let den = 0;
    for (let i = b * ySize; i < (b + 1) * ySize; i++) {
      const observed = p.mask ? p.mask[i] : 1;
      const ym = 2 * y[i] - observed;
      const hm = 2 * yhat[i] - observed;
      num += (ym - hm) ** 2;
      den += ym ** 2;
    }
    residuals.push(Math.sqrt(num / den));
  }
  const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
  return {
    psnr: mean(psnrs),
    ssim: mean(ssims),
    psnrMissing: missingPsnrs.length > 0 ? mean(missingPsnrs) : null,
    residual: mean(residuals),
    residualMax: Math.max(...residuals),
    perImagePsnr: psnrs,
    perImageMissing: missingPsnrs,
  };
}

/** H^+ y as RED-Diff starts from it, on [0, 1]: masks fill the missing pixels with 0 on [-1, 1], i.e. mid grey. */
function pseudoInverse(p: Problem): Float32Array {
  if (p.kind === 'mask') {
    const mask = p.mask as Float32Array;
    return Float32Array.from(p.x, (v, i) => (mask[i] === 1 ? v : 0.5));
  }
  const s = p.factor as number;
  const y = measurement(p);
  const hh = p.height / s;
  const ww = p.width / s;
  const out = new Float32Array(p.x.length);
  for (let b = 0; b < p.count; b++)
    for (let r = 0; r < p.height; r++)
      for (let c = 0; c < p.width; c++)
        out[b * p.height * p.width + r * p.width + c] =
          y[b * hh * ww + Math.floor(r / s) * ww + Math.floor(c / s)];
  return out;
}

// --- peers ------------------------------------------------------------------------------------------------------

interface PeersOutput {
  skimage: string;
  numpy: string;
  results: Record<string, Record<string, { file: string; seconds: number[] }>>;
}

function writeInputs(problems: Problem[]): string {
  mkdirSync(OUT_DIR, { recursive: true });
  const index = problems.map((p) => {
    writeFileSync(join(OUT_DIR, `${p.id}.y.f32`), Buffer.from(measurement(p).buffer));
    if (p.mask) writeFileSync(join(OUT_DIR, `${p.id}.mask.f32`), Buffer.from(p.mask.buffer));
    return {
      id: p.id,
      kind: p.kind,
      count: p.count,
      height: p.height,
      width: p.width,
      y: `${p.id}.y.f32`,
      ...(p.mask ? { mask: `${p.id}.mask.f32` } : {}),
      ...(p.factor ? { factor: p.factor } : {}),
    };
  });
  const path = join(OUT_DIR, 'index.json');
  writeFileSync(path, JSON.stringify({ problems: index }, null, 1));
  return path;
}

function runPeers(indexPath: string, reuse: boolean): PeersOutput {
  const cached = join(OUT_DIR, 'peers.json');
  if (reuse && existsSync(cached)) return JSON.parse(readFileSync(cached, 'utf8')) as PeersOutput;
  const r = spawnSync('/usr/bin/python3', [join(REPO_ROOT, 'bench/restore-peers.py'), indexPath], {
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
  });
  if (r.status !== 0) throw new Error(`restore-peers.py failed (${r.status}): ${r.stderr}`);
  writeFileSync(cached, r.stdout);
  return JSON.parse(r.stdout) as PeersOutput;
}

/**
 * A grey PNG strip of image 0 of a problem: panels (each height x width on [0, 1]) separated by 2 white columns.
 * When the mask's missing pixels fit in a box of at most half the image's side (a hole in a large image), a second
 * row shows the same panels zoomed on the hole: the hole's bounding box with half its size of context on each side,
 * enlarged by pixel repetition to the panels' height. Returns the path written.
 */
async function writeSideBySide(p: Problem, panels: Float32Array[]): Promise<string> {
  const { height: h, width: w } = p;
  const gap = 2;
  const W = panels.length * w + (panels.length - 1) * gap;
  const zoom = p.mask ? holeWindow(p.mask.subarray(0, h * w), h, w) : null;
  const H = zoom ? 2 * h + gap : h;
  const pixels = Buffer.alloc(W * H, 255);
  const level = (v: number) => Math.round(255 * Math.min(1, Math.max(0, v)));
  panels.forEach((panel, k) => {
    for (let r = 0; r < h; r++)
      for (let c = 0; c < w; c++) pixels[r * W + k * (w + gap) + c] = level(panel[r * w + c]);
    if (!zoom) return;
    for (let r = 0; r < zoom.side * zoom.scale && r < h; r++)
      for (let c = 0; c < zoom.side * zoom.scale && c < w; c++) {
        const sr = zoom.top + Math.floor(r / zoom.scale);
        const sc = zoom.left + Math.floor(c / zoom.scale);
        pixels[(h + gap + r) * W + k * (w + gap) + c] = level(panel[sr * w + sc]);
      }
  });
  const path = join(OUT_DIR, `${p.id}-side-by-side.png`);
  await sharp(pixels, { raw: { width: W, height: H, channels: 1 } })
    .png()
    .toFile(path);
  return path;
}

/** The square window around a mask's missing pixels for the zoomed row (null: no hole small enough). */
function holeWindow(
  mask: Float32Array,
  h: number,
  w: number,
): { top: number; left: number; side: number; scale: number } | null {
  let top = h;
  let left = w;
  let bottom = -1;
  let right = -1;
  for (let r = 0; r < h; r++)
    for (let c = 0; c < w; c++)
      if (mask[r * w + c] < 0.5) {
        top = Math.min(top, r);
        bottom = Math.max(bottom, r);
        left = Math.min(left, c);
        right = Math.max(right, c);
      }
  if (bottom < 0) return null;
  const extent = Math.max(bottom - top + 1, right - left + 1);
  const side = Math.min(2 * extent, h, w);
  if (extent > Math.min(h, w) / 2 || side * 2 > Math.min(h, w)) return null;
  const clamp = (v: number, n: number) => Math.min(Math.max(v, 0), n - side);
  return {
    top: clamp(Math.round((top + bottom + 1) / 2 - side / 2), h),
    left: clamp(Math.round((left + right + 1) / 2 - side / 2), w),
    side,
    scale: Math.floor(Math.min(h, w) / side),
  };
}

function readF32(file: string): Float32Array {
  const buf = readFileSync(join(OUT_DIR, file));
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

// --- speed ------------------------------------------------------------------------------------------------------

interface Speed {
  size: number;
  steps: number;
  redDiffMsPerStep: number;
  dpsMsPerStep: number;
  forwardMs: number;
}

/**
 * A RED-Diff step and a DPS-style step on one size x size image of the natural model. The DPS step is what DPS
 * (Chung et al., 2023) needs per step: eps = eps_theta(x_t, t), x0 = Tweedie(x_t, eps), loss ||y - H x0||^2 and its
 * gradient with respect to x_t, i.e. a backward pass through the U-Net (the ancestral update itself is negligible).
 */
async function measureSpeed(
  tf: Tf,
  model: LayersModel,
  schedule: DdpmSchedule,
  image: Float32Array,
  size: number,
): Promise<Speed> {
  const steps = 6;
  const mask = randomPixelMask(size, size, 0.5, 1);
  const op = maskOperator(mask, size, size);
  const y = tf.tidy(() =>
    op.forward(
      tf,
      tf.tensor4d(
        Float32Array.from(image, (v) => 2 * v - 1),
        [1, size, size, 1],
      ),
    ),
  );
  // Warm-up (kernel compilation, first-call allocations) outside the timings.
  const eps = ddpmEpsModel(tf, model);
  await redDiffRestore(tf, eps, schedule, op, y, { steps: 2 });
  const red = await redDiffRestore(tf, eps, schedule, op, y, { steps });
  const t = 500;
  const a = schedule.sqrtAlphaBars[t];
  const s = schedule.sqrtOneMinusAlphaBars[t];
  const dpsGradient = tf.grad((xt: Tensor) => {
    const eps = predictEps(tf, model, xt, t);
    const x0 = tf.div(tf.sub(xt, tf.mul(eps, s)), a) as Tensor4D;
    return tf.sum(tf.square(tf.sub(y, op.forward(tf, x0))));
  });
  const xt = tf.randomNormal([1, size, size, 1], 0, 1, 'float32', 3);
  dpsGradient(xt).dispose();
  let started = performance.now();
  for (let i = 0; i < steps; i++) {
    const g = dpsGradient(xt);
    g.dataSync();
    g.dispose();
  }
  const dpsMsPerStep = (performance.now() - started) / steps;
  started = performance.now();
  for (let i = 0; i < steps; i++) {
    const e = predictEps(tf, model, xt, t);
    await e.data();
    e.dispose();
  }
  const forwardMs = (performance.now() - started) / steps;
  tf.dispose([xt, y]);
  op.dispose();
  return { size, steps, redDiffMsPerStep: red.timings.msPerStep, dpsMsPerStep, forwardMs };
}

// --- report -----------------------------------------------------------------------------------------------------

interface MethodResult {
  method: string;
  scores: Scores;
  secondsPerImage: number;
}

interface ProblemResult {
  id: string;
  dataset: string;
  label: string;
  count: number;
  size: string;
  methods: MethodResult[];
}

const f2 = (v: number | null) => (v === null || !Number.isFinite(v) ? '-' : v.toFixed(2));
const f3 = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '-');

function table(results: ProblemResult[]): string {
  const head =
    '| data | task | images | method | PSNR (dB) | SSIM | PSNR missing px (dB) | residual mean / max | s/image |';
  const sep = '|---|---|---:|---|---:|---:|---:|---:|---:|';
  const lines: string[] = [];
  for (const r of results)
    for (const m of r.methods)
      lines.push(
        `| ${r.dataset} ${r.size} | ${r.label} | ${r.count} | ${m.method} | ${f2(m.scores.psnr)} | ${f3(m.scores.ssim)} | ${f2(
          m.scores.psnrMissing,
        )} | ${m.scores.residual.toExponential(1)} / ${m.scores.residualMax.toExponential(1)} | ${
          m.secondsPerImage > 0 ? f3(m.secondsPerImage) : '-'
        } |`,
      );
  return [head, sep, ...lines].join('\n');
}

function find(results: ProblemResult[], id: string, method: string): Scores | undefined {
  return results.find((r) => r.id === id)?.methods.find((m) => m.method.startsWith(method))?.scores;
}

function targets(results: ProblemResult[], speed: Speed | null): string {
  const rows: string[] = ['| target | measured | met |', '|---|---|---|'];
  const beat = (id: string, peer: string, what: string) => {
    const ours = find(results, id, 'RED-Diff (default');
    const theirs = find(results, id, peer);
    if (!ours || !theirs) return;
    const gain = ours.psnr - theirs.psnr;
    rows.push(
      `| ${what}: RED-Diff >= ${peer} + ${id.includes('sr') ? '0' : '1'} dB | ${f2(ours.psnr)} vs ${f2(theirs.psnr)} (${gain >= 0 ? '+' : ''}${f2(gain)} dB) | ${
        gain >= (id.includes('sr') ? 0 : 1) ? 'yes' : 'NO'
      } |`,
    );
  };
  beat('fashion-mask80', 'biharmonic', 'Fashion-MNIST 80% missing');
  beat('set12-mask50', 'biharmonic', 'Set12 50% missing');
  beat('fashion-sr2', 'bicubic', 'Fashion-MNIST x2');
  beat('set12-sr2', 'bicubic', 'Set12 x2');
  // Issue 18: inside the hole (PSNR over the missing pixels only).
  for (const r of results.filter((r) => r.id === 'set12-box32')) {
    const ours = find(results, r.id, 'RED-Diff (default')?.psnrMissing;
    const theirs = find(results, r.id, 'biharmonic')?.psnrMissing;
    if (ours == null || theirs == null) continue;
    const gain = ours - theirs;
    rows.push(
      `| Set12 ${r.size} centred 32x32 hole: RED-Diff >= biharmonic + 1 dB inside the hole | ${f2(ours)} vs ${f2(theirs)} (${gain >= 0 ? '+' : ''}${f2(gain)} dB) | ${gain >= 1 ? 'yes' : 'NO'} |`,
    );
  }
  const worst = Math.max(
    ...results.flatMap((r) =>
      r.methods.filter((m) => m.method.startsWith('RED-Diff (default')).map((m) => m.scores.residual),
    ),
  );
  rows.push(
    `| noise-free residual ||y - H x|| / ||y|| <= 1e-2 (mean per task, worst task) | ${worst.toExponential(2)} | ${worst <= 1e-2 ? 'yes' : 'NO'} |`,
  );
  for (const r of results) {
    if (!r.id.includes('mask')) continue;
    const none = r.methods.find((m) => m.method.startsWith('RED-Diff, lambda = 0 '))?.scores;
    for (const [what, ours] of [
      [
        `lambda ${ISSUE_LAMBDA}`,
        r.methods.find((m) => m.method === `RED-Diff, lambda = ${ISSUE_LAMBDA}`)?.scores,
      ],
      ['the default lambda', find(results, r.id, 'RED-Diff (default')],
    ] as const) {
      if (!ours?.psnrMissing || !none?.psnrMissing) continue;
      rows.push(
        `| ${r.dataset} ${r.label}: ${what} beats lambda 0 (same start) on the missing pixels | ${f2(ours.psnrMissing)} vs ${f2(none.psnrMissing)} dB | ${
          ours.psnrMissing > none.psnrMissing ? 'yes' : 'NO'
        } |`,
      );
    }
  }
  if (speed)
    rows.push(
      `| DPS-style step / RED-Diff step (${speed.size}x${speed.size}, same model) | ${f2(speed.dpsMsPerStep / speed.redDiffMsPerStep)}x | (reported) |`,
    );
  return rows.join('\n');
}

function writeSection(section: string) {
  writeResultsSection('restore', section);
}

function pythonVersion(): string {
  const r = spawnSync('/usr/bin/python3', ['-c', 'import platform; print(platform.python_version())'], {
    encoding: 'utf8',
  });
  return r.stdout.trim() || '?';
}

function manifestOf(modelDir: string): {
  extra?: Record<string, unknown>;
  architecture?: string | Record<string, unknown>;
} {
  return JSON.parse(readFileSync(join(REPO_ROOT, modelDir, 'manifest.json'), 'utf8'));
}

function scheduleOf(modelDir: string): DdpmSchedule {
  return linearSchedule((manifestOf(modelDir).extra?.schedule ?? {}) as Parameters<typeof linearSchedule>[0]);
}

/**
 * The service's RED-Diff settings for a problem (modelRedDiffDefaults, as the restore task picks them per image from
 * its mask); every image of a benchmark problem has a mask of the same kind, which is checked.
 */
function problemDefaults(p: Problem): ReturnType<typeof modelRedDiffDefaults> {
  const extra = manifestOf(p.modelDir).extra;
  if (!p.mask) return modelRedDiffDefaults(extra);
  const size = p.height * p.width;
  const each = Array.from({ length: p.count }, (_, b) =>
    modelRedDiffDefaults(extra, {
      mask: (p.mask as Float32Array).subarray(b * size, (b + 1) * size),
      height: p.height,
      width: p.width,
    }),
  );
  if (each.some((d) => d.settings !== each[0].settings))
    throw new Error(`${p.id}: its masks select different RED-Diff settings`);
  return each.reduce((a, d) => ((d.holeRadius ?? 0) > (a.holeRadius ?? 0) ? d : a));
}

async function solveProblems(
  tf: Tf,
  problems: Problem[],
  peers: PeersOutput,
  steps: number,
  log: (line: string) => void,
  defaultsOnly = false,
): Promise<{ results: ProblemResult[]; models: Map<string, LayersModel> }> {
  const models = new Map<string, LayersModel>();
  const results: ProblemResult[] = [];
  for (const p of problems) {
    let model = models.get(p.modelDir);
    if (!model) {
      model = await loadDiffusionModel(tf, join(REPO_ROOT, p.modelDir));
      models.set(p.modelDir, model);
    }
    const schedule = scheduleOf(p.modelDir);
    // The service's defaults for this model and mask: its manifest's extra.redDiff (measured; its `holes` settings
    // for masks with a deep hole), else RESTORE_DEFAULTS.
    const tuned = problemDefaults(p);
    const options = {
      steps,
      lambda: tuned.lambda,
      lr: tuned.lr,
      init: tuned.init,
      tMax: tuned.tMax,
      // As the restore task: a window around the holes when the manifest gives its margin.
      ...(tuned.windowMargin !== undefined
        ? {
            window: {
              margin: tuned.windowMargin,
              multiple: architectureMultiple({ architecture: manifestOf(p.modelDir).architecture ?? {} }),
            },
          }
        : {}),
      ...(tuned.samples !== undefined ? { samples: tuned.samples } : {}),
      ...(tuned.coarse !== undefined ? { coarse: tuned.coarse } : {}),
    };
    const tMaxLabel = tuned.tMax ?? schedule.timesteps - 1;
    const methods: MethodResult[] = [
      { method: 'H^+ y (pseudo-inverse)', scores: score(p, pseudoInverse(p)), secondsPerImage: 0 },
    ];
    for (const [name, peer] of Object.entries(peers.results[p.id] ?? {}))
      methods.push({
        method: `${name} (scikit-image)`,
        scores: score(p, readF32(peer.file)),
        secondsPerImage: peer.seconds.reduce((s, v) => s + v, 0) / peer.seconds.length,
      });
    // lambda = 0: least squares from the start, i.e. the start itself when it already fits y (what the prior adds
    // is the difference to the rows below).
    const none = await runRedDiff(tf, model, schedule, p, { ...options, lambda: 0 });
    methods.push({
      method: `RED-Diff, lambda = 0 (${options.init} start, no prior)`,
      scores: score(p, none.x),
      secondsPerImage: none.seconds / p.count,
    });
    // The issue's comparison (lambda 0.25 against 0 on the missing pixels), on the random-pixel masks.
    if (
      !defaultsOnly &&
      (p.id.endsWith('mask50') || p.id.endsWith('mask80')) &&
      options.lambda !== ISSUE_LAMBDA
    ) {
      const issue = await runRedDiff(tf, model, schedule, p, { ...options, lambda: ISSUE_LAMBDA });
      methods.push({
        method: `RED-Diff, lambda = ${ISSUE_LAMBDA}`,
        scores: score(p, issue.x),
        secondsPerImage: issue.seconds / p.count,
      });
    }
    // The official start and schedule (H^+ y, t from T - 1) with the fallback lambda and lr (session 2's default).
    if (!defaultsOnly && (options.init !== 'pinv' || options.tMax !== undefined)) {
      const official = await runRedDiff(tf, model, schedule, p, {
        steps,
        lambda: RESTORE_DEFAULTS.lambda,
        lr: RESTORE_DEFAULTS.lr,
      });
      methods.push({
        method: `RED-Diff, official start (H^+ y, t from ${schedule.timesteps - 1}, lambda ${RESTORE_DEFAULTS.lambda}, lr ${RESTORE_DEFAULTS.lr})`,
        scores: score(p, official.x),
        secondsPerImage: official.seconds / p.count,
      });
    }
    const ours = await runRedDiff(tf, model, schedule, p, options);
    methods.push({
      method: `RED-Diff (default${tuned.settings === 'holes' ? ` for holes, radius ${tuned.holeRadius}` : ''}: ${options.init} start, t from ${tMaxLabel}, lambda ${options.lambda}, lr ${options.lr}, ${options.steps} steps${tuned.windowMargin !== undefined ? `, window margin ${tuned.windowMargin}` : ''}${tuned.samples !== undefined ? `, mean of ${tuned.samples} runs` : ''}${tuned.coarse !== undefined ? `, after ${tuned.coarse.steps} steps at half resolution from t ${tuned.coarse.tMax ?? tMaxLabel}, then from t ${tuned.coarse.fineTMax ?? tMaxLabel}` : ''})`,
      scores: score(p, ours.x),
      secondsPerImage: ours.seconds / p.count,
    });
    const first = (data: Float32Array) => data.subarray(0, p.height * p.width);
    const classical = Object.values(peers.results[p.id] ?? {})[0];
    if (classical) {
      const path = await writeSideBySide(p, [
        first(pseudoInverse(p)),
        first(readF32(classical.file)),
        first(Float32Array.from(ours.x)),
        first(p.x),
      ]);
      log(
        `${p.id}: side by side (degraded | ${Object.keys(peers.results[p.id])[0]} | RED-Diff | truth): ${relative(REPO_ROOT, path)}`,
      );
    }
    results.push({
      id: p.id,
      dataset: p.dataset,
      label: p.label,
      count: p.count,
      size: p.dataset === 'Set12' ? `${p.width}x${p.height} crops` : '',
      methods,
    });
    log(`${p.id}: ${methods.map((m) => `${m.method.split(' (')[0]} ${f2(m.scores.psnr)}`).join(', ')}`);
  }
  return { results, models };
}

async function measureNaturalSpeed(tf: Tf, models: Map<string, LayersModel>): Promise<Speed> {
  const model = models.get(NATURAL_MODEL) ?? (await loadDiffusionModel(tf, join(REPO_ROOT, NATURAL_MODEL)));
  const image = await loadSet12Image('01');
  return measureSpeed(tf, model, scheduleOf(NATURAL_MODEL), Float32Array.from(image.x), 256);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const benchStart = performance.now();
  const elapsed = () => `${((performance.now() - benchStart) / 1000).toFixed(0)} s`;
  const loadAtStart = loadavg()[0];
  const { tf } = await initTfjs('wasm');
  const names = args.set12 ?? set12Names();
  const wanted = (p: Problem) => !args.only || args.only.includes(p.id);
  const set12 = args.runSet12 ? (await set12Problems(names, args.set12Size)).filter(wanted) : [];
  const set12Results = join(OUT_DIR, 'results-set12.json');

  if (args.part === 'set12') {
    // The second process of a parallel run: the parent wrote the inputs and ran the peers.
    const peers = runPeers(join(OUT_DIR, 'index.json'), true);
    const { results } = await solveProblems(
      tf,
      set12,
      peers,
      args.steps,
      (l) => console.log(`[set12] ${l} (${elapsed()})`),
      args.defaultsOnly,
    );
    writeFileSync(set12Results, JSON.stringify({ results }));
    return;
  }

  const fashion = args.fashion > 0 ? (await fashionProblems(args.fashion)).filter(wanted) : [];
  const peers = runPeers(writeInputs([...fashion, ...set12]), args.reusePeers);
  console.log(`peers done (${elapsed()})`);
  let child: Promise<number> | null = null;
  if (args.parallel && set12.length > 0) {
    const childArgs = [
      'bench/restore.ts',
      '--part',
      'set12',
      '--set12',
      names.join(','),
      '--set12-size',
      String(args.set12Size),
      '--steps',
      String(args.steps),
      ...(args.only ? ['--only', args.only.join(',')] : []),
      ...(args.defaultsOnly ? ['--defaults-only'] : []),
    ];
    const proc = spawn(join(REPO_ROOT, 'node_modules/.bin/tsx'), childArgs, {
      cwd: REPO_ROOT,
      stdio: 'inherit',
    });
    child = new Promise((resolve) => proc.on('exit', (code) => resolve(code ?? 1)));
  }
  const log = (l: string) => console.log(`${l} (${elapsed()})`);
  const own = await solveProblems(
    tf,
    child ? fashion : [...fashion, ...set12],
    peers,
    args.steps,
    log,
    args.defaultsOnly,
  );
  let results = own.results;
  let speed: Speed | null = null;
  if (child) {
    const code = await child;
    if (code !== 0) throw new Error(`the Set12 process failed (exit ${code})`);
    const part = JSON.parse(readFileSync(set12Results, 'utf8')) as { results: ProblemResult[] };
    results = [...results, ...part.results];
  }
  // Timed last, in this process alone, once the other process has finished: one wasm thread on an idle core.
  if (args.speed && set12.length > 0) speed = await measureNaturalSpeed(tf, own.models);
  if (speed) console.log(`speed: ${JSON.stringify(speed)}`);
  const options = {
    steps: args.steps,
    fashion: modelRedDiffDefaults(manifestOf(FASHION_MODEL).extra),
    natural: modelRedDiffDefaults(manifestOf(NATURAL_MODEL).extra),
  };
  const totalSeconds = (performance.now() - benchStart) / 1000;
  writeFileSync(join(OUT_DIR, 'results.json'), JSON.stringify({ results, speed, options }, null, 1));

  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  const section = [
    '## RED-Diff restoration (`npm run bench:restore`)',
    '',
    `Command: \`npm run bench:restore${process.argv.slice(2).length ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\` ` +
      `(bench/restore.ts + bench/restore-peers.py), ${new Date().toISOString().slice(0, 16)} UTC, ${totalSeconds.toFixed(0)} s in all.`,
    `Machine: nproc ${cpus().length}, CPU ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, load ` +
      `${loadAtStart.toFixed(1)} at the start (shared with other jobs); Node ${process.version}, @tensorflow/tfjs ` +
      `${tf.version.tfjs} on the ${tf.getBackend()} backend (one thread); Python ${pythonVersion()}, scikit-image ` +
      `${peers.skimage}, numpy ${peers.numpy}.`,
    '',
    `Models: ${FASHION_MODEL} (Fashion-MNIST) and ${NATURAL_MODEL} (Set12). Fashion-MNIST: the first ${args.fashion} ` +
      'test images, padded to 32x32 (both sides see the padding), scored on the 28x28 image. Set12: ' +
      `${names.length} images, centre ${args.set12Size}x${args.set12Size} crops` +
      `${args.set12Size < 256 ? ` (whole 256x256 images cost ${((256 / args.set12Size) ** 2).toFixed(0)}x more; the speed line below is on a whole image)` : ''}. ` +
      'Masks are seeded per image (50% of Fashion image i: 50000 + i; 80%: 80000 + i; Set12 NN: 50100 + NN); x2 ' +
      'super-resolution measures the 2x2 block means. ' +
      "RED-Diff's defaults are each model's manifest (extra.redDiff: start, largest timestep, lambda, lr), as the " +
      'service uses them; the smooth start is biharmonic inpainting or back-projected bicubic up-sampling ' +
      '(src/diffusion/initial.ts), and the lambda = 0 row is that start alone. The official start (H^+ y, t from ' +
      `T - 1) is run beside it, and lambda ${ISSUE_LAMBDA} (the official value, the issue's comparison) on the random-pixel masks. ` +
      'The Set12 part runs in a second process beside the Fashion-MNIST one (2 cores). RED-Diff runs batched through the U-Net (16 Fashion images or ' +
      '4 crops at a time, each with its own mask; Adam is per pixel, so batching changes nothing but speed), noise ' +
      'seed 0 per batch, wasm backend. PSNR and SSIM (scikit-image 0.19 definition, Gaussian window) are per-image ' +
      'means on [0, 1]; "PSNR missing px" is over the missing pixels only; residual = ||y - H x|| / ||y|| per image ' +
      'on the model range [-1, 1] (noise-free measurements). s/image: RED-Diff wall time of the batched run divided ' +
      'by the images; scikit-image timed per image.',
    '',
    table(results),
    '',
    'Targets (issue 6):',
    '',
    targets(results, speed),
    '',
    ...(speed
      ? [
          `Speed, ${NATURAL_MODEL} on Set12 01 (256x256, 50% mask), ${speed.steps} steps each after a warm-up: RED-Diff ` +
            `${f3(speed.redDiffMsPerStep / 1000)} s per step (one U-Net forward pass ${f3(speed.forwardMs / 1000)} s + ` +
            `Adam), i.e. ${(speed.redDiffMsPerStep / 10).toFixed(0)} s per 256x256 image for 100 steps on one wasm ` +
            `thread; a DPS-style step (forward, Tweedie x0, ||y - H x0||^2, backward through the U-Net to x_t) ` +
            `${f3(speed.dpsMsPerStep / 1000)} s: ${f2(speed.dpsMsPerStep / speed.redDiffMsPerStep)}x a RED-Diff step.`,
        ]
      : []),
  ].join('\n');
  if (args.write) {
    writeSection(section);
    console.log(`wrote bench/RESULTS.md (${BEGIN} ... ${END})`);
  } else console.log(section);
  for (const m of own.models.values()) m.dispose();
}

if (process.argv[1]?.endsWith('restore.ts')) await main();
