/**
 * Noise2Score denoising: one forward pass of the score network R, then Tweedie's formula for the noise family.
 *
 * Large images are processed in overlapping windows so memory stays bounded. Each window is cut on the network's
 * down-sampling grid (origins multiples of `multiple`), so its pixels see exactly the same arithmetic as in a
 * whole-image pass; the `margin` pixels along each window edge that touches another window are discarded
 * (they see the window's zero padding instead of the image, and margin covers the receptive-field radius), and
 * neighbouring windows are cross-faded with linear ramps over `overlap` pixels. The result equals the whole-image
 * output up to float rounding (tested), with no seams.
 *
 * Colour: each channel is denoised independently as a grey image with the same model (the network is trained on
 * grey images); with level 'auto' the level is estimated per channel and the median is used for every channel,
 * because the noise level of a camera image is (to first order) shared by its channels.
 *
 * Clipped pixels (Gaussian): an 8-bit upload clips x + sigma n to [0, 1], so a pixel that reads 0 or 1 is a censored
 * observation and Tweedie's formula, which assumes additive noise, mistreats it and its neighbours (on the
 * held-out selection crops at sigma 50, 0.7 dB lost against the same noise only rounded). Once the level is known,
 * each such pixel is replaced by its truncated-normal mean given a local pilot of its clean mean, before the
 * network runs (src/denoise/censored.ts; Noise2ScoreOptions.clipped); with level 'auto' the wavelet estimate is
 * corrected for the clipping the same way (estimateSigmaCensored), and the TV rule reads its level on the imputed
 * planes (imputed first at that wavelet level: TV_REIMPUTE_TOLERANCE). An image with no pixel at 0 or 1 is
 * denoised exactly as without this step.
 *
 * Gaussian noise, then a second stage (Noise2ScoreOptions.refine, default 'wiener'): the pilot-guided empirical
 * Wiener filter of src/denoise/wiener.ts, with Tweedie's output as the pilot and the clip-treated input as the noisy
 * image (on the held-out selection split, +0.42, +0.35 and +0.42 dB on average over Tweedie's output alone at sigma
 * 15, 25 and 50, from +0.07 to +1.35 dB per image, for about 40 ms of CPU at 512x512; `npm run bench:wiener`).
 */

import { batchParallelism, forEachInChunks, predictBatched } from '../nn/batcher.js';
import { type CensoredFill, censoredThresholds, estimateSigmaCensored, imputeCensored } from './censored.js';
import { NoiseLevelUnknownError } from './errors.js';
import {
  applyTweedie,
  estimateLevelByTotalVariation,
  estimateNoiseLevel,
  gaussianNoiseLooksWhite,
} from './estimate.js';
import type { NoiseFamily } from './noise.js';
import { DEFAULT_REFINE, type Refine, wienerRefine } from './wiener.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;

export interface PlanarImage {
  /** Interleaved channels, row-major, intensities on [0, 1]. */
  data: Float32Array;
  width: number;
  height: number;
  channels: number;
}

export interface Noise2ScoreOptions {
  noise: NoiseFamily;
  /** sigma on the [0,1] scale (gaussian), zeta (poisson), k (gamma), or 'auto' to estimate it. */
  level: number | 'auto';
  /**
   * How 'auto' estimates: wavelet statistics ('wavelet', default) or the paper's Tweedie-TV rule ('tv'). With
   * 'wavelet', Gaussian noise that does not look white (gaussianNoiseLooksWhite: a camera JPEG's correlated noise,
   * which the finest wavelet scale cannot see) is estimated by the TV rule instead, never left at about 0.
   */
  estimator?: 'wavelet' | 'tv';
  /** Window side in pixels (rounded down to a multiple of `multiple`); images up to this size run in one pass. */
  tile?: number;
  /** Cross-fade width between windows, pixels. */
  overlap?: number;
  /** Pixels discarded along interior window edges; should cover the network's receptive-field radius. */
  margin?: number;
  /** The network's required size multiple (see networkMultiple). */
  multiple?: number;
  /**
   * Self-ensemble: average the score over this many of the 8 flips/transpositions of the image (1, 2, 4 or 8;
   * default 1). The noisy-image density is as likely flipped as not, so its score commutes with the flips: the
   * average is the same estimate with less network error, at `ensemble` times the network time.
   */
  ensemble?: number;
  /**
   * Gaussian only: pixels clipped at 0 or 1 by the 8-bit upload (censored observations) are replaced before the
   * network and Tweedie's formula run, by their truncated-normal mean ('mean') or a seeded draw ('draw') given a
   * local pilot of the clean mean (src/denoise/censored.ts); 'off' leaves them as they are.
   */
  clipped?: 'off' | CensoredFill;
  /** Half side of the box that gives the pilot of a clipped pixel's clean mean. */
  clippedRadius?: number;
  /** Rounds of the censored-aware refinement of a wavelet 'auto' sigma (estimateSigmaCensored); 0: none. */
  clippedEstimateRounds?: number;
  /**
   * Gaussian only: 'wiener' (default) runs the pilot-guided Wiener stage after Tweedie's formula, with the
   * Noise2Score output as the pilot and the (clip-treated) input as the noisy image (src/denoise/wiener.ts);
   * 'none' answers Tweedie's output as it is. Poisson and Gamma: always 'none'.
   */
  refine?: Refine;
  /** Block stride of the Wiener stage (WienerOptions.stride). */
  wienerStride?: number;
  /** One score map on several workers (WindowSplit); default: the configured windows, one after another here. */
  split?: WindowSplit;
}

/**
 * Cutting one score map into windows for several workers. The windows are planned for `parts` workers
 * (planScoreWindows: at least that many windows when that is faster), and `run` may compute them anywhere; they are
 * blended here in window order, so the result equals, bit for bit, the same plan computed on one worker.
 */
export interface WindowSplit {
  /** Workers to plan a score map of `pixels` pixels for, asked once per map (1: the configured windows). */
  parts(pixels: number): number;
  /**
   * Computes every window of `job` (absent: here, one after another): `local(i)` computes window i here; others
   * compute it with windowScore on `job.plane` and write it into `job.out` at i * job.height * job.width.
   */
  run?(job: WindowJob, local: (index: number) => Promise<void>): Promise<void>;
}

/** The windows of one score map, in shared memory (SharedArrayBuffer) so other threads can compute them. */
export interface WindowJob {
  /** The padded plane (paddedWidth wide). */
  plane: Float32Array;
  paddedWidth: number;
  /** Top-left corner of window i: rows at [2 i], columns at [2 i + 1]. */
  origins: Int32Array;
  count: number;
  /** Size of every window. */
  height: number;
  width: number;
  /** The scores, window i at i * height * width. */
  out: Float32Array;
}

export interface Noise2ScoreResult {
  data: Float32Array;
  width: number;
  height: number;
  channels: number;
  level: number;
  levelEstimated: boolean;
  /** Pixels (over all channels) treated as censored: read 0 or 1, with Gaussian noise and `clipped` not 'off'. */
  clippedPixels: number;
  /** The estimator that set the level when it was estimated ('wavelet' or 'tv'). */
  estimator?: 'wavelet' | 'tv';
  /** The stage run after Tweedie's formula ('none' for Poisson and Gamma). */
  refine: Refine;
  timings: { estimateMs: number; networkMs: number; tweedieMs: number; refineMs: number; totalMs: number };
}

export const DEFAULT_TILE = 512;
export const DEFAULT_OVERLAP = 16;
export const DEFAULT_MARGIN = 56;
export const DEFAULT_MULTIPLE = 8;
/** How clipped pixels are treated by default (Noise2ScoreOptions.clipped). */
export const DEFAULT_CLIPPED: 'off' | CensoredFill = 'mean';
/** Default half side of the pilot box for clipped pixels (Noise2ScoreOptions.clippedRadius). */
export const DEFAULT_CLIPPED_RADIUS = 3;
/** Default rounds of the clipped-aware sigma estimate (Noise2ScoreOptions.clippedEstimateRounds). */
export const DEFAULT_CLIPPED_ESTIMATE_ROUNDS = 1;
/**
 * The TV rule on a clipped image: censored pixels are imputed at the wavelet pilot level, and again (with a second
 * network pass) when the TV level is off the pilot by more than this fraction (a little above the TV grid's step).
 */
export const TV_REIMPUTE_TOLERANCE = 0.1;

/** Reflect-pads a grey plane on the bottom and right to (paddedHeight, paddedWidth) (edge not repeated). */
export function reflectPad(
  plane: Float32Array,
  width: number,
  height: number,
  paddedWidth: number,
  paddedHeight: number,
): Float32Array {
  const reflect = (i: number, n: number) => {
    if (n === 1) return 0;
    const period = 2 * (n - 1);
    let j = i % period;
    if (j >= n) j = period - j;
    return j;
  };
  const out = new Float32Array(paddedWidth * paddedHeight);
  for (let r = 0; r < paddedHeight; r++) {
    const sr = reflect(r, height);
    for (let c = 0; c < paddedWidth; c++) out[r * paddedWidth + c] = plane[sr * width + reflect(c, width)];
  }
  return out;
}

export interface Window1D {
  start: number;
  end: number;
  /** Weight of each pixel of [start, end) in the blend (0 on discarded margins). */
  weights: Float32Array;
}

/** Splits [0, n) into windows aligned to `multiple`, with discarded margins and cross-fade ramps. */
export function planWindows(
  n: number,
  tile: number,
  overlap: number,
  margin: number,
  multiple: number,
): Window1D[] {
  if (n <= tile) return [{ start: 0, end: n, weights: new Float32Array(n).fill(1) }];
  const stride = Math.floor((tile - 2 * margin - overlap) / multiple) * multiple;
  if (stride <= 0) {
    throw new RangeError(`tile ${tile} too small for margin ${margin} and overlap ${overlap}`);
  }
  const starts: number[] = [];
  for (let s = 0; ; s += stride) {
    if (s + tile >= n) {
      starts.push(n - tile); // n and tile are multiples of `multiple`, so this start is aligned too
      break;
    }
    starts.push(s);
  }
  return starts.map((start, index) => {
    const end = start + tile;
    const validStart = index === 0 ? start : start + margin;
    const validEnd = index === starts.length - 1 ? end : end - margin;
    const weights = new Float32Array(tile);
    for (let p = start; p < end; p++) {
      if (p < validStart || p >= validEnd) continue;
      let w = 1;
      if (index > 0) w = Math.min(w, (p - validStart + 0.5) / overlap);
      if (index < starts.length - 1) w = Math.min(w, (validEnd - p - 0.5) / overlap);
      weights[p - start] = Math.max(0, Math.min(1, w));
    }
    return { start, end, weights };
  });
}

/** The windows of a score map: the padded size and the row and column windows (each with its blend weights). */
export interface ScoreWindowPlan {
  paddedWidth: number;
  paddedHeight: number;
  rows: Window1D[];
  cols: Window1D[];
}

/**
 * Plans the windows of a width x height score map. For one worker (`parts` 1): square windows of `tile`. For
 * several: the row and column window sizes (aligned, at most `tile`, margins and overlap kept) that finish first
 * when the windows (all one size) are shared by `parts` workers, fewest pixels computed among equals; the
 * configured plan when it is as fast.
 */
export function planScoreWindows(
  width: number,
  height: number,
  options: Pick<Noise2ScoreOptions, 'tile' | 'overlap' | 'margin' | 'multiple'> = {},
  parts = 1,
): ScoreWindowPlan {
  const multiple = options.multiple ?? DEFAULT_MULTIPLE;
  const tile = Math.max(multiple, Math.floor((options.tile ?? DEFAULT_TILE) / multiple) * multiple);
  const overlap = options.overlap ?? DEFAULT_OVERLAP;
  const margin = options.margin ?? DEFAULT_MARGIN;
  const paddedWidth = Math.ceil(width / multiple) * multiple;
  const paddedHeight = Math.ceil(height / multiple) * multiple;
  const plan = (n: number, t: number) => planWindows(n, t, overlap, margin, multiple);
  let rows = plan(paddedHeight, tile);
  let cols = plan(paddedWidth, tile);
  if (parts <= 1) return { paddedWidth, paddedHeight, rows, cols };
  // Per axis, the window lengths worth trying: for each window count, the shortest length that gives it.
  const lengths = (n: number) => {
    const byCount = new Map<number, number>();
    const smallest = Math.ceil((2 * margin + overlap + 1) / multiple) * multiple;
    for (let t = Math.min(tile, n); t >= Math.min(smallest, n); t -= multiple) {
      const count = t >= n ? 1 : plan(n, t).length;
      const best = byCount.get(count);
      if (best === undefined || t < best) byCount.set(count, t);
    }
    return [...byCount].map(([count, length]) => ({ count, length }));
  };
  const span = (windows: Window1D[]) => windows[0].end - windows[0].start;
  const cost = (r: number, rl: number, c: number, cl: number) => Math.ceil((r * c) / parts) * rl * cl;
  let best = {
    time: cost(rows.length, span(rows), cols.length, span(cols)),
    pixels: rows.length * span(rows) * cols.length * span(cols),
    r: 0,
    c: 0,
  };
  const rowOptions = lengths(paddedHeight);
  const colOptions = lengths(paddedWidth);
  for (const r of rowOptions) {
    for (const c of colOptions) {
      const time = cost(r.count, r.length, c.count, c.length);
      const pixels = r.count * r.length * c.count * c.length;
      if (time < best.time || (time === best.time && pixels < best.pixels)) {
        best = { time, pixels, r: r.length, c: c.length };
      }
    }
  }
  if (best.r > 0) {
    rows = plan(paddedHeight, best.r);
    cols = plan(paddedWidth, best.c);
  }
  return { paddedWidth, paddedHeight, rows, cols };
}

/** The score of one window of a padded plane (the network on the window as it is). */
export function windowScore(
  tf: Tf,
  model: LayersModel,
  padded: Float32Array,
  paddedWidth: number,
  top: number,
  left: number,
  h: number,
  w: number,
): Promise<Float32Array> {
  const windowData = new Float32Array(h * w);
  for (let r = 0; r < h; r++) {
    const from = (top + r) * paddedWidth + left;
    windowData.set(padded.subarray(from, from + w), r * w);
  }
  return predictBatched(tf, model, windowData, [h, w, 1]);
}

/** Adds one window's weighted score to the running sums (the same arithmetic whoever computed the window). */
function blendWindow(
  accumulated: Float32Array,
  totalWeight: Float32Array,
  paddedWidth: number,
  score: Float32Array,
  rowWindow: Window1D,
  colWindow: Window1D,
) {
  const h = rowWindow.end - rowWindow.start;
  const w = colWindow.end - colWindow.start;
  for (let r = 0; r < h; r++) {
    const wr = rowWindow.weights[r];
    if (wr === 0) continue;
    const rowOffset = (rowWindow.start + r) * paddedWidth + colWindow.start;
    for (let c = 0; c < w; c++) {
      const weight = wr * colWindow.weights[c];
      if (weight === 0) continue;
      accumulated[rowOffset + c] += weight * score[r * w + c];
      totalWeight[rowOffset + c] += weight;
    }
  }
}

/**
 * The score map R(y) of one grey plane (same size as the plane), computed window by window.
 * Every tensor is created inside tf.tidy and released before returning. Network calls go through the batcher
 * (src/nn/batcher.ts): one window at a time, or batchParallelism() windows at once when batching is on. With
 * `split`, the windows are planned for its workers and computed by it (see WindowSplit).
 */
export async function scoreMap(
  tf: Tf,
  model: LayersModel,
  plane: Float32Array,
  width: number,
  height: number,
  options: Pick<Noise2ScoreOptions, 'tile' | 'overlap' | 'margin' | 'multiple' | 'split'> = {},
): Promise<Float32Array> {
  const parts = Math.max(1, Math.floor(options.split?.parts(width * height) ?? 1));
  const { paddedWidth, paddedHeight, rows, cols } = planScoreWindows(width, height, options, parts);
  const padded =
    paddedWidth === width && paddedHeight === height
      ? plane
      : reflectPad(plane, width, height, paddedWidth, paddedHeight);
  if (rows.length === 1 && cols.length === 1) {
    // One window (an image up to the tile size): every blend weight is 1, so the score is the network's output as
    // it is (the same values as the blend gives), without the window copy, the blend and the division.
    const score = await predictBatched(tf, model, padded, [paddedHeight, paddedWidth, 1]);
    if (padded === plane) return score;
    const out = new Float32Array(width * height);
    for (let r = 0; r < height; r++)
      out.set(score.subarray(r * paddedWidth, r * paddedWidth + width), r * width);
    return out;
  }
  const accumulated = new Float32Array(paddedWidth * paddedHeight);
  const totalWeight = new Float32Array(paddedWidth * paddedHeight);
  const windows = rows.flatMap((rowWindow) => cols.map((colWindow) => ({ rowWindow, colWindow })));
  const run = options.split?.run;
  if (run) {
    // Shared memory: the plane in, every window's score out; blended below in window order.
    const h = rows[0].end - rows[0].start;
    const w = cols[0].end - cols[0].start;
    const shared = new Float32Array(new SharedArrayBuffer(padded.byteLength));
    shared.set(padded);
    const origins = new Int32Array(new SharedArrayBuffer(8 * windows.length));
    windows.forEach(({ rowWindow, colWindow }, i) => {
      origins[2 * i] = rowWindow.start;
      origins[2 * i + 1] = colWindow.start;
    });
    const job: WindowJob = {
      plane: shared,
      paddedWidth,
      origins,
      count: windows.length,
      height: h,
      width: w,
      out: new Float32Array(new SharedArrayBuffer(4 * windows.length * h * w)),
    };
    await run(job, async (i) => {
      job.out.set(
        await windowScore(tf, model, shared, paddedWidth, origins[2 * i], origins[2 * i + 1], h, w),
        i * h * w,
      );
    });
    windows.forEach(({ rowWindow, colWindow }, i) => {
      const score = job.out.subarray(i * h * w, (i + 1) * h * w);
      blendWindow(accumulated, totalWeight, paddedWidth, score, rowWindow, colWindow);
    });
  } else {
    // Windows go to the network batchParallelism() at a time, so a GPU batches them (one at a time otherwise).
    await forEachInChunks(
      windows,
      batchParallelism(),
      ({ rowWindow, colWindow }) =>
        windowScore(
          tf,
          model,
          padded,
          paddedWidth,
          rowWindow.start,
          colWindow.start,
          rowWindow.end - rowWindow.start,
          colWindow.end - colWindow.start,
        ),
      (score, { rowWindow, colWindow }) =>
        blendWindow(accumulated, totalWeight, paddedWidth, score, rowWindow, colWindow),
    );
  }
  const out = new Float32Array(width * height);
  for (let r = 0; r < height; r++) {
    for (let c = 0; c < width; c++) {
      const i = r * paddedWidth + c;
      out[r * width + c] = accumulated[i] / totalWeight[i];
    }
  }
  return out;
}

export const ENSEMBLE_SIZES = [1, 2, 4, 8] as const;
/** The symmetries used first, as bit sets (1: transpose, 2: flip rows, 4: flip columns), spread so that 2 and 4
 * of them already mix transposed and flipped views. */
const ENSEMBLE_ORDER = [0, 7, 3, 4, 1, 6, 2, 5];

function flipPlane(plane: Float32Array, width: number, height: number, rows: boolean, cols: boolean) {
  if (!rows && !cols) return plane;
  const out = new Float32Array(plane.length);
  for (let r = 0; r < height; r++) {
    const sr = rows ? height - 1 - r : r;
    for (let c = 0; c < width; c++) out[r * width + c] = plane[sr * width + (cols ? width - 1 - c : c)];
  }
  return out;
}

function transposePlane(plane: Float32Array, width: number, height: number): Float32Array {
  const out = new Float32Array(plane.length);
  for (let r = 0; r < height; r++) for (let c = 0; c < width; c++) out[c * height + r] = plane[r * width + c];
  return out;
}

/** scoreMap averaged over `count` symmetries of the square (see Noise2ScoreOptions.ensemble). */
export async function ensembleScoreMap(
  tf: Tf,
  model: LayersModel,
  plane: Float32Array,
  width: number,
  height: number,
  count: number,
  options: Pick<Noise2ScoreOptions, 'tile' | 'overlap' | 'margin' | 'multiple' | 'split'> = {},
): Promise<Float32Array> {
  if (!(ENSEMBLE_SIZES as readonly number[]).includes(count))
    throw new RangeError(`ensemble must be one of ${ENSEMBLE_SIZES.join(', ')}, not ${count}`);
  if (count === 1) return scoreMap(tf, model, plane, width, height, options);
  const sum = new Float32Array(width * height);
  // With batching on, the views run side by side (their windows meet in the batcher); summed in a fixed order.
  await forEachInChunks(
    ENSEMBLE_ORDER.slice(0, count),
    batchParallelism() > 1 ? count : 1,
    async (symmetry) => {
      const transpose = (symmetry & 1) !== 0;
      const rows = (symmetry & 2) !== 0;
      const cols = (symmetry & 4) !== 0;
      // Forward: flip, then transpose; back: transpose, then flip (each is its own inverse).
      const flipped = flipPlane(plane, width, height, rows, cols);
      const view = transpose ? transposePlane(flipped, width, height) : flipped;
      const [w, h] = transpose ? [height, width] : [width, height];
      const score = await scoreMap(tf, model, view, w, h, options);
      return flipPlane(transpose ? transposePlane(score, w, h) : score, width, height, rows, cols);
    },
    (back) => {
      for (let i = 0; i < sum.length; i++) sum[i] += back[i];
    },
  );
  for (let i = 0; i < sum.length; i++) sum[i] /= count;
  return sum;
}

function channelPlane(image: PlanarImage, channel: number): Float32Array {
  const n = image.width * image.height;
  if (image.channels === 1) return image.data.slice(0, n);
  const plane = new Float32Array(n);
  for (let i = 0; i < n; i++) plane[i] = image.data[i * image.channels + channel];
  return plane;
}

function medianOf(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : 0.5 * (s[m - 1] + s[m]);
}

/** Denoises an image with a trained score network and the noise family's Tweedie formula; output clipped to [0,1]. */
export async function denoiseNoise2Score(
  tf: Tf,
  model: LayersModel,
  image: PlanarImage,
  options: Noise2ScoreOptions,
): Promise<Noise2ScoreResult> {
  const started = performance.now();
  const { width, height, channels } = image;
  if (image.data.length !== width * height * channels) {
    throw new RangeError(`image data has ${image.data.length} values, expected ${width * height * channels}`);
  }
  const planes = Array.from({ length: channels }, (_, c) => channelPlane(image, c));
  let estimateMs = 0;
  let networkMs = 0;
  let level: number;
  const levelEstimated = options.level === 'auto';
  let scores: Float32Array[] = [];
  // The planes the network and Tweedie see: the input, or with censored pixels replaced once the level is known.
  let inputs = planes;
  const computeScores = async () => {
    const t = performance.now();
    scores = [];
    // Colour planes run side by side when batching is on (their windows share batches), else one by one.
    await forEachInChunks(
      inputs,
      batchParallelism() > 1 ? planes.length : 1,
      (plane) => ensembleScoreMap(tf, model, plane, width, height, options.ensemble ?? 1, options),
      (score) => {
        scores.push(score);
      },
    );
    networkMs += performance.now() - t;
  };
  let clippedPixels = 0;
  const clipped = options.noise === 'gaussian' ? (options.clipped ?? DEFAULT_CLIPPED) : 'off';
  const radius = options.clippedRadius ?? DEFAULT_CLIPPED_RADIUS;
  /** Replaces censored pixels for the level; false when there were none (the scores stand as computed). */
  const imputeClipped = (sigma: number): boolean => {
    if (clipped === 'off') return false;
    const t = performance.now();
    clippedPixels = 0;
    inputs = planes.map((plane, c) => {
      const imputed = imputeCensored(plane, width, height, sigma, { radius, fill: clipped, seed: c });
      clippedPixels += imputed.censored;
      return imputed.plane;
    });
    estimateMs += performance.now() - t;
    return clippedPixels > 0;
  };
  /** The wavelet 'auto' level: per plane, refined for censored pixels (estimateSigmaCensored); the median. */
  const waveletLevel = (): number => {
    const t = performance.now();
    const value = medianOf(
      planes.map((p, c) => {
        const first = estimateNoiseLevel(options.noise, p, width, height);
        if (clipped === 'off' || !(first > 0)) return first;
        return estimateSigmaCensored(p, width, height, first, {
          radius,
          rounds: options.clippedEstimateRounds ?? DEFAULT_CLIPPED_ESTIMATE_ROUNDS,
          seed: c,
        });
      }),
    );
    estimateMs += performance.now() - t;
    return value;
  };
  /** The TV rule's level on the planes the network saw (`inputs`, with their `scores`). */
  const tvLevel = (): number => {
    const t = performance.now();
    const value = medianOf(
      inputs.map((p, c) => estimateLevelByTotalVariation(options.noise, p, scores[c], width, height).level),
    );
    estimateMs += performance.now() - t;
    return value;
  };
  let estimator: 'wavelet' | 'tv' | undefined;
  if (options.level === 'auto') {
    estimator = options.estimator ?? 'wavelet';
    if (estimator === 'wavelet' && options.noise === 'gaussian') {
      const t = performance.now();
      if (!planes.every((p) => gaussianNoiseLooksWhite(p, width, height).white)) estimator = 'tv';
      estimateMs += performance.now() - t;
    }
    if (estimator === 'tv') {
      // The TV rule needs the scores before it knows the level, and censored pixels are imputed for a level: they
      // are imputed first at the clip-aware wavelet level (a pilot), the TV rule then reads the level on the
      // treated planes, as the default estimator's refinement reads it on an imputed image. When the TV level is
      // more than TV_REIMPUTE_TOLERANCE away from the pilot (correlated noise, which the wavelet reads low), the
      // pixels are imputed again at it and the network runs a second time. Without censored pixels: one pass on
      // the planes as they are, as before.
      const censored = clipped !== 'off' && planes.some((p) => censoredThresholds(p).censored > 0);
      let imputedAt = Number.NaN;
      if (censored) {
        const pilot = waveletLevel();
        if (pilot > 0 && imputeClipped(pilot)) imputedAt = pilot;
      }
      await computeScores();
      level = tvLevel();
      if (censored && !(Math.abs(level / imputedAt - 1) <= TV_REIMPUTE_TOLERANCE) && imputeClipped(level)) {
        await computeScores();
        level = tvLevel();
      }
    } else {
      level = waveletLevel();
      if (Number.isNaN(level)) throw new NoiseLevelUnknownError(options.noise);
      imputeClipped(level);
      await computeScores();
    }
  } else {
    level = options.level;
    imputeClipped(level);
    await computeScores();
  }
  const refine: Refine = options.noise === 'gaussian' ? (options.refine ?? DEFAULT_REFINE) : 'none';
  let tweedieMs = 0;
  let refineMs = 0;
  const out = new Float32Array(image.data.length);
  inputs.forEach((plane, c) => {
    const tweedieStart = performance.now();
    const denoised = applyTweedie(options.noise, plane, scores[c], level);
    let pilot: Float32Array = new Float32Array(denoised.length);
    for (let i = 0; i < denoised.length; i++) {
      const v = denoised[i];
      pilot[i] = Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : planes[c][i];
    }
    tweedieMs += performance.now() - tweedieStart;
    if (refine === 'wiener') {
      // The noisy image of the Wiener stage is the plane Tweedie saw: clipped pixels already replaced.
      const refineStart = performance.now();
      pilot = wienerRefine(plane, pilot, width, height, level, { stride: options.wienerStride });
      refineMs += performance.now() - refineStart;
    }
    for (let i = 0; i < pilot.length; i++) out[i * channels + c] = pilot[i];
  });
  return {
    data: out,
    width,
    height,
    channels,
    level,
    levelEstimated,
    clippedPixels,
    ...(estimator ? { estimator } : {}),
    refine,
    timings: { estimateMs, networkMs, tweedieMs, refineMs, totalMs: performance.now() - started },
  };
}
