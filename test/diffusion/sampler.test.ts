import { beforeAll, describe, expect, it } from 'vitest';
import { imageGrid, sampleDdpm } from '../../src/diffusion/sampler.js';
import { linearSchedule } from '../../src/diffusion/schedule.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';

type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Tensor = import('@tensorflow/tfjs').Tensor;

let tf: Tf;
beforeAll(async () => {
  tf = (await initTfjs('wasm')).tf;
});
const schedule = linearSchedule();

/**
 * The exact eps-predictor of data x0 ~ N(mu, s^2) per pixel: E[eps | x_t] =
 * sqrt(1-ab) (x_t - sqrt(ab) mu) / (ab s^2 + 1 - ab). Duck-typed as a LayersModel (sampleDdpm only calls predict).
 */
function gaussianOracle(mu: number, s: number): LayersModel {
  return {
    predict: ([x, t]: Tensor[]) => {
      const step = t.dataSync()[0];
      const ab = schedule.alphaBars[step];
      return tf.mul(tf.sub(x, Math.sqrt(ab) * mu), Math.sqrt(1 - ab) / (ab * s * s + 1 - ab));
    },
  } as unknown as LayersModel;
}

describe('ancestral DDPM sampler', () => {
  async function sampleMoments(steps: number, mu: number, s: number): Promise<{ mean: number; std: number }> {
    const images = await sampleDdpm(tf, gaussianOracle(mu, s), schedule, {
      count: 64,
      height: 8,
      width: 8,
      steps,
      seed: 4,
    });
    let mean = 0;
    for (const v of images) mean += v;
    mean /= images.length;
    let variance = 0;
    for (const v of images) variance += (v - mean) ** 2;
    variance /= images.length - 1;
    return { mean, std: Math.sqrt(variance) };
  }

  it('samples the data distribution when given the exact eps (Gaussian data, all 1000 steps)', async () => {
    const { mean, std } = await sampleMoments(1000, 0.2, 0.3);
    // 4096 samples: standard error of the mean 0.005, of the std ~0.0033.
    expect(Math.abs(mean - 0.2)).toBeLessThan(0.03);
    expect(std).toBeGreaterThan(0.3 * 0.93);
    expect(std).toBeLessThan(0.3 * 1.07);
  });

  it('respaced to 50 steps, keeps the mean and shrinks the spread a little (beta-tilde is the lower bound)', async () => {
    // Known property of ancestral sampling with the posterior variance beta-tilde on few steps: it omits
    // Var[x0 | x_t], so samples are slightly too concentrated (measured 0.25 for 0.3).
    const { mean, std } = await sampleMoments(50, 0.2, 0.3);
    expect(Math.abs(mean - 0.2)).toBeLessThan(0.03);
    expect(std).toBeLessThan(0.3);
    expect(std).toBeGreaterThan(0.3 * 0.75);
  });

  it('collapses onto a point mass, and is reproducible with a seed', async () => {
    const point = gaussianOracle(-0.4, 1e-4);
    const options = { count: 3, height: 4, width: 4, steps: 20, seed: 9 };
    const a = await sampleDdpm(tf, point, schedule, options);
    for (const v of a) expect(v).toBeCloseTo(-0.4, 3);
    const wide = gaussianOracle(0, 0.5);
    const b1 = await sampleDdpm(tf, wide, schedule, options);
    const b2 = await sampleDdpm(tf, wide, schedule, options);
    expect(Array.from(b1)).toEqual(Array.from(b2));
    const b3 = await sampleDdpm(tf, wide, schedule, { ...options, seed: 10 });
    expect(Array.from(b3)).not.toEqual(Array.from(b1));
  });

  it('tiles a grid with borders', async () => {
    const images = new Float32Array(3 * 2 * 2).fill(1);
    const grid = imageGrid(images, 2, 2, 2, 1);
    expect(grid.width).toBe(2 * 2 + 3);
    expect(grid.height).toBe(2 * 2 + 3);
    expect(grid.data[0]).toBe(0);
    expect(grid.data[1 * grid.width + 1]).toBe(255);
    // The 4th cell is empty.
    expect(grid.data[4 * grid.width + 4]).toBe(0);
  });
});
