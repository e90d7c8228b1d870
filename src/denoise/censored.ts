/**
 * Censored (clipped) Gaussian observations, for Noise2Score on 8-bit uploads (issue 18).
 *
 * An upload is y = round(255 clip(x + sigma n, 0, 1)) / 255: a pixel that reads 0 only says x + sigma n < 0.5/255,
 * one that reads 1 only says x + sigma n >= 254.5/255. Tweedie's y + sigma^2 s(y) assumes y = x + sigma n, so
 * such pixels (and their neighbours, through the network's receptive field) are denoised as if the noise had
 * stopped at the clip. `imputeCensored` replaces each censored pixel by a value of x + sigma n that is consistent
 * with what was observed, given a pilot estimate m of its clean mean:
 *  - the pilot: the local box mean of y around the pixel, mapped back through the censored-normal mean
 *    E[clip(m + sigma n, 0, 1)] (`censoredMean`, increasing in m, inverted by a table), m kept on [0, 1] (a clean
 *    intensity);
 *  - the value: the truncated-normal mean E[v | v < c] = m - sigma phi(a) / Phi(a), a = (c - m) / sigma (below)
 *    or E[v | v >= c] = m + sigma phi(b) / (1 - Phi(b)) (above), or a seeded draw from that truncated normal.
 *
 * Numerics: Phi and the ratios phi/Phi use the scaled complementary error function erfcx(x) = exp(x^2) erfc(x)
 * (Numerical Recipes' erfcc Chebyshev fit, fractional error below 1.2e-7 everywhere), so the far tails neither
 * underflow nor lose their relative precision.
 */

import { Rng } from '../util/random.js';
import { estimateGaussianSigma, isEightBit } from './estimate.js';

const SQRT2 = Math.SQRT2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** exp(x^2) erfc(x) for x >= 0 (fractional error < 1.2e-7). */
function erfcxNonNegative(x: number): number {
  const t = 1 / (1 + 0.5 * x);
  const poly =
    -1.26551223 +
    t *
      (1.00002368 +
        t *
          (0.37409196 +
            t *
              (0.09678418 +
                t *
                  (-0.18628806 +
                    t *
                      (0.27886807 +
                        t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  return t * Math.exp(poly);
}

/** The standard normal density. */
export function normalPdf(z: number): number {
  return INV_SQRT_2PI * Math.exp(-0.5 * z * z);
}

/** The standard normal distribution function Phi(z). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / SQRT2;
  const upper = 0.5 * Math.exp(-x * x) * erfcxNonNegative(x); // P(N > |z|)
  return z < 0 ? upper : 1 - upper;
}

/** phi(a) / Phi(a) (the inverse Mills ratio of the lower tail), accurate for very negative a too. */
export function lowerMillsRatio(a: number): number {
  if (a >= 0) return normalPdf(a) / normalCdf(a);
  // Phi(a) = exp(-a^2/2) erfcx(-a/sqrt2) / 2, so the exponentials cancel.
  return (2 * INV_SQRT_2PI) / erfcxNonNegative(-a / SQRT2);
}

/** E[v | v < c] for v ~ N(m, s^2). */
export function truncatedMeanBelow(m: number, s: number, c: number): number {
  return m - s * lowerMillsRatio((c - m) / s);
}

/** E[v | v >= c] for v ~ N(m, s^2). */
export function truncatedMeanAbove(m: number, s: number, c: number): number {
  return m + s * lowerMillsRatio((m - c) / s);
}

/** E[clip(v, lo, hi)] for v ~ N(m, s^2). */
export function censoredMean(m: number, s: number, lo = 0, hi = 1): number {
  const alpha = (lo - m) / s;
  const beta = (hi - m) / s;
  const pLo = normalCdf(alpha);
  const pHi = normalCdf(-beta);
  return lo * pLo + hi * pHi + m * (1 - pLo - pHi) + s * (normalPdf(alpha) - normalPdf(beta));
}

/** Inverse of Phi (Acklam's rational approximation, relative error < 1.2e-9), for p in (0, 1). */
export function normalQuantile(p: number): number {
  if (p > 0.5) return -normalQuantile(1 - p);
  if (p < 0.02425) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (
      (((((-7.784894002430293e-3 * q - 3.223964580411365e-1) * q - 2.400758277161838) * q -
        2.549732539343734) *
        q +
        4.374664141464968) *
        q +
        2.938163982698783) /
      ((((7.784695709041462e-3 * q + 3.224671290700398e-1) * q + 2.445134137142996) * q + 3.754408661907416) *
        q +
        1)
    );
  }
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((-3.969683028665376e1 * r + 2.209460984245205e2) * r - 2.759285104469687e2) * r +
      1.38357751867269e2) *
      r -
      3.066479806614716e1) *
      r +
      2.506628277459239) *
      q) /
    (((((-5.447609879822406e1 * r + 1.615858368580409e2) * r - 1.556989798598866e2) * r +
      6.680131188771972e1) *
      r -
      1.328068155288572e1) *
      r +
      1)
  );
}

/** A pixel at or below this reads 0 in 8 bits: x + sigma n < 0.5/255 (censored below). */
export const CENSORED_LOW = 0.5 / 255;
/** A pixel at or above this reads 255 in 8 bits: x + sigma n >= 254.5/255 (censored above). */
export const CENSORED_HIGH = 254.5 / 255;

/** How a censored pixel is replaced: by its truncated-normal mean, or by a seeded draw from that distribution. */
export type CensoredFill = 'mean' | 'draw';

export interface ImputeOptions {
  /** Half side of the box whose mean of y gives the pilot (a (2r+1)^2 box, clamped at the image edges). */
  radius: number;
  fill: CensoredFill;
  /** Seed of the draws ('draw' only). */
  seed?: number;
}

/** Points of the table that inverts censoredMean over m in [0, 1]. */
const PILOT_TABLE_POINTS = 513;

/**
 * The clean mean m in [0, 1] whose censored mean E[clip(m + s n, 0, 1)] is `target`, by a table over [0, 1]
 * (censoredMean is increasing in m) and linear interpolation.
 */
export function censoredMeanInverter(s: number): (target: number) => number {
  const n = PILOT_TABLE_POINTS;
  const table = Float64Array.from({ length: n }, (_, i) => censoredMean(i / (n - 1), s));
  return (target) => {
    if (!(target > table[0])) return 0;
    if (target >= table[n - 1]) return 1;
    let lo = 0;
    let hi = n - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (table[mid] <= target) lo = mid;
      else hi = mid;
    }
    return (lo + (target - table[lo]) / (table[hi] - table[lo])) / (n - 1);
  };
}

/** A draw of v ~ N(m, s^2) given v < c (by inversion; far in the tail, the tail's exponential approximation). */
function drawBelow(m: number, s: number, c: number, u: number): number {
  const a = (c - m) / s;
  if (a < -30) return c - (s * -Math.log1p(-u)) / -a; // Phi(a) too small to invert
  const p = Math.max(Number.MIN_VALUE, u * normalCdf(a));
  return Math.min(c, m + s * normalQuantile(p));
}

/**
 * The thresholds at or beyond which a pixel of `plane` is censored (see imputeCensored), and how many pixels are.
 * An 8-bit plane reads 0 for any noisy value below half a step (CENSORED_LOW) and 1 from CENSORED_HIGH; a finer one
 * (16-bit, float) is clipped only where it reads exactly 0 or 1, and a value near them is a real one; a side counts
 * only when no value lies beyond it (a plane with values below 0 was not clipped at 0).
 */
export function censoredThresholds(plane: Float32Array): {
  low: number;
  high: number;
  lowCut: number;
  highCut: number;
  censored: number;
} {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < plane.length; i++) {
    if (plane[i] < min) min = plane[i];
    if (plane[i] > max) max = plane[i];
  }
  const eightBit = isEightBit(plane);
  const lowCut = eightBit ? CENSORED_LOW : 0;
  const highCut = eightBit ? CENSORED_HIGH : 1;
  const low = min >= 0 ? lowCut : Number.NEGATIVE_INFINITY;
  const high = max <= 1 ? highCut : Number.POSITIVE_INFINITY;
  let censored = 0;
  for (let i = 0; i < plane.length; i++) if (plane[i] <= low || plane[i] >= high) censored++;
  return { low, high, lowCut, highCut, censored };
}

/**
 * The plane with its censored pixels (an 8-bit plane: y <= CENSORED_LOW or y >= CENSORED_HIGH, i.e. it reads 0 or
 * 255; a finer one, 16-bit or float: exactly 0 or 1; on a side only where no value lies beyond the clip, since a plane with values below 0, say, was not clipped at 0) replaced as described at the top
 * of this file, for Gaussian noise of standard deviation s, and how many there were. With none (or s not
 * positive), `plane` itself is returned untouched and the count is 0.
 */
export function imputeCensored(
  plane: Float32Array,
  width: number,
  height: number,
  s: number,
  options: ImputeOptions,
): { plane: Float32Array; censored: number } {
  const { low, high, lowCut, highCut, censored } = censoredThresholds(plane);
  if (censored === 0 || !(s > 0)) return { plane, censored: 0 };
  // Summed-area table of y (float64), for box means in O(1) per censored pixel.
  const w1 = width + 1;
  const sat = new Float64Array(w1 * (height + 1));
  for (let r = 0; r < height; r++) {
    let row = 0;
    for (let c = 0; c < width; c++) {
      row += plane[r * width + c];
      sat[(r + 1) * w1 + c + 1] = sat[r * w1 + c + 1] + row;
    }
  }
  const invert = censoredMeanInverter(s);
  const radius = Math.max(0, Math.floor(options.radius));
  const draws = options.fill === 'draw' ? new Rng(options.seed ?? 0) : undefined;
  const out = plane.slice();
  for (let r = 0; r < height; r++) {
    const r0 = Math.max(0, r - radius);
    const r1 = Math.min(height, r + radius + 1);
    for (let c = 0; c < width; c++) {
      const i = r * width + c;
      const y = plane[i];
      const below = y <= low;
      if (!below && y < high) continue;
      const c0 = Math.max(0, c - radius);
      const c1 = Math.min(width, c + radius + 1);
      const sum = sat[r1 * w1 + c1] - sat[r0 * w1 + c1] - sat[r1 * w1 + c0] + sat[r0 * w1 + c0];
      const m = invert(sum / ((r1 - r0) * (c1 - c0)));
      if (draws) {
        const u = draws.uniform();
        // Above c: by symmetry, minus a draw below -c of N(-m, s^2).
        out[i] = below ? drawBelow(m, s, lowCut, u) : -drawBelow(-m, s, -highCut, u);
      } else {
        out[i] = below ? truncatedMeanBelow(m, s, lowCut) : truncatedMeanAbove(m, s, highCut);
      }
    }
  }
  return { plane: out, censored };
}

/**
 * A Gaussian sigma estimate that accounts for clipped pixels. The wavelet estimator skips 8x8 tiles holding a
 * clipped pixel, so the tiles it keeps near dark or bright areas are those whose noise happened not to reach the
 * clip: their noise is short of its low tail, and strong noise reads low. Here each round replaces the censored
 * pixels by seeded draws from their truncated normal at the current sigma (rounded to 8 bits, as the rest of the
 * image is) and estimates again on the whole image. `first` is the plain estimate; with no censored pixel it is
 * returned as it is.
 */
export function estimateSigmaCensored(
  plane: Float32Array,
  width: number,
  height: number,
  first: number,
  options: { radius: number; rounds: number; seed?: number },
): number {
  let sigma = first;
  const eightBit = isEightBit(plane);
  for (let round = 0; round < options.rounds; round++) {
    const imputed = imputeCensored(plane, width, height, sigma, {
      radius: options.radius,
      fill: 'draw',
      seed: options.seed,
    });
    if (imputed.censored === 0) return first;
    // Rounded to 8 bits (the estimator's lattice median wants it), never back onto 0 or 1, which would mark the
    // tile as clipped again; a finer image keeps its draws as they are (all beyond 0 or 1 already).
    const y = imputed.plane;
    for (let i = 0; i < (eightBit ? y.length : 0); i++) {
      if (y[i] === plane[i]) continue; // not censored
      const u8 = Math.round(y[i] * 255);
      y[i] = (plane[i] <= CENSORED_LOW ? Math.min(-1, u8) : Math.max(256, u8)) / 255;
    }
    const next = estimateGaussianSigma(y, width, height);
    if (!(next > 0)) break;
    sigma = next;
  }
  return sigma;
}
