/**
 * Denoising in a worker: decode the image (when it came encoded), load the score network (cached per worker), run
 * Noise2Score with tiling, and encode the answer (when asked), so the main thread never touches the pixels.
 */

import type { NoiseFamily } from '../../denoise/noise.js';
import { denoiseNoise2Score } from '../../denoise/noise2score.js';
import type { Refine } from '../../denoise/wiener.js';
import type { OutputFormat } from '../../imaging/codec.js';
import { ROUTE_MODEL_TASKS, requireModelTask } from '../../nn/manifest.js';
import { architectureMultiple, extraSection, midSection } from '../../nn/manifest-sections.js';
import { getModel } from '../../nn/repository.js';
import '../../compute/handlers/layers.js';
import type { HandlerContext } from '../../compute/handlers/context.js';
import { encodeTaskImage, type PixelImage, type TaskImage, taskPixels } from '../../imaging/task-image.js';

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

export async function noise2score(input: DenoiseTaskInput, ctx: HandlerContext) {
  const { tf } = await ctx.tfjs();
  const loaded = await getModel(tf, ctx.options.modelsDir, input.model.name, input.model.version);
  requireModelTask(loaded, ROUTE_MODEL_TASKS.noise2score, 'Noise2Score denoising');
  const t0 = performance.now();
  const image = await taskPixels(input.image, 'keep');
  const decodeMs = performance.now() - t0;
  const multiple = architectureMultiple(loaded.manifest);
  const result = await denoiseNoise2Score(tf, loaded.model, image, {
    noise: input.noise,
    level: input.level,
    estimator: input.estimator,
    ensemble: input.ensemble ?? 1,
    refine: input.refine,
    tile: ctx.options.tileSize,
    multiple,
  });
  return {
    ...(await output(result, input.encode, decodeMs)),
    model: { name: loaded.name, version: loaded.version },
    // The levels the network was trained on (manifest), for the answer's warnings; absent when not recorded.
    ...(loaded.manifest.levelRange && { trainedLevelRange: loaded.manifest.levelRange }),
  };
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

/** MID real-noise denoising (src/mid/denoise.ts): K-mask averaged, tiled; drop ratio from the manifest. */
export async function mid(input: MidTaskInput, ctx: HandlerContext) {
  const { tf } = await ctx.tfjs();
  const { denoiseMid, midInferenceDefaults } = await import('../../mid/denoise.js');
  const loaded = await getModel(tf, ctx.options.modelsDir, input.model.name, input.model.version);
  requireModelTask(loaded, ROUTE_MODEL_TASKS.mid, 'MID denoising');
  const t0 = performance.now();
  const image = await taskPixels(input.image, 'keep');
  const decodeMs = performance.now() - t0;
  const extra = extraSection(midSection, loaded.manifest);
  const dropRatio = extra.maskRatio ?? 0.3;
  const masks = input.masks ?? extra.masksDefault ?? 4;
  const result = await denoiseMid(tf, loaded.model, image, {
    ...midInferenceDefaults(loaded.manifest.extra),
    masks,
    dropRatio,
    seed: input.seed,
    tile: ctx.options.tileSize,
  });
  return {
    ...(await output(result, input.encode, decodeMs)),
    model: { name: loaded.name, version: loaded.version },
  };
}
