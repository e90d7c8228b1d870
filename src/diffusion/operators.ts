/**
 * Degradation operators H of the inverse problems RED-Diff solves (y = H x + sigma_y n), each with a
 * pseudo-inverse H^+ (used to initialise the estimate, mu_0 = H^+ y). Images are NHWC tensors [b, h, w, 1] in the
 * diffusion models' range [-1, 1]; `forward` is built from differentiable TF.js ops, so RED-Diff can take the
 * gradient of ||y - H(mu)||^2 with respect to mu.
 *
 *  - identity (denoising): H = H^+ = I.
 *  - mask (inpainting): H x = m . x with m in {0, 1} (1 = observed), y keeps the image's shape with zeros at the
 *    missing pixels; H^+ = H (m is idempotent). Masks: random pixels (ratio, seed), boxes, or an uploaded image.
 *  - average pooling by s (super-resolution): H = s x s block mean, H^+ = nearest up-sampling, and
 *    H H^+ = I exactly (the mean of s^2 copies of a value is that value).
 *  - bicubic down-sampling by s (super-resolution): MATLAB imresize's antialiased bicubic (a = -0.5, symmetric
 *    boundary), a separable linear map y = D_h X D_w^T; H^+ = D^+ (x) D^+ with D^+ = D^T (D D^T)^-1 (D has full
 *    row rank), so H H^+ H = H to rounding.
 *  - blur (deblurring): circular convolution with a separable, symmetric, normalised kernel (Gaussian or uniform).
 *    Circular, because a circulant operator is diagonalised by the DFT, so H^+ is exact and cheap: the circular
 *    convolution with the kernel whose spectrum is 1/k_hat where |k_hat| > threshold and 0 elsewhere (the
 *    truncated-SVD pseudo-inverse). H H^+ H = H holds up to `threshold` times the dropped frequency content.
 */
import { Rng } from '../util/random.js';

type Tf = typeof import('@tensorflow/tfjs');
type Tensor4D = import('@tensorflow/tfjs').Tensor4D;

export type OperatorKind = 'identity' | 'mask' | 'average-pool' | 'bicubic' | 'blur';

export interface DegradationOperator {
  kind: OperatorKind;
  /** Image (x) size the operator is built for. */
  height: number;
  width: number;
  /** Measurement (y) size. */
  outputHeight: number;
  outputWidth: number;
  /** y = H x, differentiable. x: [b, height, width, 1]. */
  forward(tf: Tf, x: Tensor4D): Tensor4D;
  /**
   * H^+ y: [b, outputHeight, outputWidth, 1] -> [b, height, width, 1]. Asynchronous: the blur's is computed on the
   * CPU in float64 and reads y with `await y.data()` (WebGPU has no synchronous read-back).
   */
  pseudoInverse(tf: Tf, y: Tensor4D): Promise<Tensor4D>;
  /** Parameters for logs and API responses. */
  describe(): Record<string, unknown>;
  /** kind 'mask' only: the mask itself (1 observed, 0 missing), one per image or one for the whole batch. */
  readonly mask?: Float32Array;
  /** Frees the constant tensors the operator keeps (mask, resize matrices); it recreates them if used again. */
  dispose(): void;
}

function checkInput(op: DegradationOperator, x: Tensor4D, which: 'x' | 'y'): void {
  const h = which === 'x' ? op.height : op.outputHeight;
  const w = which === 'x' ? op.width : op.outputWidth;
  if (x.rank !== 4 || x.shape[1] !== h || x.shape[2] !== w || x.shape[3] !== 1)
    throw new RangeError(
      `${op.kind}: expected ${which} of shape [b, ${h}, ${w}, 1], got [${x.shape.join(', ')}]`,
    );
}

function checkSize(height: number, width: number): void {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1)
    throw new RangeError(`image size must be positive integers, got ${height}x${width}`);
}

export function identityOperator(height: number, width: number): DegradationOperator {
  checkSize(height, width);
  const op: DegradationOperator = {
    kind: 'identity',
    height,
    width,
    outputHeight: height,
    outputWidth: width,
    forward: (tf, x) => {
      checkInput(op, x, 'x');
      return tf.clone(x);
    },
    pseudoInverse: async (tf, y) => {
      checkInput(op, y, 'y');
      return tf.clone(y);
    },
    describe: () => ({ kind: 'identity' }),
    dispose: () => {},
  };
  return op;
}

// --- masks ------------------------------------------------------------------------------------------------------

/** A mask with exactly round(missingRatio * h * w) missing pixels (0), chosen by a seeded shuffle; 1 = observed. */
export function randomPixelMask(
  height: number,
  width: number,
  missingRatio: number,
  seed: number,
): Float32Array {
  checkSize(height, width);
  if (!(missingRatio >= 0 && missingRatio <= 1)) throw new RangeError(`missing ratio must be in [0, 1]`);
  const n = height * width;
  const missing = Math.round(missingRatio * n);
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  const rng = new Rng(seed);
  // Partial Fisher-Yates: the first `missing` entries are a uniform random subset.
  for (let i = 0; i < missing; i++) {
    const j = i + rng.int(n - i);
    const tmp = order[i];
    order[i] = order[j];
    order[j] = tmp;
  }
  const mask = new Float32Array(n).fill(1);
  for (let i = 0; i < missing; i++) mask[order[i]] = 0;
  return mask;
}

export interface Box {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** Observed everywhere except inside the boxes (clipped to the image). */
export function boxMask(height: number, width: number, boxes: Box[]): Float32Array {
  checkSize(height, width);
  const mask = new Float32Array(height * width).fill(1);
  for (const box of boxes) {
    if (box.height <= 0 || box.width <= 0) throw new RangeError('box height and width must be positive');
    for (let r = Math.max(0, box.top); r < Math.min(height, box.top + box.height); r++)
      for (let c = Math.max(0, box.left); c < Math.min(width, box.left + box.width); c++)
        mask[r * width + c] = 0;
  }
  return mask;
}

/** A box of size `box` x `box` centred in the image (the benchmark's "centred 12x12 box"). */
export function centredBoxMask(height: number, width: number, box: number): Float32Array {
  return boxMask(height, width, [
    { top: Math.floor((height - box) / 2), left: Math.floor((width - box) / 2), height: box, width: box },
  ]);
}

/**
 * A mask from an uploaded grey image on [0, 1]: by default WHITE (>= 0.5) marks the pixels to fill in (the
 * convention of most inpainting tools: paint over what is missing); `missingIs: 'black'` inverts it.
 */
export function maskFromImage(
  values: Float32Array | Float64Array,
  missingIs: 'white' | 'black' = 'white',
): Float32Array {
  const mask = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const white = values[i] >= 0.5;
    mask[i] = (missingIs === 'white') === white ? 0 : 1;
  }
  return mask;
}

export function countMissing(mask: Float32Array): number {
  let missing = 0;
  for (const v of mask) if (v === 0) missing++;
  return missing;
}

/**
 * Inpainting operator. `mask` is one h x w mask for every image of a batch, or (a multiple of h x w values) one mask
 * per image, so a batch of images with different masks runs through the network together (the benchmark does);
 * such an operator then takes only batches of exactly that many images.
 */
export function maskOperator(mask: Float32Array, height: number, width: number): DegradationOperator {
  checkSize(height, width);
  const masks = mask.length / (height * width);
  if (!Number.isInteger(masks) || masks < 1)
    throw new RangeError(
      `mask has ${mask.length} values, the image ${height}x${width} needs ${height * width} (or a multiple: one mask per image)`,
    );
  for (const v of mask)
    if (v !== 0 && v !== 1) throw new RangeError('mask values must be 0 (missing) or 1 (observed)');
  let maskTensor: import('@tensorflow/tfjs').Tensor | null = null;
  const checkMaskBatch = (x: Tensor4D) => {
    if (masks > 1 && x.shape[0] !== masks)
      throw new RangeError(`mask: ${masks} masks (one per image) but a batch of ${x.shape[0]}`);
  };
  const m = (tf: Tf) => {
    // Created lazily (and kept) so the operator itself does not need a tf instance to be described or tested.
    if (maskTensor === null || maskTensor.isDisposed)
      maskTensor = tf.keep(tf.tensor4d(mask, [masks, height, width, 1]));
    return maskTensor;
  };
  const op: DegradationOperator = {
    kind: 'mask',
    height,
    width,
    outputHeight: height,
    outputWidth: width,
    forward: (tf, x) => {
      checkInput(op, x, 'x');
      checkMaskBatch(x);
      return tf.mul(x, m(tf));
    },
    pseudoInverse: async (tf, y) => {
      checkInput(op, y, 'y');
      checkMaskBatch(y);
      return tf.mul(y, m(tf)) as Tensor4D;
    },
    describe: () => ({ kind: 'mask', missing: countMissing(mask), pixels: mask.length }),
    mask,
    dispose: () => {
      maskTensor?.dispose();
      maskTensor = null;
    },
  };
  return op;
}

// --- super-resolution ---------------------------------------------------------------------------------------------

export function averagePoolOperator(height: number, width: number, factor: number): DegradationOperator {
  checkSize(height, width);
  if (!Number.isInteger(factor) || factor < 1) throw new RangeError('factor must be a positive integer');
  if (height % factor !== 0 || width % factor !== 0)
    throw new RangeError(
      `image ${height}x${width} is not divisible by the super-resolution factor ${factor}`,
    );
  const op: DegradationOperator = {
    kind: 'average-pool',
    height,
    width,
    outputHeight: height / factor,
    outputWidth: width / factor,
    forward: (tf, x) => {
      checkInput(op, x, 'x');
      return tf.avgPool(x, factor, factor, 'valid');
    },
    pseudoInverse: async (tf, y) => {
      checkInput(op, y, 'y');
      return tf.tidy(() => {
        const [b, h, w] = y.shape;
        // Nearest up-sampling by tiling: [b,h,1,w,1,1] -> [b,h,s,w,s,1] -> [b,h*s,w*s,1].
        return tf
          .tile(y.reshape([b, h, 1, w, 1, 1]), [1, 1, factor, 1, factor, 1])
          .reshape([b, h * factor, w * factor, 1]) as Tensor4D;
      });
    },
    describe: () => ({ kind: 'average-pool', factor }),
    dispose: () => {},
  };
  return op;
}

/** Keys' cubic convolution kernel with a = -0.5 (MATLAB's "bicubic"). */
export function cubic(x: number): number {
  const a = Math.abs(x);
  if (a <= 1) return 1.5 * a ** 3 - 2.5 * a ** 2 + 1;
  if (a <= 2) return -0.5 * a ** 3 + 2.5 * a ** 2 - 4 * a + 2;
  return 0;
}

/**
 * The dense (outLength x inLength) matrix of MATLAB's imresize along one axis for down-scaling by `factor`:
 * antialiased bicubic (kernel stretched by the factor), symmetric (mirror) boundary, rows summing to 1.
 */
export function bicubicResizeMatrix(inLength: number, factor: number): Float64Array {
  const outLength = inLength / factor;
  const scale = 1 / factor;
  const kernelWidth = 4 / scale;
  const taps = Math.ceil(kernelWidth) + 2;
  const matrix = new Float64Array(outLength * inLength);
  for (let o = 0; o < outLength; o++) {
    // 1-based centre as in MATLAB: u = x/scale + 0.5 (1 - 1/scale).
    const u = (o + 1) / scale + 0.5 * (1 - 1 / scale);
    const left = Math.floor(u - kernelWidth / 2);
    const weights = new Float64Array(taps);
    let sum = 0;
    for (let p = 0; p < taps; p++) {
      weights[p] = scale * cubic(scale * (u - (left + p)));
      sum += weights[p];
    }
    for (let p = 0; p < taps; p++) {
      // Mirror 1-based index left + p into 1..inLength (period 2 inLength, edge samples repeated).
      let index = (left + p - 1) % (2 * inLength);
      if (index < 0) index += 2 * inLength;
      if (index >= inLength) index = 2 * inLength - 1 - index;
      matrix[o * inLength + index] += weights[p] / sum;
    }
  }
  return matrix;
}

/** D^+ = D^T (D D^T)^-1 for a full-row-rank m x n matrix D, returned as n x m (Cholesky in float64). */
export function rightPseudoInverse(d: Float64Array, m: number, n: number): Float64Array {
  const gram = new Float64Array(m * m);
  for (let i = 0; i < m; i++)
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += d[i * n + k] * d[j * n + k];
      gram[i * m + j] = s;
      gram[j * m + i] = s;
    }
  // Cholesky: gram = L L^T.
  const l = new Float64Array(m * m);
  for (let i = 0; i < m; i++)
    for (let j = 0; j <= i; j++) {
      let s = gram[i * m + j];
      for (let k = 0; k < j; k++) s -= l[i * m + k] * l[j * m + k];
      if (i === j) {
        if (!(s > 0)) throw new Error('resize matrix is rank deficient');
        l[i * m + i] = Math.sqrt(s);
      } else l[i * m + j] = s / l[j * m + j];
    }
  // Solve gram Z = D for Z (m x n); then D^+ = Z^T.
  const z = Float64Array.from(d);
  for (let col = 0; col < n; col++) {
    for (let i = 0; i < m; i++) {
      let s = z[i * n + col];
      for (let k = 0; k < i; k++) s -= l[i * m + k] * z[k * n + col];
      z[i * n + col] = s / l[i * m + i];
    }
    for (let i = m - 1; i >= 0; i--) {
      let s = z[i * n + col];
      for (let k = i + 1; k < m; k++) s -= l[k * m + i] * z[k * n + col];
      z[i * n + col] = s / l[i * m + i];
    }
  }
  const pinv = new Float64Array(n * m);
  for (let i = 0; i < m; i++) for (let k = 0; k < n; k++) pinv[k * m + i] = z[i * n + k];
  return pinv;
}

/** Y[b] = A X[b] B^T for X [b, h, w, 1], A [m, h], B [k, w], from differentiable matMuls. */
function separableMatMul(
  tf: Tf,
  x: Tensor4D,
  a: import('@tensorflow/tfjs').Tensor2D,
  b: import('@tensorflow/tfjs').Tensor2D,
): Tensor4D {
  return tf.tidy(() => {
    const [n, h, w] = x.shape;
    const m = a.shape[0];
    const k = b.shape[0];
    const columns = tf.transpose(x.reshape([n, h, w]), [1, 0, 2]).reshape([h, n * w]);
    const rows = tf
      .matMul(a, columns)
      .reshape([m, n, w])
      .transpose([1, 0, 2])
      .reshape([n * m, w]);
    return tf.matMul(rows, b, false, true).reshape([n, m, k, 1]) as Tensor4D;
  });
}

export function bicubicDownsampleOperator(
  height: number,
  width: number,
  factor: number,
): DegradationOperator {
  checkSize(height, width);
  if (!Number.isInteger(factor) || factor < 1) throw new RangeError('factor must be a positive integer');
  if (height % factor !== 0 || width % factor !== 0)
    throw new RangeError(
      `image ${height}x${width} is not divisible by the super-resolution factor ${factor}`,
    );
  const m = height / factor;
  const k = width / factor;
  const dh = bicubicResizeMatrix(height, factor);
  const dw = width === height ? dh : bicubicResizeMatrix(width, factor);
  let pinvH: Float64Array | null = null;
  let pinvW: Float64Array | null = null;
  const tensors = new Map<string, import('@tensorflow/tfjs').Tensor2D>();
  const matrix = (tf: Tf, name: string, values: () => Float64Array, shape: [number, number]) => {
    let t = tensors.get(name);
    if (!t || t.isDisposed) {
      t = tf.keep(tf.tensor2d(Float32Array.from(values()), shape));
      tensors.set(name, t);
    }
    return t;
  };
  const op: DegradationOperator = {
    kind: 'bicubic',
    height,
    width,
    outputHeight: m,
    outputWidth: k,
    forward: (tf, x) => {
      checkInput(op, x, 'x');
      return separableMatMul(
        tf,
        x,
        matrix(tf, 'dh', () => dh, [m, height]),
        matrix(tf, 'dw', () => dw, [k, width]),
      );
    },
    pseudoInverse: async (tf, y) => {
      checkInput(op, y, 'y');
      pinvH ??= rightPseudoInverse(dh, m, height);
      pinvW ??= width === height ? pinvH : rightPseudoInverse(dw, k, width);
      const ph = matrix(tf, 'ph', () => pinvH!, [height, m]);
      // B^T with B = pinvW (w x k) means passing B as [w, k] and multiplying by its transpose: Y B^T needs B [w, k].
      const pw = matrix(tf, 'pw', () => pinvW!, [width, k]);
      return separableMatMul(tf, y, ph, pw);
    },
    describe: () => ({
      kind: 'bicubic',
      factor,
      antialias: true,
      boundary: 'symmetric',
      reference: 'MATLAB imresize',
    }),
    dispose: () => {
      for (const t of tensors.values()) t.dispose();
      tensors.clear();
    },
  };
  return op;
}

// --- blur ---------------------------------------------------------------------------------------------------------

/** Normalised Gaussian taps exp(-d^2 / (2 sigma^2)), d = -(size-1)/2 .. (size-1)/2 (size odd). */
export function gaussianKernel1d(size: number, sigma: number): Float64Array {
  if (!Number.isInteger(size) || size < 1 || size % 2 === 0) throw new RangeError('kernel size must be odd');
  if (!(sigma > 0)) throw new RangeError('sigma must be positive');
  const k = new Float64Array(size);
  const r = (size - 1) / 2;
  let sum = 0;
  for (let i = 0; i < size; i++) {
    k[i] = Math.exp(-((i - r) ** 2) / (2 * sigma * sigma));
    sum += k[i];
  }
  for (let i = 0; i < size; i++) k[i] /= sum;
  return k;
}

/** Box filter: `size` equal taps summing to 1 (size odd). */
export function uniformKernel1d(size: number): Float64Array {
  if (!Number.isInteger(size) || size < 1 || size % 2 === 0) throw new RangeError('kernel size must be odd');
  return new Float64Array(size).fill(1 / size);
}

/** Circular padding by r on both sides of an axis (1 = rows, 2 = columns), built from slices (differentiable). */
function circularPad(tf: Tf, x: Tensor4D, r: number, axis: 1 | 2): Tensor4D {
  if (r === 0) return x;
  const n = x.shape[axis];
  const begin = [0, 0, 0, 0];
  const size = [-1, -1, -1, -1];
  const part = (start: number, length: number) => {
    begin[axis] = start;
    size[axis] = length;
    return tf.slice(x, [...begin], [...size]);
  };
  // r may exceed n for tiny images: repeat the image whole first.
  const repeats = Math.ceil(r / n);
  const reps = [1, 1, 1, 1];
  reps[axis] = 2 * repeats + 1;
  const tiled = repeats > 1 ? tf.tile(x, reps) : null;
  if (tiled) {
    const total = tiled.shape[axis];
    const b2 = [0, 0, 0, 0];
    const s2 = [-1, -1, -1, -1];
    b2[axis] = (total - n) / 2 - r;
    s2[axis] = n + 2 * r;
    return tf.slice(tiled, b2, s2) as Tensor4D;
  }
  return tf.concat([part(n - r, r), x, part(0, r)], axis) as Tensor4D;
}

/**
 * Spectrum of a symmetric kernel circularly wrapped onto n samples: k_hat(u) = sum_j k_j cos(2 pi u d_j / n)
 * (real because the kernel is symmetric).
 */
function kernelSpectrum(kernel: Float64Array, n: number): Float64Array {
  const r = (kernel.length - 1) / 2;
  const spectrum = new Float64Array(n);
  for (let u = 0; u < n; u++) {
    let s = 0;
    for (let j = 0; j < kernel.length; j++) s += kernel[j] * Math.cos((2 * Math.PI * u * (j - r)) / n);
    spectrum[u] = s;
  }
  return spectrum;
}

/** First column of the circulant pseudo-inverse: the inverse DFT of the thresholded reciprocal spectrum. */
function pseudoInverseTaps(kernel: Float64Array, n: number, threshold: number): Float64Array {
  const spectrum = kernelSpectrum(kernel, n);
  const taps = new Float64Array(n);
  for (let d = 0; d < n; d++) {
    let s = 0;
    for (let u = 0; u < n; u++) {
      if (Math.abs(spectrum[u]) > threshold) s += Math.cos((2 * Math.PI * u * d) / n) / spectrum[u];
    }
    taps[d] = s / n;
  }
  return taps;
}

/** out[i] = sum_d taps[d] in[(i - d) mod n] along rows or columns of each image (Float64). */
function circularConvolveAxis(
  data: Float64Array,
  images: number,
  height: number,
  width: number,
  taps: Float64Array,
  axis: 'rows' | 'columns',
): Float64Array {
  const out = new Float64Array(data.length);
  const n = axis === 'columns' ? width : height;
  const lines = axis === 'columns' ? height : width;
  const stride = axis === 'columns' ? 1 : width;
  const lineStride = axis === 'columns' ? width : 1;
  const line = new Float64Array(n);
  for (let b = 0; b < images; b++) {
    const base = b * height * width;
    for (let l = 0; l < lines; l++) {
      const start = base + l * lineStride;
      for (let i = 0; i < n; i++) line[i] = data[start + i * stride];
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let d = 0; d < n; d++) {
          const t = taps[d];
          if (t !== 0) s += t * line[(i - d + n) % n];
        }
        out[start + i * stride] = s;
      }
    }
  }
  return out;
}

export interface BlurOptions {
  /** |k_hat| at or below this is treated as zero by H^+ (truncated SVD). */
  threshold?: number;
  /** For describe(): how the kernel was made. */
  label?: Record<string, unknown>;
}

/** Circular blur with the separable kernel k (x) k (k odd-length, symmetric; normalise it to keep brightness). */
export function blurOperator(
  height: number,
  width: number,
  kernel: Float64Array,
  options: BlurOptions = {},
): DegradationOperator {
  checkSize(height, width);
  if (kernel.length % 2 === 0) throw new RangeError('kernel length must be odd');
  for (let i = 0; i < kernel.length; i++)
    if (Math.abs(kernel[i] - kernel[kernel.length - 1 - i]) > 1e-12)
      throw new RangeError('kernel must be symmetric');
  const threshold = options.threshold ?? 1e-3;
  const r = (kernel.length - 1) / 2;
  const taps32 = Float32Array.from(kernel);
  let rowTaps: Float64Array | null = null;
  let columnTaps: Float64Array | null = null;
  const op: DegradationOperator = {
    kind: 'blur',
    height,
    width,
    outputHeight: height,
    outputWidth: width,
    forward: (tf, x) => {
      checkInput(op, x, 'x');
      return tf.tidy(() => {
        const vertical = tf.tensor4d(taps32, [kernel.length, 1, 1, 1]);
        const horizontal = tf.tensor4d(taps32, [1, kernel.length, 1, 1]);
        const rows = tf.conv2d(circularPad(tf, x, r, 1), vertical, 1, 'valid');
        return tf.conv2d(circularPad(tf, rows, r, 2), horizontal, 1, 'valid');
      });
    },
    pseudoInverse: async (tf, y) => {
      checkInput(op, y, 'y');
      rowTaps ??= pseudoInverseTaps(kernel, height, threshold);
      columnTaps ??= pseudoInverseTaps(kernel, width, threshold);
      const images = y.shape[0];
      const data = Float64Array.from(await y.data());
      const across = circularConvolveAxis(data, images, height, width, columnTaps, 'columns');
      const result = circularConvolveAxis(across, images, height, width, rowTaps, 'rows');
      return tf.tensor4d(Float32Array.from(result), [images, height, width, 1]);
    },
    describe: () => ({
      kind: 'blur',
      kernelSize: kernel.length,
      threshold,
      boundary: 'circular',
      ...options.label,
    }),
    dispose: () => {},
  };
  return op;
}

export function gaussianBlurOperator(
  height: number,
  width: number,
  size: number,
  sigma: number,
): DegradationOperator {
  return blurOperator(height, width, gaussianKernel1d(size, sigma), { label: { kernel: 'gaussian', sigma } });
}

export function uniformBlurOperator(height: number, width: number, size: number): DegradationOperator {
  return blurOperator(height, width, uniformKernel1d(size), { label: { kernel: 'uniform' } });
}

/** y = H x + sigma_y n with n ~ N(0, I) from a seeded Rng (sigma_y on the [-1, 1] scale). */
export function measure(
  tf: Tf,
  op: DegradationOperator,
  x: Tensor4D,
  sigmaY: number,
  seed: number,
): Tensor4D {
  if (!(sigmaY >= 0)) throw new RangeError('sigma_y must be >= 0');
  return tf.tidy(() => {
    const clean = op.forward(tf, x);
    if (sigmaY === 0) return clean;
    const noise = new Rng(seed).fillNormal(new Float32Array(clean.size));
    let y = tf.add(clean, tf.mul(tf.tensor(noise, clean.shape), sigmaY)) as Tensor4D;
    // Missing pixels carry no measurement: keep them at 0 so H^+ y stays consistent with the mask.
    if (op.kind === 'mask') y = op.forward(tf, y); // the mask's H^+ is H
    return y;
  });
}
