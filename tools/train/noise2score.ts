/**
 * Training of the Noise2Score score network with the AR-DAE loss (Kim & Ye, NeurIPS 2021):
 *
 *   L = E_{y, u ~ N(0, I)} || u + sigma_a R(y + sigma_a u) ||^2        (mean over pixels)
 *
 * whose minimiser is the score of the sigma_a-smoothed distribution of the NOISY images y; sigma_a is annealed
 * geometrically from large to small (Gaussian/Gamma 0.05 -> 0.001 on [0,1]; Poisson 1 -> 0.5 on the count scale
 * z = y/zeta). The loss never sees a clean image: with --clean-dir clean patches are only used to synthesise noisy
 * ones (blind: a fresh level per patch), with --images the user's noisy images are used as they are.
 *
 * Variance reduction: each noisy patch is used twice, with u and -u (antithetic pairs). The expected loss is
 * unchanged (u and -u are equally likely), but the large zero-mean term 2 sigma_a <u, R(y)> cancels between the
 * pair, leaving the score-matching signal; with sigma_a = 0.001 that term would otherwise swamp the gradient.
 *
 * Poisson: the network takes the image on the [0,1] scale and returns the score on the count scale z = y/zeta
 * (d/dz log p(z)); the perturbation sigma_a u on z is zeta sigma_a u on the network's input.
 *
 * Reproducible and resumable: the data and noise of step t come from Rng(mix(seed, t)), and a checkpoint holds the
 * weights, Adam's moments and iteration count, and the step, so `--resume` continues the same trajectory.
 */

import { basename } from 'node:path';
import {
  estimateGammaShape,
  estimateGaussianSigma,
  estimatePoissonZeta,
} from '../../src/denoise/estimate.js';
import {
  buildScoreNetwork,
  DEFAULT_ARCHITECTURE,
  networkMultiple,
  registerNoise2ScoreLayers,
  type ScoreNetworkArchitecture,
  unetConvs,
} from '../../src/denoise/network.js';
import { addNoise, type NoiseFamily } from '../../src/denoise/noise.js';
import { denoiseNoise2Score } from '../../src/denoise/noise2score.js';
import { Rng } from '../../src/util/random.js';
import {
  modelArrays,
  openCheckpoint,
  optimizerArrays,
  restoreOptimizer,
  setModelArrays,
  writeCheckpoint,
} from './core/checkpoint.js';
import { exportLayersModel, type Lineage, type ManifestBody, trainedManifest } from './core/export.js';
import { runTraining, type StepResult } from './core/loop.js';
import { geometric, setLearningRate, stepRng, warmupCosine } from './core/schedules.js';
import { type GreyImage, loadGreyImages, samplePatch } from './data.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Optimizer = import('@tensorflow/tfjs').AdamOptimizer;
type Tensor = import('@tensorflow/tfjs').Tensor;
type Scalar = import('@tensorflow/tfjs').Scalar;

export interface FamilyTraining {
  /** Blind training range of the level (sigma on [0,1] / zeta / k). */
  levelRange: [number, number];
  /** Sample the level log-uniformly (for zeta, whose range spans 20x) instead of uniformly. */
  logUniform: boolean;
  sigmaA: [number, number];
  /**
   * When set, sigma_a is this multiple c of each patch's own noise level (c annealed geometrically from start to
   * end) instead of the absolute `sigmaA`: see `perturbationScale`.
   */
  relativeSigmaA?: [number, number];
  /** Fixed output gain of the network: roughly the magnitude of the score on this family's scale. */
  outputScale: number;
  /** The validation level (Gaussian sigma 25/255, Poisson zeta 0.01, Gamma k 100). */
  validationLevel: number;
  validationLevelLabel: string;
}

export const FAMILY_TRAINING: Record<NoiseFamily, FamilyTraining> = {
  gaussian: {
    // The low end is 3.5/255, not 5/255: with sigma_a = c sigma the network learns the score at the level
    // sigma sqrt(1 + c^2) (c = 0.7 at the end: x1.22), so 3.5/255 keeps sigma = 5/255 inside the learned range.
    levelRange: [3.5 / 255, 55 / 255],
    logUniform: false,
    sigmaA: [0.05, 0.001],
    relativeSigmaA: [1, 0.7],
    outputScale: 32,
    validationLevel: 25 / 255,
    validationLevelLabel: 'sigma = 25/255',
  },
  poisson: {
    // sigma_a = c sqrt(mean count) on the count scale, c = 0.5: the smoothed counts behave like Poisson counts at
    // zeta (1 + c^2); training from 0.004 keeps the served 0.005 covered.
    levelRange: [0.004, 0.1],
    logUniform: true,
    sigmaA: [1, 0.5],
    relativeSigmaA: [0.5, 0.5],
    outputScale: 2,
    validationLevel: 0.01,
    validationLevelLabel: 'zeta = 0.01',
  },
  gamma: {
    // sigma_a = c * (patch mean) / sqrt(k), c = 0.5: the smoothed noise has about (1 + c^2) x^2 / k variance,
    // i.e. the network learns levels k / 1.25; training on [50, 150] covers the served [40, 120].
    levelRange: [50, 150],
    logUniform: false,
    sigmaA: [0.05, 0.001],
    relativeSigmaA: [0.5, 0.5],
    outputScale: 32,
    validationLevel: 100,
    validationLevelLabel: 'k = 100',
  },
};

export interface TrainNoise2ScoreOptions {
  noise: NoiseFamily;
  /** Clean images to synthesise noisy ones from (blind level per patch)... */
  cleanDir?: string;
  /** ...or the user's noisy images, used as they are (any names; JPEG, PNG, TIFF, 8/16-bit, grey or colour). */
  noisyDir?: string;
  steps: number;
  batch: number;
  patch: number;
  lr: number;
  /** The model folder, `<models dir>/<name>/<version>`: the service serves it as `model=<name>`. */
  out: string;
  checkpointDir: string;
  resume: boolean;
  seed: number;
  /** Minutes between checkpoints (and exports). */
  checkpointMinutes: number;
  /** Clean reference images for validation (noise of the family's validation level is added); none: skipped. */
  validationDir?: string;
  architecture?: ScoreNetworkArchitecture;
  commandLine: string;
  /** Plain progress lines go here (a bar on a terminal when absent). */
  log?: (line: string) => void;
  /** Backend name, recorded in the manifest. */
  backend?: string;
  /** Stop (after writing a checkpoint, without the final export) once this step is reached: for tests and for
   * splitting a long run into sessions; `--resume` continues the same schedule. */
  stopAtStep?: number;
  /** Stop (with a checkpoint) after this many minutes of this run. */
  maxMinutes?: number;
  /** Start from the weights of this exported model (fine-tuning) instead of a fresh initialisation. */
  initFrom?: string;
  /** How the weights were made, when not by this trainer (the GPU importer). */
  lineage?: Lineage;
}

export interface TrainNoise2ScoreResult {
  steps: number;
  losses: number[];
  validationPsnr: number | null;
  outDir: string;
}

/** Validation noise: image i of the sorted folder gets Rng(VALIDATION_SEED + i) (xoshiro128**, src/util/random.ts). */
export const VALIDATION_SEED = 20210000;

/**
 * Geometric annealing of sigma_a from start (step 0) to end (last step); for a family with `relativeSigmaA` this
 * is the multiple c of the patch's noise level.
 */
export function sigmaASchedule(family: NoiseFamily, step: number, steps: number): number {
  const [start, end] = FAMILY_TRAINING[family].relativeSigmaA ?? FAMILY_TRAINING[family].sigmaA;
  return geometric(start, end, step, steps);
}

/** Linear warm-up over the first 2% of steps, then cosine decay to 2% of the peak. */
export function learningRate(peak: number, step: number, steps: number): number {
  return warmupCosine(peak, step, steps, { warmupFraction: 0.02, floor: 0.02 });
}

export interface TrainingImage extends GreyImage {
  /** For --images Poisson training: the image's estimated zeta. */
  zeta?: number;
}

export interface Batch {
  input: Float32Array;
  noise: Float32Array;
  /** Per patch: scale of u on the network input (sigma_a, or zeta*sigma_a for Poisson). */
  inputScale: Float32Array;
  /** Per patch: the sigma_a of the loss || u + sigma_a R ||^2 (on the score's scale: z for Poisson). */
  lossScale: Float32Array;
}

/**
 * Relative perturbation (Gaussian): sigma_a = c * sigma for a patch of level sigma. The AR-DAE minimiser at a
 * noisy input y~ of level s = sigma sqrt(1 + c^2) is -E[u | y~] / sigma_a = grad log p_s(y~), the score of the
 * noisy images at level s; mixed over the blind training levels it is the score of the mixture, which at a test
 * image of level sigma is (as the level is identifiable from the image) grad log p_sigma(y): Tweedie's formula
 * y + sigma^2 R(y) applies unchanged with the true sigma. Why not the paper's absolute 0.05 -> 0.001: the
 * score-matching signal in the loss is ~ sigma_a^2 / s^2 of it, 1e-4 at sigma_a = 0.001, sigma = 0.1, and with
 * batches of 32 the estimate drowned in noise (Set12 PSNR stuck at 25 dB from step 250 on, see the v1 manifest);
 * at c = 0.35 the signal is 11% of the loss.
 */
export function perturbationScale(
  family: NoiseFamily,
  schedule: number,
  level: number,
  patchMean: number,
): number {
  if (!FAMILY_TRAINING[family].relativeSigmaA) return schedule;
  if (family === 'gaussian') return schedule * level;
  // Gamma: the noise std at intensity x is x / sqrt(k); the patch mean stands for x. The smoothed noise is only
  // approximately Gamma (levels k / (1 + c^2)), hence the small c for this family.
  if (family === 'gamma') return (schedule * Math.max(patchMean, 1 / 255)) / Math.sqrt(level);
  // Poisson, on the count scale z = y / zeta: the noise std at mean count m is sqrt(m).
  return schedule * Math.sqrt(Math.max(patchMean / level, 1));
}

/**
 * The sigma_a of the loss for a perturbation of `perturbation` (count scale for Poisson). Poisson with the relative
 * recipe: z + c sqrt(m) u behaves like counts at level zeta' = zeta (1 + c^2) divided by (1 + c^2), so its score on
 * the z scale is 1/(1 + c^2) times the count-scale score at zeta'; weighting the loss by perturbation/(1 + c^2)
 * makes the network return the count-scale score itself, and Tweedie's formula keeps its form at the served level.
 */
export function lossSigma(family: NoiseFamily, schedule: number, perturbation: number): number {
  if (family === 'poisson' && FAMILY_TRAINING[family].relativeSigmaA)
    return perturbation / (1 + schedule * schedule);
  return perturbation;
}

/** One antithetic batch: `batch/2` noisy patches, each twice (with +u and -u). */
export function makeBatch(
  options: TrainNoise2ScoreOptions,
  images: TrainingImage[],
  step: number,
  sigmaA: number,
): Batch {
  const rng = stepRng(options.seed, step);
  const family = FAMILY_TRAINING[options.noise];
  const pairs = Math.max(1, Math.floor(options.batch / 2));
  const pixels = options.patch * options.patch;
  const input = new Float32Array(2 * pairs * pixels);
  const noise = new Float32Array(2 * pairs * pixels);
  const inputScale = new Float32Array(2 * pairs);
  const lossScale = new Float32Array(2 * pairs);
  for (let p = 0; p < pairs; p++) {
    const { patch, index } = samplePatch(images, options.patch, rng);
    let noisy: Float32Array;
    let zeta = 1;
    let level: number | null = null;
    if (options.cleanDir) {
      const [lo, hi] = family.levelRange;
      const u = rng.uniform();
      level = family.logUniform ? lo * (hi / lo) ** u : lo + (hi - lo) * u;
      noisy = addNoise(options.noise, patch, level, rng);
      zeta = level;
    } else {
      noisy = patch;
      zeta = images[index].zeta ?? 1;
    }
    // With --images the level is unknown: the relative recipe falls back to the estimated level.
    const patchLevel = level ?? estimatePatchLevel(options.noise, noisy, options.patch);
    let patchMean = 0;
    for (let i = 0; i < pixels; i++) patchMean += noisy[i];
    patchMean /= pixels;
    const perturbation = perturbationScale(
      options.noise,
      sigmaA,
      options.noise === 'poisson' ? zeta : patchLevel,
      patchMean,
    );
    const scale = options.noise === 'poisson' ? zeta * perturbation : perturbation;
    inputScale[p] = scale;
    inputScale[p + pairs] = scale;
    lossScale[p] = lossSigma(options.noise, sigmaA, perturbation);
    lossScale[p + pairs] = lossScale[p];
    const plus = p * pixels;
    const minus = (p + pairs) * pixels;
    for (let i = 0; i < pixels; i++) {
      const u = rng.normal();
      noise[plus + i] = u;
      noise[minus + i] = -u;
      input[plus + i] = noisy[i] + scale * u;
      input[minus + i] = noisy[i] - scale * u;
    }
  }
  return { input, noise, inputScale, lossScale };
}

/**
 * Noise level of a noisy patch when it is not known (--images): the estimators of src/denoise/estimate.ts, kept
 * inside the family's training range. A flat or clipped patch (sky, a saturated highlight, a JPEG block) estimates
 * sigma = 0 (or Gamma k = Infinity): unclamped, its sigma_a was 0, the patch taught nothing, and the score-matching
 * figure divided by it (the `-Infinity` of a 30-step run on PolyU shots).
 */
export function estimatePatchLevel(noise: NoiseFamily, patch: Float32Array, size: number): number {
  if (noise === 'gaussian') return clampLevel(noise, estimateGaussianSigma(patch, size, size));
  if (noise === 'gamma') return clampLevel(noise, estimateGammaShape(patch, size, size));
  return 1;
}

/** A level estimate clamped into the family's training range (NaN: the range's low end). */
export function clampLevel(noise: NoiseFamily, level: number): number {
  const [lo, hi] = FAMILY_TRAINING[noise].levelRange;
  return Number.isNaN(level) ? lo : Math.min(hi, Math.max(lo, level));
}

/** The AR-DAE loss of `model` on a batch (no gradient): mean over pixels of (u + sigma_a R(input))^2. */
export function arDaeLoss(tf: Tf, model: LayersModel, batch: Batch, patch: number): number {
  return tf.tidy(() => {
    const count = batch.inputScale.length;
    const input = tf.tensor4d(batch.input, [count, patch, patch, 1]);
    const u = tf.tensor4d(batch.noise, [count, patch, patch, 1]);
    const scale = tf.tensor4d(batch.lossScale, [count, 1, 1, 1]);
    const score = model.predict(input) as import('@tensorflow/tfjs').Tensor;
    return tf.mean(tf.square(tf.add(u, tf.mul(score, scale)))).dataSync()[0];
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Checkpoints (tools/train/core/checkpoint.ts): the weights, Adam's moments and this state.

interface CheckpointState {
  step: number;
  seed: number;
  noise: NoiseFamily;
  steps: number;
  architecture: ScoreNetworkArchitecture;
  elapsedSeconds: number;
  losses: number[];
}

// ---------------------------------------------------------------------------------------------------------------
// Validation and export

function psnr(x: Float32Array, xhat: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += (xhat[i] - x[i]) ** 2;
  return 10 * Math.log10(1 / (sum / x.length));
}

/** Mean PSNR on the (sorted) validation images at the family's validation level, the level given. */
export async function validationPsnr(
  tf: Tf,
  model: LayersModel,
  family: NoiseFamily,
  images: GreyImage[],
  multiple: number,
): Promise<{ mean: number; perImage: { name: string; psnr: number; noisyPsnr: number }[] }> {
  const level = FAMILY_TRAINING[family].validationLevel;
  const perImage: { name: string; psnr: number; noisyPsnr: number }[] = [];
  for (const [i, image] of images.entries()) {
    const noisy = addNoise(family, image.data, level, new Rng(VALIDATION_SEED + i));
    const result = await denoiseNoise2Score(
      tf,
      model,
      { data: noisy, width: image.width, height: image.height, channels: 1 },
      { noise: family, level, multiple },
    );
    const clipped = noisy.map((v) => Math.min(1, Math.max(0, v)));
    perImage.push({
      name: image.name,
      psnr: psnr(image.data, result.data),
      noisyPsnr: psnr(image.data, clipped),
    });
  }
  return { mean: perImage.reduce((s, p) => s + p.psnr, 0) / perImage.length, perImage };
}

/** The manifest's validation metrics and per-image extra for a validationPsnr result (trainer and GPU importer). */
export function validationRecord(
  noise: NoiseFamily,
  validationDir: string | undefined,
  validation: Awaited<ReturnType<typeof validationPsnr>> | null,
): { metrics: Record<string, number | string>; extra: Record<string, unknown> } {
  if (!validation) return { metrics: {}, extra: {} };
  const family = FAMILY_TRAINING[noise];
  const key = `psnr_${basename(validationDir ?? 'validation')}_${noise}_${family.validationLevelLabel.replace(/[^\w.]+/g, '')}`;
  const mean = (values: number[]) => values.reduce((s, v) => s + v, 0) / values.length;
  return {
    metrics: {
      [key]: +validation.mean.toFixed(3),
      validationPsnr: +validation.mean.toFixed(3),
      validationNoisyPsnr: +mean(validation.perImage.map((p) => p.noisyPsnr)).toFixed(3),
      validationSet: validationDir ?? 'validation',
      validationLevel: `${family.validationLevelLabel} (given, not estimated)`,
      validationProtocol:
        `x = u8/255; noise from Rng(${VALIDATION_SEED} + image index in sorted order) (xoshiro128**, ` +
        'src/util/random.ts); no clipping of y; output clipped to [0,1]; PSNR per image, no border crop; mean',
    },
    extra: {
      validationPerImage: validation.perImage.map((p) => ({
        name: p.name,
        psnr: +p.psnr.toFixed(3),
        noisyPsnr: +p.noisyPsnr.toFixed(3),
      })),
    },
  };
}

export async function exportModel(
  model: LayersModel,
  options: TrainNoise2ScoreOptions,
  architecture: ScoreNetworkArchitecture,
  step: number,
  metrics: Record<string, number | string | null | undefined>,
  extra: Record<string, unknown> = {},
  /** Replacements for the texts that describe the default AR-DAE training of the default network. */
  text: { loss?: string; description?: string; tradeoff?: string } = {},
): Promise<void> {
  const family = FAMILY_TRAINING[options.noise];
  const body: ManifestBody = {
    task: 'denoise-score',
    format: 'layers',
    required: false,
    inputShape: [null, null, null, 1],
    valueRange: [0, 1],
    channels: 1,
    noiseFamily: options.noise,
    levelRange: family.levelRange,
    architecture: {
      ...architecture,
      multiple: networkMultiple(architecture),
      scoreScale:
        options.noise === 'poisson' ? 'count scale z = y/zeta (input on [0,1])' : 'input scale [0,1]',
      tradeoff:
        text.tradeoff ??
        (architecture.kind !== 'unet' ||
        architecture.widths.join('/') !== '32/64/128' ||
        (architecture.skip ?? 'concat') !== 'concat' ||
        unetConvs(architecture).join('/') !== '2/2/3/2/2'
          ? 'custom architecture (see bench/RESULTS.md for the measured default)'
          : 'Space-to-depth by 2, then a 3-level U-Net (32/64/128 channels at 1/2, 1/4, 1/8 resolution), 0.62 M ' +
            'parameters: 0.84 s per 512x512 grey image on wasm (single thread), 1.0 s per training step ' +
            '(batch 32 of 48x48). A 24/48/96 U-Net (0.35 M) took 0.65 s but has less capacity; a plain stack of ' +
            '10 3x3 64-channel convolutions at 1/2 resolution (0.30 M, FFDNet-like) took 3.2 s and 2.4 s per step ' +
            'with a receptive field of only 43 px, so the U-Net buys both speed and receptive field.'),
    },
    parameters: model.countParams(),
    trainingSteps: step,
    // The shared schema wants flat numbers/strings here; structured details go to `extra`.
    metrics: Object.fromEntries(
      Object.entries({
        ...metrics,
        backend: options.backend ?? 'unknown',
        batch: options.batch,
        patch: options.patch,
        learningRate: options.lr,
        ...(family.relativeSigmaA
          ? {
              sigmaARelativeStart: family.relativeSigmaA[0],
              sigmaARelativeEnd: family.relativeSigmaA[1],
              sigmaARule:
                'sigma_a = c * (the patch noise level), c annealed geometrically (tools/train/noise2score.ts)',
            }
          : { sigmaAStart: family.sigmaA[0], sigmaAEnd: family.sigmaA[1] }),
        ...(options.initFrom && { initialisedFrom: options.initFrom }),
        loss: text.loss ?? 'AR-DAE || u + sigma_a R(y + sigma_a u) ||^2 with antithetic (u, -u) pairs',
      }).filter((entry): entry is [string, number | string] => entry[1] != null),
    ),
    extra: { seed: options.seed, ...extra },
    description:
      text.description ??
      `Noise2Score score network for ${options.noise} noise (Kim & Ye, NeurIPS 2021), trained self-supervised ` +
        "with the AR-DAE loss on noisy images only; denoise with Tweedie's formula (src/denoise/noise2score.ts).",
  };
  const on255 = family.levelRange.map((v) => +(v * 255).toFixed(2)).join('..');
  const data = options.cleanDir
    ? `${options.cleanDir} (clean images used only to synthesise ${options.noise} noise, blind level in ` +
      `[${family.levelRange.map((v) => +v.toPrecision(4)).join(', ')}]` +
      `${options.noise === 'gaussian' ? ` on [0,1] (${on255} / 255)` : ''}; ${options.patch}x${options.patch} ` +
      'patches, random crop/flip/rot90)'
    : `${options.noisyDir} (the noisy images only, as they are; ${options.patch}x${options.patch} patches, ` +
      'random crop/flip/rot90)';
  const lineage = options.lineage ?? {
    trainer: `tools/train/noise2score.ts (tf.js ${options.backend ?? 'wasm'})`,
    device: 'cpu' as const,
    ...(options.initFrom && { initialisedFrom: options.initFrom }),
  };
  const manifest = trainedManifest({ out: options.out, data, command: options.commandLine, lineage }, body);
  await exportLayersModel(model, options.out, manifest);
}

// ---------------------------------------------------------------------------------------------------------------
// Training: the family's parts (network, batch, loss, validation) run by the loop of tools/train/core.

interface Run {
  model: LayersModel;
  optimizer: Optimizer;
  architecture: ScoreNetworkArchitecture;
  images: TrainingImage[];
  validationImages: GreyImage[] | null;
  startStep: number;
  elapsedBefore: number;
  losses: number[];
  resumedFrom?: { checkpointDir: string; step: number };
}

/** Network, optimizer and data; the state of the checkpoint when resuming, else a fresh (or --init-from) start. */
async function startRun(tf: Tf, options: TrainNoise2ScoreOptions, log: (line: string) => void): Promise<Run> {
  if (!options.cleanDir === !options.noisyDir) throw new Error('give exactly one of --images or --clean-dir');
  const family = FAMILY_TRAINING[options.noise];
  const architecture = options.architecture ?? { ...DEFAULT_ARCHITECTURE, outputScale: family.outputScale };
  registerNoise2ScoreLayers(tf);
  const images = await loadTrainingImages(options);
  const model = buildScoreNetwork(tf, architecture, options.seed);
  const optimizer = tf.train.adam(options.lr) as Optimizer;
  const run: Run = {
    model,
    optimizer,
    architecture,
    images,
    validationImages: null,
    startStep: 0,
    elapsedBefore: 0,
    losses: [],
  };
  const saved = await openCheckpoint<CheckpointState>(options.checkpointDir, options.resume, log);
  if (saved) {
    if (saved.state.noise !== options.noise)
      throw new Error(
        `the checkpoint in ${options.checkpointDir} is for ${saved.state.noise}, not ${options.noise}`,
      );
    setModelArrays(tf, model, saved.arrays);
    await restoreOptimizer(
      tf,
      optimizer,
      saved.arrays,
      () => tf.mean(model.apply(tf.zeros([1, 8, 8, 1])) as Tensor) as Scalar,
    );
    Object.assign(run, {
      startStep: saved.state.step,
      elapsedBefore: saved.state.elapsedSeconds,
      losses: saved.state.losses,
    });
    run.resumedFrom = { checkpointDir: options.checkpointDir, step: saved.state.step };
  } else {
    if (options.initFrom) {
      const { fileSystemIO } = await import('../../src/nn/fs-io.js');
      const source = await tf.loadLayersModel(fileSystemIO(options.initFrom));
      model.setWeights(source.getWeights());
      source.dispose();
      log(`initialised from ${options.initFrom}`);
    }
  }
  if (options.validationDir) run.validationImages = await loadGreyImages(options.validationDir);
  log(
    `noise2score ${options.noise}: ${images.length} ${options.cleanDir ? 'clean' : 'noisy'} images, ` +
      `${options.steps} steps, batch ${options.batch} of ${options.patch}x${options.patch}`,
  );
  return run;
}

/**
 * One Adam step on an antithetic batch; besides the loss, the score-matching part of it (the loss less E|u|^2,
 * per unit sigma_a^2), which is what falls as the network learns the score.
 */
function trainStep(tf: Tf, options: TrainNoise2ScoreOptions, run: Run, step: number): StepResult {
  const sigmaA = sigmaASchedule(options.noise, step, options.steps);
  const lr = learningRate(options.lr, step, options.steps);
  setLearningRate(run.optimizer, lr);
  const batch = makeBatch(options, run.images, step, sigmaA);
  const count = batch.inputScale.length;
  const loss = tf.tidy(() => {
    const input = tf.tensor4d(batch.input, [count, options.patch, options.patch, 1]);
    const u = tf.tensor4d(batch.noise, [count, options.patch, options.patch, 1]);
    const scale = tf.tensor4d(batch.lossScale, [count, 1, 1, 1]);
    const cost = run.optimizer.minimize(() => {
      const score = run.model.apply(input, { training: true }) as Tensor;
      return tf.mean(tf.square(tf.add(u, tf.mul(score, scale)))) as Scalar;
    }, true);
    return cost!.dataSync()[0];
  });
  let uSquared = 0;
  for (const v of batch.noise) uSquared += v * v;
  let meanSquaredScale = 0;
  for (const v of batch.lossScale) meanSquaredScale += v * v;
  const matching = (loss - uSquared / batch.noise.length) / (meanSquaredScale / count);
  const relative = FAMILY_TRAINING[options.noise].relativeSigmaA !== undefined;
  return {
    loss,
    fields: {
      'score-matching': matching,
      [relative ? 'c' : 'sigma_a']: { value: sigmaA, digits: 3 },
      lr: { value: lr, digits: 3 },
    },
  };
}

/** Trains (or resumes) a score network and exports it; see the module comment for the method. */
export async function trainNoise2Score(
  tf: Tf,
  options: TrainNoise2ScoreOptions,
): Promise<TrainNoise2ScoreResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const run = await startRun(tf, options, log);
  const multiple = networkMultiple(run.architecture);
  // The checkpoint's arrays and state (the step and the seconds are added by the core).
  const snapshot = async () => {
    run.losses.splice(0, Math.max(0, run.losses.length - 2000));
    const state: Omit<CheckpointState, 'step' | 'elapsedSeconds'> = {
      seed: options.seed,
      noise: options.noise,
      steps: options.steps,
      architecture: run.architecture,
      losses: run.losses,
    };
    return { arrays: [...modelArrays(run.model), ...(await optimizerArrays(run.optimizer))], state };
  };
  const result = await runTraining({
    label: `noise2score ${options.noise}`,
    startStep: run.startStep,
    elapsedBefore: run.elapsedBefore,
    options,
    step: (step) => {
      const out = trainStep(tf, options, run, step);
      run.losses.push(out.loss);
      return out;
    },
    snapshot,
    afterCheckpoint: (done, progressLog) => exportPartial(tf, options, run, done, multiple, progressLog),
  });
  if (result.reason !== 'done')
    return { steps: result.done, losses: run.losses, validationPsnr: null, outDir: options.out };

  const { arrays, state } = await snapshot();
  await writeCheckpoint(options.checkpointDir, arrays, {
    ...state,
    step: options.steps,
    elapsedSeconds: result.seconds,
  });
  const validation = await exportFinal(tf, options, run, multiple, result.seconds, log);
  return { steps: options.steps, losses: run.losses, validationPsnr: validation, outDir: options.out };
}

/** At the end: validation on the references (when given) and the final export; returns the mean PSNR. */
async function exportFinal(
  tf: Tf,
  options: TrainNoise2ScoreOptions,
  run: Run,
  multiple: number,
  seconds: number,
  log: (line: string) => void,
): Promise<number | null> {
  const family = FAMILY_TRAINING[options.noise];
  let validation: Awaited<ReturnType<typeof validationPsnr>> | null = null;
  if (run.validationImages) {
    validation = await validationPsnr(tf, run.model, options.noise, run.validationImages, multiple);
    log(
      `validation ${options.validationDir} at ${family.validationLevelLabel}: mean PSNR ${validation.mean.toFixed(3)} dB`,
    );
  }
  const record = validationRecord(options.noise, options.validationDir, validation);
  const recent = run.losses.slice(-100);
  await exportModel(
    run.model,
    { ...options, lineage: options.lineage ?? lineageOf(options, run) },
    run.architecture,
    options.steps,
    {
      status: 'final',
      ...record.metrics,
      finalLoss: recent.length ? +(recent.reduce((s, v) => s + v, 0) / recent.length).toFixed(6) : null,
      trainingSeconds: Math.round(seconds),
    },
    record.extra,
  );
  log(`exported ${options.out}`);
  return validation?.mean ?? null;
}

function lineageOf(options: TrainNoise2ScoreOptions, run: Run): Lineage {
  return {
    trainer: `tools/train/noise2score.ts (tf.js ${options.backend ?? 'wasm'})`,
    device: 'cpu',
    ...(options.initFrom && { initialisedFrom: options.initFrom }),
    ...(run.resumedFrom && { resumedFrom: run.resumedFrom }),
  };
}

/** At a checkpoint: the model so far, with a quick validation PSNR on the first two references. */
async function exportPartial(
  tf: Tf,
  options: TrainNoise2ScoreOptions,
  run: Run,
  step: number,
  multiple: number,
  log: (line: string) => void,
): Promise<void> {
  const family = FAMILY_TRAINING[options.noise];
  const quick = run.validationImages
    ? (await validationPsnr(tf, run.model, options.noise, run.validationImages.slice(0, 2), multiple)).mean
    : null;
  await exportModel(
    run.model,
    { ...options, lineage: options.lineage ?? lineageOf(options, run) },
    run.architecture,
    step,
    {
      status: `partial (checkpoint at step ${step} of ${options.steps})`,
      quickValidationPsnr: quick == null ? null : +quick.toFixed(3),
      quickValidation: `first two images of ${options.validationDir} at ${family.validationLevelLabel}, level given`,
    },
  );
  log(`checkpoint step ${step}${quick == null ? '' : `, quick validation PSNR ${quick.toFixed(2)} dB`}`);
}

/** The training images; for --images Poisson training each image's zeta is estimated once. */
export async function loadTrainingImages(
  options: Pick<TrainNoise2ScoreOptions, 'cleanDir' | 'noisyDir' | 'noise'>,
): Promise<TrainingImage[]> {
  const images: TrainingImage[] = await loadGreyImages((options.cleanDir ?? options.noisyDir)!);
  if (options.noisyDir && options.noise === 'poisson') {
    for (const image of images)
      image.zeta = clampLevel('poisson', estimatePoissonZeta(image.data, image.width, image.height));
  }
  return images;
}
