/**
 * Denoising in a worker: load the score network (cached per worker) and run Noise2Score with tiling.
 */

import type { NoiseFamily } from '../../denoise/noise.js';
import { denoiseNoise2Score } from '../../denoise/noise2score.js';
import { getModel } from '../../nn/repository.js';
import './layers.js';
import type { HandlerContext } from './context.js';

export interface DenoiseTaskInput {
  /** Version omitted: the latest valid version in the repository. */
  model: { name: string; version?: string };
  image: { data: Float32Array; width: number; height: number; channels: number };
  noise: NoiseFamily;
  /** Library units (Gaussian sigma on [0,1]) or 'auto'. */
  level: number | 'auto';
  estimator: 'wavelet' | 'tv';
  /** Self-ensemble size (1, 2, 4 or 8; default 1): see Noise2ScoreOptions.ensemble. */
  ensemble?: number;
}

export async function noise2score(input: DenoiseTaskInput, ctx: HandlerContext) {
  const { tf } = await ctx.tfjs();
  const loaded = await getModel(tf, ctx.options.modelsDir, input.model.name, input.model.version);
  const architecture = loaded.manifest.architecture as { multiple?: unknown } | string | undefined;
  const multiple =
    typeof architecture === 'object' && typeof architecture.multiple === 'number' ? architecture.multiple : 8;
  const result = denoiseNoise2Score(tf, loaded.model, input.image, {
    noise: input.noise,
    level: input.level,
    estimator: input.estimator,
    ensemble: input.ensemble ?? 1,
    tile: ctx.options.tileSize,
    multiple,
  });
  return { ...result, model: { name: loaded.name, version: loaded.version } };
}

export interface MidTaskInput {
  model: { name: string; version?: string };
  image: { data: Float32Array; width: number; height: number; channels: number };
  /** Masks averaged (K); undefined: the model's measured default (manifest extra.masksDefault). */
  masks?: number;
  seed: number;
}

/** MID real-noise denoising (src/mid/denoise.ts): K-mask averaged, tiled; drop ratio from the manifest. */
export async function mid(input: MidTaskInput, ctx: HandlerContext) {
  const { tf } = await ctx.tfjs();
  const { denoiseMid } = await import('../../mid/denoise.js');
  const loaded = await getModel(tf, ctx.options.modelsDir, input.model.name, input.model.version);
  const extra = (loaded.manifest.extra ?? {}) as { maskRatio?: unknown; masksDefault?: unknown };
  const dropRatio = typeof extra.maskRatio === 'number' ? extra.maskRatio : 0.3;
  const masks = input.masks ?? (typeof extra.masksDefault === 'number' ? extra.masksDefault : 4);
  const result = denoiseMid(tf, loaded.model, input.image, {
    masks,
    dropRatio,
    seed: input.seed,
    tile: ctx.options.tileSize,
  });
  return { ...result, model: { name: loaded.name, version: loaded.version } };
}
