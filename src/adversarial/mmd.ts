/**
 * Maximum mean discrepancy (Gretton et al., 2012) between two samples, on Float64Array feature vectors, with the
 * kernels of EPS-AD: a Gaussian kernel and the deep kernel of Liu et al. (2020) used by the paper,
 *
 *   k(a, b) = [(1 - e) exp(-||phi(a) - phi(b)||^2 / s_phi) + e] exp(-||a - b||^2 / s_q),
 *
 * (the form, factored) with a pluggable feature map phi. Estimators work on a kernel matrix of the pooled
 * sample Z = [X; Y] (X first), so a permutation test can reshuffle labels without recomputing any kernel value.
 *
 * - biased (V-statistic): mean K_xx + mean K_yy - 2 mean K_xy, diagonals included; >= 0; defined for |Y| = 1, which
 *   is EPS-AD's single-sample statistic (a reference set against one test EPS).
 * - unbiased (U-statistic): diagonals excluded from K_xx and K_yy; its expectation is exactly 0 when X and Y come
 *   from the same distribution, so it can be negative.
 */
import { Rng } from '../util/random.js';

export type Features = readonly Float64Array[];

/** A symmetric kernel matrix of a pooled sample, row-major n x n. */
export interface KernelMatrix {
  n: number;
  values: Float64Array;
}

function checkDims(samples: Features): number {
  if (samples.length === 0) throw new RangeError('empty sample');
  const dim = samples[0].length;
  for (const s of samples) if (s.length !== dim) throw new RangeError('feature vectors differ in length');
  return dim;
}

/** ||a_i - a_j||^2 for every pair of the pooled sample (row-major). */
export function pairwiseSquaredDistances(samples: Features): KernelMatrix {
  const dim = checkDims(samples);
  const n = samples.length;
  const values = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const a = samples[i];
    for (let j = i + 1; j < n; j++) {
      const b = samples[j];
      let d = 0;
      for (let p = 0; p < dim; p++) {
        const diff = a[p] - b[p];
        d += diff * diff;
      }
      values[i * n + j] = d;
      values[j * n + i] = d;
    }
  }
  return { n, values };
}

/** Median of the off-diagonal squared distances: the usual bandwidth heuristic for exp(-d^2 / s). */
export function medianHeuristic(distances: KernelMatrix): number {
  const { n, values } = distances;
  const off: number[] = [];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off.push(values[i * n + j]);
  if (off.length === 0) return 1;
  off.sort((a, b) => a - b);
  const median = off[Math.floor(off.length / 2)];
  return median > 0 ? median : 1;
}

/** Gaussian kernel exp(-||a - b||^2 / bandwidth) on the pooled sample. */
export function gaussianKernelMatrix(samples: Features, bandwidth?: number): KernelMatrix {
  const distances = pairwiseSquaredDistances(samples);
  const s = bandwidth ?? medianHeuristic(distances);
  if (!(s > 0)) throw new RangeError(`bandwidth must be > 0, got ${s}`);
  const values = distances.values.map((d) => Math.exp(-d / s));
  return { n: distances.n, values };
}

export interface DeepKernelParameters {
  /** Bandwidth s_phi of the feature-space Gaussian. */
  sigmaPhi: number;
  /** Bandwidth s_q of the input-space Gaussian. */
  sigmaQ: number;
  /** Weight e in [0, 1] of the plain input-space kernel (keeps the kernel characteristic). */
  epsilon: number;
}

/** Maps each input vector to its feature vector (e.g. a conv net's output for an EPS image). */
export type FeatureMap = (samples: Features) => Features;

/** The deep kernel k(a, b) = [(1 - e) exp(-||phi(a) - phi(b)||^2 / s_phi) + e] exp(-||a - b||^2 / s_q). */
export function deepKernelMatrix(
  samples: Features,
  phi: FeatureMap,
  { sigmaPhi, sigmaQ, epsilon }: DeepKernelParameters,
): KernelMatrix {
  if (!(sigmaPhi > 0 && sigmaQ > 0)) throw new RangeError('sigmaPhi and sigmaQ must be > 0');
  if (!(epsilon >= 0 && epsilon <= 1)) throw new RangeError('epsilon must lie in [0, 1]');
  const features = phi(samples);
  if (features.length !== samples.length)
    throw new RangeError('phi must return one feature vector per sample');
  const inputDistances = pairwiseSquaredDistances(samples);
  const featureDistances = pairwiseSquaredDistances(features);
  const values = new Float64Array(inputDistances.values.length);
  for (let i = 0; i < values.length; i++) {
    const featureTerm = (1 - epsilon) * Math.exp(-featureDistances.values[i] / sigmaPhi) + epsilon;
    values[i] = featureTerm * Math.exp(-inputDistances.values[i] / sigmaQ);
  }
  return { n: inputDistances.n, values };
}

export type MmdEstimator = 'biased' | 'unbiased';

/**
 * MMD^2 of the split (inX[i] true: Z_i belongs to X) of the pooled kernel matrix; the split may be any labelling,
 * which is what the permutation test needs.
 */
function mmd2OfSplit(kernel: KernelMatrix, inX: Uint8Array, estimator: MmdEstimator): number {
  const { n, values } = kernel;
  let m = 0;
  for (let i = 0; i < n; i++) m += inX[i];
  const l = n - m;
  let sumXX = 0;
  let sumYY = 0;
  let sumXY = 0;
  let diagX = 0;
  let diagY = 0;
  for (let i = 0; i < n; i++) {
    const row = i * n;
    const xi = inX[i];
    for (let j = 0; j < n; j++) {
      const k = values[row + j];
      if (xi && inX[j]) sumXX += k;
      else if (!xi && !inX[j]) sumYY += k;
      else sumXY += k;
    }
    if (xi) diagX += values[row + i];
    else diagY += values[row + i];
  }
  // sumXY counted both (x, y) and (y, x).
  const crossMean = sumXY / (2 * m * l);
  if (estimator === 'biased') return sumXX / (m * m) + sumYY / (l * l) - 2 * crossMean;
  if (m < 2 || l < 2) throw new RangeError('the unbiased estimator needs at least 2 samples on each side');
  return (sumXX - diagX) / (m * (m - 1)) + (sumYY - diagY) / (l * (l - 1)) - 2 * crossMean;
}

function splitFirst(n: number, m: number): Uint8Array {
  if (m < 1 || m >= n) throw new RangeError(`need 1 <= |X| < |X| + |Y|, got |X| = ${m} of ${n}`);
  const inX = new Uint8Array(n);
  inX.fill(1, 0, m);
  return inX;
}

/** MMD^2 between X = Z[0..m) and Y = Z[m..n) of a pooled kernel matrix. */
export function mmd2FromKernel(
  kernel: KernelMatrix,
  m: number,
  estimator: MmdEstimator = 'unbiased',
): number {
  return mmd2OfSplit(kernel, splitFirst(kernel.n, m), estimator);
}

/** Gaussian-kernel MMD^2 between two samples (bandwidth: median heuristic on the pooled sample unless given). */
export function gaussianMmd2(
  x: Features,
  y: Features,
  options: { bandwidth?: number; estimator?: MmdEstimator } = {},
): number {
  const kernel = gaussianKernelMatrix([...x, ...y], options.bandwidth);
  return mmd2FromKernel(kernel, x.length, options.estimator ?? 'unbiased');
}

/** Deep-kernel MMD^2 between two samples. */
export function deepKernelMmd2(
  x: Features,
  y: Features,
  phi: FeatureMap,
  parameters: DeepKernelParameters,
  estimator: MmdEstimator = 'unbiased',
): number {
  return mmd2FromKernel(deepKernelMatrix([...x, ...y], phi, parameters), x.length, estimator);
}

export interface PermutationTestResult {
  statistic: number;
  /** (1 + #{permuted statistic >= observed}) / (1 + permutations): never 0, valid at finite permutation counts. */
  pValue: number;
  permutations: number;
}

/**
 * Two-sample permutation test on a pooled kernel matrix (X = the first m rows): the labels are reshuffled
 * `permutations` times (seeded) and the observed MMD^2 is ranked among the permuted ones.
 */
export function mmdPermutationTest(
  kernel: KernelMatrix,
  m: number,
  options: { permutations?: number; seed?: number; estimator?: MmdEstimator } = {},
): PermutationTestResult {
  const permutations = options.permutations ?? 200;
  const estimator = options.estimator ?? 'unbiased';
  if (!Number.isInteger(permutations) || permutations < 1)
    throw new RangeError('permutations must be a positive integer');
  const inX = splitFirst(kernel.n, m);
  const statistic = mmd2OfSplit(kernel, inX, estimator);
  const rng = new Rng(options.seed ?? 0);
  const labels = inX.slice();
  let atLeast = 0;
  for (let p = 0; p < permutations; p++) {
    for (let i = labels.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const tmp = labels[i];
      labels[i] = labels[j];
      labels[j] = tmp;
    }
    if (mmd2OfSplit(kernel, labels, estimator) >= statistic) atLeast++;
  }
  return { statistic, pValue: (1 + atLeast) / (1 + permutations), permutations };
}
