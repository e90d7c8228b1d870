/**
 * `npm run train -- eps-ad [options]`: trains the EPS-AD deep kernel and writes the detector folder
 * models/eps-ad-fashion-mnist/<version> (see src/adversarial/detector.ts for the files).
 *
 * 1. A fixed shuffle of the Fashion-MNIST TRAINING split is cut into three disjoint parts: kernel training images
 *    (natural + their FGSM and FGSM-L2 versions at a small budget, attacked through classifier-fashion-mnist),
 *    the reference set, and the calibration set. The t10k split is never touched (the benchmark's).
 * 2. EPS of every part with ddpm-fashion-mnist (T* timesteps), cached per chunk of 50 images under --cache-dir
 *    (git-ignored), so a rerun or a resumed run only computes what is missing. Cache keys name the part and its
 *    first position in the shuffle, so a larger --train-images or --reference reuses every chunk it can.
 * 3. The kernel (phi + s_phi, s_q, e) is trained with Adam to maximise MMD^2_u / sqrt(Var) between natural and
 *    adversarial EPS minibatches (paired: row i of both is the same image; the attack per row is FGSM or FGSM-L2
 *    at random). Checkpoints every --checkpoint-steps under --checkpoint-dir; --resume continues from the last one
 *    (the Adam moments restart, which costs a few steps of warm-up and nothing else).
 * 4. Held-out kernel-training pairs (the last 20%) give a validation AUROC of the single-image statistic.
 * 5. The reference EPS are quantised to float16, the calibration images are scored against them, and the
 *    thresholds at 1%, 5% and 10% FPR are the matching quantiles of those scores.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { AttackName } from '../../src/adversarial/attacks.js';
import { loadClassifier, loadFashionMnistLabels, unitImages } from '../../src/adversarial/classifier.js';
import {
  buildKernelNet,
  DEFAULT_KERNEL_NET,
  deepKernelTensor,
  type KernelScalars,
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
import { loadFashionMnistImages } from '../../src/diffusion/fashion-mnist.js';
import { loadDiffusionModel } from '../../src/diffusion/model.js';
import { type BackendPreference, initTfjs } from '../../src/nn/backend.js';
import { fileSystemIO } from '../../src/nn/fs-io.js';
import { type ModelManifestInput, parseModelManifest } from '../../src/nn/manifest.js';
import { Rng, stringHash } from '../../src/util/random.js';
import { positiveNumber as positive } from './core/options.js';

type Tf = typeof import('@tensorflow/tfjs');
type Tensor2D = import('@tensorflow/tfjs').Tensor2D;
type LayersModel = import('@tensorflow/tfjs').LayersModel;

export const EPS_AD_USAGE = `usage: npm run train -- eps-ad [--budget 1/255] [--train-images 600] [--reference 500]
  [--calibration 500] [--timesteps 20] [--steps 1500] [--batch 100] [--lr 5e-4] [--features 300] [--seed 1]
  [--score-model models/ddpm-fashion-mnist/20261127] [--classifier models/classifier-fashion-mnist/1]
  [--out models/eps-ad-fashion-mnist/<version>] [--version V] [--cache-dir tmp/eps-ad-cache]
  [--checkpoint-dir checkpoints/eps-ad] [--checkpoint-steps 250] [--resume] [--backend auto|wasm|cpu]`;

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
  out: string;
  version: string;
  cacheDir: string;
  checkpointDir: string;
  checkpointSteps: number;
  resume: boolean;
  commandLine: string;
  backend: string;
}

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
}

/**
 * EPS of a part, chunk by chunk, each chunk cached as <cacheDir>/<key>/<chunk>.f32. The key names everything the
 * values depend on (score model, T*, part, attack and budget, split seed).
 */
async function cachedEps(
  tf: Tf,
  network: ReturnType<typeof ddpmEpsNetwork>,
  schedule: ReturnType<typeof scheduleFromManifest>,
  part: EpsPart,
  options: { cacheDir: string; scoreModel: string; timesteps: number },
): Promise<Float32Array> {
  const chunk = 50;
  const key = `${options.scoreModel.replaceAll('/', '_')}-T${options.timesteps}-${part.name}-split${SPLIT_SEED}`;
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
  console.log(
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

interface Checkpoint {
  step: number;
  scalars: KernelScalars;
  inputScale: number;
  lossEma: number;
}

async function saveCheckpoint(dir: string, phi: LayersModel, checkpoint: Checkpoint): Promise<void> {
  await mkdir(dir, { recursive: true });
  await phi.save(fileSystemIO(dir));
  await writeFile(join(dir, 'state.json'), `${JSON.stringify(checkpoint, null, 2)}\n`);
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
  cacheOptions: { cacheDir: string; scoreModel: string; timesteps: number };
}

/** The training split cut into its three disjoint parts, the score model and the attacked classifier. */
async function loadInputs(tf: Tf, options: EpsAdTrainingOptions): Promise<EpsAdInputs> {
  const [images, labels] = await Promise.all([
    loadFashionMnistImages('train'),
    loadFashionMnistLabels('train'),
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
    cacheOptions: { cacheDir: options.cacheDir, scoreModel: scoreModelId, timesteps: options.timesteps },
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
  const eps = (name: string, images: Float32Array, count: number) =>
    cachedEps(tf, network, schedule, { name, images, count }, cacheOptions);
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
    const values = await eps(part, attacked, positions.length);
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

interface KernelStart {
  phi: LayersModel;
  startStep: number;
  initial: KernelScalars;
  lossEma: number;
}

/** The kernel network and scalars: from the checkpoint (--resume), or fresh with median-heuristic bandwidths. */
async function startKernel(
  tf: Tf,
  options: EpsAdTrainingOptions,
  naturalScaled: Float32Array,
  adversarialScaled: Float32Array,
  fit: number,
): Promise<KernelStart> {
  const dim = 32 * 32;
  const stateFile = join(options.checkpointDir, 'state.json');
  if (options.resume && existsSync(stateFile)) {
    const state = JSON.parse(await readFile(stateFile, 'utf8')) as Checkpoint;
    console.log(`resumed at step ${state.step}`);
    return {
      phi: await tf.loadLayersModel(fileSystemIO(options.checkpointDir)),
      startStep: state.step,
      initial: state.scalars,
      lossEma: state.lossEma,
    };
  }
  const phi = buildKernelNet(tf, { ...DEFAULT_KERNEL_NET, features: options.features }, options.seed);
  // Bandwidths start at the median heuristic on a natural + adversarial sample (features of the fresh net).
  const sample = Int32Array.from({ length: Math.min(100, fit) }, (_, i) => i);
  const initial = tf.tidy(() => {
    const x = tf.concat([
      tf.tensor2d(rows(naturalScaled, sample, dim), [sample.length, dim]),
      tf.tensor2d(rows(adversarialScaled, sample, dim), [sample.length, dim]),
    ]) as Tensor2D;
    const f = phi.apply(x.reshape([-1, 32, 32, 1])) as Tensor2D;
    const n = x.shape[0];
    return {
      sigmaPhi: medianOffDiagonal(squaredDistances(tf, f, f).dataSync() as Float32Array, n),
      sigmaQ: medianOffDiagonal(squaredDistances(tf, x, x).dataSync() as Float32Array, n),
      epsilon: 0.1,
    };
  });
  return { phi, startStep: 0, initial, lossEma: Number.NaN };
}

/** Adam on -MMD^2_u / sqrt(Var) of paired natural/adversarial minibatches; returns the trained scalars. */
async function trainKernel(
  tf: Tf,
  options: EpsAdTrainingOptions,
  start: KernelStart,
  data: { naturalScaled: Float32Array; adversarialScaled: Float32Array; fit: number; inputScale: number },
): Promise<{ kernel: KernelScalars; lossEma: number; seconds: number }> {
  const dim = 32 * 32;
  const { phi } = start;
  const rng = new Rng(options.seed);
  const variables = kernelVariables(tf, start.initial);
  const optimizer = tf.train.adam(options.lr);
  const trainable = [
    ...phi.trainableWeights.map((w) => (w as unknown as { val: import('@tensorflow/tfjs').Variable }).val),
    variables.logSigmaPhi,
    variables.logSigmaQ,
    variables.logitEpsilon,
  ];
  const batchX = new Float32Array(options.batch * dim);
  const batchY = new Float32Array(options.batch * dim);
  const started = Date.now();
  let lossEma = start.lossEma;
  for (let step = start.startStep + 1; step <= options.steps; step++) {
    for (let b = 0; b < options.batch; b++) {
      const i = rng.int(data.fit);
      batchX.set(data.naturalScaled.subarray(i * dim, (i + 1) * dim), b * dim);
      batchY.set(data.adversarialScaled.subarray(i * dim, (i + 1) * dim), b * dim);
    }
    const loss = tf.tidy(() => {
      const x = tf.tensor2d(batchX, [options.batch, dim]);
      const y = tf.tensor2d(batchY, [options.batch, dim]);
      const cost = optimizer.minimize(
        () => {
          const fx = phi.apply(x.reshape([-1, 32, 32, 1]), { training: true }) as Tensor2D;
          const fy = phi.apply(y.reshape([-1, 32, 32, 1]), { training: true }) as Tensor2D;
          const s = scalarTensors(tf, variables);
          const kxx = deepKernelTensor(tf, fx, fx, x, x, s);
          const kyy = deepKernelTensor(tf, fy, fy, y, y, s);
          const kxy = deepKernelTensor(tf, fx, fy, x, y, s);
          const [, , ratio] = mmdRatio(tf, kxx, kyy, kxy);
          return tf.neg(ratio) as import('@tensorflow/tfjs').Scalar;
        },
        true,
        trainable,
      );
      if (!cost) throw new Error('optimizer.minimize returned no cost');
      return cost;
    });
    const value = -(await loss.data())[0];
    loss.dispose();
    if (!Number.isFinite(value))
      throw new Error(`training stopped: the objective is ${value} at step ${step}; lower --lr`);
    lossEma = Number.isNaN(lossEma) ? value : 0.95 * lossEma + 0.05 * value;
    if (step % 50 === 0 || step === options.steps) {
      const s = await readKernelScalars(variables);
      console.log(
        `step ${step}/${options.steps} J ${lossEma.toFixed(3)} s_phi ${s.sigmaPhi.toExponential(2)} s_q ${s.sigmaQ.toExponential(2)} e ${s.epsilon.toFixed(3)} ${((Date.now() - started) / 1000).toFixed(0)}s`,
      );
    }
    if (step % options.checkpointSteps === 0 && step < options.steps) {
      const scalars = await readKernelScalars(variables);
      await saveCheckpoint(options.checkpointDir, phi, {
        step,
        scalars,
        inputScale: data.inputScale,
        lossEma,
      });
    }
  }
  return { kernel: await readKernelScalars(variables), lossEma, seconds: (Date.now() - started) / 1000 };
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
  console.log(
    `validation (held-out ${holdout} pairs):`,
    validation,
    'thresholds',
    config.calibration.thresholds,
  );
  detector.dispose();
  return { config, referenceBits, validation, holdout };
}

export async function trainEpsAd(tf: Tf, options: EpsAdTrainingOptions): Promise<void> {
  const started = Date.now();
  const inputs = await loadInputs(tf, options);
  const sets = await computeEpsSets(tf, options, inputs);
  const epsSeconds = (Date.now() - started) / 1000;
  const inputScale = rms(sets.natural);
  const naturalScaled = scaled(sets.natural, inputScale);
  const adversarialScaled = scaled(sets.adversarial, inputScale);
  const holdout = Math.max(2, Math.round(options.trainImages * 0.2));
  const fit = options.trainImages - holdout;
  const start = await startKernel(tf, options, naturalScaled, adversarialScaled, fit);
  const trained = await trainKernel(tf, options, start, {
    naturalScaled,
    adversarialScaled,
    fit,
    inputScale,
  });
  const calibrated = await calibrate(tf, options, inputs, sets, {
    ...{ phi: start.phi, kernel: trained.kernel, inputScale, fit, holdout },
  });
  await writeDetectorFiles(options.out, start.phi, calibrated.config, calibrated.referenceBits);
  const manifest = epsAdManifest(options, inputs, sets, calibrated, {
    ...{ phi: start.phi, lossEma: trained.lossEma, trainingSeconds: trained.seconds, epsSeconds },
  });
  await writeFile(join(options.out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(`wrote ${options.out} (${((Date.now() - started) / 1000).toFixed(0)}s in all)`);
}

function epsAdManifest(
  options: EpsAdTrainingOptions,
  inputs: EpsAdInputs,
  sets: EpsSets,
  calibrated: Calibrated,
  run: { phi: LayersModel; lossEma: number; trainingSeconds: number; epsSeconds: number },
): ModelManifestInput {
  const { scoreModelId, classifierManifest } = inputs;
  const { config, validation, holdout } = calibrated;
  const { l2Budget } = sets;
  const architecture = { ...DEFAULT_KERNEL_NET, features: options.features };
  const inputScale = config.inputScale;
  const kernel = config.kernel;
  const lossEma = run.lossEma;
  const trainingSeconds = run.trainingSeconds;
  const epsSeconds = run.epsSeconds;
  const calibrationScores = config.calibration.scores;
  const phi = run.phi;
  const manifest: ModelManifestInput = {
    name: 'eps-ad-fashion-mnist',
    version: options.version,
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
    parameters: phi.countParams() + 3,
    trainingData: `Fashion-MNIST training split: ${options.trainImages} images (natural, FGSM at Linf ${options.budgetText} and FGSM-L2 at L2 ${l2Budget.toFixed(4)} = budget * sqrt(784), attacking ${classifierManifest.name}@${classifierManifest.version}), ${options.reference} reference and ${options.calibration} calibration images, all disjoint; EPS with ${scoreModelId}, T* = ${options.timesteps}. The t10k split is not used.`,
    trainingSteps: options.steps,
    trainingCommand: options.commandLine,
    metrics: {
      ...validation,
      validationPairs: holdout,
      trainingObjectiveJ: lossEma,
      trainingObjectiveDefinition:
        'MMD^2_u / sqrt(Var) of natural vs FGSM/FGSM-L2 EPS minibatches, exponential moving average (0.95)',
      threshold_fpr_0_05: thresholdAtFpr(calibrationScores, 0.05),
      calibrationImages: options.calibration,
      referenceImages: options.reference,
      timesteps: options.timesteps,
      budgetLinf: options.budget,
      budgetL2: l2Budget,
      trainingSeconds,
      epsSeconds,
      batch: options.batch,
      learningRate: options.lr,
      optimizer: 'adam',
      backend: options.backend,
      seed: options.seed,
    },
    description:
      'EPS-AD adversarial-example detector for classifier-fashion-mnist inputs: deep kernel on the expected perturbation score of ddpm-fashion-mnist, a float16 reference set and thresholds calibrated on held-out clean images.',
    createdAt: new Date().toISOString(),
    extra: {
      scoreModel: scoreModelId,
      classifier: `${classifierManifest.name}@${classifierManifest.version}`,
      trainingAttacks: TRAINING_ATTACKS,
      budgets: { fgsm: options.budget, 'fgsm-l2': l2Budget },
      timesteps: options.timesteps,
      inputScale,
      kernel,
      calibratedFprs: CALIBRATED_FPRS,
      thresholds: config.calibration.thresholds,
      referenceQuantisation:
        'float16 (IEEE binary16) of EPS / inputScale; calibration computed on the quantised set',
      splitSeed: SPLIT_SEED,
      adamRestartOnResume: true,
    },
  };
  const parsed = parseModelManifest(manifest);
  if (!parsed.ok) throw new Error(`manifest is invalid: ${parsed.error}`);
  return manifest;
}

function parseBudget(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(?:\/(\d+(?:\.\d+)?))?$/.exec(text.trim());
  const value = match ? Number(match[1]) / (match[2] ? Number(match[2]) : 1) : Number.NaN;
  if (!(value > 0 && value < 1))
    throw new Error(`--budget must be a number in (0, 1) or a fraction like 1/255`);
  return value;
}

export async function runEpsAdCli(args: string[], commandLine: string): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      budget: { type: 'string', default: '1/255' },
      'train-images': { type: 'string' },
      reference: { type: 'string' },
      calibration: { type: 'string' },
      timesteps: { type: 'string' },
      steps: { type: 'string' },
      batch: { type: 'string' },
      lr: { type: 'string' },
      features: { type: 'string' },
      seed: { type: 'string' },
      'score-model': { type: 'string', default: 'models/ddpm-fashion-mnist/20261127' },
      classifier: { type: 'string', default: 'models/classifier-fashion-mnist/1' },
      out: { type: 'string' },
      version: { type: 'string' },
      'cache-dir': { type: 'string', default: 'tmp/eps-ad-cache' },
      'checkpoint-dir': { type: 'string', default: 'checkpoints/eps-ad' },
      'checkpoint-steps': { type: 'string' },
      resume: { type: 'boolean', default: false },
      backend: { type: 'string', default: 'auto' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(EPS_AD_USAGE);
    return;
  }
  const version = values.version ?? '1';
  const runtime = await initTfjs(values.backend as BackendPreference);
  await trainEpsAd(runtime.tf, {
    budget: parseBudget(values.budget ?? '1/255'),
    budgetText: values.budget ?? '1/255',
    trainImages: positive('train-images', values['train-images'], 600, true),
    reference: positive('reference', values.reference, 500, true),
    calibration: positive('calibration', values.calibration, 500, true),
    timesteps: positive('timesteps', values.timesteps, 20, true),
    steps: positive('steps', values.steps, 1500, true),
    batch: positive('batch', values.batch, 100, true),
    lr: positive('lr', values.lr, 5e-4),
    features: positive('features', values.features, DEFAULT_KERNEL_NET.features, true),
    seed: values.seed === undefined ? 1 : Number(values.seed),
    scoreModelDir: values['score-model'] ?? 'models/ddpm-fashion-mnist/20261127',
    classifierDir: values.classifier ?? 'models/classifier-fashion-mnist/1',
    out: values.out ?? `models/eps-ad-fashion-mnist/${version}`,
    version,
    cacheDir: values['cache-dir'] ?? 'tmp/eps-ad-cache',
    checkpointDir: values['checkpoint-dir'] ?? 'checkpoints/eps-ad',
    checkpointSteps: positive('checkpoint-steps', values['checkpoint-steps'], 250, true),
    resume: values.resume ?? false,
    commandLine,
    backend: runtime.backend,
  });
}
