/**
 * Seeded noise synthesis for the three Noise2Score noise families, on images with intensities in [0, 1].
 * The same generator state gives the same noisy image, so training runs and benchmarks can be repeated.
 */
import type { Rng } from '../util/random.js';

export type NoiseFamily = 'gaussian' | 'poisson' | 'gamma';
export const NOISE_FAMILIES: readonly NoiseFamily[] = ['gaussian', 'poisson', 'gamma'];

/** y = x + sigma * n, n ~ N(0, 1); sigma on the [0, 1] scale (sigma = 25/255 for the usual "sigma 25"). No clipping. */
export function addGaussianNoise(x: Float32Array, sigma: number, rng: Rng): Float32Array {
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i] + sigma * rng.normal();
  return y;
}

/** y = zeta * Poisson(x / zeta): counts scaled back to [0, 1]; smaller zeta means more photons, less noise. */
export function addPoissonNoise(x: Float32Array, zeta: number, rng: Rng): Float32Array {
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = zeta * rng.poisson(Math.max(x[i], 0) / zeta);
  return y;
}

/** y = x * g, g ~ Gamma(shape k, scale 1/k) (mean 1, variance 1/k): multiplicative speckle-like noise. */
export function addGammaNoise(x: Float32Array, k: number, rng: Rng): Float32Array {
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = (x[i] * rng.gamma(k)) / k;
  return y;
}

/** Adds noise of the given family; `level` is sigma (gaussian, [0,1] scale), zeta (poisson) or k (gamma). */
export function addNoise(family: NoiseFamily, x: Float32Array, level: number, rng: Rng): Float32Array {
  switch (family) {
    case 'gaussian':
      return addGaussianNoise(x, level, rng);
    case 'poisson':
      return addPoissonNoise(x, level, rng);
    case 'gamma':
      return addGammaNoise(x, level, rng);
  }
}
