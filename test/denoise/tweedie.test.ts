import { describe, expect, it } from 'vitest';
import { digamma, logGamma } from '../../src/denoise/special.js';
import {
  tweedieGamma,
  tweedieGaussian,
  tweediePoisson,
  tweediePoissonDigamma,
} from '../../src/denoise/tweedie.js';

/**
 * Each Tweedie formula is checked against the quantity it claims to compute, for a 1-D Gaussian-mixture prior on
 * the clean intensity x. The score of the noisy marginal is computed independently of the posterior: in closed form
 * (Gaussian) or by a 4th-order central difference of log p(y), where p(y) comes from quadrature over x. The
 * posterior expectations come from quadrature too, so a wrong power of sigma, a wrong (k-1), or a wrong half-count
 * offset in any formula makes these tests fail.
 */

const prior = { w: [0.3, 0.5, 0.2], mu: [0.3, 0.55, 0.85], s: [0.05, 0.08, 0.04] };

function priorDensity(x: number): number {
  let p = 0;
  for (let i = 0; i < prior.w.length; i++) {
    const d = (x - prior.mu[i]) / prior.s[i];
    p += (prior.w[i] / (prior.s[i] * Math.sqrt(2 * Math.PI))) * Math.exp(-0.5 * d * d);
  }
  return p;
}

/** Trapezoid rule on a uniform grid; spectrally accurate here because every integrand vanishes at both ends. */
function integrate(f: (x: number) => number, a: number, b: number, n: number): number {
  const h = (b - a) / n;
  let sum = 0.5 * (f(a) + f(b));
  for (let i = 1; i < n; i++) sum += f(a + i * h);
  return sum * h;
}

/** 4th-order central difference of log f: error O(h^4), far below 1e-6 for the smooth marginals here. */
function scoreByFiniteDifference(logDensity: (y: number) => number, y: number, h: number): number {
  return (
    (-logDensity(y + 2 * h) + 8 * logDensity(y + h) - 8 * logDensity(y - h) + logDensity(y - 2 * h)) /
    (12 * h)
  );
}

describe('special functions', () => {
  it('logGamma and digamma match known values', () => {
    expect(logGamma(1)).toBeCloseTo(0, 13);
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 13);
    expect(logGamma(10)).toBeCloseTo(Math.log(362880), 11);
    expect(digamma(1)).toBeCloseTo(-0.5772156649015329, 13);
    expect(digamma(0.5)).toBeCloseTo(-0.5772156649015329 - 2 * Math.log(2), 13);
    // psi is the derivative of logGamma.
    const h = 1e-4;
    for (const x of [0.7, 3.2, 25]) {
      const numeric =
        (-logGamma(x + 2 * h) + 8 * logGamma(x + h) - 8 * logGamma(x - h) + logGamma(x - 2 * h)) / (12 * h);
      expect(Math.abs(numeric - digamma(x))).toBeLessThan(1e-9);
    }
  });
});

describe("Tweedie, Gaussian noise: y + sigma^2 l'(y) = E[x | y] exactly", () => {
  const sigma = 0.1;
  const gaussian = (t: number, variance: number) =>
    Math.exp((-0.5 * t * t) / variance) / Math.sqrt(2 * Math.PI * variance);

  it('matches the posterior mean from quadrature to 1e-6', () => {
    const ys = Float64Array.from([-0.2, 0.1, 0.35, 0.6, 0.9, 1.3]);
    // Exact score of p(y) = sum_i w_i N(y; mu_i, s_i^2 + sigma^2).
    const score = ys.map((y) => {
      let p = 0;
      let dp = 0;
      for (let i = 0; i < prior.w.length; i++) {
        const variance = prior.s[i] ** 2 + sigma ** 2;
        const term = prior.w[i] * gaussian(y - prior.mu[i], variance);
        p += term;
        dp += (term * (prior.mu[i] - y)) / variance;
      }
      return dp / p;
    });
    const denoised = tweedieGaussian(ys, score, sigma);
    expect(denoised).toBeInstanceOf(Float64Array);
    ys.forEach((y, j) => {
      const likelihood = (x: number) => priorDensity(x) * gaussian(y - x, sigma * sigma);
      const evidence = integrate(likelihood, -1, 2, 6000);
      const posteriorMean = integrate((x) => x * likelihood(x), -1, 2, 6000) / evidence;
      expect(Math.abs(denoised[j] - posteriorMean)).toBeLessThan(1e-6);
    });
  });

  it('keeps Float32 in Float32 out and rejects mismatched lengths', () => {
    const out = tweedieGaussian(new Float32Array([0.5, 0.25]), new Float32Array([2, -4]), 0.5);
    expect(out).toBeInstanceOf(Float32Array);
    expect(Array.from(out)).toEqual([1, -0.75]);
    expect(() => tweedieGaussian(new Float32Array(2), new Float32Array(3), 1)).toThrow(RangeError);
  });
});

describe("Tweedie, Gamma noise: k y / ((k-1) - y l'(y)) = 1 / E[1/x | y] exactly", () => {
  for (const k of [20, 100]) {
    it(`k = ${k}: matches the harmonic posterior mean from quadrature to 1e-6`, () => {
      // p(y | x) = (k/x)^k y^(k-1) exp(-k y / x) / Gamma(k): y = x g, g ~ Gamma(shape k, scale 1/k).
      const logLikelihood = (y: number, x: number) =>
        k * Math.log(k / x) + (k - 1) * Math.log(y) - (k * y) / x - logGamma(k);
      const joint = (y: number) => (x: number) =>
        x <= 0 ? 0 : priorDensity(x) * Math.exp(logLikelihood(y, x));
      const logMarginal = (y: number) => Math.log(integrate(joint(y), 0, 2, 4000));
      const ys = Float64Array.from([0.25, 0.5, 0.7, 0.95]);
      const score = ys.map((y) => scoreByFiniteDifference(logMarginal, y, 1e-3));
      const denoised = tweedieGamma(ys, score, k);
      ys.forEach((y, j) => {
        const evidence = integrate(joint(y), 0, 2, 4000);
        const meanInverse = integrate((x) => (x <= 0 ? 0 : joint(y)(x) / x), 0, 2, 4000) / evidence;
        expect(Math.abs(denoised[j] - 1 / meanInverse)).toBeLessThan(1e-6);
        // And it is NOT the ordinary posterior mean (which is larger by Jensen): the test can tell them apart.
        const mean = integrate((x) => x * joint(y)(x), 0, 2, 4000) / evidence;
        expect(mean - denoised[j]).toBeGreaterThan(1e-5);
      });
    });
  }
});

describe('Tweedie, Poisson noise (continuous relaxation of the count likelihood)', () => {
  // y = zeta z; relaxation p(z | lambda) = lambda^z e^-lambda / (Gamma(z+1) C(lambda)), z >= 0, lambda = x/zeta,
  // with C(lambda) its normaliser over z. Exponential-family Tweedie gives, exactly,
  //   d/dz log p(z) = E[log lambda | z] - psi(z+1),
  // so zeta exp(psi(z+1) + l'(z)) = exp(E[log x | z]) (the geometric posterior mean). The paper replaces psi(z+1)
  // with log(z + 1/2) (Stirling), giving (y + zeta/2) exp(l'(z)).
  const zeta = 0.05;
  const xMax = 1.5;
  const gridSize = 1500;
  const xs = Float64Array.from({ length: gridSize + 1 }, (_, i) => (i * xMax) / gridSize);
  // log C(lambda) by Simpson over z in [0, lambda + 60]: the counts' mass lies within a few sqrt(lambda) of lambda.
  const logNormaliser = xs.map((x) => {
    const lambda = x / zeta;
    if (lambda === 0) return 0;
    const zMax = lambda + 60;
    const n = 2000;
    const h = zMax / n;
    let sum = 0;
    for (let i = 0; i <= n; i++) {
      const z = i * h;
      const weight = i === 0 || i === n ? 1 : i % 2 === 1 ? 4 : 2;
      sum += weight * Math.exp(z * Math.log(lambda) - lambda - logGamma(z + 1));
    }
    return Math.log((sum * h) / 3);
  });
  const priorOnGrid = xs.map(priorDensity);
  /** Integral over x of prior(x) p(z | x/zeta) f(x), trapezoid on the fixed grid (integrand ~0 at both ends). */
  const integrateOverX = (z: number, f: (x: number) => number) => {
    let sum = 0;
    for (let i = 1; i <= gridSize; i++) {
      const lambda = xs[i] / zeta;
      const likelihood = Math.exp(z * Math.log(lambda) - lambda - logGamma(z + 1) - logNormaliser[i]);
      sum += (i === gridSize ? 0.5 : 1) * priorOnGrid[i] * likelihood * f(xs[i]);
    }
    return sum * (xMax / gridSize);
  };
  const logMarginal = (z: number) => Math.log(integrateOverX(z, () => 1));
  const counts = [0.5, 2, 6.5, 11, 17];
  const y = Float64Array.from(counts, (z) => zeta * z);
  const scoreZ = Float64Array.from(counts, (z) => scoreByFiniteDifference(logMarginal, z, 1e-3));
  const geometricMean = counts.map(
    (z) => zeta * Math.exp(integrateOverX(z, (x) => Math.log(x / zeta)) / integrateOverX(z, () => 1)),
  );

  it("zeta exp(psi(z+1) + l'(z)) equals the geometric posterior mean exp(E[log x | z]) to 1e-6", () => {
    const denoised = tweediePoissonDigamma(y, scoreZ, zeta);
    counts.forEach((_, j) => {
      expect(Math.abs(denoised[j] - geometricMean[j])).toBeLessThan(1e-6);
    });
  });

  it("the paper's (y + zeta/2) exp(l'(z)) differs from it only by (z+1/2)/exp(psi(z+1))", () => {
    const denoised = tweediePoisson(y, scoreZ, zeta);
    counts.forEach((z, j) => {
      const ratio = denoised[j] / geometricMean[j];
      const stirlingRatio = (z + 0.5) / Math.exp(digamma(z + 1));
      expect(Math.abs(ratio - stirlingRatio)).toBeLessThan(1e-6);
      // psi(z+1) - log(z + 1/2) ~ 1/(24 (z+1/2)^2): the approximation error shrinks with the count.
      expect(Math.abs(Math.log(ratio))).toBeLessThan(1.05 / (24 * (z + 0.5) ** 2));
      expect(Math.abs(Math.log(ratio))).toBeGreaterThan(0.85 / (24 * (z + 0.5) ** 2));
    });
  });
});
