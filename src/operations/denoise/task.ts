/**
 * Denoising in a worker: decode the image (when it came encoded), load the score network (cached per worker), run
 * Noise2Score with tiling, and encode the answer (when asked), so the main thread never touches the pixels.
 */

import type { NoiseFamily } from '../../denoise/noise.js';
import {
  denoiseNoise2Score,
  type WindowJob,
  type WindowSplit,
  windowScore,
} from '../../denoise/noise2score.js';
import type { Refine } from '../../denoise/wiener.js';
import type { OutputFormat } from '../../imaging/codec.js';
import { ROUTE_MODEL_TASKS, requireModelTask } from '../../nn/manifest.js';
import { architectureMultiple, extraSection, midSection } from '../../nn/manifest-sections.js';
import { getModel } from '../../nn/repository.js';
import '../../compute/handlers/layers.js';
import type { HandlerContext } from '../../compute/handlers/context.js';
import { shareItems, takeItems } from '../../compute/shared-work.js';
import { encodeTaskImage, type PixelImage, type TaskImage, taskPixels } from '../../imaging/task-image.js';
import type { MidPassJob, MidPassSplit } from '../../mid/denoise.js';
import { batchParallelism } from '../../nn/batcher.js';

export interface DenoiseTaskInput {
  /** Version omitted: the latest valid version in the repository. */
  model: { name: string; version?: string };
  /** Pixels, or the encoded file (decoded here, grey stays grey, alpha dropped). */
  image: TaskImage;
  /** Encode the output in this format here: the result then carries `bytes` and no `data`. */
  encode?: OutputFormat;
  noise: NoiseFamily;
  /** Library units (Gaussian sigma on [0,1]) or 'auto'. */
  level: number | 'auto';
  estimator: 'wavelet' | 'tv';
  /** Self-ensemble size (1, 2, 4 or 8; default 1): see Noise2ScoreOptions.ensemble. */
  ensemble?: number;
  /** The stage after Tweedie's formula (Gaussian; default DEFAULT_REFINE): see Noise2ScoreOptions.refine. */
  refine?: Refine;
}

/** The output as the caller asked: encoded here (bytes, no data), or the pixels. */
async function output<R extends PixelImage & { timings: Record<string, number> }>(
  result: R,
  format: OutputFormat | undefined,
  decodeMs: number,
) {
  if (!format) return { ...result, timings: { ...result.timings, decodeMs } };
  const t0 = performance.now();
  const bytes = await encodeTaskImage(result, format);
  const { data: _data, ...rest } = result;
  return { ...rest, bytes, timings: { ...result.timings, decodeMs, encodeMs: performance.now() - t0 } };
}

/**
 * How one request used other workers, summed over its split maps (Noise2Score: a score map's windows, over planes,
 * flips and passes; MID: the image's mask passes, counted as its `windows`).
 */
export interface SplitStats {
  /** Maps split (planned for several workers). */
  maps: number;
  /** The most workers a map was planned for (1: none was split). */
  parts: number;
  /** Their items (windows, or MID passes), and those computed by borrowed workers. */
  windows: number;
  windowsLent: number;
  /** Helpers borrowed (over all maps). */
  helpers: number;
}

/** Whether this task may spread its work over idle workers: SPLIT_MIN_PIXELS on, a single-threaded backend. */
function maySplit(ctx: HandlerContext, backend: string): boolean {
  const minPixels = ctx.options.splitMinPixels ?? 0;
  return !!ctx.pool && minPixels > 0 && (backend === 'wasm' || backend === 'cpu') && batchParallelism() <= 1;
}

/**
 * One score map on several workers (SPLIT_MIN_PIXELS): a map of at least that many pixels is planned for this
 * worker and the pool's idle ones, and its windows are spread over this worker and the idle workers it borrows
 * (`denoise.windows` helpers). Only on the single-threaded backends (wasm, cpu): a GPU or the native TensorFlow
 * binding runs one device for every worker, where a split gains nothing. Undefined when the task never splits.
 */
function windowSplit(
  ctx: HandlerContext,
  backend: string,
  model: { name: string; version: string },
  stats: SplitStats,
): WindowSplit | undefined {
  const minPixels = ctx.options.splitMinPixels ?? 0;
  const pool = ctx.pool;
  if (!pool || !maySplit(ctx, backend)) return;
  let helpers = 0;
  return {
    parts: (pixels) => {
      helpers = pixels >= minPixels ? pool.idleWorkers() : 0;
      stats.parts = Math.max(stats.parts, 1 + helpers);
      return 1 + helpers;
    },
    run: async (job, local) => {
      stats.maps++;
      stats.windows += job.count;
      const done = await shareItems(pool, {
        count: job.count,
        helpers,
        kind: 'denoise.windows',
        input: (shared) => ({ ...shared, model, job }),
        // A helper's window in and score out (its network's own memory is its worker's, as for any request).
        bytesEach: 2 * 4 * job.height * job.width,
        local,
      });
      stats.helpers += done.helpers;
      stats.windowsLent += job.count - done.local;
    },
  };
}

export async function noise2score(input: DenoiseTaskInput, ctx: HandlerContext) {
  const { tf, backend } = await ctx.tfjs();
  const loaded = await getModel(tf, ctx.options.modelsDir, input.model.name, input.model.version);
  requireModelTask(loaded, ROUTE_MODEL_TASKS.noise2score, 'Noise2Score denoising');
  const t0 = performance.now();
  const image = await taskPixels(input.image, 'keep');
  const decodeMs = performance.now() - t0;
  const multiple = architectureMultiple(loaded.manifest);
  const split: SplitStats = { maps: 0, parts: 1, windows: 0, windowsLent: 0, helpers: 0 };
  const result = await denoiseNoise2Score(tf, loaded.model, image, {
    noise: input.noise,
    level: input.level,
    estimator: input.estimator,
    ensemble: input.ensemble ?? 1,
    refine: input.refine,
    tile: ctx.options.tileSize,
    multiple,
    split: windowSplit(ctx, backend, { name: loaded.name, version: loaded.version }, split),
  });
  return {
    ...(await output(result, input.encode, decodeMs)),
    model: { name: loaded.name, version: loaded.version },
    split,
    // The levels the network was trained on (manifest), for the answer's warnings; absent when not recorded.
    ...(loaded.manifest.levelRange && { trainedLevelRange: loaded.manifest.levelRange }),
  };
}

/** A borrowed worker's part of one score map: takes windows of `job` until none is left (or a task waits). */
export async function windows(
  input: { next: Int32Array; count: number; model: { name: string; version: string }; job: WindowJob },
  ctx: HandlerContext,
) {
  const { tf } = await ctx.tfjs();
  const loaded = await getModel(tf, ctx.options.modelsDir, input.model.name, input.model.version);
  const { job } = input;
  const size = job.height * job.width;
  const ran = await takeItems(
    input.next,
    input.count,
    async (i) => {
      const top = job.origins[2 * i];
      const left = job.origins[2 * i + 1];
      const score = await windowScore(
        tf,
        loaded.model,
        job.plane,
        job.paddedWidth,
        top,
        left,
        job.height,
        job.width,
      );
      job.out.set(score, i * size);
    },
    () => (ctx.pool?.waitingTasks() ?? 0) > 0,
  );
  return { ran };
}

export interface MidTaskInput {
  model: { name: string; version?: string };
  /** Pixels, or the encoded file (decoded here). */
  image: TaskImage;
  /** Encode the output in this format here: the result then carries `bytes` and no `data`. */
  encode?: OutputFormat;
  /** Masks averaged (K); undefined: the model's measured default (manifest extra.masksDefault). */
  masks?: number;
  seed: number;
}

/**
 * MID's masks on several workers (SPLIT_MIN_PIXELS): an image of at least that many pixels that is one window runs
 * its passes (one mask and one network call each) here and on the idle workers it borrows (`denoise.mid-passes`
 * helpers); they are averaged here in pass order (src/mid/denoise.ts MidOptions.split).
 */
function midSplit(
  ctx: HandlerContext,
  backend: string,
  model: { name: string; version: string },
  pixels: number,
  stats: SplitStats,
): MidPassSplit | undefined {
  const pool = ctx.pool;
  if (!pool || !maySplit(ctx, backend) || pixels < (ctx.options.splitMinPixels ?? 0)) return;
  return {
    run: async (job, local) => {
      const helpers = pool.idleWorkers();
      stats.maps++;
      stats.parts = Math.max(stats.parts, 1 + helpers);
      stats.windows += job.count;
      const done = await shareItems(pool, {
        count: job.count,
        helpers,
        kind: 'denoise.mid-passes',
        input: (shared) => ({ ...shared, model, job }),
        // A helper's network input and output (4 and 3 channels).
        bytesEach: 7 * 4 * job.paddedWidth * job.paddedHeight,
        local,
      });
      stats.helpers += done.helpers;
      stats.windowsLent += job.count - done.local;
    },
  };
}

/** A borrowed worker's part of MID's passes on one image: takes passes of `job` until none is left. */
export async function midPasses(
  input: { next: Int32Array; count: number; model: { name: string; version: string }; job: MidPassJob },
  ctx: HandlerContext,
) {
  const { tf } = await ctx.tfjs();
  const { midPassScore } = await import('../../mid/denoise.js');
  const loaded = await getModel(tf, ctx.options.modelsDir, input.model.name, input.model.version);
  const { job } = input;
  const size = job.paddedWidth * job.paddedHeight * 3;
  const ran = await takeItems(
    input.next,
    input.count,
    async (k) => {
      job.out.set(await midPassScore(tf, loaded.model, job, k), k * size);
    },
    () => (ctx.pool?.waitingTasks() ?? 0) > 0,
  );
  return { ran };
}

/** MID real-noise denoising (src/mid/denoise.ts): K-mask averaged, tiled; drop ratio from the manifest. */
export async function mid(input: MidTaskInput, ctx: HandlerContext) {
  const { tf, backend } = await ctx.tfjs();
  const { denoiseMid, midInferenceDefaults } = await import('../../mid/denoise.js');
  const loaded = await getModel(tf, ctx.options.modelsDir, input.model.name, input.model.version);
  requireModelTask(loaded, ROUTE_MODEL_TASKS.mid, 'MID denoising');
  const t0 = performance.now();
  const image = await taskPixels(input.image, 'keep');
  const decodeMs = performance.now() - t0;
  const extra = extraSection(midSection, loaded.manifest);
  const dropRatio = extra.maskRatio ?? 0.3;
  const masks = input.masks ?? extra.masksDefault ?? 4;
  const split: SplitStats = { maps: 0, parts: 1, windows: 0, windowsLent: 0, helpers: 0 };
  const model = { name: loaded.name, version: loaded.version };
  const result = await denoiseMid(tf, loaded.model, image, {
    ...midInferenceDefaults(loaded.manifest.extra),
    masks,
    dropRatio,
    seed: input.seed,
    tile: ctx.options.tileSize,
    split: midSplit(ctx, backend, model, image.width * image.height, split),
  });
  return {
    ...(await output(result, input.encode, decodeMs)),
    model,
    split,
  };
}
