import { describe, expect, it } from 'vitest';
import {
  deepKernelMatrix,
  deepKernelMmd2,
  type Features,
  gaussianKernelMatrix,
  gaussianMmd2,
  mmd2FromKernel,
  mmdPermutationTest,
} from '../../src/adversarial/mmd.js';
import { Rng } from '../../src/util/random.js';

function gaussianSample(rng: Rng, count: number, dim: number, shift = 0, scale = 1): Float64Array[] {
  return Array.from({ length: count }, () => {
    const v = new Float64Array(dim);
    for (let i = 0; i < dim; i++) v[i] = shift + scale * rng.normal();
    return v;
  });
}

function meanAndStandardError(values: number[]): { mean: number; se: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1);
  return { mean, se: Math.sqrt(variance / values.length) };
}

describe('MMD estimators', () => {
  it('the unbiased estimator averages to 0 on samples of one distribution; the biased one does not', () => {
    const rng = new Rng(1);
    const unbiased: number[] = [];
    const biased: number[] = [];
    for (let r = 0; r < 300; r++) {
      const x = gaussianSample(rng, 15, 3);
      const y = gaussianSample(rng, 10, 3);
      // A fixed bandwidth: a data-dependent one would make the estimator a ratio and add its own bias.
      const kernel = gaussianKernelMatrix([...x, ...y], 6);
      unbiased.push(mmd2FromKernel(kernel, 15, 'unbiased'));
      biased.push(mmd2FromKernel(kernel, 15, 'biased'));
    }
    const u = meanAndStandardError(unbiased);
    const b = meanAndStandardError(biased);
    expect(Math.abs(u.mean)).toBeLessThan(3 * u.se);
    expect(unbiased.some((v) => v < 0)).toBe(true);
    // The V-statistic's bias is (1 - E k)(1/m + 1/l) > 0: many standard errors above 0.
    expect(b.mean).toBeGreaterThan(10 * b.se);
    expect(Math.min(...biased)).toBeGreaterThanOrEqual(-1e-12);
  });

  it('separates different distributions (shift and scale) from the same one', () => {
    const rng = new Rng(2);
    const same = gaussianMmd2(gaussianSample(rng, 40, 5), gaussianSample(rng, 40, 5));
    const shifted = gaussianMmd2(gaussianSample(rng, 40, 5), gaussianSample(rng, 40, 5, 1));
    const scaled = gaussianMmd2(gaussianSample(rng, 40, 5), gaussianSample(rng, 40, 5, 0, 2.5));
    expect(shifted).toBeGreaterThan(same + 0.1);
    expect(scaled).toBeGreaterThan(same + 0.05);
  });

  it('biased MMD is defined for one test point and grows with its distance from the reference set', () => {
    const rng = new Rng(3);
    const reference = gaussianSample(rng, 100, 4);
    const near = [new Float64Array(4)];
    const far = [new Float64Array(4).fill(3)];
    const options = { bandwidth: 8, estimator: 'biased' as const };
    expect(gaussianMmd2(reference, far, options)).toBeGreaterThan(
      gaussianMmd2(reference, near, options) + 0.2,
    );
    expect(() => gaussianMmd2(reference, near, { bandwidth: 8, estimator: 'unbiased' })).toThrow(/unbiased/);
  });
});

describe('deep kernel', () => {
  const parameters = { sigmaPhi: 2, sigmaQ: 50, epsilon: 0.1 };

  it('is the issue formula, reduces to the Gaussian kernel at epsilon = 1, and uses phi', () => {
    const rng = new Rng(4);
    const z = gaussianSample(rng, 6, 3);
    const phi = (s: Features) => s.map((v) => Float64Array.from([v[0] * 3, v[1] * v[2]]));
    const k = deepKernelMatrix(z, phi, parameters);
    const [a, b] = [z[1], z[4]];
    const [fa, fb] = [phi([a])[0], phi([b])[0]];
    const dq = a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0);
    const dphi = fa.reduce((s, v, i) => s + (v - fb[i]) ** 2, 0);
    const expected = 0.9 * Math.exp(-dphi / 2 - dq / 50) + 0.1 * Math.exp(-dq / 50);
    expect(k.values[1 * 6 + 4]).toBeCloseTo(expected, 12);
    expect(k.values[4 * 6 + 1]).toBeCloseTo(expected, 12);
    expect(k.values[2 * 6 + 2]).toBeCloseTo(1, 12);
    const plain = deepKernelMatrix(z, phi, { ...parameters, epsilon: 1 });
    const gaussian = gaussianKernelMatrix(z, 50);
    for (let i = 0; i < plain.values.length; i++) expect(plain.values[i]).toBeCloseTo(gaussian.values[i], 12);
  });

  it('a feature map that isolates the differing coordinate separates better than the plain input kernel', () => {
    const rng = new Rng(5);
    // 20 noise dimensions, the samples differ only in coordinate 0.
    const x = gaussianSample(rng, 30, 20);
    const y = gaussianSample(rng, 30, 20).map((v) => {
      v[0] += 2;
      return v;
    });
    const phi = (s: Features) => s.map((v) => Float64Array.from([v[0]]));
    const deep = deepKernelMmd2(x, y, phi, { sigmaPhi: 2, sigmaQ: 80, epsilon: 0.01 });
    const plain = gaussianMmd2(x, y, { bandwidth: 80 });
    expect(deep).toBeGreaterThan(3 * plain);
  });
});

describe('mmdPermutationTest', () => {
  it('gives small p-values for different distributions', () => {
    const rng = new Rng(6);
    for (let r = 0; r < 5; r++) {
      const kernel = gaussianKernelMatrix([...gaussianSample(rng, 30, 3), ...gaussianSample(rng, 30, 3, 1)]);
      const { pValue, permutations } = mmdPermutationTest(kernel, 30, { permutations: 200, seed: r });
      expect(permutations).toBe(200);
      expect(pValue).toBeLessThan(0.02);
    }
  });

  it('gives roughly uniform p-values under the null (about 5% below 0.05, mean near 1/2)', () => {
    const rng = new Rng(7);
    const pValues: number[] = [];
    for (let r = 0; r < 120; r++) {
      const kernel = gaussianKernelMatrix([...gaussianSample(rng, 20, 3), ...gaussianSample(rng, 20, 3)]);
      pValues.push(mmdPermutationTest(kernel, 20, { permutations: 99, seed: r }).pValue);
    }
    const mean = pValues.reduce((a, b) => a + b, 0) / pValues.length;
    const rejected = pValues.filter((p) => p <= 0.05).length / pValues.length;
    expect(mean).toBeGreaterThan(0.4);
    expect(mean).toBeLessThan(0.6);
    expect(rejected).toBeLessThan(0.12);
    // Uniform, not piled up at 1: a quarter of the p-values fall below 0.25 (binomial sd ~ 0.04).
    const lowQuarter = pValues.filter((p) => p <= 0.25).length / pValues.length;
    expect(lowQuarter).toBeGreaterThan(0.13);
    expect(lowQuarter).toBeLessThan(0.37);
  });

  it('is seeded and rejects impossible splits', () => {
    const rng = new Rng(8);
    const kernel = gaussianKernelMatrix([...gaussianSample(rng, 10, 2), ...gaussianSample(rng, 10, 2, 0.5)]);
    expect(mmdPermutationTest(kernel, 10, { seed: 3 })).toEqual(mmdPermutationTest(kernel, 10, { seed: 3 }));
    expect(() => mmdPermutationTest(kernel, 0)).toThrow(RangeError);
    expect(() => mmdPermutationTest(kernel, 20)).toThrow(RangeError);
  });
});
