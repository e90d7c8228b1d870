/**
 * MID inference: D is applied to K randomly masked copies of the image and the K outputs are averaged, so every
 * pixel is predicted from several different sets of kept neighbours (and, in K - K*dropRatio of them, from itself).
 *
 * Large images run window by window with the same plan as Noise2Score (windows on the network's down-sampling grid,
 * interior margins discarded, linear cross-fades; see src/denoise/noise2score.ts). Masks and fill-in are computed
 * on the whole padded image first, so a window sees exactly what a whole-image pass would.
 *
 * Channels: the model is colour (RGB in, RGB out). A grey image is replicated to RGB and the output is the mean of
 * the three output channels (the model's noise statistics are those of colour cameras; for grey inputs this is a
 * reasonable, documented approximation). A fourth (alpha) channel is passed through unchanged.
 */
import {
  DEFAULT_MARGIN,
  DEFAULT_OVERLAP,
  DEFAULT_TILE,
  planWindows,
  reflectPad,
} from '../denoise/noise2score.js';
import { batchParallelism, forEachInChunks, predictBatched } from '../nn/batcher.js';
import { extraSection, midSection } from '../nn/manifest-sections.js';
import { Rng } from '../util/random.js';
import { type GuidedAverageOptions, guidedStage } from './guided.js';
import { fillMasked, randomPixelMask } from './mask.js';
import { MID_MULTIPLE } from './network.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;

export interface MidImage {
  /** Interleaved channels (1, 3 or 4), row-major, on [0, 1]. */
  data: Float32Array;
  width: number;
  height: number;
  channels: number;
}

export interface MidOptions {
  /** Number of random masks averaged (K). */
  masks: number;
  /** Fraction of pixels dropped per mask; must match training (the manifest's maskRatio). */
  dropRatio: number;
  seed?: number;
  tile?: number;
  overlap?: number;
  margin?: number;
  multiple?: number;
  /**
   * Residual mode (training's noise dataset): split the pixels into `partition` random groups, drop each group
   * in turn, and keep for every pixel only the prediction of the pass that dropped it: an estimate that never saw
   * that pixel's own noise (a blind spot), so y - D(y) keeps the full noise level instead of only the part D
   * removes from the pixels it sees. `masks` and `dropRatio` are ignored (the drop ratio is 1/partition).
   */
  partition?: number;
  /**
   * Second stage (src/mid/guided.ts): non-local averaging of the noisy pixels with weights read on the K-mask
   * average. Undefined or null: none (the K-mask average is the answer).
   */
  guided?: GuidedAverageOptions | null;
  /**
   * The masks' passes on several workers (src/operations/denoise/task.ts), for an image that is one window: each
   * pass (its mask and its network call) may run anywhere (midPassScore); they are averaged here in pass order, so
   * the answer equals the one-worker answer bit for bit. Not in residual mode (`partition`).
   */
  split?: MidPassSplit;
}

/** Runs the passes of `job`: `local(k)` runs pass k here; others run midPassScore and write job.out at k. */
export interface MidPassSplit {
  run(job: MidPassJob, local: (pass: number) => Promise<void>): Promise<void>;
}

/** The passes of one image, in shared memory (SharedArrayBuffer) so other threads can compute them. */
export interface MidPassJob {
  /** The reflect-padded image, interleaved RGB, paddedWidth x paddedHeight. */
  padded: Float32Array;
  paddedWidth: number;
  paddedHeight: number;
  count: number;
  dropRatio: number;
  seed: number;
  /** The network's RGB output of pass k at k * paddedWidth * paddedHeight * 3. */
  out: Float32Array;
}

/** Pass k of an image that is one window: its random mask, the masked image filled in, and the network on it. */
export function midPassScore(
  tf: Tf,
  model: LayersModel,
  job: Omit<MidPassJob, 'out' | 'count'>,
  k: number,
): Promise<Float32Array> {
  const { padded, paddedWidth: pw, paddedHeight: ph } = job;
  const mask = randomPixelMask(pw, ph, job.dropRatio, maskRng(job.seed, k));
  return predictBatched(tf, model, maskedInput(padded, pw, ph, mask), [ph, pw, 4]);
}

/** The network input of one mask: the image with the masked pixels filled in, and the mask as a 4th channel. */
function maskedInput(padded: Float32Array, pw: number, ph: number, mask: Uint8Array): Float32Array {
  const filled = fillMasked(padded, pw, ph, 3, mask);
  const input = new Float32Array(pw * ph * 4);
  for (let i = 0; i < pw * ph; i++) {
    input[i * 4] = filled[i * 3];
    input[i * 4 + 1] = filled[i * 3 + 1];
    input[i * 4 + 2] = filled[i * 3 + 2];
    input[i * 4 + 3] = mask[i];
  }
  return input;
}

/**
 * The inference settings a MID model's manifest recommends beyond K (`extra.guided`: { patch, search, h255 }, the
 * optional aggregation ('pixel' when absent) and pilotWeight (0 when absent), and the optional safeguard { blend, bound, noisyBound, pilotCap, residualCap, pilotResidualCap } of
 * src/mid/guided.ts, all chosen by bench/mid-sweep.ts on training scenes); null when absent, so older manifests
 * keep the K-mask average.
 */
export function midInferenceDefaults(extra: Record<string, unknown> | undefined): {
  guided: GuidedAverageOptions | null;
} {
  const g = extraSection(midSection, { extra }).guided;
  if (!g) return { guided: null };
  return {
    guided: {
      patch: g.patch,
      search: g.search,
      h: g.h255 / 255,
      ...(g.blend !== undefined ? { blend: g.blend } : {}),
      ...(g.bound !== undefined ? { bound: g.bound } : {}),
      ...(g.noisyBound !== undefined ? { noisyBound: g.noisyBound } : {}),
      ...(g.pilotCap !== undefined ? { pilotCap: g.pilotCap } : {}),
      ...(g.residualCap !== undefined ? { residualCap: g.residualCap } : {}),
      ...(g.pilotResidualCap !== undefined ? { pilotResidualCap: g.pilotResidualCap } : {}),
      ...(g.aggregation !== undefined ? { aggregation: g.aggregation } : {}),
      ...(g.pilotWeight !== undefined ? { pilotWeight: g.pilotWeight } : {}),
    },
  };
}

export interface MidResult {
  data: Float32Array;
  width: number;
  height: number;
  channels: number;
  masks: number;
  timings: { maskMs: number; networkMs: number; guidedMs: number; totalMs: number };
}

/** Seed of mask k of a request seeded with `seed`. */
function maskRng(seed: number, k: number): Rng {
  return new Rng((Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(k + 1, 0x27d4eb2f)) >>> 0);
}

/** D averaged over K masks on an interleaved RGB image; output not clipped. */
export async function midRgb(
  tf: Tf,
  model: LayersModel,
  rgb: Float32Array,
  width: number,
  height: number,
  options: MidOptions,
): Promise<{ data: Float32Array; maskMs: number; networkMs: number }> {
  const multiple = options.multiple ?? MID_MULTIPLE;
  const tile = Math.max(multiple, Math.floor((options.tile ?? DEFAULT_TILE) / multiple) * multiple);
  const overlap = options.overlap ?? DEFAULT_OVERLAP;
  const margin = options.margin ?? DEFAULT_MARGIN;
  const pw = Math.ceil(width / multiple) * multiple;
  const ph = Math.ceil(height / multiple) * multiple;
  const planes = [0, 1, 2].map((c) => {
    const plane = new Float32Array(width * height);
    for (let i = 0; i < plane.length; i++) plane[i] = rgb[i * 3 + c];
    return reflectPad(plane, width, height, pw, ph);
  });
  const padded = new Float32Array(pw * ph * 3);
  for (let i = 0; i < pw * ph; i++) for (let c = 0; c < 3; c++) padded[i * 3 + c] = planes[c][i];
  const rows = planWindows(ph, tile, overlap, margin, multiple);
  const cols = planWindows(pw, tile, overlap, margin, multiple);
  const accumulated = new Float32Array(pw * ph * 3);
  const totalWeight = new Float32Array(pw * ph);
  let maskMs = 0;
  let networkMs = 0;
  const seed = options.seed ?? 0;
  const partition = options.partition;
  let groups: Uint8Array | null = null;
  if (partition !== undefined) {
    if (!(Number.isInteger(partition) && partition >= 2 && partition <= 255)) {
      throw new RangeError(`partition must be an integer in [2, 255], got ${partition}`);
    }
    const rng = maskRng(seed, 0);
    groups = new Uint8Array(pw * ph);
    for (let i = 0; i < groups.length; i++) groups[i] = rng.int(partition);
  }
  const passes = partition ?? options.masks;
  /** Mask k and the network input it makes (the whole padded image, 4 channels). */
  const makeInput = (k: number) => {
    const t0 = performance.now();
    let mask: Uint8Array;
    if (groups) {
      mask = new Uint8Array(pw * ph);
      for (let i = 0; i < mask.length; i++) mask[i] = groups[i] === k ? 0 : 1;
    } else {
      mask = randomPixelMask(pw, ph, options.dropRatio, maskRng(seed, k));
    }
    const input = maskedInput(padded, pw, ph, mask);
    maskMs += performance.now() - t0;
    return { mask, input };
  };
  // Every (mask, window) pair is one network call; they go to the batcher batchParallelism() at a time (one at a
  // time when batching is off), and are accumulated in pass order. A mask's input is made when its first window
  // is reached and dropped after its last.
  const calls = Array.from({ length: passes }, (_, k) =>
    rows.flatMap((rw) => cols.map((cw) => ({ k, rw, cw }))),
  ).flat();
  const made = new Map<number, ReturnType<typeof makeInput>>();
  const inputOf = (k: number) => {
    let m = made.get(k);
    if (!m) {
      for (const old of made.keys()) if (old < k - batchParallelism()) made.delete(old);
      m = makeInput(k);
      made.set(k, m);
    }
    return m;
  };
  /** Adds pass k's output on one window to the running sums (the same arithmetic whoever computed it). */
  const blend = (out: Float32Array, k: number, rw: (typeof rows)[number], cw: (typeof cols)[number]) => {
    const mask = groups ? inputOf(k).mask : null;
    const h = rw.end - rw.start;
    const w = cw.end - cw.start;
    for (let r = 0; r < h; r++) {
      const wr = rw.weights[r];
      if (wr === 0) continue;
      for (let c = 0; c < w; c++) {
        const weight = wr * cw.weights[c];
        if (weight === 0) continue;
        const p = (rw.start + r) * pw + cw.start + c;
        if (mask?.[p]) continue; // residual mode: only the pass that dropped p counts
        const q = (r * w + c) * 3;
        accumulated[p * 3] += weight * out[q];
        accumulated[p * 3 + 1] += weight * out[q + 1];
        accumulated[p * 3 + 2] += weight * out[q + 2];
        totalWeight[p] += weight;
      }
    }
  };
  const t1 = performance.now();
  const maskMsBefore = maskMs;
  const run = options.split?.run;
  if (run && !groups && passes > 1 && rows.length === 1 && cols.length === 1) {
    // One window: each pass is one network call on the whole padded image; passes anywhere, summed in order.
    const shared = new Float32Array(new SharedArrayBuffer(padded.byteLength));
    shared.set(padded);
    const size = pw * ph * 3;
    const job: MidPassJob = {
      padded: shared,
      paddedWidth: pw,
      paddedHeight: ph,
      count: passes,
      dropRatio: options.dropRatio,
      seed,
      out: new Float32Array(new SharedArrayBuffer(4 * passes * size)),
    };
    await run(job, async (k) => {
      job.out.set(await midPassScore(tf, model, job, k), k * size);
    });
    for (let k = 0; k < passes; k++) blend(job.out.subarray(k * size, (k + 1) * size), k, rows[0], cols[0]);
  } else {
    await forEachInChunks(
      calls,
      batchParallelism(),
      ({ k, rw, cw }) => {
        const { input } = inputOf(k);
        const h = rw.end - rw.start;
        const w = cw.end - cw.start;
        const windowData = new Float32Array(h * w * 4);
        for (let r = 0; r < h; r++) {
          const from = ((rw.start + r) * pw + cw.start) * 4;
          windowData.set(input.subarray(from, from + w * 4), r * w * 4);
        }
        return predictBatched(tf, model, windowData, [h, w, 4]);
      },
      (out, { k, rw, cw }) => blend(out, k, rw, cw),
    );
  }
  // The masks made on the way are counted as mask time, not network time.
  networkMs = performance.now() - t1 - (maskMs - maskMsBefore);
  const data = new Float32Array(width * height * 3);
  for (let r = 0; r < height; r++) {
    for (let c = 0; c < width; c++) {
      const p = r * pw + c;
      for (let k = 0; k < 3; k++) data[(r * width + c) * 3 + k] = accumulated[p * 3 + k] / totalWeight[p];
    }
  }
  return { data, maskMs, networkMs };
}

/** Denoises an image (grey, RGB or RGBA) with a trained MID model; output clipped to [0,1]. */
export async function denoiseMid(
  tf: Tf,
  model: LayersModel,
  image: MidImage,
  options: MidOptions,
): Promise<MidResult> {
  const started = performance.now();
  const { width, height, channels } = image;
  if (![1, 3, 4].includes(channels)) throw new RangeError(`MID: ${channels} channels; expected 1, 3 or 4`);
  if (image.data.length !== width * height * channels) {
    throw new RangeError(`image data has ${image.data.length} values, expected ${width * height * channels}`);
  }
  if (!(Number.isInteger(options.masks) && options.masks >= 1)) throw new RangeError('masks must be >= 1');
  const n = width * height;
  const rgb = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) rgb[i * 3 + c] = image.data[i * channels + (channels === 1 ? 0 : c)];
  }
  const { data: average, maskMs, networkMs } = await midRgb(tf, model, rgb, width, height, options);
  const tGuided = performance.now();
  const denoised = options.guided ? guidedStage(rgb, average, width, height, 3, options.guided) : average;
  const guidedMs = performance.now() - tGuided;
  const out = new Float32Array(n * channels);
  const clip = (v: number, fallback: number) => (Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : fallback);
  for (let i = 0; i < n; i++) {
    if (channels === 1) {
      out[i] = clip((denoised[i * 3] + denoised[i * 3 + 1] + denoised[i * 3 + 2]) / 3, image.data[i]);
    } else {
      for (let c = 0; c < 3; c++)
        out[i * channels + c] = clip(denoised[i * 3 + c], image.data[i * channels + c]);
      if (channels === 4) out[i * 4 + 3] = image.data[i * 4 + 3];
    }
  }
  return {
    data: out,
    width,
    height,
    channels,
    masks: options.masks,
    timings: { maskMs, networkMs, guidedMs, totalMs: performance.now() - started },
  };
}
