/**
 * `npm run train -- eps-ad [options]` (EPS_AD_USAGE): trains the EPS-AD deep kernel and writes the detector folder
 * models/eps-ad-fashion-mnist/<version> (see src/adversarial/detector.ts for the files).
 *
 * 1. A fixed shuffle of the Fashion-MNIST TRAINING split is cut into three disjoint parts: kernel training images
 *    (natural + their FGSM and FGSM-L2 versions at a small budget, attacked through classifier-fashion-mnist),
 *    the reference set, and the calibration set. The t10k split is never touched (the benchmark's).
 * 2. EPS of every part with ddpm-fashion-mnist (T* timesteps), cached per chunk of 50 images under --cache-dir
 *    (git-ignored), so a rerun or a resumed run only computes what is missing. Cache keys name the part and its
 *    first position in the shuffle, so a larger --train-images or --reference reuses every chunk it can.
 * 3. The kernel (phi + s_phi, s_q, e) is trained with Adam to maximise J = MMD^2_u / sqrt(Var) between natural and
 *    adversarial EPS minibatches (paired: row i of both is the same image; the attack per row is FGSM or FGSM-L2
 *    at random), on the loop of tools/train/core: progress (the loss is -J), a checkpoint every
 *    --checkpoint-minutes (phi, the scalars, Adam's moments, the batch stream's position), --stop-at-step /
 *    --max-minutes, and --resume, which continues the exact run (the batches are one stream, Rng(seed), replayed
 *    up to the checkpoint's step).
 * 4. Held-out kernel-training pairs (the last 20%) give a validation AUROC of the single-image statistic.
 * 5. The reference EPS are quantised to float16, the calibration images are scored against them, and the
 *    thresholds at 1%, 5% and 10% FPR are the matching quantiles of those scores; the folder and its manifest
 *    (data, command, lineage, validation) are written by tools/train/core/export.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AttackName } from '../../src/adversarial/attacks.js';
import { loadClassifier, loadFashionMnistLabels, unitImages } from '../../src/adversarial/classifier.js';
import {
  buildKernelNet,
  DEFAULT_KERNEL_NET,
  deepKernelTensor,
  type KernelScalars,
  type KernelVariables,
  kernelVariables,
  medianOffDiagonal,
  mmdRatio,
  readKernelScalars,
  scalarTensors,
  squaredDistances,
} from '../../src/adversarial/deep-kernel.js';
import {
  auroc,
  calibrationFrom,
  DETECTOR_FORMAT,
  type DetectorConfig,
  decodeFloat16,
  EpsAdDetector,
  encodeFloat16,
  thresholdAtFpr,
  writeDetectorFiles,
} from '../../src/adversarial/detector.js';
import { ddpmEpsNetwork } from '../../src/adversarial/eps.js';
import { attackImages, epsInChunks, scheduleFromManifest } from '../../src/adversarial/pipeline.js';
import { FASHION_MNIST_DIR, loadFashionMnistImages } from '../../src/diffusion/fashion-mnist.js';
import { loadDiffusionModel } from '../../src/diffusion/model.js';
import { type BackendPreference, initTfjs } from '../../src/nn/backend.js';
import { Rng, stringHash } from '../../src/util/random.js';
import {
  assertFreshCheckpointDir,
  assertSameSettings,
  type LoadedCheckpoint,
  modelArrays,
  openCheckpoint,
  optimizerArrays,
  restoreOptimizer,
  setModelArrays,
} from './core/checkpoint.js';
import { type ManifestBody, modelIdFromOut, trainedManifest, writeModelFolder } from './core/export.js';
import { runTraining, type StepResult } from './core/loop.js';
import {
  COMMON_OPTIONS,
  COMMON_USAGE,
  type CommonOptions,
  commonOptions,
  parseOptions,
  positiveNumber as positive,
  UsageError,
} from './core/options.js';
import type { NamedArray } from './tensor-file.js';

type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type Tensor2D = import('@tensorflow/tfjs').Tensor2D;
type Scalar = import('@tensorflow/tfjs').Scalar;
type Variable = import('@tensorflow/tfjs').Variable;
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Optimizer = import('@tensorflow/tfjs').Optimizer;

export const EPS_AD_USAGE = `usage: npm run train -- eps-ad [--budget 1/255] [--train-images 600] [--reference 500]
  [--calibration 500] [--timesteps 20] [--features 300] [--cache-dir tmp/eps-ad-cache]
  [--score-model models/ddpm-fashion-mnist/20261127] [--classifier models/classifier-fashion-mnist/1]
  [--images /usr/share/datasets/fashion-mnist]
${COMMON_USAGE}
  Defaults: --steps 1500 --batch 100 --lr 5e-4, --out models/eps-ad-fashion-mnist/<today>,
  --checkpoint-dir checkpoints/eps-ad-fashion-mnist. The loss shown is -J (J = MMD^2_u / sqrt(Var), maximised).
  --images: the folder of Fashion-MNIST's IDX files (apt-get install dataset-fashion-mnist).
  There is no GPU port (--device cpu only) and no --init-from.
  e.g. npm run train -- eps-ad --train-images 400 --reference 300 --calibration 300 --steps 1500 --batch 32
    --features 100 --lr 1e-3 --out models/eps-ad-fashion-mnist/2`;

/** Seed of the fixed shuffle of the training split (independent of --seed, so cached EPS stay valid). */
const SPLIT_SEED = 20261128;
const CALIBRATED_FPRS = [0.01, 0.05, 0.1];
const TRAINING_ATTACKS: AttackName[] = ['fgsm', 'fgsm-l2'];
const IMAGE_PIXELS = 28 * 28;

export interface EpsAdTrainingOptions {
  /** Linf budget of FGSM; FGSM-L2 gets the matching radius budget * sqrt(784). */
  budget: number;
  budgetText: string;
  trainImages: number;
  reference: number;
  calibration: number;
  timesteps: number;
  steps: number;
  batch: number;
  lr: number;
  features: number;
  seed: number;
  scoreModelDir: string;
  classifierDir: string;
  /** Folder of the Fashion-MNIST IDX files. */
  dataDir?: string;
  /** models/<name>/<version>: the detector folder written at the end. */
  out: string;
  cacheDir: string;
  checkpointDir: string;
  checkpointMinutes: number;
  resume: boolean;
  stopAtStep?: number;
  maxMinutes?: number;
  commandLine: string;
  backend: string;
  /** Plain progress lines go here (a bar on a terminal when absent). */
  log?: (line: string) => void;
}

export interface EpsAdTrainingResult {
  /** Steps done in all (less than --steps after a stop: continue with --resume). */
  steps: number;
  /** The held-out validation AUROCs, or null when the run stopped before the end. */
  validation: Record<string, number> | null;
}

const logOf = (options: { log?: (line: string) => void }) =>
  options.log ?? ((line: string) => console.log(line));

function fixedShuffle(count: number): Int32Array {
  const rng = new Rng(SPLIT_SEED);
  const order = Int32Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

function gather(pixels: Float32Array, indices: Int32Array): Float32Array {
  const out = new Float32Array(indices.length * IMAGE_PIXELS);
  for (let i = 0; i < indices.length; i++) {
    const index = indices[i];
    out.set(pixels.subarray(index * IMAGE_PIXELS, (index + 1) * IMAGE_PIXELS), i * IMAGE_PIXELS);
  }
  return out;
}

interface EpsPart {
  /** Cache name, e.g. 'train-natural', 'train-fgsm-0.00392'. */
  name: string;
  images: Float32Array;
  count: number;
  /** What else the values depend on (the attacked classifier, name@version): in the cache key, not the seed. */
  variant?: string;
}

/**
 * EPS of a part, chunk by chunk, each chunk cached as <cacheDir>/<key>/<chunk>.f32. The key names everything the
 * values depend on (score model, T*, part, attack and budget, split seed; for attacked images, the classifier).
 */
async function cachedEps(
  tf: Tf,
  network: ReturnType<typeof ddpmEpsNetwork>,
  schedule: ReturnType<typeof scheduleFromManifest>,
  part: EpsPart,
  options: EpsAdInputs['cacheOptions'],
): Promise<Float32Array> {
  const chunk = 50;
  const variant = part.variant ? `-${part.variant.replaceAll('/', '_')}` : '';
  const model = options.scoreModel.replaceAll('/', '_');
  const key = `${model}-T${options.timesteps}-${part.name}${variant}-split${SPLIT_SEED}`;
  const dir = join(options.cacheDir, key);
  await mkdir(dir, { recursive: true });
  const side = 32;
  const epsSize = side * side;
  const out = new Float32Array(part.count * epsSize);
  const seed = stringHash(part.name);
  const started = Date.now();
  let computed = 0;
  for (let start = 0, c = 0; start < part.count; start += chunk, c++) {
    const n = Math.min(chunk, part.count - start);
    const file = join(dir, `${c}-${n}.f32`);
    if (existsSync(file)) {
      const bytes = await readFile(file);
      out.set(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), start * epsSize);
      continue;
    }
    const eps = await epsInChunks(
      tf,
      network,
      schedule,
      part.images.subarray(start * IMAGE_PIXELS, (start + n) * IMAGE_PIXELS),
      n,
      { timesteps: options.timesteps, seed: seed + c, chunk: n },
    );
    await writeFile(file, Buffer.from(eps.buffer, eps.byteOffset, eps.byteLength));
    out.set(eps, start * epsSize);
    computed += n;
  }
  const seconds = (Date.now() - started) / 1000;
  options.log(
    `EPS ${part.name}: ${part.count} images (${computed} computed, ${part.count - computed} cached) in ${seconds.toFixed(0)}s`,
  );
  return out;
}

function rms(values: Float32Array): number {
  let s = 0;
  for (const v of values) s += v * v;
  return Math.sqrt(s / values.length);
}

function scaled(values: Float32Array, scale: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i] / scale;
  return out;
}

function rows(values: Float32Array, indices: ArrayLike<number>, dim: number): Float32Array {
  const out = new Float32Array(indices.length * dim);
  for (let i = 0; i < indices.length; i++)
    out.set(values.subarray(indices[i] * dim, (indices[i] + 1) * dim), i * dim);
  return out;
}

interface EpsAdInputs {
  pixels: Float32Array;
  labels: Uint8Array;
  trainIdx: Int32Array;
  referenceIdx: Int32Array;
  calibrationIdx: Int32Array;
  need: number;
  scoreManifest: { name: string; version: string; extra: Record<string, unknown> };
  scoreModelId: string;
  classifierManifest: { name: string; version: string };
  network: ReturnType<typeof ddpmEpsNetwork>;
  schedule: ReturnType<typeof scheduleFromManifest>;
  classifier: Awaited<ReturnType<typeof loadClassifier>>;
  cacheOptions: { cacheDir: string; scoreModel: string; timesteps: number; log: (line: string) => void };
}

/** The training split cut into its three disjoint parts, the score model and the attacked classifier. */
async function loadInputs(tf: Tf, options: EpsAdTrainingOptions): Promise<EpsAdInputs> {
  const [images, labels] = await Promise.all([
    loadFashionMnistImages('train', options.dataDir),
    loadFashionMnistLabels('train', options.dataDir),
  ]);
  const pixels = unitImages(images, 0, images.count);
  const order = fixedShuffle(images.count);
  const need = options.trainImages + options.reference + options.calibration;
  if (need > images.count)
    throw new Error(`${need} images requested, the training split has ${images.count}`);
  const scoreManifest = JSON.parse(await readFile(join(options.scoreModelDir, 'manifest.json'), 'utf8'));
  const scoreModelId = `${scoreManifest.name}@${scoreManifest.version}`;
  const unet = await loadDiffusionModel(tf, options.scoreModelDir);
  return {
    pixels,
    labels: Uint8Array.from(labels),
    trainIdx: order.subarray(0, options.trainImages),
    referenceIdx: order.subarray(options.trainImages, options.trainImages + options.reference),
    calibrationIdx: order.subarray(options.trainImages + options.reference, need),
    need,
    scoreManifest,
    scoreModelId,
    classifierManifest: JSON.parse(await readFile(join(options.classifierDir, 'manifest.json'), 'utf8')),
    schedule: scheduleFromManifest(scoreManifest.extra),
    network: ddpmEpsNetwork(tf, unet),
    classifier: await loadClassifier(tf, options.classifierDir),
    cacheOptions: {
      ...{ cacheDir: options.cacheDir, scoreModel: scoreModelId, timesteps: options.timesteps },
      log: logOf(options),
    },
  };
}

/** Each training image gets one attack: FGSM at even positions, FGSM-L2 at odd ones. */
const attackOf = (i: number): AttackName => TRAINING_ATTACKS[i % TRAINING_ATTACKS.length];

interface EpsSets {
  natural: Float32Array;
  adversarial: Float32Array;
  reference: Float32Array;
  calibration: Float32Array;
  l2Budget: number;
}

/** EPS of the natural and attacked training images, the reference set and the calibration set (cached). */
async function computeEpsSets(tf: Tf, options: EpsAdTrainingOptions, inputs: EpsAdInputs): Promise<EpsSets> {
  const { pixels, trainIdx, network, schedule, cacheOptions } = inputs;
  const eps = (name: string, images: Float32Array, count: number, variant?: string) =>
    cachedEps(tf, network, schedule, { name, images, count, variant }, cacheOptions);
  // Adversarial training images: FGSM (Linf) and FGSM-L2 at the small budget, labels = true classes.
  const trainImages = gather(pixels, trainIdx);
  const trainLabels = Uint8Array.from(trainIdx, (i) => inputs.labels[i]);
  const l2Budget = options.budget * Math.sqrt(IMAGE_PIXELS);
  const budgetKey = options.budget.toFixed(5);
  const natural = await eps('train-natural', trainImages, trainIdx.length);
  // One attack per image (half the EPS cost of both attacks on every image, and both attacks in every part of
  // the split, the validation hold-out included).
  const epsDim = 32 * 32;
  const adversarial = new Float32Array(trainIdx.length * epsDim);
  for (const [a, attack] of TRAINING_ATTACKS.entries()) {
    const positions = Int32Array.from(
      { length: Math.ceil((trainIdx.length - a) / TRAINING_ATTACKS.length) },
      (_, j) => a + j * TRAINING_ATTACKS.length,
    );
    const attacked = await attackImages(
      tf,
      inputs.classifier,
      attack,
      rows(trainImages, positions, IMAGE_PIXELS),
      Uint8Array.from(positions, (p) => trainLabels[p]),
      { eps: attack === 'fgsm' ? options.budget : l2Budget },
    );
    const part = `train-${attack}-${budgetKey}-every${TRAINING_ATTACKS.length}from${a}`;
    // The attacked images are the classifier's: another classifier's EPS are never read back from the cache.
    const classifier = `${inputs.classifierManifest.name}@${inputs.classifierManifest.version}`;
    const values = await eps(part, attacked, positions.length, classifier);
    for (let j = 0; j < positions.length; j++)
      adversarial.set(values.subarray(j * epsDim, (j + 1) * epsDim), positions[j] * epsDim);
  }
  const reference = await eps(
    `reference-from${options.trainImages}`,
    gather(pixels, inputs.referenceIdx),
    inputs.referenceIdx.length,
  );
  const calibration = await eps(
    `calibration-from${options.trainImages + options.reference}`,
    gather(pixels, inputs.calibrationIdx),
    inputs.calibrationIdx.length,
  );
  return { natural, adversarial, reference, calibration, l2Budget };
}

// ---------------------------------------------------------------------------------------------------------------
// Kernel training on the loop of tools/train/core.

interface KernelData {
  naturalScaled: Float32Array;
  adversarialScaled: Float32Array;
  /** Kernel-training pairs used for fitting (the first `fit`; the rest are the validation hold-out). */
  fit: number;
  inputScale: number;
}

interface CheckpointState {
  step: number;
  elapsedSeconds: number;
  /** What fixes the batch stream and the network: a resume must keep them (--lr and --steps may change). */
  settings: Record<string, number>;
  /** Exponential moving average (0.95) of J (null before the first step). */
  lossEma: number | null;
}

interface KernelRun {
  phi: LayersModel;
  variables: KernelVariables;
  optimizer: Optimizer;
  /** phi's weights, then the three scalars: the order of Adam's moments. */
  trainable: Variable[];
  /** The batch stream: rng.int(fit) per row, for the whole run. */
  rng: Rng;
  data: KernelData;
  batchX: Float32Array;
  batchY: Float32Array;
  startStep: number;
  elapsedBefore: number;
  lossEma: number;
  resumedFrom?: { checkpointDir: string; step: number };
}

const EPS_DIM = 32 * 32;
const KERNEL_VARIABLES = ['logSigmaPhi', 'logSigmaQ', 'logitEpsilon'] as const;

/** Bandwidths start at the median heuristic on a natural + adversarial sample (features of the fresh net). */
function medianHeuristic(tf: Tf, phi: LayersModel, data: KernelData): KernelScalars {
  const sample = Int32Array.from({ length: Math.min(100, data.fit) }, (_, i) => i);
  return tf.tidy(() => {
    const x = tf.concat([
      tf.tensor2d(rows(data.naturalScaled, sample, EPS_DIM), [sample.length, EPS_DIM]),
      tf.tensor2d(rows(data.adversarialScaled, sample, EPS_DIM), [sample.length, EPS_DIM]),
    ]) as Tensor2D;
    const f = phi.apply(x.reshape([-1, 32, 32, 1])) as Tensor2D;
    const n = x.shape[0];
    return {
      sigmaPhi: medianOffDiagonal(squaredDistances(tf, f, f).dataSync() as Float32Array, n),
      sigmaQ: medianOffDiagonal(squaredDistances(tf, x, x).dataSync() as Float32Array, n),
      epsilon: 0.1,
    };
  });
}

const kernelSettings = (options: EpsAdTrainingOptions, data: KernelData) => ({
  ...{ seed: options.seed, batch: options.batch, features: options.features },
  ...{ trainImages: options.trainImages, inputScale: data.inputScale },
});

/** The kernel network, scalars, Adam and batch stream: fresh, or where the checkpoint left them (--resume). */
async function startKernel(
  tf: Tf,
  options: EpsAdTrainingOptions,
  data: KernelData,
  log: (line: string) => void,
): Promise<KernelRun> {
  const phi = buildKernelNet(tf, { ...DEFAULT_KERNEL_NET, features: options.features }, options.seed);
  const saved = await openCheckpoint<CheckpointState>(options.checkpointDir, options.resume, log);
  // A resumed run's scalars come from the checkpoint: any start value will do.
  const initial = saved ? { sigmaPhi: 1, sigmaQ: 1, epsilon: 0.5 } : medianHeuristic(tf, phi, data);
  const variables = kernelVariables(tf, initial);
  const run: KernelRun = {
    ...{ phi, variables, optimizer: tf.train.adam(options.lr), rng: new Rng(options.seed), data },
    trainable: [
      ...phi.trainableWeights.map((w) => w.read() as Variable),
      ...KERNEL_VARIABLES.map((name) => variables[name]),
    ],
    batchX: new Float32Array(options.batch * EPS_DIM),
    batchY: new Float32Array(options.batch * EPS_DIM),
    ...{ startStep: 0, elapsedBefore: 0, lossEma: Number.NaN },
  };
  if (saved)
    await resumeKernel(tf, options, run, saved).catch((error: unknown) => {
      disposeKernel(tf, run);
      throw error;
    });
  return run;
}

/** The scalars' variables have fixed names: a second run in the process needs these gone. */
function disposeKernel(tf: Tf, run: KernelRun): void {
  tf.dispose([
    run.phi,
    run.optimizer,
    ...KERNEL_VARIABLES.map((name) => run.variables[name]),
  ] as unknown as Tensor[]);
}

async function resumeKernel(
  tf: Tf,
  options: EpsAdTrainingOptions,
  run: KernelRun,
  saved: LoadedCheckpoint<CheckpointState>,
): Promise<void> {
  const { state, arrays } = saved;
  assertSameSettings(options.checkpointDir, state.settings, kernelSettings(options, run.data));
  setModelArrays(tf, run.phi, arrays);
  for (const name of KERNEL_VARIABLES) {
    const array = arrays.find((a) => a.name === `kernel/${name}`);
    if (!array) throw new Error(`the checkpoint in ${options.checkpointDir} has no kernel/${name}`);
    run.variables[name].assign(tf.tensor(array.values, array.shape));
  }
  await restoreOptimizer(
    tf,
    run.optimizer,
    arrays,
    () => tf.mean(run.phi.apply(tf.zeros([1, 32, 32, 1])) as Tensor) as Scalar,
  );
  for (let i = 0; i < state.step * options.batch; i++) run.rng.int(run.data.fit);
  Object.assign(run, { startStep: state.step, elapsedBefore: state.elapsedSeconds });
  run.lossEma = state.lossEma ?? Number.NaN;
  run.resumedFrom = { checkpointDir: options.checkpointDir, step: state.step };
}

async function kernelArrays(run: KernelRun): Promise<NamedArray[]> {
  return [
    ...modelArrays(run.phi),
    ...KERNEL_VARIABLES.map((name) => ({
      name: `kernel/${name}`,
      shape: run.variables[name].shape,
      values: Float32Array.from(run.variables[name].dataSync() as Float32Array),
    })),
    ...(await optimizerArrays(run.optimizer)),
  ];
}

/** One Adam step on -J of a paired natural/adversarial minibatch. */
async function kernelStep(tf: Tf, options: EpsAdTrainingOptions, run: KernelRun): Promise<StepResult> {
  const { data, phi, variables } = run;
  for (let b = 0; b < options.batch; b++) {
    const i = run.rng.int(data.fit);
    run.batchX.set(data.naturalScaled.subarray(i * EPS_DIM, (i + 1) * EPS_DIM), b * EPS_DIM);
    run.batchY.set(data.adversarialScaled.subarray(i * EPS_DIM, (i + 1) * EPS_DIM), b * EPS_DIM);
  }
  const loss = tf.tidy(() => {
    const x = tf.tensor2d(run.batchX, [options.batch, EPS_DIM]);
    const y = tf.tensor2d(run.batchY, [options.batch, EPS_DIM]);
    const objective = () => {
      const fx = phi.apply(x.reshape([-1, 32, 32, 1]), { training: true }) as Tensor2D;
      const fy = phi.apply(y.reshape([-1, 32, 32, 1]), { training: true }) as Tensor2D;
      const s = scalarTensors(tf, variables);
      const kxx = deepKernelTensor(tf, fx, fx, x, x, s);
      const kyy = deepKernelTensor(tf, fy, fy, y, y, s);
      const kxy = deepKernelTensor(tf, fx, fy, x, y, s);
      return tf.neg(mmdRatio(tf, kxx, kyy, kxy)[2]) as Scalar;
    };
    const cost = run.optimizer.minimize(objective, true, run.trainable);
    if (!cost) throw new Error('optimizer.minimize returned no cost');
    return cost.dataSync()[0];
  });
  if (!Number.isFinite(loss)) return { loss };
  const j = -loss;
  run.lossEma = Number.isNaN(run.lossEma) ? j : 0.95 * run.lossEma + 0.05 * j;
  const s = await readKernelScalars(variables);
  return {
    loss,
    fields: {
      J: { value: run.lossEma, digits: 4 },
      s_phi: { value: s.sigmaPhi, digits: 3 },
      s_q: { value: s.sigmaQ, digits: 3 },
      e: { value: s.epsilon, digits: 3 },
    },
  };
}

/** Trains (or resumes) the kernel; its scalars are null when the run stopped early (continue with --resume). */
async function trainKernel(
  tf: Tf,
  options: EpsAdTrainingOptions,
  run: KernelRun,
): Promise<{ done: number; kernel: KernelScalars | null; seconds: number }> {
  const result = await runTraining({
    ...{ label: 'eps-ad kernel', options, startStep: run.startStep, elapsedBefore: run.elapsedBefore },
    step: () => kernelStep(tf, options, run),
    snapshot: async () => ({
      arrays: await kernelArrays(run),
      state: {
        settings: kernelSettings(options, run.data),
        lossEma: Number.isNaN(run.lossEma) ? null : run.lossEma,
      },
    }),
  });
  const kernel = result.reason === 'done' ? await readKernelScalars(run.variables) : null;
  return { done: result.done, kernel, seconds: result.seconds };
}

interface Calibrated {
  config: DetectorConfig;
  referenceBits: Uint16Array;
  validation: Record<string, number>;
  holdout: number;
}

/** The float16 reference set, the thresholds calibrated on clean images, and the held-out validation AUROC. */
async function calibrate(
  tf: Tf,
  options: EpsAdTrainingOptions,
  inputs: EpsAdInputs,
  sets: EpsSets,
  trained: { phi: LayersModel; kernel: KernelScalars; inputScale: number; fit: number; holdout: number },
): Promise<Calibrated> {
  const dim = 32 * 32;
  const { phi, kernel, inputScale, fit, holdout } = trained;
  const referenceBits = encodeFloat16(scaled(sets.reference, inputScale));
  const referenceQuantised = decodeFloat16(referenceBits);
  const referenceKernelMean = tf.tidy(() => {
    const x = tf.tensor2d(referenceQuantised, [options.reference, dim]);
    const f = phi.apply(x.reshape([-1, 32, 32, 1])) as Tensor2D;
    return deepKernelTensor(tf, f, f, x, x, scalarTensors(tf, kernel)).mean().dataSync()[0];
  });
  const config: DetectorConfig = {
    format: DETECTOR_FORMAT,
    scoreModel: { name: inputs.scoreManifest.name, version: inputs.scoreManifest.version },
    timesteps: options.timesteps,
    imageShape: [28, 28, 1],
    pad: 2,
    inputScale,
    kernel,
    reference: {
      file: 'reference.f16',
      count: options.reference,
      dtype: 'float16',
      source: `Fashion-MNIST training split, ${options.reference} images (fixed shuffle seed ${SPLIT_SEED}, positions ${options.trainImages}..${options.trainImages + options.reference - 1}), EPS / inputScale`,
    },
    calibration: { images: 0, source: '', scores: [], fprs: [], thresholds: [] },
    referenceKernelMean,
  };
  const detector = new EpsAdDetector(tf, phi, config, referenceQuantised);
  config.calibration = calibrationFrom(
    await detector.scores(sets.calibration, options.calibration),
    CALIBRATED_FPRS,
    `Fashion-MNIST training split, ${options.calibration} clean images disjoint from kernel training and reference (fixed shuffle seed ${SPLIT_SEED}, positions ${options.trainImages + options.reference}..${inputs.need - 1})`,
  );
  // Validation on the held-out kernel-training pairs.
  const holdoutIdx = Int32Array.from({ length: holdout }, (_, i) => fit + i);
  const validation: Record<string, number> = {};
  const naturalScores = await detector.scores(rows(sets.natural, holdoutIdx, dim), holdout);
  const adversarialScores = await detector.scores(rows(sets.adversarial, holdoutIdx, dim), holdout);
  for (const attack of TRAINING_ATTACKS) {
    const own = Array.from(holdoutIdx.keys()).filter((j) => attackOf(holdoutIdx[j]) === attack);
    validation[`validationAuroc_${attack}`] = auroc(
      naturalScores,
      own.map((j) => adversarialScores[j]),
    );
  }
  logOf(options)(
    `validation (held-out ${holdout} pairs): ${JSON.stringify(validation)}, thresholds ` +
      JSON.stringify(config.calibration.thresholds),
  );
  detector.dispose();
  return { config, referenceBits, validation, holdout };
}

/** EPS of the three parts (cached), the kernel trained on the core loop, then calibration and the export. */
export async function trainEpsAd(tf: Tf, options: EpsAdTrainingOptions): Promise<EpsAdTrainingResult> {
  const log = logOf(options);
  // Before the EPS (minutes at full size): a checkpoint there needs --resume.
  if (!options.resume) await assertFreshCheckpointDir(options.checkpointDir);
  const started = Date.now();
  const inputs = await loadInputs(tf, options);
  const sets = await computeEpsSets(tf, options, inputs);
  const epsSeconds = (Date.now() - started) / 1000;
  const inputScale = rms(sets.natural);
  const holdout = Math.max(2, Math.round(options.trainImages * 0.2));
  const fit = options.trainImages - holdout;
  const data = {
    ...{
      naturalScaled: scaled(sets.natural, inputScale),
      adversarialScaled: scaled(sets.adversarial, inputScale),
    },
    ...{ fit, inputScale },
  };
  const run = await startKernel(tf, options, data, log);
  try {
    const trained = await trainKernel(tf, options, run);
    if (!trained.kernel) return { steps: trained.done, validation: null };
    const calibrated = await calibrate(tf, options, inputs, sets, {
      ...{ phi: run.phi, kernel: trained.kernel, inputScale, fit, holdout },
    });
    const manifest = trainedManifest(
      {
        ...{ out: options.out, data: epsAdTrainingData(options, inputs, sets), command: options.commandLine },
        lineage: {
          ...{ trainer: `tools/train/eps-ad.ts (tf.js ${options.backend})`, device: 'cpu' },
          ...(run.resumedFrom && { resumedFrom: run.resumedFrom }),
        },
      },
      epsAdManifestBody(options, inputs, calibrated, {
        ...{ phi: run.phi, lossEma: run.lossEma, trainingSeconds: trained.seconds, epsSeconds },
      }),
    );
    await writeModelFolder(options.out, manifest, (dir) =>
      writeDetectorFiles(dir, run.phi, calibrated.config, calibrated.referenceBits),
    );
    log(`wrote ${options.out} (${((Date.now() - started) / 1000).toFixed(0)}s in all)`);
    return { steps: options.steps, validation: calibrated.validation };
  } finally {
    disposeKernel(tf, run);
  }
}

function epsAdTrainingData(options: EpsAdTrainingOptions, inputs: EpsAdInputs, sets: EpsSets): string {
  const { classifierManifest: classifier, scoreModelId } = inputs;
  return (
    `Fashion-MNIST training split (${options.dataDir ?? FASHION_MNIST_DIR}): ${options.trainImages} images ` +
    `(natural, FGSM at Linf ${options.budgetText} and FGSM-L2 at L2 ${sets.l2Budget.toFixed(4)} = budget * ` +
    `sqrt(784), attacking ${classifier.name}@${classifier.version}), ${options.reference} reference and ` +
    `${options.calibration} calibration images, all disjoint; EPS with ${scoreModelId}, T* = ` +
    `${options.timesteps}. The t10k split is not used.`
  );
}

function epsAdManifestBody(
  options: EpsAdTrainingOptions,
  inputs: EpsAdInputs,
  calibrated: Calibrated,
  run: { phi: LayersModel; lossEma: number; trainingSeconds: number; epsSeconds: number },
): ManifestBody {
  const architecture = { ...DEFAULT_KERNEL_NET, features: options.features };
  return {
    task: 'adversarial-detector',
    format: 'layers',
    required: false,
    inputShape: [null, 32, 32, 1],
    valueRange: [-8, 8],
    channels: 1,
    architecture: {
      kind: 'eps-ad-deep-kernel',
      phi: `conv3x3/2(${architecture.filters[0]})-lrelu, conv3x3/2(${architecture.filters[1]})-lrelu, dense(${architecture.features})`,
      kernel:
        '(1 - e) exp(-||phi(a) - phi(b)||^2 / s_phi - ||a - b||^2 / s_q) + e exp(-||a - b||^2 / s_q), on EPS / inputScale',
      input: 'EPS of a 28x28 [0,1] image padded to 32x32, divided by detector.json inputScale',
      statistic: 'biased MMD^2 between the reference EPS set and one test EPS (larger = adversarial)',
      files: 'model.json + weights.bin (phi), detector.json (scalars, T*, calibration), reference.f16',
    },
    parameters: run.phi.countParams() + 3,
    trainingSteps: options.steps,
    metrics: epsAdMetrics(options, calibrated, run),
    description:
      'EPS-AD adversarial-example detector for classifier-fashion-mnist inputs: deep kernel on the expected perturbation score of ddpm-fashion-mnist, a float16 reference set and thresholds calibrated on held-out clean images.',
    extra: {
      scoreModel: inputs.scoreModelId,
      classifier: `${inputs.classifierManifest.name}@${inputs.classifierManifest.version}`,
      trainingAttacks: TRAINING_ATTACKS,
      budgets: { fgsm: options.budget, 'fgsm-l2': options.budget * Math.sqrt(IMAGE_PIXELS) },
      timesteps: options.timesteps,
      inputScale: calibrated.config.inputScale,
      kernel: calibrated.config.kernel,
      calibratedFprs: CALIBRATED_FPRS,
      thresholds: calibrated.config.calibration.thresholds,
      referenceQuantisation:
        'float16 (IEEE binary16) of EPS / inputScale; calibration computed on the quantised set',
      splitSeed: SPLIT_SEED,
    },
  };
}

function epsAdMetrics(
  options: EpsAdTrainingOptions,
  calibrated: Calibrated,
  run: { lossEma: number; trainingSeconds: number; epsSeconds: number },
): Record<string, number | string> {
  return {
    ...calibrated.validation,
    validationPairs: calibrated.holdout,
    trainingObjectiveJ: run.lossEma,
    trainingObjectiveDefinition:
      'MMD^2_u / sqrt(Var) of natural vs FGSM/FGSM-L2 EPS minibatches, exponential moving average (0.95)',
    threshold_fpr_0_05: thresholdAtFpr(calibrated.config.calibration.scores, 0.05),
    calibrationImages: options.calibration,
    referenceImages: options.reference,
    timesteps: options.timesteps,
    budgetLinf: options.budget,
    budgetL2: options.budget * Math.sqrt(IMAGE_PIXELS),
    trainingSeconds: run.trainingSeconds,
    epsSeconds: run.epsSeconds,
    batch: options.batch,
    learningRate: options.lr,
    optimizer: 'adam',
    backend: options.backend,
    seed: options.seed,
  };
}

function parseBudget(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(?:\/(\d+(?:\.\d+)?))?$/.exec(text.trim());
  const value = match ? Number(match[1]) / (match[2] ? Number(match[2]) : 1) : Number.NaN;
  if (!(value > 0 && value < 1))
    throw new UsageError(`--budget must be a number in (0, 1) or a fraction like 1/255`, EPS_AD_USAGE);
  return value;
}

const EPS_AD_OPTIONS = {
  ...COMMON_OPTIONS,
  budget: { type: 'string', default: '1/255' },
  'train-images': { type: 'string' },
  reference: { type: 'string' },
  calibration: { type: 'string' },
  timesteps: { type: 'string' },
  features: { type: 'string' },
  'score-model': { type: 'string', default: 'models/ddpm-fashion-mnist/20261127' },
  classifier: { type: 'string', default: 'models/classifier-fashion-mnist/1' },
  'cache-dir': { type: 'string', default: 'tmp/eps-ad-cache' },
} as const;

export type EpsAdCli = Omit<EpsAdTrainingOptions, 'commandLine' | 'backend' | 'log'> & CommonOptions;

/** The command line, checked; nothing is read or run yet. Null for --help. */
export function parseEpsAdArgs(args: string[]): EpsAdCli | null {
  const values = parseOptions(args, EPS_AD_OPTIONS, EPS_AD_USAGE);
  if (values.help) return null;
  const common = commonOptions(values, { name: 'eps-ad-fashion-mnist', steps: 1500, batch: 100, lr: 5e-4 });
  if (common.device !== 'cpu') throw new UsageError('eps-ad: there is no GPU port; use --device cpu');
  if (common.initFrom) throw new UsageError('eps-ad has no --init-from: the kernel trains from scratch');
  modelIdFromOut(common.out);
  return {
    ...common,
    budget: parseBudget(values.budget),
    budgetText: values.budget,
    trainImages: positive('train-images', values['train-images'], 600, true),
    reference: positive('reference', values.reference, 500, true),
    calibration: positive('calibration', values.calibration, 500, true),
    timesteps: positive('timesteps', values.timesteps, 20, true),
    features: positive('features', values.features, DEFAULT_KERNEL_NET.features, true),
    scoreModelDir: values['score-model'],
    classifierDir: values.classifier,
    dataDir: values.images,
    cacheDir: values['cache-dir'],
  };
}

export async function runEpsAdCli(args: string[], commandLine: string): Promise<void> {
  const cli = parseEpsAdArgs(args);
  if (!cli) return void console.log(EPS_AD_USAGE);
  const runtime = await initTfjs(cli.backend as BackendPreference);
  await trainEpsAd(runtime.tf, {
    ...cli,
    commandLine,
    backend: runtime.backend,
    log: process.stderr.isTTY ? undefined : (line) => console.log(line),
  });
}
