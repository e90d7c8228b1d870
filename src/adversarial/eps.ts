/**
 * The expected perturbation score of EPS-AD (Zhang et al., ICML 2023; official code ZSHsh98/EPS-AD):
 *
 *   EPS(x) = (1 / T*) sum_{k=1..T*} s_theta(sqrt(alphaBar_k) x' + sqrt(1 - alphaBar_k) z_k, k),
 *   s_theta(x_t, k) = -eps_theta(x_t, k) / sqrt(1 - alphaBar_k),
 *
 * with x' = 2x - 1 (the diffusion model's [-1, 1] range) padded to the model's size with -1 (background), one fresh
 * standard normal z_k per timestep and per image, and k the schedule's timestep indices 1..T* (index 0, where
 * 1 - alphaBar is 1e-4, is left out as in the paper's sum from 1). Small timesteps keep the perturbation local, so
 * EPS summarises the score field around x at several noise levels; adversarial perturbations move it off the data
 * manifold, where the score differs.
 *
 * The noisy copies of every image at every timestep are evaluated in batches (over k and over images together).
 * Noise comes from a seeded Rng, so a (seed, images) pair always gives the same EPS. The network is pluggable
 * (`EpsNetwork`): the DDPM U-Net through `ddpmEpsNetwork`, or an analytic model in tests. Accumulation is float64.
 */

import { ddpmEpsModel, type EpsModel } from '../diffusion/eps-model.js';
import type { DdpmSchedule } from '../diffusion/schedule.js';
import { checkCancelled } from '../util/cancellation.js';
import { Rng } from '../util/random.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type MemoryProbe = import('../nn/batcher.js').MemoryProbe;

/** eps_theta(x_t, t) for a batch x_t [n, h, w, c] in the model's range and per-item float timesteps t [n]. */
export type EpsNetwork = EpsModel;

/** The DDPM U-Net of src/diffusion as an EpsNetwork. */
export function ddpmEpsNetwork(tf: Tf, model: LayersModel): EpsNetwork {
  return ddpmEpsModel(tf, model);
}

/** Noisy copies per network call by default. */
export const EPS_BATCH_SIZE = 64;

/**
 * The device-memory probe of the eps network (src/nn/batcher.ts MemoryProbe): one call on a batch [n, h, w, c] of
 * noisy copies, as expectedPerturbationScore makes them.
 */
export function epsMemoryProbe(tf: Tf, model: LayersModel): MemoryProbe {
  return {
    name: 'eps',
    run: ([n, h, w, c]) => tf.tidy(() => ddpmEpsModel(tf, model)(tf.zeros([n, h, w, c]), tf.fill([n], 1))),
  };
}

export interface EpsOptions {
  /** T*: the timesteps 1..T* are averaged (default 20, the paper's value). */
  timesteps?: number;
  /** Seed of the perturbation noise (default 0). */
  seed?: number;
  /** Noisy copies per network call (default EPS_BATCH_SIZE); bounds memory, does not change the result. */
  batchSize?: number;
  /** Pixels of -1 added on every side after mapping to [-1, 1] (default 2: 28x28 -> 32x32). */
  pad?: number;
}

export interface ImageBatch {
  /** count * height * width * channels values in [0, 1], NHWC. */
  data: Float32Array;
  count: number;
  height: number;
  width: number;
  channels: number;
}

export interface EpsResult {
  /** EPS of every image, [count, height + 2 pad, width + 2 pad, channels], float32. */
  eps: Float32Array;
  count: number;
  height: number;
  width: number;
  channels: number;
  /** The schedule indices averaged over. */
  timesteps: number[];
}

/** x' = 2x - 1 padded with -1: the diffusion model's view of a [0, 1] image. */
export function toDiffusionRange(images: ImageBatch, pad: number): ImageBatch {
  const { count, height, width, channels } = images;
  const outH = height + 2 * pad;
  const outW = width + 2 * pad;
  const out = new Float32Array(count * outH * outW * channels).fill(-1);
  for (let i = 0; i < count; i++) {
    for (let r = 0; r < height; r++) {
      for (let c = 0; c < width; c++) {
        for (let ch = 0; ch < channels; ch++) {
          const source = ((i * height + r) * width + c) * channels + ch;
          const target = ((i * outH + r + pad) * outW + c + pad) * channels + ch;
          out[target] = 2 * images.data[source] - 1;
        }
      }
    }
  }
  return { data: out, count, height: outH, width: outW, channels };
}

/** EPS of every image in the batch (see the module comment). */
export async function expectedPerturbationScore(
  tf: Tf,
  network: EpsNetwork,
  schedule: DdpmSchedule,
  images: ImageBatch,
  options: EpsOptions = {},
): Promise<EpsResult> {
  const timestepCount = options.timesteps ?? 20;
  const batchSize = options.batchSize ?? EPS_BATCH_SIZE;
  const pad = options.pad ?? 2;
  if (!Number.isInteger(timestepCount) || timestepCount < 1 || timestepCount >= schedule.timesteps)
    throw new RangeError(
      `timesteps (T*) must be an integer in 1..${schedule.timesteps - 1}, got ${timestepCount}`,
    );
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new RangeError(`batchSize must be a positive integer`);
  if (images.data.length !== images.count * images.height * images.width * images.channels)
    throw new RangeError('image data length does not match count * height * width * channels');

  const x = toDiffusionRange(images, pad);
  const size = x.height * x.width * x.channels;
  const timesteps = Array.from({ length: timestepCount }, (_, i) => i + 1);
  const total = x.count * timestepCount;
  const sum = new Float64Array(x.count * size);
  const rng = new Rng(options.seed ?? 0);
  const noise = new Float32Array(size);

  // Item j of the flattened (image, timestep) list is image floor(j / T*) at timestep j % T* + 1.
  for (let start = 0; start < total; start += batchSize) {
    // A cancelled task stops before its next batch of perturbations (src/util/cancellation.ts).
    checkCancelled();
    const n = Math.min(batchSize, total - start);
    const xt = new Float32Array(n * size);
    const t = new Float32Array(n);
    for (let b = 0; b < n; b++) {
      const item = start + b;
      const image = Math.floor(item / timestepCount);
      const k = timesteps[item % timestepCount];
      const a = schedule.sqrtAlphaBars[k];
      const s = schedule.sqrtOneMinusAlphaBars[k];
      rng.fillNormal(noise);
      const offset = image * size;
      for (let p = 0; p < size; p++) xt[b * size + p] = a * x.data[offset + p] + s * noise[p];
      t[b] = k;
    }
    const epsTensor = tf.tidy(() =>
      network(tf.tensor4d(xt, [n, x.height, x.width, x.channels]), tf.tensor1d(t, 'float32')),
    );
    let eps: Float32Array;
    try {
      eps = (await epsTensor.data()) as Float32Array;
    } finally {
      epsTensor.dispose();
    }
    for (let b = 0; b < n; b++) {
      const item = start + b;
      const image = Math.floor(item / timestepCount);
      const k = timesteps[item % timestepCount];
      // score = -eps / sqrt(1 - alphaBar_k), averaged over the T* timesteps.
      const scale = -1 / (schedule.sqrtOneMinusAlphaBars[k] * timestepCount);
      const offset = image * size;
      for (let p = 0; p < size; p++) sum[offset + p] += scale * eps[b * size + p];
    }
  }
  return {
    eps: Float32Array.from(sum),
    count: x.count,
    height: x.height,
    width: x.width,
    channels: x.channels,
    timesteps,
  };
}
