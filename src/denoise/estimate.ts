/**
 * Blind noise-level estimation for Noise2Score.
 *
 * The wavelet estimators look at the Haar (db1) details of each 2x2 block [a b; c e]: horizontal h = (a+b-c-e)/2,
 * vertical v = (a-b+c-e)/2 and diagonal d = (a-b-c+e)/2, and the block mean m. Under white noise the three are
 * independent with the pixel noise variance (orthonormal transform). Image content leaks into them too, most into
 * h and v, and a median over every block of the image is not enough on textured photographs: on the held-out
 * selection photographs (bench/denoise/heldout.ts) the whole-image median read a Gamma k = 100 as 76 on average
 * (62 to 100) and a Gaussian sigma 15 as 16.3 (14.8 to 17.0).
 *
 * So the estimators first pick the weakest-textured tiles (8x8 pixels) by their h and v energy, then take the
 * median of d over those tiles alone. Because d is independent of h and v under the noise, choosing tiles by h and v
 * does not bias d's noise statistics; it only drops the tiles where texture would inflate them. Tiles holding a
 * saturated pixel (exactly 0 or 1: clipped by an 8-bit encoding, which shrinks the noise) are skipped.
 *  - Gaussian:  sigma^2 = median(d^2) / 0.4549               (0.4549 = median of chi^2_1);
 *  - Poisson:   Var(y | x) = zeta x, so d^2 / (zeta m) ~ chi^2_1:  zeta = mean(d^2 / m), over m > 0.02;
 *  - Gamma:     Var(y | x) = x^2 / k, so k d^2 / m^2 ~ chi^2_1:  k = 1 / mean(d^2 / m^2), over m > 0.02;
 *   (Poisson and Gamma: the mean of the lower 95 % of the ratios, rescaled to the full chi^2_1 mean.)
 * The variance-vs-mean relations assume x is locally flat within a 2x2 block, as the Gaussian estimator does.
 * The fraction of tiles kept and the statistic (WEAK_TEXTURE_KEEP) were chosen on the selection photographs only.
 * Gamma instead keeps the tiles whose texture is consistent with noise alone (noiseConsistentLevel, to its fixed
 * point), subtracts the variance of 8-bit rounding, and takes out the texture that still leaks into those tiles' d,
 * as the next Haar level sees it (textureCorrectedLevel). On the report photographs the noise-consistent tiles took
 * Gamma's worst image (grass, texture everywhere) from k 100 read as 74 to 95, and k 400 read as 190 to 340.
 *
 * White-noise check (`gaussianNoiseLooksWhite`): a camera JPEG's noise is spatially correlated and its finest
 * details are quantised away, so a finest-scale estimator reads about 0 on it (0 to 0.74/255 on the PolyU training
 * scenes, whose noisy-minus-mean deviation is 2.4 to 6.9/255) and Tweedie with that level returns the input. When
 * the finest scale sees almost nothing, or the next scale (2x2 means, rescaled) sees much more noise than the
 * finest, the noise is not white and the wavelet level is not to be trusted; the denoiser then uses the TV rule.
 *
 * The paper's own approach is also offered (`estimateLevelByTotalVariation`): given the score map R(y), choose the
 * level on a grid whose Tweedie output has the smallest total variation. Too small a level leaves noise; too large
 * a level over-corrects (y + sigma^2 R flips the residual noise's sign, growing it again), so TV has its minimum
 * near the true level.
 */
import type { NoiseFamily } from './noise.js';
import { type FloatArray, tweedieGamma, tweedieGaussian, tweediePoisson } from './tweedie.js';

const CHI2_1_MEDIAN = 0.454936;
/** median(|z|) for z ~ N(0, 1). */
const MAD_TO_SIGMA = 0.6745;

function median(values: Float64Array): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : 0.5 * (sorted[mid - 1] + sorted[mid]);
}

/** Side of a tile, in 2x2 blocks (a tile is 8x8 pixels). */
const TILE_BLOCKS = 4;
/** Fewest tiles kept, so that small images still pool enough coefficients. */
const MIN_TILES = 16;

/**
 * Fraction of tiles kept (the least textured) per family, and the statistic of their ratios: the median, or the
 * mean of the lower 95 % (more efficient: fewer tiles suffice, so fewer textured ones slip in). Chosen on the
 * held-out selection photographs (bench/denoise/heldout.ts, 256x256 8-bit clipped; mean ratio estimate/true and the
 * worst image; `npx tsx bench/denoise/estimator-check.ts selection`): Gaussian median of 0.3: sigma 15/25/50 1.04/1.01/1.00 (worst 9 %; the trimmed mean read sigma 50
 * 5 % low, as clipping shortens the tails); Poisson trimmed mean of 0.1: zeta 0.01 1.04 (worst 10 %, median of 0.3:
 * 13 %); Gamma trimmed mean of 0.1: k 50/100/150 0.97/0.98/0.94 (worst 8/6/16 %), where the median of 0.3 gave
 * 0.94/0.93/0.90 (worst 9/15/24 %) and the whole-image median of before 0.83/0.76 at k 50/100. (Gamma no longer
 * keeps a fixed fraction: see noiseConsistentLevel; its entry is what the PyTorch parity fixture compares against.)
 */
export const WEAK_TEXTURE_KEEP: Record<NoiseFamily, number> = { gaussian: 0.3, poisson: 0.1, gamma: 0.1 };

/** E[X | X < q95] / E[X] for X ~ chi^2_1: P(chi^2_3 < 3.841) / 0.95 = 0.7209 / 0.95 (as x f_1(x) = f_3(x)). */
const CHI2_1_TRIMMED_MEAN = 0.7209 / 0.95;

/** The mean of chi^2_1-distributed ratios estimated from their lower 95 % (robust to a few textured blocks). */
function trimmedChi2Mean(values: Float64Array): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const n = Math.max(1, Math.floor(0.95 * sorted.length));
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i];
  return sum / n / CHI2_1_TRIMMED_MEAN;
}

interface Tile {
  /** Mean of (h^2 + v^2) / 2 / scale(m) over the tile's blocks: the noise level plus the tile's texture. */
  texture: number;
  /** d^2 / scale(m) of each block: chi^2_1 times the noise level where the tile is flat. */
  ratios: number[];
  /**
   * The next Haar level's details of the tile (from its 4x4 block means: 4 coarse blocks, h, v and d each), squared
   * over scale(M) of their coarse block: a quarter of the noise level plus the tile's coarse texture (coarseDetail).
   * NaN when no coarse block has a positive scale.
   */
  coarse: number;
}

/**
 * The mean of the next Haar level's squared details over scale(M), from a tile's 4x4 block means (row-major, NaN
 * where a block lies outside the image): each 2x2 of block means is a coarse block [A B; C E] with mean M. Those
 * details are linear in the block means, which are orthogonal to the blocks' own h, v and d, so under white noise
 * they are independent of them; their noise is a quarter of the finest level's (a block mean averages 4 pixels), and
 * `rounding` / 4 of 8-bit rounding. NaN when no coarse block counts.
 */
function coarseDetail(means: Float64Array, scale: (m: number) => number, rounding: number): number {
  let sum = 0;
  let count = 0;
  for (const [r, c] of [
    [0, 0],
    [0, 2],
    [2, 0],
    [2, 2],
  ]) {
    const a = means[r * TILE_BLOCKS + c];
    const b = means[r * TILE_BLOCKS + c + 1];
    const cc = means[(r + 1) * TILE_BLOCKS + c];
    const e = means[(r + 1) * TILE_BLOCKS + c + 1];
    const s = scale((a + b + cc + e) / 4);
    if (!(s > 0)) continue; // a block outside the image (NaN) or too dark
    const h = (a + b - cc - e) / 2;
    const v = (a - b + cc - e) / 2;
    const d = (a - b - cc + e) / 2;
    sum += (h * h + v * v + d * d - (3 * rounding) / 4) / s;
    count += 3;
  }
  return count > 0 ? sum / count : Number.NaN;
}

/**
 * The 8x8 tiles of y with their texture and diagonal-detail ratios, least textured first. A block whose scale is
 * not positive (too dark for Poisson/Gamma) is left out, and so is a tile with a saturated pixel unless every tile
 * has one. `rounding` (the variance an 8-bit rounding adds to each of h, v and d: (1/255)^2 / 12) is subtracted
 * before dividing by scale(m).
 */
function textureTiles(
  y: FloatArray,
  width: number,
  height: number,
  scale: (m: number) => number,
  rounding = 0,
): Tile[] {
  const side = 2 * TILE_BLOCKS;
  const tiles: Tile[] = [];
  const clipped: Tile[] = [];
  const rowsOfTiles = Math.max(1, Math.floor(height / side));
  const colsOfTiles = Math.max(1, Math.floor(width / side));
  const means = new Float64Array(TILE_BLOCKS * TILE_BLOCKS);
  for (let ty = 0; ty < rowsOfTiles; ty++) {
    for (let tx = 0; tx < colsOfTiles; tx++) {
      let texture = 0;
      const ratios: number[] = [];
      let saturated = false;
      means.fill(Number.NaN);
      for (let by = 2 * ty * TILE_BLOCKS; by < Math.min(2 * (ty + 1) * TILE_BLOCKS, height - 1); by += 2) {
        for (let bx = 2 * tx * TILE_BLOCKS; bx < Math.min(2 * (tx + 1) * TILE_BLOCKS, width - 1); bx += 2) {
          const i = by * width + bx;
          const a = y[i];
          const b = y[i + 1];
          const c = y[i + width];
          const e = y[i + width + 1];
          if (a === 0 || b === 0 || c === 0 || e === 0 || a === 1 || b === 1 || c === 1 || e === 1) {
            saturated = true;
          }
          const m = (a + b + c + e) / 4;
          means[((by >> 1) - ty * TILE_BLOCKS) * TILE_BLOCKS + (bx >> 1) - tx * TILE_BLOCKS] = m;
          const s = scale(m);
          if (!(s > 0)) continue;
          const h = (a + b - c - e) / 2;
          const v = (a - b + c - e) / 2;
          const d = (a - b - c + e) / 2;
          texture += ((h * h + v * v) / 2 - rounding) / s;
          ratios.push((d * d - rounding) / s);
        }
      }
      if (ratios.length > 0) {
        const tile = {
          texture: texture / ratios.length,
          ratios,
          coarse: coarseDetail(means, scale, rounding),
        };
        (saturated ? clipped : tiles).push(tile);
      }
    }
  }
  // Every tile holds a clipped pixel (strong noise on a bright or dark image): a biased estimate beats none (NaN).
  return (tiles.length > 0 ? tiles : clipped).sort((p, q) => p.texture - q.texture);
}

/** The ratios of the `count` least textured tiles (tiles sorted by texture). */
function ratiosOf(tiles: Tile[], count: number): Float64Array {
  return Float64Array.from(tiles.slice(0, count).flatMap((t) => t.ratios));
}

/** How many tiles a fixed fraction `keep` is (at least MIN_TILES, at most all). */
function keptCount(tiles: Tile[], keep: number): number {
  return Math.min(tiles.length, Math.max(MIN_TILES, Math.ceil(keep * tiles.length)));
}

/**
 * The diagonal-detail ratios d^2 / scale(m) of the `keep` fraction of 8x8 tiles with the least h/v energy (also
 * divided by scale(m)).
 */
function weakTextureRatios(
  y: FloatArray,
  width: number,
  height: number,
  scale: (m: number) => number,
  keep: number,
): Float64Array {
  const tiles = textureTiles(y, width, height, scale);
  return ratiosOf(tiles, keptCount(tiles, keep));
}

/**
 * Tiles whose texture is at most NOISE_CONSISTENT_TEXTURE times the noise level are kept by the noise-consistent
 * rule (below). Under noise alone a tile's texture is the level times chi^2_32 / 32 (16 blocks, h and v each), so 1
 * keeps about half of the flat tiles; larger values let more texture in. Chosen on the selection photographs and the
 * last 40 train400 images (`npx tsx bench/denoise/estimator-check.ts selection`), with 1.2 and 1.33 close behind.
 */
export const NOISE_CONSISTENT_TEXTURE = 1;
/** Rounds of the noise-consistent rule (a fixed point: it settles in a few; later rounds change nothing). */
const NOISE_CONSISTENT_ROUNDS = 10;

/** How many of the tiles (sorted by texture) have a texture of at most `factor` times `level` (at least MIN_TILES). */
function consistentCount(tiles: Tile[], level: number, factor: number): number {
  let count = 0;
  while (count < tiles.length && tiles[count].texture <= factor * level) count++;
  return Math.min(tiles.length, Math.max(MIN_TILES, count));
}

/**
 * The noise level (the mean of the ratios, by `statistic`) from the tiles whose texture is consistent with noise
 * alone, rather than from a fixed fraction of them. On an image that is texture everywhere (scikit-image's grass)
 * the least textured 10 % of tiles are still textured, and the texture that leaks into d reads as noise (k = 100
 * read as 74); on a mostly flat image a fixed fraction throws most of the flat tiles away. So: start from the
 * MIN_TILES least textured tiles, keep every tile whose texture is at most NOISE_CONSISTENT_TEXTURE times the level
 * (at least MIN_TILES), estimate again, and repeat to the fixed point. Since d is independent of h and v under
 * Gaussian noise (nearly so under Gamma noise), selecting tiles by their h/v texture leaves d's statistics on
 * noise-only tiles unbiased.
 *
 * The rule of before started from the least textured 10 % and let the level only fall: a start that read the noise
 * low by chance was kept, so on a noise-only 256x256 ramp it read Gamma's k 2-3 % high on average and up to 18 %
 * high (sd 2.4-4.7 % at k 25-400 over 20 seeds); to the fixed point it reads 0-1 % high, sd 1.2-1.9 %.
 */
function noiseConsistentLevel(tiles: Tile[], statistic: (ratios: Float64Array) => number): number {
  let count = Math.min(tiles.length, MIN_TILES);
  let level = statistic(ratiosOf(tiles, count));
  for (let round = 0; round < NOISE_CONSISTENT_ROUNDS && Number.isFinite(level); round++) {
    const next = consistentCount(tiles, level, NOISE_CONSISTENT_TEXTURE);
    if (next === count) break; // the same tiles: the level is at its fixed point
    count = next;
    level = statistic(ratiosOf(tiles, count));
  }
  return level;
}

/**
 * The band of tiles (texture at most this times the level) over which Gamma's texture correction fits how the
 * fine diagonal detail grows with the coarse texture: wider than the kept tiles, for a spread of texture to fit on.
 * Chosen on the selection photographs and the last 40 train400 images (2 close behind; 1, the kept tiles alone,
 * worse).
 */
export const TEXTURE_CORRECTION_BAND = 4;
/**
 * The most of the coarse texture that the correction lets reach d (the fitted slope's upper clamp). Natural texture
 * has less energy at the finest scale than one level up; a steeper fit comes from clipped or few tiles (train400's
 * test_400 at k = 25, a bright haystack: 1 fitted, k read 39 % high). On the selection photographs the fit stays
 * below 0.25; on the train400 images 0.5 did as well as 1 (rms error 7.0 against 7.4 % at k = 25).
 */
export const MAX_TEXTURE_SLOPE = 0.5;

/**
 * Gamma's noise level with the texture that leaks into the kept tiles' d taken out. On an image that is texture
 * everywhere (scikit-image's gravel), even the least textured tiles hold fine texture, and part of it reaches d: at
 * k = 400 (a relative variance of 1/400) the 16 least textured tiles of gravel's clean crop carry 0.18/400 in d,
 * which reads k 13 % low, and at k = 25 the tiles that the noise lets through are close to random ones (k 2-8 %
 * low). Texture is spatially correlated, so where it reaches d it is seen one Haar level up too, while the noise
 * there is a quarter of the finest level's; and the coarse details depend on the block means only, which under
 * white noise are independent of the blocks' h, v and d. So: over the tiles whose texture is at most
 * TEXTURE_CORRECTION_BAND times the level, fit the tiles' mean d ratio D against their coarse detail C (least
 * squares slope b, clamped to [0, MAX_TEXTURE_SLOPE]); over the kept tiles (NOISE_CONSISTENT_TEXTURE)
 * D = level + b (C - level / 4) on average, so level = (mean D - b mean C) / (1 - b / 4). Without texture b is
 * near 0 and the mean C is a quarter of the level, so the answer stays the kept tiles' mean d ratio whatever the
 * fitted b. Tiles without a coarse detail (too dark, or outside the image) are left out; `level` is returned as it
 * is when it is not positive, when the fit cannot be made or when it gives no positive level. One pass:
 * re-selecting the kept tiles with the corrected level and correcting again made the level oscillate between rounds.
 */
function textureCorrectedLevel(tiles: Tile[], level: number): number {
  if (!(level > 0)) return level;
  const withCoarse = (count: number) => tiles.slice(0, count).filter((t) => !Number.isNaN(t.coarse));
  const band = withCoarse(consistentCount(tiles, level, TEXTURE_CORRECTION_BAND));
  const kept = withCoarse(consistentCount(tiles, level, NOISE_CONSISTENT_TEXTURE));
  if (band.length < 2 || kept.length === 0) return level;
  const bandC = meanOf(band.map((t) => t.coarse));
  const bandD = meanOf(band.map((t) => meanOf(t.ratios)));
  let cov = 0;
  let varC = 0;
  for (const t of band) {
    cov += (t.coarse - bandC) * (meanOf(t.ratios) - bandD);
    varC += (t.coarse - bandC) ** 2;
  }
  const slope = varC > 0 ? Math.min(MAX_TEXTURE_SLOPE, Math.max(0, cov / varC)) : 0;
  const keptC = meanOf(kept.map((t) => t.coarse));
  const keptD = meanOf(kept.map((t) => meanOf(t.ratios)));
  const corrected = (keptD - slope * keptC) / (1 - slope / 4);
  return corrected > 0 ? corrected : level;
}

/** The plain mean of `values`. */
function meanOf(values: number[]): number {
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** The variance 8-bit rounding adds to a Haar detail of y (uniform error of 1/255 per pixel), 0 for other images. */
function roundingVariance(y: FloatArray): number {
  return isEightBit(y) ? 1 / (12 * 255 * 255) : 0;
}

/** True when the sampled values are all multiples of 1/255 (an 8-bit image, as uploads are). */
export function isEightBit(y: FloatArray): boolean {
  for (let i = 0; i < y.length; i += 7) {
    const v = y[i] * 255;
    if (Math.abs(v - Math.round(v)) > 1e-3) return false;
  }
  return y.length > 0;
}

/**
 * The median of |d| when d lies on a lattice of `step` (an 8-bit image: d = (a-b-c+e)/2 moves in steps of 0.5/255).
 * The plain median jumps by whole steps (5 % of sigma at 15/255); this interpolates within the median's step as for
 * grouped data: lower edge + step * (n/2 - count below) / count in the step (the first step, |d| = 0, is half wide).
 */
function latticeMedianAbs(squares: Float64Array, step: number): number {
  const abs = Float64Array.from(squares, (v) => Math.sqrt(Math.max(v, 0))).sort();
  const n = abs.length;
  const m = abs[n >> 1];
  let below = 0;
  let within = 0;
  for (const v of abs) {
    if (v < m - step / 4) below++;
    else if (v <= m + step / 4) within++;
  }
  const lower = m < step / 4 ? 0 : m - step / 2;
  const width = m < step / 4 ? step / 2 : step;
  return lower + (width * (n / 2 - below)) / within;
}

/** Gaussian sigma (same units as y) from the weakest-textured tiles' diagonal details. */
export function estimateGaussianSigma(y: FloatArray, width: number, height: number): number {
  const ratios = weakTextureRatios(y, width, height, () => 1, WEAK_TEXTURE_KEEP.gaussian);
  if (ratios.length > 0 && isEightBit(y)) return latticeMedianAbs(ratios, 0.5 / 255) / MAD_TO_SIGMA;
  return Math.sqrt(median(ratios) / CHI2_1_MEDIAN);
}

const MIN_BLOCK_MEAN = 0.02;

/** Poisson zeta of y = zeta * Poisson(x / zeta), y on the [0, 1] scale. */
export function estimatePoissonZeta(y: FloatArray, width: number, height: number): number {
  const scale = (m: number) => (m > MIN_BLOCK_MEAN ? m : 0);
  return trimmedChi2Mean(weakTextureRatios(y, width, height, scale, WEAK_TEXTURE_KEEP.poisson));
}

/**
 * The Gamma shape reported for an image whose relative variance is at most 1 / this (zero or below once the 8-bit
 * rounding is subtracted: no noise left to see). Tweedie's Gamma formula then returns y within 1e-6 relative, where
 * 1 / a negative variance (a clean 8-bit image) gave a negative k and an all-black answer.
 */
export const GAMMA_SHAPE_NOISE_FREE = 1e6;

/**
 * Gamma shape k of y = x * Gamma(k, 1/k): 1 / the relative variance of the noise-consistent tiles (8-bit rounding
 * subtracted; it is 20 % of the noise at k = 400 where x = 0.05), at most GAMMA_SHAPE_NOISE_FREE.
 */
export function estimateGammaShape(y: FloatArray, width: number, height: number): number {
  const scale = (m: number) => (m > MIN_BLOCK_MEAN ? m * m : 0);
  const tiles = textureTiles(y, width, height, scale, roundingVariance(y));
  const variance = textureCorrectedLevel(tiles, noiseConsistentLevel(tiles, trimmedChi2Mean));
  if (Number.isNaN(variance)) return variance;
  return variance > 1 / GAMMA_SHAPE_NOISE_FREE ? 1 / variance : GAMMA_SHAPE_NOISE_FREE;
}

/** 2x2 block means: the image one Haar level down (white noise of std sigma becomes sigma / 2). */
function halve(
  y: FloatArray,
  width: number,
  height: number,
): { y: Float64Array; width: number; height: number } {
  const w = width >> 1;
  const h = height >> 1;
  const out = new Float64Array(w * h);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const i = 2 * r * width + 2 * c;
      out[r * w + c] = (y[i] + y[i + 1] + y[i + width] + y[i + width + 1]) / 4;
    }
  }
  return { y: out, width: w, height: h };
}

/** Below this finest-scale sigma (on [0,1]) an 8-bit image's noise cannot be told from its rounding. */
export const MIN_WHITE_SIGMA = 1 / 255;
/** Above this ratio of next-scale to finest-scale sigma, the noise is correlated (or the estimate is content). */
export const MAX_SCALE_RATIO = 2;

/**
 * Whether Gaussian noise in y looks white enough for the wavelet estimate: the finest-scale sigma is at least
 * MIN_WHITE_SIGMA and the sigma measured one Haar level down (times 2) is at most MAX_SCALE_RATIO times it.
 * White noise gives a ratio near 1 (0.9 to 1.1 at sigma 15 on the selection photographs); the PolyU JPEGs read
 * 0 to 0.74/255 at the finest scale.
 */
export function gaussianNoiseLooksWhite(
  y: FloatArray,
  width: number,
  height: number,
): { white: boolean; fine: number; coarse: number } {
  const fine = estimateGaussianSigma(y, width, height);
  const half = halve(y, width, height);
  const coarse = 2 * estimateGaussianSigma(half.y, half.width, half.height);
  return { white: fine >= MIN_WHITE_SIGMA && coarse <= MAX_SCALE_RATIO * fine, fine, coarse };
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
