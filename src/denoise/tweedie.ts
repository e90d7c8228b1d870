/**
 * Tweedie's formula for the three noise families of Noise2Score (Kim & Ye, NeurIPS 2021).
 *
 * Each function turns a noisy image y and an estimate of the score of the NOISY marginal into a denoised image.
 * The score is what the AR-DAE-trained network R approximates; nothing here needs the clean image or its prior.
 * Inputs and outputs are flat arrays of the same length (pixel-wise formulas); the output has the input's type.
 *
 * What each formula is exactly (proved in test/denoise/tweedie.test.ts by numerical integration):
 *  - Gaussian  y = x + sigma*n:            y + sigma^2 l'(y)                 = E[x | y]                 (exact)
 *  - Gamma     y = x*g, g~Gamma(k, 1/k):   k y / ((k-1) - y l'(y))           = 1 / E[1/x | y]           (exact)
 *  - Poisson   y = zeta*z, z~Poisson(x/zeta), with s = d/dz log p(z) the score of the count-scale marginal:
 *      (y + zeta/2) exp(s)  ~=  zeta * exp(E[log(x/zeta) | z])  = exp(E[log x | z])  (geometric posterior mean)
 *    exactly so, with psi(z+1) in place of log(z + 1/2), under the continuous exponential-family relaxation
 *    p(z | lambda) ∝ lambda^z e^-lambda / Gamma(z+1), z >= 0 (the model the paper's derivation uses):
 *    there d/dz log p(z) = E[log lambda | z] - psi(z+1) holds exactly, and psi(z+1) = log(z+1/2) + O(1/(24 (z+1/2)^2)).
 *    `tweediePoissonDigamma` is that exact version; `tweediePoisson` is the paper's formula.
 */

export type FloatArray = Float32Array | Float64Array;

import { digamma } from './special.js';

function sameTypeAs<T extends FloatArray>(like: T, length: number): T {
  return (like instanceof Float64Array ? new Float64Array(length) : new Float32Array(length)) as T;
}

function checkLengths(y: FloatArray, score: FloatArray): void {
  if (y.length !== score.length) {
    throw new RangeError(`y and score differ in length (${y.length} vs ${score.length})`);
  }
}

/** Gaussian noise of standard deviation sigma (same units as y): E[x|y] = y + sigma^2 * score(y). */
export function tweedieGaussian<T extends FloatArray>(y: T, score: FloatArray, sigma: number): T {
  checkLengths(y, score);
  const out = sameTypeAs(y, y.length);
  const variance = sigma * sigma;
  for (let i = 0; i < y.length; i++) out[i] = y[i] + variance * score[i];
  return out;
}

/**
 * Poisson noise y = zeta * Poisson(x / zeta). `scoreZ` is the score of the count-scale variable z = y / zeta,
 * d/dz log p(z) (so a network trained with AR-DAE on z = y/zeta, not on y: the score on the y scale is scoreZ/zeta).
 * Returns the paper's (y + zeta/2) * exp(scoreZ).
 */
export function tweediePoisson<T extends FloatArray>(y: T, scoreZ: FloatArray, zeta: number): T {
  checkLengths(y, scoreZ);
  const out = sameTypeAs(y, y.length);
  const half = zeta / 2;
  for (let i = 0; i < y.length; i++) out[i] = (y[i] + half) * Math.exp(scoreZ[i]);
  return out;
}

/**
 * The exact geometric posterior mean exp(E[log x | z]) under the continuous relaxation of the Poisson likelihood:
 * zeta * exp(psi(z + 1) + scoreZ). Differs from `tweediePoisson` only by exp(psi(z+1)) vs z + 1/2 (at most 12%
 * at z = 0, below 0.4% for z >= 2). Kept for the formula tests and for callers that want the unapproximated form.
 */
export function tweediePoissonDigamma<T extends FloatArray>(y: T, scoreZ: FloatArray, zeta: number): T {
  checkLengths(y, scoreZ);
  const out = sameTypeAs(y, y.length);
  for (let i = 0; i < y.length; i++) {
    const z = Math.max(y[i] / zeta, 0); // negative counts cannot occur; clamp noise-perturbed inputs
    out[i] = zeta * Math.exp(digamma(z + 1) + scoreZ[i]);
  }
  return out;
}

/**
 * Gamma (multiplicative) noise y = x * g, g ~ Gamma(shape k, scale 1/k) (mean 1, variance 1/k):
 * 1 / E[1/x | y] = k y / ((k - 1) - y * score(y)). The denominator is kept away from zero so that a poor score
 * estimate in a dark pixel cannot produce an infinity or a sign flip.
 */
export function tweedieGamma<T extends FloatArray>(y: T, score: FloatArray, k: number): T {
  checkLengths(y, score);
  const out = sameTypeAs(y, y.length);
  const floor = 1e-6;
  for (let i = 0; i < y.length; i++) {
    const denominator = k - 1 - y[i] * score[i];
    out[i] = (k * y[i]) / Math.max(denominator, floor);
  }
  return out;
}
