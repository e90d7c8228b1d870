/**
 * EPS against a score model whose answer is known in closed form. If every pixel of x_0 is N(m, s^2), then
 * x_t = sqrt(ab) x_0 + sqrt(1 - ab) z is N(sqrt(ab) m, D) with D = ab s^2 + 1 - ab, its score is
 * -(x_t - sqrt(ab) m) / D, and the exact eps-network is eps(x_t, t) = sqrt(1 - ab) (x_t - sqrt(ab) m) / D.
 * Perturbing x' gives score_k = -(sqrt(ab_k)(x' - m) + sqrt(1 - ab_k) z_k) / D_k, so
 *   E[EPS(x)] = -(1/T*) sum_k sqrt(ab_k)(x' - m) / D_k,   Var[EPS(x)] = (1/T*^2) sum_k (1 - ab_k) / D_k^2
 * when the z_k are independent. The standardised residuals must then have mean 0 and variance 1.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { type EpsNetwork, expectedPerturbationScore, type ImageBatch } from '../../src/adversarial/eps.js';
import { type DdpmSchedule, linearSchedule } from '../../src/diffusion/schedule.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { Rng } from '../../src/util/random.js';

let tf: Tf;
beforeAll(async () => {
  tf = (await initTfjs('wasm')).tf;
});

const MEAN = 0.2;
const STD = 0.5;

function gaussianEpsNetwork(schedule: DdpmSchedule): EpsNetwork {
  const alphaBars = Float32Array.from(schedule.alphaBars);
  return (xt, t) =>
    tf.tidy(() => {
      const ab = tf.gather(tf.tensor1d(alphaBars), t.toInt()).reshape([-1, 1, 1, 1]);
      const variance = tf.add(tf.mul(ab, STD * STD), tf.sub(1, ab));
      return tf.div(tf.mul(tf.sqrt(tf.sub(1, ab)), tf.sub(xt, tf.mul(tf.sqrt(ab), MEAN))), variance);
    });
}

function closedForm(schedule: DdpmSchedule, xPrime: number, timesteps: number): { mean: number; sd: number } {
  let mean = 0;
  let variance = 0;
  for (let k = 1; k <= timesteps; k++) {
    const ab = schedule.alphaBars[k];
    const d = ab * STD * STD + 1 - ab;
    mean -= (Math.sqrt(ab) * (xPrime - MEAN)) / d;
    variance += (1 - ab) / (d * d);
  }
  return { mean: mean / timesteps, sd: Math.sqrt(variance) / timesteps };
}

function randomImages(count: number, seed: number): ImageBatch {
  const rng = new Rng(seed);
  const data = new Float32Array(count * 28 * 28);
  for (let i = 0; i < data.length; i++) data[i] = rng.uniform();
  return { data, count, height: 28, width: 28, channels: 1 };
}

/** x' of output pixel p (padded 32x32 layout): -1 in the border, 2x - 1 inside. */
function xPrimeAt(images: ImageBatch, image: number, p: number): number {
  const r = Math.floor(p / 32) - 2;
  const c = (p % 32) - 2;
  if (r < 0 || r >= 28 || c < 0 || c >= 28) return -1;
  return 2 * images.data[image * 784 + r * 28 + c] - 1;
}

async function standardisedResiduals(
  schedule: DdpmSchedule,
  timesteps: number,
  seed: number,
): Promise<Float64Array> {
  const images = randomImages(4, 7);
  const result = await expectedPerturbationScore(tf, gaussianEpsNetwork(schedule), schedule, images, {
    timesteps,
    seed,
    batchSize: 24,
  });
  expect([result.count, result.height, result.width, result.channels]).toEqual([4, 32, 32, 1]);
  const residuals = new Float64Array(result.eps.length);
  for (let i = 0; i < 4; i++) {
    for (let p = 0; p < 1024; p++) {
      const { mean, sd } = closedForm(schedule, xPrimeAt(images, i, p), timesteps);
      residuals[i * 1024 + p] = (result.eps[i * 1024 + p] - mean) / sd;
    }
  }
  return residuals;
}

function moments(values: Float64Array): { mean: number; variance: number } {
  let mean = 0;
  for (const v of values) mean += v;
  mean /= values.length;
  let variance = 0;
  for (const v of values) variance += (v - mean) ** 2;
  return { mean, variance: variance / (values.length - 1) };
}

describe('expectedPerturbationScore', () => {
  it('matches the closed-form expected perturbed score of Gaussian data (DDPM schedule, T* = 20)', async () => {
    const schedule = linearSchedule();
    const { mean, variance } = moments(await standardisedResiduals(schedule, 20, 3));
    // 4096 residuals: the sample mean has sd 1/64, the sample variance sd ~ 0.022.
    expect(Math.abs(mean)).toBeLessThan(0.07);
    expect(variance).toBeGreaterThan(0.9);
    expect(variance).toBeLessThan(1.1);
  });

  it('recovers the mean structure where noise is small (a coarse schedule with large alphaBar gaps)', async () => {
    // With 1 - ab up to ~0.9 the signal term dominates, so a wrong timestep index or a missing 2x - 1 shows at once.
    const schedule = linearSchedule({ timesteps: 12, betaStart: 0.05, betaEnd: 0.3 });
    const images = randomImages(2, 11);
    const result = await expectedPerturbationScore(tf, gaussianEpsNetwork(schedule), schedule, images, {
      timesteps: 10,
      seed: 5,
    });
    let worst = 0;
    for (let i = 0; i < 2; i++) {
      for (let p = 0; p < 1024; p++) {
        const { mean, sd } = closedForm(schedule, xPrimeAt(images, i, p), 10);
        worst = Math.max(worst, Math.abs(result.eps[i * 1024 + p] - mean) / sd);
      }
    }
    expect(worst).toBeLessThan(5);
    const residuals = await standardisedResiduals(schedule, 10, 9);
    const { mean, variance } = moments(residuals);
    expect(Math.abs(mean)).toBeLessThan(0.07);
    expect(Math.abs(variance - 1)).toBeLessThan(0.1);
  });

  it('is reproducible for a seed, independent of the batch size, and changes with the seed', async () => {
    const schedule = linearSchedule();
    const images = randomImages(2, 1);
    const network = gaussianEpsNetwork(schedule);
    const a = await expectedPerturbationScore(tf, network, schedule, images, {
      timesteps: 5,
      seed: 1,
      batchSize: 3,
    });
    const b = await expectedPerturbationScore(tf, network, schedule, images, {
      timesteps: 5,
      seed: 1,
      batchSize: 10,
    });
    const c = await expectedPerturbationScore(tf, network, schedule, images, { timesteps: 5, seed: 2 });
    expect(a.timesteps).toEqual([1, 2, 3, 4, 5]);
    let maxDiff = 0;
    for (let i = 0; i < a.eps.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a.eps[i] - b.eps[i]));
    expect(maxDiff).toBeLessThan(1e-4);
    expect(Array.from(a.eps.slice(0, 50))).not.toEqual(Array.from(c.eps.slice(0, 50)));
  });

  it('rejects a T* outside the schedule and mismatched data', async () => {
    const schedule = linearSchedule({ timesteps: 10 });
    const network = gaussianEpsNetwork(schedule);
    await expect(async () =>
      expectedPerturbationScore(tf, network, schedule, randomImages(1, 1), { timesteps: 10 }),
    ).rejects.toThrow(/T\*/);
    const bad = { ...randomImages(1, 1), count: 2 };
    await expect(async () =>
      expectedPerturbationScore(tf, network, schedule, bad, { timesteps: 3 }),
    ).rejects.toThrow(/length/);
  });
});
