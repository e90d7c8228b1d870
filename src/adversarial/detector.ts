/**
 * The EPS-AD detector: a trained deep kernel (src/adversarial/deep-kernel.ts), a reference set of natural EPS and
 * thresholds calibrated on held-out clean images, as committed in `models/eps-ad-fashion-mnist/<version>`:
 *
 *   model.json + weights.bin   phi, the kernel's conv net (a TF.js LayersModel; the repository loads and warms it)
 *   detector.json              everything else: score model, T*, inputScale, the learned s_phi / s_q / e, the
 *                              reference file's layout and the calibration (scores of held-out clean images and the
 *                              thresholds at the calibrated false-positive rates)
 *   reference.f16              the reference EPS, divided by inputScale, as IEEE float16 (half the size of float32;
 *                              the calibration was computed with these quantised values, so it is exact for them)
 *
 * Single-image statistic (the paper's): the biased MMD^2 between the reference set X and {y},
 *   mean_ij k(x_i, x_j) + k(y, y) - 2 mean_i k(x_i, y),   k(y, y) = 1,
 * larger = further from natural data. A batch is also tested as a whole against the reference (unbiased MMD^2,
 * permutation p-value), which is far more sensitive than any single image when the batch is all adversarial.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileSystemIO } from '../nn/fs-io.js';
import { deepKernelTensor, type KernelScalars, scalarTensors } from './deep-kernel.js';
import { type KernelMatrix, mmdPermutationTest, type PermutationTestResult } from './mmd.js';

type Tf = typeof import('@tensorflow/tfjs');
type Tensor2D = import('@tensorflow/tfjs').Tensor2D;
type Tensor = import('@tensorflow/tfjs').Tensor;
type LayersModel = import('@tensorflow/tfjs').LayersModel;

export const DETECTOR_FILE = 'detector.json';
export const DETECTOR_FORMAT = 'eps-ad-detector/1';

export interface DetectorCalibration {
  /** Clean images scored to set the thresholds (never used for kernel training or the reference). */
  images: number;
  source: string;
  /** Their statistics, sorted ascending: the empirical null distribution (per-image conformal p-values). */
  scores: number[];
  /** Target false-positive rates and their thresholds (the (1 - fpr) quantile of `scores`), same order. */
  fprs: number[];
  thresholds: number[];
}

/** detector.json */
export interface DetectorConfig {
  format: typeof DETECTOR_FORMAT;
  /** The diffusion model whose score defines EPS; the reference and calibration hold only for it. */
  scoreModel: { name: string; version: string };
  /** T* the reference and the calibration were computed with. */
  timesteps: number;
  /** Classifier-domain image: height, width, channels (Fashion-MNIST: 28, 28, 1). */
  imageShape: [number, number, number];
  /** Pixels of -1 padding added before the score model (28 -> 32). */
  pad: number;
  /** EPS is divided by this before the kernel (RMS of natural training EPS). */
  inputScale: number;
  kernel: KernelScalars;
  reference: { file: string; count: number; dtype: 'float16'; source: string };
  calibration: DetectorCalibration;
  /** mean_ij k(x_i, x_j) over the reference (biased, diagonal included): the constant term of the statistic. */
  referenceKernelMean: number;
}

// --- float16 (IEEE 754 binary16), for the reference file -------------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Rounds to the nearest float16 (ties to even), saturating to +-Infinity past 65504. */
export function toFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  let e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    // Subnormal: shift the implicit bit in, round to nearest even.
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  let m = mantissa >>> 13;
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

export function fromFloat16Bits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >>> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

export function encodeFloat16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = toFloat16Bits(values[i]);
  return out;
}

export function decodeFloat16(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = fromFloat16Bits(bits[i]);
  return out;
}

/** Little-endian bytes of a Uint16Array (the file layout on every platform). */
export function float16Bytes(bits: Uint16Array): Buffer {
  const out = Buffer.alloc(bits.length * 2);
  for (let i = 0; i < bits.length; i++) out.writeUInt16LE(bits[i], 2 * i);
  return out;
}

export function parseFloat16Bytes(bytes: Uint8Array): Uint16Array {
  if (bytes.length % 2 !== 0) throw new RangeError('a float16 file has an even number of bytes');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Uint16Array(bytes.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = view.getUint16(2 * i, true);
  return out;
}

// --- thresholds and p-values -------------------------------------------------------------------------------------

/**
 * The threshold at a target false-positive rate: the smallest calibration score with at most a fraction `fpr` of
 * the calibration scores strictly above it (scores sorted ascending).
 */
export function thresholdAtFpr(sortedScores: readonly number[], fpr: number): number {
  const n = sortedScores.length;
  if (n === 0) throw new RangeError('no calibration scores');
  const index = Math.min(n - 1, Math.max(0, Math.ceil((1 - fpr) * n) - 1));
  return sortedScores[index];
}

/** Conformal p-value of a score against the clean calibration scores: (1 + #{s >= score}) / (1 + n). */
export function conformalPValue(sortedScores: readonly number[], score: number): number {
  // Binary search for the first calibration score >= score.
  let lo = 0;
  let hi = sortedScores.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sortedScores[mid] < score) lo = mid + 1;
    else hi = mid;
  }
  return (1 + sortedScores.length - lo) / (1 + sortedScores.length);
}

/** Area under the ROC curve of scores where positives should be larger (ties count one half). */
export function auroc(negatives: ArrayLike<number>, positives: ArrayLike<number>): number {
  const all: { v: number; positive: boolean }[] = [];
  for (let i = 0; i < negatives.length; i++) all.push({ v: negatives[i], positive: false });
  for (let i = 0; i < positives.length; i++) all.push({ v: positives[i], positive: true });
  all.sort((a, b) => a.v - b.v);
  // Mann-Whitney U with average ranks for ties.
  let rankSum = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j].v === all[i].v) j++;
    const averageRank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) if (all[k].positive) rankSum += averageRank;
    i = j;
  }
  const p = positives.length;
  const n = negatives.length;
  return (rankSum - (p * (p + 1)) / 2) / (p * n);
}

// --- the detector ------------------------------------------------------------------------------------------------

export interface DetectorBatchTest extends PermutationTestResult {
  /** The batch size tested against the reference. */
  count: number;
  estimator: 'unbiased';
}

export class EpsAdDetector {
  readonly config: DetectorConfig;
  private readonly tf: Tf;
  private readonly phi: LayersModel;
  private readonly referenceInputs: Tensor2D;
  private readonly referenceFeatures: Tensor2D;
  private readonly scalars: ReturnType<typeof scalarTensors>;

  /** referenceScaled: count x (side * side) EPS values already divided by inputScale. */
  constructor(tf: Tf, phi: LayersModel, config: DetectorConfig, referenceScaled: Float32Array) {
    this.tf = tf;
    this.phi = phi;
    this.config = config;
    const dim = referenceScaled.length / config.reference.count;
    if (!Number.isInteger(dim)) throw new RangeError('reference size is not a multiple of its count');
    this.referenceInputs = tf.tensor2d(referenceScaled, [config.reference.count, dim]);
    this.referenceFeatures = this.featuresOf(this.referenceInputs);
    // Outside any tidy: these scalars live as long as the detector.
    this.scalars = scalarTensors(tf, config.kernel);
  }

  get epsSide(): number {
    return this.config.imageShape[0] + 2 * this.config.pad;
  }

  private featuresOf(inputs: Tensor2D): Tensor2D {
    const side = this.epsSide;
    return this.tf.tidy(() => {
      const out: Tensor[] = [];
      const n = inputs.shape[0];
      // Chunks bound the activation memory for big batches.
      for (let start = 0; start < n; start += 256) {
        const size = Math.min(256, n - start);
        const x = inputs.slice([start, 0], [size, -1]).reshape([size, side, side, 1]);
        out.push(this.phi.apply(x, { training: false }) as Tensor);
      }
      return (out.length === 1 ? out[0] : this.tf.concat(out, 0)) as Tensor2D;
    });
  }

  /** EPS (raw, count x side x side) -> scaled inputs tensor. */
  private scaledInputs(eps: Float32Array, count: number): Tensor2D {
    const scale = 1 / this.config.inputScale;
    const scaled = new Float32Array(eps.length);
    for (let i = 0; i < eps.length; i++) scaled[i] = eps[i] * scale;
    return this.tf.tensor2d(scaled, [count, eps.length / count]);
  }

  /** The single-sample statistic of every EPS image (raw EPS, as expectedPerturbationScore returns it). */
  async scores(eps: Float32Array, count: number): Promise<Float64Array> {
    const { tf } = this;
    const values = tf.tidy(() => {
      const inputs = this.scaledInputs(eps, count);
      const features = this.featuresOf(inputs);
      const k = deepKernelTensor(
        tf,
        features,
        this.referenceFeatures,
        inputs,
        this.referenceInputs,
        this.scalars,
      );
      return tf.mean(k, 1);
    });
    let crossMeans: Float32Array;
    try {
      crossMeans = (await values.data()) as Float32Array;
    } finally {
      values.dispose();
    }
    const out = new Float64Array(count);
    for (let i = 0; i < count; i++) out[i] = this.config.referenceKernelMean + 1 - 2 * crossMeans[i];
    return out;
  }

  /** Pooled kernel matrix of [reference; batch] (reference first), for the permutation test. */
  async pooledKernel(eps: Float32Array, count: number): Promise<KernelMatrix> {
    const { tf } = this;
    const matrix = tf.tidy(() => {
      const inputs = tf.concat([this.referenceInputs, this.scaledInputs(eps, count)], 0) as Tensor2D;
      const features = tf.concat(
        [
          this.referenceFeatures,
          this.featuresOf(inputs.slice([this.config.reference.count, 0], [count, -1]) as Tensor2D),
        ],
        0,
      ) as Tensor2D;
      return deepKernelTensor(tf, features, features, inputs, inputs, this.scalars);
    });
    let values: Float64Array;
    try {
      values = Float64Array.from(await matrix.data());
    } finally {
      matrix.dispose();
    }
    return { n: this.config.reference.count + count, values };
  }

  /** mean_ij k(x_i, x_j) over the reference set (what config.referenceKernelMean must hold). */
  async computeReferenceKernelMean(): Promise<number> {
    const { tf } = this;
    const mean = tf.tidy(() =>
      tf.mean(
        deepKernelTensor(
          tf,
          this.referenceFeatures,
          this.referenceFeatures,
          this.referenceInputs,
          this.referenceInputs,
          this.scalars,
        ),
      ),
    );
    try {
      return (await mean.data())[0];
    } finally {
      mean.dispose();
    }
  }

  /** Two-sample test of a batch (>= 2 images) against the reference: unbiased MMD^2 and its permutation p-value. */
  async batchTest(
    eps: Float32Array,
    count: number,
    options: { permutations?: number; seed?: number } = {},
  ): Promise<DetectorBatchTest> {
    if (count < 2) throw new RangeError('the two-sample test needs at least 2 images');
    const kernel = await this.pooledKernel(eps, count);
    const result = mmdPermutationTest(kernel, this.config.reference.count, {
      permutations: options.permutations ?? 200,
      seed: options.seed ?? 0,
      estimator: 'unbiased',
    });
    return { ...result, count, estimator: 'unbiased' };
  }

  /** The calibrated threshold for a target FPR; throws for an FPR that was not calibrated. */
  threshold(fpr: number): number {
    const index = this.config.calibration.fprs.findIndex((f) => Math.abs(f - fpr) < 1e-9);
    if (index < 0)
      throw new RangeError(
        `fpr ${fpr} is not calibrated (calibrated: ${this.config.calibration.fprs.join(', ')})`,
      );
    return this.config.calibration.thresholds[index];
  }

  pValue(score: number): number {
    return conformalPValue(this.config.calibration.scores, score);
  }

  /**
   * The device-memory probe of the detector's kernel stage (src/nn/batcher.ts MemoryProbe): the deep kernel's
   * features (the phi network) and its kernels against the reference (scores and the pooled MMD matrix) for n EPS
   * images, measured at 2, 256 and 512 images. Quadratic in n: the pooled matrix and its intermediates are
   * (reference + n)^2. On wasm with the committed detector, the line through 2 and 32 images it replaces estimated
   * 84 % of the peak at 256 images and 47 % at 1024; this parabola 100-108 % from 2 to 4096 images (a parabola
   * through smaller counts bends too little or too much: the peak is not exactly quadratic at small n).
   */
  memoryProbe(): import('../nn/batcher.js').MemoryProbe {
    const side = this.epsSide;
    return {
      name: 'eps-ad-kernel',
      quadratic: true,
      shapes: (c) => [
        [2, side, side, c],
        [256, side, side, c],
        [512, side, side, c],
      ],
      run: async ([n]) => {
        const eps = new Float32Array(n * side * side);
        await this.scores(eps, n);
        await this.pooledKernel(eps, n);
      },
    };
  }

  dispose(): void {
    this.tf.dispose([this.referenceInputs, this.referenceFeatures, ...Object.values(this.scalars)]);
  }
}

export async function readDetectorConfig(dir: string): Promise<DetectorConfig> {
  const config = JSON.parse(await readFile(join(dir, DETECTOR_FILE), 'utf8')) as DetectorConfig;
  if (config.format !== DETECTOR_FORMAT)
    throw new Error(`${join(dir, DETECTOR_FILE)}: format '${config.format}', expected '${DETECTOR_FORMAT}'`);
  return config;
}

/** The detector from a model folder, with phi already loaded (by the model repository or tf.loadLayersModel). */
export async function loadEpsAdDetector(tf: Tf, dir: string, phi: LayersModel): Promise<EpsAdDetector> {
  const config = await readDetectorConfig(dir);
  const bits = parseFloat16Bytes(new Uint8Array(await readFile(join(dir, config.reference.file))));
  const side = config.imageShape[0] + 2 * config.pad;
  if (bits.length !== config.reference.count * side * side)
    throw new Error(
      `${config.reference.file}: ${bits.length} values, expected ${config.reference.count} x ${side} x ${side}`,
    );
  return new EpsAdDetector(tf, phi, config, decodeFloat16(bits));
}

/**
 * Writes the detector files (phi's model.json + weights.bin, reference.f16, detector.json) into dir; the caller
 * adds manifest.json. `referenceBits` are the float16 bits of the scaled reference EPS.
 */
export async function writeDetectorFiles(
  dir: string,
  phi: LayersModel,
  config: DetectorConfig,
  referenceBits: Uint16Array,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await phi.save(fileSystemIO(dir));
  await writeFile(join(dir, config.reference.file), float16Bytes(referenceBits));
  await writeFile(join(dir, DETECTOR_FILE), `${JSON.stringify(config, null, 2)}\n`);
}

/** Sorted calibration scores -> the calibration block at the given FPRs. */
export function calibrationFrom(
  scores: ArrayLike<number>,
  fprs: number[],
  source: string,
): DetectorCalibration {
  const sorted = Array.from(scores).sort((a, b) => a - b);
  return {
    images: sorted.length,
    source,
    scores: sorted,
    fprs,
    thresholds: fprs.map((f) => thresholdAtFpr(sorted, f)),
  };
}
