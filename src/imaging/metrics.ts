/**
 * Image quality metrics, computed the way the denoising literature reports them so that our numbers can be set
 * beside published ones: PSNR per ../shared/data/README.md (no border crop) and SSIM as scikit-image 0.19's
 * `structural_similarity` computes it. Everything accumulates in float64 whatever the input type.
 */

type Pixels = ArrayLike<number>;

/**
 * Peak signal-to-noise ratio in dB: 10 log10(peak^2 / mse), over every value (all pixels, all channels, no crop).
 * Infinity when the images are equal.
 */
export function psnr(reference: Pixels, estimate: Pixels, peak = 1): number {
  if (reference.length !== estimate.length) {
    throw new RangeError(
      `psnr: the images differ in size (${reference.length} vs ${estimate.length} values)`,
    );
  }
  if (reference.length === 0) throw new RangeError('psnr: the images are empty');
  let sum = 0;
  for (let i = 0; i < reference.length; i++) {
    const d = reference[i] - estimate[i];
    sum += d * d;
  }
  const mse = sum / reference.length;
  if (mse === 0) return Number.POSITIVE_INFINITY;
  return 10 * Math.log10((peak * peak) / mse);
}

export interface SsimOptions {
  /** Range of the values (max - min possible), e.g. 1 for [0,1] images, 255 for u8-scale values. Default 1. */
  dataRange?: number;
  /** Gaussian window (skimage's gaussian_weights=True, the literature's choice). Default true. */
  gaussianWeights?: boolean;
  /** Gaussian standard deviation. Default 1.5 (window 11x11 with skimage's truncate=3.5). */
  sigma?: number;
  /** Uniform window side when gaussianWeights is false. Default 7 (skimage's default). */
  winSize?: number;
  /**
   * Normalise covariances by N-1 instead of N. Default: false with gaussian weights (as the literature, and Wang et
   * al., compute it), true with a uniform window (skimage's default there).
   */
  useSampleCovariance?: boolean;
  K1?: number;
  K2?: number;
}

/** skimage's gaussian window is truncated at 3.5 sigma (scipy's gaussian_filter with truncate=3.5). */
const GAUSSIAN_TRUNCATE = 3.5;

/**
 * Mean structural similarity, matching scikit-image 0.19 `structural_similarity(x, y, data_range, gaussian_weights,
 * sigma, use_sample_covariance, channel_axis=-1)`: local statistics with a separable window (scipy 'reflect'
 * borders), the SSIM map cropped by half a window on each side, averaged; for colour, the mean over channels.
 * `x` and `y` are interleaved HWC with `channels` values per pixel.
 */
export function ssim(
  x: Pixels,
  y: Pixels,
  width: number,
  height: number,
  channels: number,
  opts: SsimOptions = {},
): number {
  const n = width * height;
  if (x.length !== n * channels || y.length !== n * channels) {
    throw new RangeError(`ssim: expected ${n * channels} values for ${width}x${height}x${channels}`);
  }
  const gaussian = opts.gaussianWeights ?? true;
  const sigma = opts.sigma ?? 1.5;
  const kernel = gaussian ? gaussianKernel(sigma, GAUSSIAN_TRUNCATE) : uniformKernel(opts.winSize ?? 7);
  const winSize = kernel.length;
  if (width < winSize || height < winSize) {
    throw new RangeError(
      `ssim: the image (${width}x${height}) is smaller than the ${winSize}x${winSize} window`,
    );
  }
  const dataRange = opts.dataRange ?? 1;
  const sampleCovariance = opts.useSampleCovariance ?? !gaussian;
  const np = winSize * winSize;
  const covNorm = sampleCovariance ? np / (np - 1) : 1;
  const c1 = ((opts.K1 ?? 0.01) * dataRange) ** 2;
  const c2 = ((opts.K2 ?? 0.03) * dataRange) ** 2;
  const pad = (winSize - 1) >> 1;

  const a = new Float64Array(n);
  const b = new Float64Array(n);
  const products = new Float64Array(n);
  let total = 0;
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < n; i++) {
      a[i] = x[i * channels + c];
      b[i] = y[i * channels + c];
    }
    const ux = filter2d(a, width, height, kernel);
    const uy = filter2d(b, width, height, kernel);
    for (let i = 0; i < n; i++) products[i] = a[i] * a[i];
    const uxx = filter2d(products, width, height, kernel);
    for (let i = 0; i < n; i++) products[i] = b[i] * b[i];
    const uyy = filter2d(products, width, height, kernel);
    for (let i = 0; i < n; i++) products[i] = a[i] * b[i];
    const uxy = filter2d(products, width, height, kernel);

    let sum = 0;
    for (let r = pad; r < height - pad; r++) {
      for (let col = pad; col < width - pad; col++) {
        const i = r * width + col;
        const vx = covNorm * (uxx[i] - ux[i] * ux[i]);
        const vy = covNorm * (uyy[i] - uy[i] * uy[i]);
        const vxy = covNorm * (uxy[i] - ux[i] * uy[i]);
        const numerator = (2 * ux[i] * uy[i] + c1) * (2 * vxy + c2);
        const denominator = (ux[i] * ux[i] + uy[i] * uy[i] + c1) * (vx + vy + c2);
        sum += numerator / denominator;
      }
    }
    total += sum / ((height - 2 * pad) * (width - 2 * pad));
  }
  return total / channels;
}

/** scipy.ndimage.gaussian_filter1d's weights: radius = int(truncate*sigma + 0.5), normalised to sum 1. */
function gaussianKernel(sigma: number, truncate: number): Float64Array {
  const radius = Math.trunc(truncate * sigma + 0.5);
  const kernel = new Float64Array(2 * radius + 1);
  let sum = 0;
  for (let k = -radius; k <= radius; k++) {
    const v = Math.exp((-0.5 * k * k) / (sigma * sigma));
    kernel[k + radius] = v;
    sum += v;
  }
  for (let k = 0; k < kernel.length; k++) kernel[k] /= sum;
  return kernel;
}

function uniformKernel(size: number): Float64Array {
  if (!Number.isInteger(size) || size < 3 || size % 2 === 0) {
    throw new RangeError('ssim: winSize must be an odd integer >= 3');
  }
  return new Float64Array(size).fill(1 / size);
}

/** scipy's 'reflect' boundary (d c b a | a b c d | d c b a): the edge value is repeated. */
function reflectIndex(i: number, n: number): number {
  const period = 2 * n;
  let j = i % period;
  if (j < 0) j += period;
  return j < n ? j : period - 1 - j;
}

/** Separable correlation along rows then columns (the kernels here are symmetric, so correlation = convolution). */
function filter2d(src: Float64Array, width: number, height: number, kernel: Float64Array): Float64Array {
  const radius = (kernel.length - 1) >> 1;
  const tmp = new Float64Array(src.length);
  const out = new Float64Array(src.length);
  const colIndex = new Int32Array(width + 2 * radius);
  for (let k = 0; k < colIndex.length; k++) colIndex[k] = reflectIndex(k - radius, width);
  const rowIndex = new Int32Array(height + 2 * radius);
  for (let k = 0; k < rowIndex.length; k++) rowIndex[k] = reflectIndex(k - radius, height);

  // scipy runs axis 0 (columns) before axis 1 (rows); in float64 the order changes the result only at ~1e-16.
  for (let r = 0; r < height; r++) {
    const row = r * width;
    for (let c = 0; c < width; c++) {
      let acc = 0;
      if (c >= radius && c < width - radius) {
        // Interior: no reflection, contiguous reads.
        const base = row + c - radius;
        for (let k = 0; k < kernel.length; k++) acc += kernel[k] * src[base + k];
      } else {
        for (let k = 0; k < kernel.length; k++) acc += kernel[k] * src[row + colIndex[c + k]];
      }
      tmp[row + c] = acc;
    }
  }
  // Columns: accumulate whole rows at a time, so every read walks memory forwards.
  for (let r = 0; r < height; r++) {
    const row = r * width;
    for (let k = 0; k < kernel.length; k++) {
      const weight = kernel[k];
      const source = rowIndex[r + k] * width;
      for (let c = 0; c < width; c++) out[row + c] += weight * tmp[source + c];
    }
  }
  return out;
}
