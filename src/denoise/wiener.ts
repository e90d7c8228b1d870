/**
 * A pilot-guided empirical Wiener stage after Noise2Score (issue 18), as the second step of BM3D without its block
 * matching: the Noise2Score output is the pilot p, and the noisy image y is filtered again with Wiener weights
 * that the pilot gives.
 *
 * For every 8x8 block on a grid of stride `stride` (the last row and column of blocks flush with the image edge, so
 * every pixel is covered), with Y and P the orthonormal 2D DCT coefficients of y's and p's block:
 *   Z = w Y,  w = P^2 / (P^2 + alpha sigma^2)
 * and the block's estimate is the inverse DCT of Z. The overlapping block estimates are averaged with the weight
 * K(i, j) / sum(w^2) (BM3D's aggregation: a block whose estimate kept more noise counts less; K a Kaiser window of
 * beta 2 that lowers the weight of block corners), and the result is mixed with the pilot:
 *   out = mix * z + (1 - mix) * p, clipped to [0, 1].
 *
 * Where y and p agree (sigma 0 and p = y) it returns y; with the clean image as the pilot it is the oracle Wiener
 * filter. Settings, chosen on the held-out selection split only (bench/RESULTS.md, `wiener`; the numpy exploration
 * bench/denoise/wiener_explore.py): block 8 (4 and 6 lose; 12 at stride 4 gains 0.03 and 0.13 dB more at sigma 25
 * and 50, none at 15, for about twice the work), Kaiser beta 2 (0 and 4 lose), alpha 1 (1.5 gains 0.02 dB at sigma
 * 15 and loses 0.02-0.03 at 25 and 50), mix 0.85, stride 3 for time (DEFAULT_WIENER_STRIDE). Collaborative filtering of
 * matched blocks (BM3D's step 2 proper: 16 blocks within +-8 pixels, stride 4) gained about 0.2 dB more there, but
 * its block matching alone is some 300 million operations at 512x512, several times this stage: not done.
 *
 * Cost: the row DCTs of y and p are shared by all blocks that start on the same columns (computed once per row and
 * block column), then per block the column DCTs of y and p and the inverse 2D DCT, about 2.5k multiply-adds; even
 * and odd halves of the 8-point DCT are split so each 1D transform takes 32 multiply-adds instead of 64.
 */

/** The stage after Tweedie's formula (Noise2ScoreOptions.refine): this Wiener filter, or none. */
export type Refine = 'wiener' | 'none';
export const REFINES = ['wiener', 'none'] as const;
/** The stage run by default after Tweedie's formula, for Gaussian noise. */
export const DEFAULT_REFINE: Refine = 'wiener';

/** Side of the blocks (the DCT size). */
export const WIENER_BLOCK = 8;
/**
 * Default distance between block origins (1: every position). Gain over Tweedie alone on the held-out selection
 * split at sigma 15, 25, 50 (mix 0.85) and CPU time of the stage at 512x512 (`npm run bench:wiener`): stride 1
 * +0.51, +0.43, +0.52 dB, 301 ms; stride 2 +0.46, +0.38, +0.47 dB, 79 ms; stride 3 +0.42, +0.35, +0.42 dB, 42 ms;
 * stride 4 +0.34, +0.25, +0.33 dB, 23 ms. Stride 3 keeps most of the gain for a few tens of ms.
 */
export const DEFAULT_WIENER_STRIDE = 3;
/** Default multiplier of sigma^2 in the Wiener weight. */
export const DEFAULT_WIENER_ALPHA = 1;
/** Default share of the Wiener estimate in the output (the rest is the pilot). */
export const DEFAULT_WIENER_MIX = 0.85;
/** Kaiser window parameter of the aggregation. */
export const WIENER_KAISER_BETA = 2;

export interface WienerOptions {
  stride?: number;
  alpha?: number;
  mix?: number;
  /**
   * Relative noise variance of each of the 64 DCT coefficients (index u * 8 + v, u the vertical frequency), mean 1:
   * the noise variance of coefficient k is alpha sigma^2 spectrum[k]. Absent: white noise (all 1). Spatially
   * correlated noise (camera JPEGs, noiseSpectrum below) has most of its variance at low frequencies.
   */
  spectrum?: Float64Array;
}

const B = WIENER_BLOCK;

/** The orthonormal DCT-II matrix, C[u * B + i]. */
const DCT = (() => {
  const c = new Float64Array(B * B);
  for (let u = 0; u < B; u++) {
    const scale = u === 0 ? Math.sqrt(1 / B) : Math.sqrt(2 / B);
    for (let i = 0; i < B; i++) c[u * B + i] = scale * Math.cos((Math.PI * (2 * i + 1) * u) / (2 * B));
  }
  return c;
})();

/**
 * The DCT's even/odd split: C[u][i] = (-1)^u C[u][B-1-i], so X[u] = sum_{i<4} C[u][i] (x[i] + (-1)^u x[7-i]).
 * EVEN[k * 4 + i] = C[2k][i], ODD[k * 4 + i] = C[2k+1][i].
 */
const EVEN = new Float64Array(16);
const ODD = new Float64Array(16);
for (let k = 0; k < 4; k++) {
  for (let i = 0; i < 4; i++) {
    EVEN[k * 4 + i] = DCT[2 * k * B + i];
    ODD[k * 4 + i] = DCT[(2 * k + 1) * B + i];
  }
}

/** The zeroth-order modified Bessel function I0 (power series; plenty for the small arguments used here). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 50; k++) {
    term *= (x / (2 * k)) ** 2;
    sum += term;
    if (term < 1e-17 * sum) break;
  }
  return sum;
}

/** The B x B Kaiser window (outer product of the 1D window numpy.kaiser(B, beta) gives). */
const KAISER = (() => {
  const k1 = new Float64Array(B);
  for (let n = 0; n < B; n++) {
    const t = (2 * n) / (B - 1) - 1;
    k1[n] = besselI0(WIENER_KAISER_BETA * Math.sqrt(1 - t * t)) / besselI0(WIENER_KAISER_BETA);
  }
  const k = new Float64Array(B * B);
  for (let i = 0; i < B; i++) for (let j = 0; j < B; j++) k[i * B + j] = k1[i] * k1[j];
  return k;
})();

/** Block origins along a side of n pixels: 0, stride, 2 stride, ..., and n - B (every pixel covered). */
function origins(n: number, stride: number): Int32Array {
  const list: number[] = [];
  for (let s = 0; s + B <= n; s += stride) list.push(s);
  if (list[list.length - 1] !== n - B) list.push(n - B);
  return Int32Array.from(list);
}

/**
 * The forward 8-point DCT of src[offset + k * step], k = 0..7, into dst[dstOffset + u * dstStep] (even/odd split).
 */
function dct8(
  src: Float64Array,
  offset: number,
  step: number,
  dst: Float64Array,
  dstOffset: number,
  dstStep: number,
): void {
  const x0 = src[offset];
  const x1 = src[offset + step];
  const x2 = src[offset + 2 * step];
  const x3 = src[offset + 3 * step];
  const x4 = src[offset + 4 * step];
  const x5 = src[offset + 5 * step];
  const x6 = src[offset + 6 * step];
  const x7 = src[offset + 7 * step];
  const s0 = x0 + x7;
  const s1 = x1 + x6;
  const s2 = x2 + x5;
  const s3 = x3 + x4;
  const d0 = x0 - x7;
  const d1 = x1 - x6;
  const d2 = x2 - x5;
  const d3 = x3 - x4;
  for (let k = 0; k < 4; k++) {
    const e = k * 4;
    dst[dstOffset + 2 * k * dstStep] = EVEN[e] * s0 + EVEN[e + 1] * s1 + EVEN[e + 2] * s2 + EVEN[e + 3] * s3;
    dst[dstOffset + (2 * k + 1) * dstStep] =
      ODD[e] * d0 + ODD[e + 1] * d1 + ODD[e + 2] * d2 + ODD[e + 3] * d3;
  }
}

/** The inverse 8-point DCT of src[offset + u * step] into dst[dstOffset + i * dstStep]. */
function idct8(
  src: Float64Array,
  offset: number,
  step: number,
  dst: Float64Array,
  dstOffset: number,
  dstStep: number,
) {
  const X0 = src[offset];
  const X1 = src[offset + step];
  const X2 = src[offset + 2 * step];
  const X3 = src[offset + 3 * step];
  const X4 = src[offset + 4 * step];
  const X5 = src[offset + 5 * step];
  const X6 = src[offset + 6 * step];
  const X7 = src[offset + 7 * step];
  for (let i = 0; i < 4; i++) {
    // x[i] = even + odd, x[7 - i] = even - odd.
    const even = EVEN[i] * X0 + EVEN[4 + i] * X2 + EVEN[8 + i] * X4 + EVEN[12 + i] * X6;
    const odd = ODD[i] * X1 + ODD[4 + i] * X3 + ODD[8 + i] * X5 + ODD[12 + i] * X7;
    dst[dstOffset + i * dstStep] = even + odd;
    dst[dstOffset + (7 - i) * dstStep] = even - odd;
  }
}

/**
 * The row DCTs of rows [top, bottom) of a plane at every block column: out[((r - top) * columns + ci) * B + v] is
 * coefficient v of the 8 pixels of row r that start at column cols[ci]. `values` (float64, so that dct8 sees one
 * element type) receives the rows' pixels first.
 */
function rowTransforms(
  plane: Float32Array,
  width: number,
  top: number,
  bottom: number,
  cols: Int32Array,
  values: Float64Array,
  out: Float64Array,
): void {
  const n = cols.length;
  for (let i = 0; i < (bottom - top) * width; i++) values[i] = plane[top * width + i];
  for (let r = 0; r < bottom - top; r++) {
    for (let ci = 0; ci < n; ci++) dct8(values, r * width + cols[ci], 1, out, (r * n + ci) * B, 1);
  }
}

/** Image rows whose row transforms are held at once (a strip), besides the block's own rows: bounds the memory. */
const STRIP_ROWS = 64;

/**
 * The Wiener stage on one grey plane: `noisy` (y, with any clipped pixels already replaced), `pilot` (p, the first
 * estimate), `sigma` the Gaussian noise level on the [0, 1] scale. Returns a new plane clipped to [0, 1]. A plane
 * smaller than a block on a side is returned as the pilot (copied).
 */
export function wienerRefine(
  noisy: Float32Array,
  pilot: Float32Array,
  width: number,
  height: number,
  sigma: number,
  options: WienerOptions = {},
): Float32Array {
  const n = width * height;
  if (noisy.length !== n || pilot.length !== n)
    throw new RangeError(`wienerRefine: planes of ${noisy.length} and ${pilot.length} values, expected ${n}`);
  const stride = Math.min(B, Math.max(1, Math.floor(options.stride ?? DEFAULT_WIENER_STRIDE)));
  const alpha = options.alpha ?? DEFAULT_WIENER_ALPHA;
  const mix = options.mix ?? DEFAULT_WIENER_MIX;
  if (width < B || height < B || !(sigma >= 0)) return pilot.slice();
  const spectrum = options.spectrum;
  if (spectrum !== undefined && (spectrum.length !== B * B || !spectrum.every((v) => v >= 0)))
    throw new RangeError(`wienerRefine: spectrum must hold ${B * B} non-negative values`);
  const noiseVariance = alpha * sigma * sigma;
  const variances = Float64Array.from(
    { length: B * B },
    (_, k) => noiseVariance * (spectrum ? spectrum[k] : 1),
  );
  const rows = origins(height, stride);
  const cols = origins(width, stride);
  const nc = cols.length;
  // Row transforms are held for a strip of rows at a time (STRIP_ROWS + B rows), so the extra memory is a few
  // strips plus the two float32 accumulators, whatever the image's height.
  const held = Math.min(height, STRIP_ROWS + B);
  const values = new Float64Array(held * width);
  const rowY = new Float64Array(held * nc * B);
  const rowP = new Float64Array(held * nc * B);
  const accumulated = new Float32Array(n);
  const weights = new Float32Array(n);
  const ty = new Float64Array(B * B);
  const tp = new Float64Array(B * B);
  const half = new Float64Array(B * B);
  const block = new Float64Array(B * B);
  const rowStep = nc * B;
  for (let first = 0; first < rows.length; ) {
    // The block rows of this strip: those whose 8 rows lie within `held` rows of the strip's first one.
    const top = rows[first];
    let last = first;
    while (last + 1 < rows.length && rows[last + 1] + B <= top + held) last++;
    const bottom = rows[last] + B;
    rowTransforms(noisy, width, top, bottom, cols, values, rowY);
    rowTransforms(pilot, width, top, bottom, cols, values, rowP);
    for (let ri = first; ri <= last; ri++) {
      const r = rows[ri];
      for (let ci = 0; ci < nc; ci++) {
        const c = cols[ci];
        // Column DCTs: ty[u * B + v] from the row transforms of rows r..r+7 at this block column.
        const base = ((r - top) * nc + ci) * B;
        for (let v = 0; v < B; v++) {
          dct8(rowY, base + v, rowStep, ty, v, B);
          dct8(rowP, base + v, rowStep, tp, v, B);
        }
        let sumW2 = 0;
        for (let k = 0; k < B * B; k++) {
          const p2 = tp[k] * tp[k];
          const denominator = p2 + variances[k];
          // sigma 0: every coefficient kept (the limit of w as sigma -> 0, also where P = 0).
          const w = denominator > 0 ? p2 / denominator : 1;
          ty[k] *= w;
          sumW2 += w * w;
        }
        // Inverse: along u (columns) into half[i * B + v], then along v (rows) into block[i * B + j].
        for (let v = 0; v < B; v++) idct8(ty, v, B, half, v, B);
        for (let i = 0; i < B; i++) idct8(half, i * B, 1, block, i * B, 1);
        const blockWeight = 1 / Math.max(sumW2, 1e-3);
        for (let i = 0; i < B; i++) {
          const o = (r + i) * width + c;
          for (let j = 0; j < B; j++) {
            const weight = blockWeight * KAISER[i * B + j];
            accumulated[o + j] += weight * block[i * B + j];
            weights[o + j] += weight;
          }
        }
      }
    }
    first = last + 1;
  }
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = mix * (accumulated[i] / weights[i]) + (1 - mix) * pilot[i];
    out[i] = Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : pilot[i];
  }
  return out;
}

/** The median of chi-squared with one degree of freedom: median(z^2) for z standard normal. */
const CHI2_1_MEDIAN = 0.454936423119572;

/**
 * The noise's level and DCT spectrum as seen in the residual `noisy - pilot` of one plane (for a pilot that removed
 * the noise and little else): per coefficient of the 8x8 orthonormal DCT over the non-overlapping blocks, the
 * variance median(X_k^2) / median(chi^2_1) (robust to the edges the pilot smoothed); sigma is the square root of
 * their mean (Parseval: for white noise every coefficient has variance sigma^2) and spectrum the variances over
 * sigma^2 (mean 1), as wienerRefine's `spectrum` wants them. A plane smaller than a block, or a residual that is
 * zero: sigma 0, white spectrum.
 */
export function noiseSpectrum(
  noisy: Float32Array,
  pilot: Float32Array,
  width: number,
  height: number,
): { sigma: number; spectrum: Float64Array } {
  const white = { sigma: 0, spectrum: new Float64Array(B * B).fill(1) };
  const br = Math.floor(height / B);
  const bc = Math.floor(width / B);
  if (br === 0 || bc === 0) return white;
  const squares = Array.from({ length: B * B }, () => new Float64Array(br * bc));
  const block = new Float64Array(B * B);
  const half = new Float64Array(B * B);
  const coefficients = new Float64Array(B * B);
  for (let r = 0; r < br; r++) {
    for (let c = 0; c < bc; c++) {
      for (let i = 0; i < B; i++) {
        const o = (r * B + i) * width + c * B;
        for (let j = 0; j < B; j++) block[i * B + j] = noisy[o + j] - pilot[o + j];
      }
      // Along each row (v), then along each column (u): coefficients[u * B + v].
      for (let i = 0; i < B; i++) dct8(block, i * B, 1, half, i * B, 1);
      for (let v = 0; v < B; v++) dct8(half, v, B, coefficients, v, B);
      for (let k = 0; k < B * B; k++) squares[k][r * bc + c] = coefficients[k] ** 2;
    }
  }
  const variances = squares.map((q) => {
    q.sort();
    const m = q.length;
    const median = m % 2 ? q[m >> 1] : 0.5 * (q[(m >> 1) - 1] + q[m >> 1]);
    return median / CHI2_1_MEDIAN;
  });
  const meanVariance = variances.reduce((a, v) => a + v, 0) / variances.length;
  if (!(meanVariance > 0)) return white;
  return { sigma: Math.sqrt(meanVariance), spectrum: Float64Array.from(variances, (v) => v / meanVariance) };
}
