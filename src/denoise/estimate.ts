/**
 * Blind noise-level estimation for Noise2Score.
 *
 * All three estimators look at the finest diagonal Haar (db1) detail coefficient of each 2x2 block,
 * d = (a - b - c + e) / 2, which is almost free of image content in smooth regions and whose variance equals the
 * pixel noise variance (orthonormal transform). A median over blocks ignores the edges and textures that leak
 * into d (they are a minority of blocks):
 *  - Gaussian:  sigma = median(|d|) / 0.6745                        (as scikit-image `estimate_sigma`);
 *  - Poisson:   Var(y | x) = zeta x, so d^2 / (zeta m) ~ chi^2_1 with m the block mean:
 *               zeta = median(d^2 / m) / 0.4549  (0.4549 = median of chi^2_1), over blocks with m > 0.02;
 *  - Gamma:     Var(y | x) = x^2 / k, so k d^2 / m^2 ~ chi^2_1:  k = 0.4549 / median(d^2 / m^2), over m > 0.02.
 * The variance-vs-mean relations assume x is locally flat within a 2x2 block; that is the same assumption as the
 * Gaussian MAD estimator.
 *
 * The paper's own approach is also offered (`estimateLevelByTotalVariation`): given the score map R(y), choose the
 * level on a grid whose Tweedie output has the smallest total variation. Too small a level leaves noise; too large
 * a level over-corrects (y + sigma^2 R flips the residual noise's sign, growing it again), so TV has its minimum
 * near the true level.
 */
import type { NoiseFamily } from './noise.js';
import { type FloatArray, tweedieGamma, tweedieGaussian, tweediePoisson } from './tweedie.js';

const MAD_TO_SIGMA = 0.6745;
const CHI2_1_MEDIAN = 0.454936;

function median(values: Float64Array): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : 0.5 * (sorted[mid - 1] + sorted[mid]);
}

/** Diagonal Haar detail d and block mean m for each full 2x2 block of a grey image. */
function haarDiagonal(
  y: FloatArray,
  width: number,
  height: number,
): { detail: Float64Array; mean: Float64Array } {
  const bw = width >> 1;
  const bh = height >> 1;
  const detail = new Float64Array(bw * bh);
  const mean = new Float64Array(bw * bh);
  for (let by = 0; by < bh; by++) {
    for (let bx = 0; bx < bw; bx++) {
      const i = 2 * by * width + 2 * bx;
      const a = y[i];
      const b = y[i + 1];
      const c = y[i + width];
      const e = y[i + width + 1];
      detail[by * bw + bx] = (a - b - c + e) / 2;
      mean[by * bw + bx] = (a + b + c + e) / 4;
    }
  }
  return { detail, mean };
}

/** Gaussian sigma (same units as y) by the wavelet median absolute deviation. */
export function estimateGaussianSigma(y: FloatArray, width: number, height: number): number {
  const { detail } = haarDiagonal(y, width, height);
  return median(detail.map(Math.abs)) / MAD_TO_SIGMA;
}

const MIN_BLOCK_MEAN = 0.02;

/** Poisson zeta of y = zeta * Poisson(x / zeta), y on the [0, 1] scale. */
export function estimatePoissonZeta(y: FloatArray, width: number, height: number): number {
  const { detail, mean } = haarDiagonal(y, width, height);
  const ratios: number[] = [];
  for (let i = 0; i < detail.length; i++)
    if (mean[i] > MIN_BLOCK_MEAN) ratios.push((detail[i] * detail[i]) / mean[i]);
  return median(Float64Array.from(ratios)) / CHI2_1_MEDIAN;
}

/** Gamma shape k of y = x * Gamma(k, 1/k). */
export function estimateGammaShape(y: FloatArray, width: number, height: number): number {
  const { detail, mean } = haarDiagonal(y, width, height);
  const ratios: number[] = [];
  for (let i = 0; i < detail.length; i++) {
    if (mean[i] > MIN_BLOCK_MEAN) ratios.push((detail[i] * detail[i]) / (mean[i] * mean[i]));
  }
  return CHI2_1_MEDIAN / median(Float64Array.from(ratios));
}

/** The level (sigma on [0,1] / zeta / k) of the given family, estimated from the noisy image alone. */
export function estimateNoiseLevel(
  family: NoiseFamily,
  y: FloatArray,
  width: number,
  height: number,
): number {
  switch (family) {
    case 'gaussian':
      return estimateGaussianSigma(y, width, height);
    case 'poisson':
      return estimatePoissonZeta(y, width, height);
    case 'gamma':
      return estimateGammaShape(y, width, height);
  }
}

/** Anisotropic total variation sum |dx| + |dy| of a grey image. */
export function totalVariation(x: FloatArray, width: number, height: number): number {
  let tv = 0;
  for (let r = 0; r < height; r++) {
    for (let c = 0; c < width; c++) {
      const i = r * width + c;
      if (c + 1 < width) tv += Math.abs(x[i + 1] - x[i]);
      if (r + 1 < height) tv += Math.abs(x[i + width] - x[i]);
    }
  }
  return tv;
}

/** Applies the family's Tweedie formula (score on the family's scale: see tweedie.ts). */
export function applyTweedie(
  family: NoiseFamily,
  y: Float32Array,
  score: Float32Array,
  level: number,
): Float32Array {
  switch (family) {
    case 'gaussian':
      return tweedieGaussian(y, score, level);
    case 'poisson':
      return tweediePoisson(y, score, level);
    case 'gamma':
      return tweedieGamma(y, score, level);
  }
}

/** Default candidate grids (the training ranges, a little widened), geometric so each step is a similar ratio. */
export function defaultLevelGrid(family: NoiseFamily, points = 41): Float64Array {
  const [lo, hi] =
    family === 'gaussian' ? [2 / 255, 70 / 255] : family === 'poisson' ? [0.002, 0.15] : [20, 200];
  return Float64Array.from({ length: points }, (_, i) => lo * (hi / lo) ** (i / (points - 1)));
}

/**
 * The paper's blind rule: the level on `grid` whose Tweedie output (clipped to [0,1]) has the least total variation.
 * Returns the level and the TV curve (for diagnostics).
 */
export function estimateLevelByTotalVariation(
  family: NoiseFamily,
  y: Float32Array,
  score: Float32Array,
  width: number,
  height: number,
  grid: Float64Array = defaultLevelGrid(family),
): { level: number; curve: Float64Array } {
  const curve = new Float64Array(grid.length);
  let best = 0;
  for (let j = 0; j < grid.length; j++) {
    const out = applyTweedie(family, y, score, grid[j]);
    for (let i = 0; i < out.length; i++) out[i] = Math.min(1, Math.max(0, out[i]));
    curve[j] = totalVariation(out, width, height);
    if (curve[j] < curve[best]) best = j;
  }
  return { level: grid[best], curve };
}
