/**
 * Ancestral (DDPM) sampling from an eps-prediction network, on the full schedule or on a stride of it.
 *
 * With `steps` < T the timesteps are respaced (improved DDPM, Nichol & Dhariwal 2021): the sub-sequence
 * tau_1 > ... > tau_S is treated as a DDPM of its own with betas 1 - alphaBar_tau_i / alphaBar_tau_{i-1}, so every
 * step draws from the true posterior q(x_prev | x_t, x0_hat) of that sub-chain (schedule.ts
 * `posteriorCoefficients`). x0_hat is Tweedie's estimate clipped to [-1, 1] (as in DDPM's reference sampler).
 * The noise comes from a seeded Rng, so the same seed gives the same images on the same backend.
 */
import { tidyValues } from '../nn/read.js';
import { Rng } from '../util/random.js';
import { type DdpmSchedule, posteriorCoefficients, stridedTimesteps } from './schedule.js';
import { predictEps } from './unet.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Tensor = import('@tensorflow/tfjs').Tensor;

export interface SampleOptions {
  count: number;
  height: number;
  width: number;
  /** Number of (respaced) timesteps; T for the original ancestral sampler. */
  steps: number;
  seed: number;
  /** Images per network call (memory bound). */
  batch?: number;
  /** Called after each timestep with (done, total). */
  onStep?: (done: number, total: number) => void;
}

function normalTensor(tf: Tf, rng: Rng, shape: number[]): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(rng.fillNormal(new Float32Array(size)), shape);
}

/** Draws `count` images (row-major, [-1, 1], count * height * width floats). */
export async function sampleDdpm(
  tf: Tf,
  model: LayersModel,
  schedule: DdpmSchedule,
  options: SampleOptions,
): Promise<Float32Array> {
  const { count, height, width, steps, seed } = options;
  const batch = Math.min(count, options.batch ?? 64);
  const timesteps = stridedTimesteps(schedule, steps);
  const rng = new Rng(seed);
  const out = new Float32Array(count * height * width);
  for (let start = 0; start < count; start += batch) {
    const n = Math.min(batch, count - start);
    let x = normalTensor(tf, rng, [n, height, width, 1]);
    // x stays on the device between steps; each batch is read back once, at the end (async).
    for (const [i, t] of timesteps.entries()) {
      const prev = i + 1 < timesteps.length ? timesteps[i + 1] : -1;
      const { coefX0, coefXt, variance } = posteriorCoefficients(schedule, t, prev);
      const next = tf.tidy(() => {
        const eps = predictEps(tf, model, x, t);
        const x0 = tf
          .sub(x, tf.mul(eps, schedule.sqrtOneMinusAlphaBars[t]))
          .div(schedule.sqrtAlphaBars[t])
          .clipByValue(-1, 1);
        const mean = tf.add(tf.mul(x0, coefX0), tf.mul(x, coefXt));
        return prev < 0 ? mean : tf.add(mean, tf.mul(normalTensor(tf, rng, x.shape), Math.sqrt(variance)));
      });
      x.dispose();
      x = next;
      options.onStep?.(i + 1, timesteps.length);
    }
    const last = x;
    out.set(await tidyValues(tf, () => last.clipByValue(-1, 1)), start * height * width);
    x.dispose();
  }
  return out;
}

/** Tiles images (row-major [-1, 1]) into a rows x cols grid with a `gap`-pixel border of value -1, as bytes. */
export function imageGrid(
  images: Float32Array,
  height: number,
  width: number,
  cols: number,
  gap = 2,
): { data: Uint8Array; width: number; height: number } {
  const count = images.length / (height * width);
  const rows = Math.ceil(count / cols);
  const gridWidth = cols * width + (cols + 1) * gap;
  const gridHeight = rows * height + (rows + 1) * gap;
  const data = new Uint8Array(gridWidth * gridHeight);
  for (let k = 0; k < count; k++) {
    const top = gap + Math.floor(k / cols) * (height + gap);
    const left = gap + (k % cols) * (width + gap);
    for (let r = 0; r < height; r++) {
      for (let c = 0; c < width; c++) {
        const v = images[k * height * width + r * width + c];
        data[(top + r) * gridWidth + left + c] = Math.round(Math.min(1, Math.max(0, (v + 1) / 2)) * 255);
      }
    }
  }
  return { data, width: gridWidth, height: gridHeight };
}
