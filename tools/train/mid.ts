/**
 * MID training (Chihaoui & Favaro, "Unsupervised Real-World Denoising: Sparsity is All You Need", arXiv 2503.21377):
 *
 *   round r = 0..R-1:
 *     1. train D on synthetic pairs (x, x + n), n ~ sampler_r, with the input masked (a random `maskRatio` of the
 *        pixels dropped and filled from their neighbours); loss: mean squared error to x over all pixels;
 *     2. apply D to the real noisy training crops in blind-spot form (pixels split into `residualMasks` random
 *        groups, each dropped once; every pixel predicted only from its neighbours): residuals n = y - D(y);
 *        with D's ordinary output the residual would hold only the part of the noise D removes (measured: 1.9/255
 *        against ~4.6/255 of real noise after round 0), and the sampler would shrink round after round;
 *     3. refit the sampler on them (residual bank, src/mid/sampler.ts) -> sampler_{r+1}.
 *   sampler_0 is Gaussian with per-channel sigma estimated (wavelet MAD) from the noisy set; round r > 0 fine-tunes
 *   round r-1's weights with a fresh Adam at a lower peak rate.
 *
 * Clean and noisy images are never paired (tools/train/mid-data.ts): the noisy set is the user's folder of noisy
 * images (or PolyU's noisy shots of some scenes), the clean set unpaired clean photographs (or the means of other
 * PolyU scenes); validation pairs (a noisy image and its clean reference) are held out. The manifest records the
 * data, per round the validation PSNR (when there are references), and the statistics of the noise dataset, of
 * the sampler and of the reference real noise (validation noisy - reference).
 *
 * Resumable (tools/train/core/checkpoint.ts): a checkpoint holds the round, the step, the weights and Adam's
 * state; the end-of-round weights are kept as round-<r>/, from which the next round's sampler is rebuilt on
 * resume (the noise dataset is recomputed rather than stored: it is 100 MB and takes a minute to make).
 */

import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { type ColourImage, sampleColourPatch } from '../../src/mid/data.js';
import { midRgb } from '../../src/mid/denoise.js';
import { fillMasked, randomPixelMask } from '../../src/mid/mask.js';
import {
  buildMidNetwork,
  DEFAULT_MID_ARCHITECTURE,
  MID_MULTIPLE,
  type MidArchitecture,
} from '../../src/mid/network.js';
import {
  estimateSigmaCoarse,
  fitResidualBank,
  gaussianSampler,
  type NoiseSampler,
  type NoiseStatistics,
  noiseStatistics,
  type ResidualImage,
} from '../../src/mid/sampler.js';
import { type BackendPreference, initTfjs } from '../../src/nn/backend.js';
import { Rng } from '../../src/util/random.js';
import {
  assertFreshCheckpointDir,
  assertSameSettings,
  modelArrays,
  optimizerArrays,
  readCheckpoint,
  restoreOptimizer,
  setModelArrays,
  writeArraysAtomic,
  writeCheckpoint,
} from './core/checkpoint.js';
import {
  exportLayersModel,
  type Lineage,
  type ManifestBody,
  modelIdFromOut,
  trainedManifest,
} from './core/export.js';
import { runLoop } from './core/loop.js';
import {
  COMMON_OPTIONS,
  commonOptions,
  type Device,
  parseOptions,
  positiveNumber,
  UsageError,
} from './core/options.js';
import { createProgress, formatDuration } from './core/progress.js';
import { setLearningRate, stepRng, warmupCosine } from './core/schedules.js';
import { loadMidData, type MidData, type MidDataOptions } from './mid-data.js';
import { readTensors } from './tensor-file.js';
import {
  checkTorch,
  keepTorchSettings,
  runTorch,
  startTorchRun,
  TORCH_DIR,
  type TorchCommand,
  torchDeviceArg,
  torchRunArgs,
  usesTorch,
} from './torch/run.js';

export { centreCrop } from './mid-data.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Optimizer = import('@tensorflow/tfjs').AdamOptimizer;
type Tensor = import('@tensorflow/tfjs').Tensor;
type Scalar = import('@tensorflow/tfjs').Scalar;

export interface TrainMidOptions extends MidDataOptions {
  /** Steps of each round (its length is R). */
  roundSteps: number[];
  batch: number;
  /** Peak learning rate of round 0 and of the fine-tuning rounds. */
  lr: number;
  fineTuneLr: number;
  maskRatio: number;
  /** Masks averaged when computing the noise dataset and the per-round validation. */
  residualMasks: number;
  validationMasks: number;
  /** The model folder, `<models dir>/<name>/<version>`. */
  out: string;
  /** Also export round 0's model (the Gaussian sampler's) here. */
  round0Out?: string;
  checkpointDir: string;
  checkpointMinutes: number;
  resume: boolean;
  seed: number;
  commandLine: string;
  architecture?: MidArchitecture;
  backend?: string;
  /** Plain progress lines go here (a bar on a terminal when absent). */
  log?: (line: string) => void;
  /** Stop (with a checkpoint) after this many steps in all rounds together. */
  stopAtStep?: number;
  /** Stop (with a checkpoint) after this many minutes of this run. */
  maxMinutes?: number;
}

export interface RoundRecord {
  round: number;
  steps: number;
  sampler: string;
  samplerSigma255?: number[];
  finalLoss: number;
  /** Null without references. */
  validationPsnr: number | null;
  validationPerImage: { name: string; psnr: number }[];
  noiseDataset: NoiseStatistics;
  samplerStatistics: NoiseStatistics;
  seconds: number;
}

interface CheckpointState {
  /** Steps done in all rounds (names the checkpoint). */
  step: number;
  round: number;
  /** Steps done within `round`. */
  roundStep: number;
  rounds: RoundRecord[];
  losses: number[];
  elapsedSeconds: number;
  /** The settings that fix the data stream and the network (midSettings); absent in older checkpoints. */
  settings?: Record<string, number | string>;
}

/**
 * The settings a resume must keep (the CPU and the PyTorch runs check the same ones): the rounds, the batch stream
 * (seed, batch, patch), the network's widths and the masking; --lr and the like may change.
 */
export const midSettings = (
  options: Pick<TrainMidOptions, 'roundSteps' | 'batch' | 'patch' | 'seed' | 'maskRatio' | 'residualMasks'>,
  architecture: MidArchitecture,
): Record<string, number | string> => ({
  ...{
    roundSteps: options.roundSteps.join(','),
    batch: options.batch,
    patch: options.patch,
    seed: options.seed,
  },
  ...{
    widths: architecture.widths.join(','),
    maskRatio: options.maskRatio,
    residualMasks: options.residualMasks,
  },
});

/** Linear warm-up over the first 3% of steps, then cosine decay to 2% of the peak. */
export function midLearningRate(peak: number, step: number, steps: number): number {
  return warmupCosine(peak, step, steps, { warmupFraction: 0.03, floor: 0.02 });
}

/** One synthetic batch: masked-and-filled noisy patches (4 channels) and their clean targets (3 channels). */
export function makeMidBatch(
  clean: ColourImage[],
  sampler: NoiseSampler,
  options: Pick<TrainMidOptions, 'batch' | 'patch' | 'maskRatio'>,
  rng: Rng,
): { input: Float32Array; target: Float32Array } {
  const { batch, patch } = options;
  const pixels = patch * patch;
  const input = new Float32Array(batch * pixels * 4);
  const target = new Float32Array(batch * pixels * 3);
  for (let b = 0; b < batch; b++) {
    const x = sampleColourPatch(clean, patch, rng);
    const n = sampler.sample(x, patch, patch, rng);
    const y = new Float32Array(x.length);
    for (let i = 0; i < y.length; i++) y[i] = x[i] + n[i];
    const mask = randomPixelMask(patch, patch, options.maskRatio, rng);
    const filled = fillMasked(y, patch, patch, 3, mask);
    target.set(x, b * pixels * 3);
    const base = b * pixels * 4;
    for (let i = 0; i < pixels; i++) {
      input[base + i * 4] = filled[i * 3];
      input[base + i * 4 + 1] = filled[i * 3 + 1];
      input[base + i * 4 + 2] = filled[i * 3 + 2];
      input[base + i * 4 + 3] = mask[i];
    }
  }
  return { input, target };
}

function psnr(x: Float32Array, xhat: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += (Math.min(1, Math.max(0, xhat[i])) - x[i]) ** 2;
  return 10 * Math.log10(1 / (sum / x.length));
}

// -------------------------------------------------------------------------------------------------------------
// A run: its data, network, reference figures and state, shared by the round functions below.

interface MidRun {
  tf: Tf;
  options: TrainMidOptions;
  log: (line: string) => void;
  data: MidData;
  architecture: MidArchitecture;
  model: LayersModel;
  state: CheckpointState;
  /** Adam's state from the checkpoint, for the round it was written in. */
  savedOptimizer: import('./tensor-file.js').NamedArray[] | null;
  sigma0: number[];
  reference: NoiseStatistics | null;
  validationNoisyPsnr: number | null;
  runStart: number;
  /** The noise dataset made at the end of a round: the next round's sampler (rebuilt on resume). */
  carriedDataset: ResidualImage[] | null;
  resumedFrom?: { checkpointDir: string; step: number };
}

const elapsed = (run: MidRun) => run.state.elapsedSeconds + (performance.now() - run.runStart) / 1000;

function midOptions(run: MidRun, masks: number, seed: number) {
  return { masks, dropRatio: run.options.maskRatio, seed, multiple: MID_MULTIPLE };
}

/** Round 0's Gaussian sampler: per-channel sigma, median over the noisy images of estimateSigmaCoarse. */
export function initialSigma(noisy: ColourImage[]): number[] {
  return [0, 1, 2].map((c) => {
    const values = noisy
      .map((im) => {
        const plane = new Float32Array(im.width * im.height);
        for (let i = 0; i < plane.length; i++) plane[i] = im.data[i * 3 + c];
        return estimateSigmaCoarse(plane, im.width, im.height);
      })
      .sort((a, b) => a - b);
    return values[values.length >> 1];
  });
}

/**
 * What the manifest reports of the validation pairs before any training: the statistics of the real noise
 * (validation noisy - reference, on the reference; measured, never trained on) and the mean noisy PSNR.
 */
export function referenceFigures(data: Pick<MidData, 'validation'>): {
  reference: NoiseStatistics | null;
  validationNoisyPsnr: number | null;
} {
  const { validation } = data;
  const reference = validation.length
    ? noiseStatistics(
        validation.map((v) => ({
          noise: v.noisy.data.map((y, i) => y - v.mean.data[i]),
          signal: v.mean.data,
          width: v.mean.width,
          height: v.mean.height,
        })),
        3,
      )
    : null;
  const noisyPsnr = validation.map((v) => psnr(v.mean.data, v.noisy.data));
  const validationNoisyPsnr = noisyPsnr.length
    ? noisyPsnr.reduce((a, b) => a + b, 0) / noisyPsnr.length
    : null;
  return { reference, validationNoisyPsnr };
}

async function startRun(tf: Tf, options: TrainMidOptions, log: (line: string) => void): Promise<MidRun> {
  const data = await loadMidData(options);
  log(
    `data: ${data.noisy.length} noisy images, ${data.clean.length} clean images, ` +
      `${data.validation.length} validation pairs`,
  );
  const { reference, validationNoisyPsnr } = referenceFigures(data);
  if (validationNoisyPsnr !== null) log(`validation noisy PSNR ${validationNoisyPsnr.toFixed(3)} dB`);
  const sigma0 = initialSigma(data.noisy);
  log(`round-0 Gaussian sigma (0-255): ${sigma0.map((s) => (255 * s).toFixed(3)).join(', ')}`);
  const architecture = options.architecture ?? DEFAULT_MID_ARCHITECTURE;
  const model = buildMidNetwork(tf, architecture, options.seed);
  const settings = midSettings(options, architecture);
  const run: MidRun = {
    ...{ tf, options, log, data, architecture, model, sigma0, reference, validationNoisyPsnr },
    state: { step: 0, round: 0, roundStep: 0, rounds: [], losses: [], elapsedSeconds: 0, settings },
    savedOptimizer: null,
    runStart: performance.now(),
    carriedDataset: null,
  };
  const saved = options.resume ? await readCheckpoint<CheckpointState>(options.checkpointDir) : null;
  if (saved) {
    // Other data-stream or network settings would not continue the same run (the other trainers refuse them too);
    // a checkpoint written before the settings were kept is not checked.
    if (saved.state.settings) assertSameSettings(options.checkpointDir, saved.state.settings, settings);
    // Checkpoints written before tools/train/core counted `step` within the round and had no roundStep.
    run.state = { ...saved.state, roundStep: saved.state.roundStep ?? saved.state.step, settings };
    setModelArrays(tf, model, saved.arrays);
    run.savedOptimizer = saved.arrays.filter((a) => /^optimizer(-state)?\//.test(a.name));
    run.resumedFrom = { checkpointDir: options.checkpointDir, step: saved.state.step };
    log(`resumed at round ${saved.state.round}, step ${saved.state.roundStep}`);
  } else if (!options.resume) await assertFreshCheckpointDir(options.checkpointDir);
  run.runStart = performance.now();
  return run;
}

/** The residuals n = y - D(y) of the noisy set, D in blind-spot form. */
async function noiseDataset(run: MidRun, model: LayersModel): Promise<ResidualImage[]> {
  const out: ResidualImage[] = [];
  for (const [i, im] of run.data.noisy.entries()) {
    const { data: d } = await midRgb(run.tf, model, im.data, im.width, im.height, {
      ...midOptions(run, 1, 1000 + i),
      partition: run.options.residualMasks,
    });
    out.push({ noise: im.data.map((y, j) => y - d[j]), signal: d, width: im.width, height: im.height });
  }
  return out;
}

function samplerStatistics(run: MidRun, sampler: NoiseSampler): NoiseStatistics {
  const rng = new Rng(777);
  // No larger than any clean image, nor any noisy one: a residual bank samples its noise from the noisy images.
  const size = Math.min(
    128,
    ...[...run.data.clean, ...run.data.noisy].map((im) => Math.min(im.width, im.height)),
  );
  const images: ResidualImage[] = [];
  for (let i = 0; i < 48; i++) {
    const x = sampleColourPatch(run.data.clean, size, rng);
    images.push({ noise: sampler.sample(x, size, size, rng), signal: x, width: size, height: size });
  }
  return noiseStatistics(images, 3);
}

/** Round 0: Gaussian; round r: refit on round r-1's noise dataset (rebuilt from its weights after a resume). */
async function roundSampler(run: MidRun, round: number): Promise<NoiseSampler> {
  if (round === 0) return gaussianSampler(run.sigma0);
  if (run.carriedDataset) {
    const sampler = fitResidualBank(run.carriedDataset, 3);
    run.carriedDataset = null;
    run.log(`round ${round}: sampler refit on the noise dataset of round ${round - 1}`);
    return sampler;
  }
  const previous = buildMidNetwork(run.tf, run.architecture, run.options.seed);
  setModelArrays(run.tf, previous, await readTensors(join(run.options.checkpointDir, `round-${round - 1}`)));
  const dataset = await noiseDataset(run, previous);
  previous.dispose();
  // The record of round r-1 describes the dataset this run actually fits to.
  const before = run.state.rounds.find((r) => r.round === round - 1);
  if (before) before.noiseDataset = noiseStatistics(dataset, 3);
  run.log(`round ${round}: sampler refit on the noise dataset of round ${round - 1} (rebuilt)`);
  return fitResidualBank(dataset, 3);
}

/** The steps of one round; false when the run stopped inside it (at --stop-at-step or --max-minutes). */
async function trainRound(run: MidRun, round: number, sampler: NoiseSampler): Promise<boolean> {
  const { tf, options, model } = run;
  const steps = options.roundSteps[round];
  const peak = round === 0 ? options.lr : options.fineTuneLr;
  const optimizer = tf.train.adam(peak) as Optimizer;
  const startStep = round === run.state.round ? run.state.roundStep : 0;
  if (run.savedOptimizer && startStep > 0)
    await restoreOptimizer(
      tf,
      optimizer,
      run.savedOptimizer,
      () => tf.mean(model.apply(tf.zeros([1, 8, 8, 4])) as Tensor) as Scalar,
    );
  run.savedOptimizer = null;
  if (startStep === 0) run.state.losses = [];
  const before = options.roundSteps.slice(0, round).reduce((a, b) => a + b, 0);
  const progress = createProgress({
    label: `mid round ${round}`,
    total: steps,
    start: startStep,
    every: 50,
    ...(options.log && { tty: false, print: options.log }),
  });
  const minutesLeft =
    options.maxMinutes === undefined
      ? undefined
      : options.maxMinutes - (performance.now() - run.runStart) / 60_000;
  const result = await runLoop({
    startStep,
    steps,
    stopAtStep: options.stopAtStep === undefined ? undefined : Math.max(1, options.stopAtStep - before),
    maxMinutes: minutesLeft === undefined ? undefined : Math.max(0, minutesLeft),
    checkpointMinutes: options.checkpointMinutes,
    checkpointDir: options.checkpointDir,
    progress,
    step: (step) => {
      setLearningRate(optimizer, midLearningRate(peak, step, steps));
      const batch = makeMidBatch(run.data.clean, sampler, options, stepRng(options.seed, step, round));
      const loss = tf.tidy(() => {
        const x = tf.tensor4d(batch.input, [options.batch, options.patch, options.patch, 4]);
        const y = tf.tensor4d(batch.target, [options.batch, options.patch, options.patch, 3]);
        const cost = optimizer.minimize(
          () => tf.mean(tf.square(tf.sub(model.apply(x, { training: true }) as Tensor, y))) as Scalar,
          true,
        );
        return cost!.dataSync()[0];
      });
      run.state.losses.push(loss);
      run.state.losses.splice(0, Math.max(0, run.state.losses.length - 400));
      return {
        loss,
        fields: {
          'PSNR-equivalent': { value: -10 * Math.log10(loss), digits: 4, unit: 'dB', why: 'zero loss' },
        },
      };
    },
    checkpoint: async (done) => {
      const state = {
        ...run.state,
        round,
        roundStep: done,
        step: before + done,
        elapsedSeconds: elapsed(run),
      };
      await writeCheckpoint(
        options.checkpointDir,
        [...modelArrays(model), ...(await optimizerArrays(optimizer))],
        state,
      );
    },
  });
  optimizer.dispose();
  return result.reason === 'done';
}

/** Validation PSNR on the held-out pairs (none without references). */
async function validate(
  run: MidRun,
): Promise<{ mean: number | null; perImage: { name: string; psnr: number }[] }> {
  const perImage: { name: string; psnr: number }[] = [];
  for (const [i, v] of run.data.validation.entries()) {
    const { data } = await midRgb(
      run.tf,
      run.model,
      v.noisy.data,
      v.noisy.width,
      v.noisy.height,
      midOptions(run, run.options.validationMasks, 5000 + i),
    );
    perImage.push({ name: v.mean.name.replace(/_mean$/, ''), psnr: +psnr(v.mean.data, data).toFixed(3) });
  }
  return {
    mean: perImage.length ? perImage.reduce((s, p) => s + p.psnr, 0) / perImage.length : null,
    perImage,
  };
}

/** End of a round: keep its weights, validate, measure the noise dataset, export, move the checkpoint on. */
async function finishRound(
  run: MidRun,
  round: number,
  sampler: NoiseSampler,
  roundStart: number,
): Promise<void> {
  const { options, model, state } = run;
  await writeArraysAtomic(join(options.checkpointDir, `round-${round}`), modelArrays(model), { round });
  const validation = await validate(run);
  const dataset = await noiseDataset(run, model);
  const recent = state.losses.slice(-100);
  const record: RoundRecord = {
    round,
    steps: options.roundSteps[round],
    sampler: sampler.kind,
    ...(round === 0 && { samplerSigma255: run.sigma0.map((s) => +(255 * s).toFixed(3)) }),
    finalLoss: +(recent.reduce((a, b) => a + b, 0) / Math.max(1, recent.length)).toExponential(4),
    validationPsnr: validation.mean === null ? null : +validation.mean.toFixed(3),
    validationPerImage: validation.perImage,
    noiseDataset: noiseStatistics(dataset, 3),
    samplerStatistics: samplerStatistics(run, sampler),
    seconds: Math.round((performance.now() - roundStart) / 1000),
  };
  state.rounds.push(record);
  run.log(
    `round ${round} done: validation PSNR ${validation.mean === null ? 'n/a (no references)' : `${validation.mean.toFixed(3)} dB (noisy ${run.validationNoisyPsnr?.toFixed(3)})`}`,
  );
  if (round === 0 && options.round0Out) {
    await exportMid(run, options.round0Out, [record], 'final (round 0 only: Gaussian sampler)');
    run.log(`exported ${options.round0Out}`);
  }
  const last = round === options.roundSteps.length - 1;
  await exportMid(
    run,
    options.out,
    state.rounds,
    last ? 'final' : `partial (round ${round + 1} of ${options.roundSteps.length})`,
  );
  run.log(`exported ${options.out} after round ${round} (${formatDuration(elapsed(run))} in all)`);
  // Only now (models exported) does the checkpoint move on to the next round.
  Object.assign(state, { round: round + 1, roundStep: 0, losses: [] });
  state.step = options.roundSteps.slice(0, round + 1).reduce((a, b) => a + b, 0);
  await writeCheckpoint(options.checkpointDir, modelArrays(model), {
    ...state,
    elapsedSeconds: elapsed(run),
  });
  run.carriedDataset = dataset;
}

/** What a MID model's manifest is made of: a CPU run's, or a PyTorch run's (tools/train/torch/import-mid.ts). */
export interface MidExport {
  model: LayersModel;
  architecture: MidArchitecture;
  settings: Pick<
    TrainMidOptions,
    | 'maskRatio'
    | 'validationMasks'
    | 'residualMasks'
    | 'evalCrop'
    | 'batch'
    | 'patch'
    | 'lr'
    | 'fineTuneLr'
    | 'seed'
    | 'commandLine'
    | 'backend'
  >;
  data: Pick<MidData, 'description' | 'split'>;
  reference: NoiseStatistics | null;
  validationNoisyPsnr: number | null;
  trainingSeconds: number;
  lineage: Lineage;
  /** Further metrics and extra fields (a PyTorch run's probe error, command and log). */
  metrics?: Record<string, number | string>;
  extra?: Record<string, unknown>;
}

function midManifestBody(info: MidExport, rounds: RoundRecord[], status: string): ManifestBody {
  const { settings: options, model, architecture } = info;
  const last = rounds.at(-1)!;
  return {
    task: 'denoise',
    format: 'layers',
    required: false,
    inputShape: [null, null, null, 4],
    valueRange: [0, 1],
    channels: 4,
    noiseFamily: 'real-camera',
    description:
      'MID real-noise denoiser: input = noisy RGB with a random maskRatio of pixels dropped and filled from kept ' +
      'neighbours (channels 0-2) + the keep mask (channel 3); output = clean RGB. Average over K masks.',
    architecture: {
      ...architecture,
      multiple: MID_MULTIPLE,
      inputs: 'filled RGB + keep mask (4 channels)',
      outputs: 'RGB',
      parameters: model.countParams(),
    },
    parameters: model.countParams(),
    trainingSteps: rounds.reduce((s, r) => s + r.steps, 0),
    metrics: Object.fromEntries(
      Object.entries({
        status,
        backend: options.backend ?? 'unknown',
        rounds: rounds.length,
        maskRatio: options.maskRatio,
        validationMasks: options.validationMasks,
        residualMasks: options.residualMasks,
        evalCrop: options.evalCrop,
        validationPsnr: last.validationPsnr,
        validationNoisyPsnr: info.validationNoisyPsnr === null ? null : +info.validationNoisyPsnr.toFixed(3),
        ...Object.fromEntries(rounds.map((r) => [`validationPsnrRound${r.round}`, r.validationPsnr])),
        batch: options.batch,
        patch: options.patch,
        learningRate: options.lr,
        fineTuneLearningRate: options.fineTuneLr,
        trainingSeconds: Math.round(info.trainingSeconds),
        loss: 'MSE to the clean patch over all pixels (masked and kept)',
        ...info.metrics,
      }).filter((entry): entry is [string, number | string] => entry[1] != null),
    ),
    extra: {
      maskRatio: options.maskRatio,
      masksDefault: 4,
      split: info.data.split,
      sampler:
        'round 0: Gaussian, per-channel sigma = median over noisy images of estimateSigmaCoarse (scale-2 trimmed Haar RMS; the wavelet MAD gives ~0 on JPEGs); rounds >= 1: ' +
        'residual bank (n = y - D(y) of the noisy set, normalised by a 16-bin per-channel std curve of D(y); ' +
        'sampled as random shifted/flipped patches rescaled by the curve at the clean intensity)',
      statisticsNote:
        'std per intensity bin (8 bins of [0,1], 0-255 units), lag-1 neighbour correlation, cross-channel ' +
        'correlation [R-G, G-B, R-B]; referenceRealNoise = validation noisy - reference (measured, never trained on)',
      ...(info.reference && { referenceRealNoise: info.reference }),
      rounds,
      seed: options.seed,
      validationProtocol:
        'validation pairs: x = reference/255, y = noisy/255; output clipped to [0,1]; PSNR per image on the ' +
        'RGB values, no border crop; mean; masks seeded 5000 + image index; per-round figures on the centre ' +
        'evalCrop x evalCrop of each image (CPU budget)',
      ...info.extra,
    },
  };
}

/** Writes a MID model folder (model.json, weights.bin, manifest.json) after `rounds`. */
export async function exportMidModel(
  info: MidExport,
  out: string,
  rounds: RoundRecord[],
  status: string,
): Promise<void> {
  const manifest = trainedManifest(
    { out, data: info.data.description, command: info.settings.commandLine, lineage: info.lineage },
    midManifestBody(info, rounds, status),
  );
  await exportLayersModel(info.model, out, manifest);
}

async function exportMid(run: MidRun, out: string, rounds: RoundRecord[], status: string): Promise<void> {
  const info: MidExport = {
    ...{ model: run.model, architecture: run.architecture, settings: run.options, data: run.data },
    reference: run.reference,
    validationNoisyPsnr: run.validationNoisyPsnr,
    trainingSeconds: elapsed(run),
    lineage: {
      trainer: `tools/train/mid.ts (tf.js ${run.options.backend ?? 'wasm'})`,
      device: 'cpu',
      ...(run.resumedFrom && { resumedFrom: run.resumedFrom }),
    },
  };
  await exportMidModel(info, out, rounds, status);
}

export async function trainMid(tf: Tf, options: TrainMidOptions): Promise<void> {
  const log = options.log ?? ((line: string) => console.log(`[mid] ${line}`));
  const run = await startRun(tf, options, log);
  for (let round = run.state.round; round < options.roundSteps.length; round++) {
    const roundStart = performance.now();
    const sampler = await roundSampler(run, round);
    if (!(await trainRound(run, round, sampler))) return;
    await finishRound(run, round, sampler, roundStart);
  }
}

const USAGE = `usage: npm run train -- mid --images DIR_OF_NOISY_IMAGES --clean DIR_OF_CLEAN_PHOTOS
  [--references DIR_OF_CLEAN_REFERENCES] [--out models/<name>/<version>]
  [--round-steps 500,300,300] [--batch 12] [--patch 48] [--lr 1e-3] [--fine-tune-lr 3e-4] [--mask-ratio 0.3]
  [--residual-masks 3] [--validation-masks 2] [--eval-crop 256] [--widths 16,32,64] [--round0-out DIR]
  [--checkpoint-dir checkpoints/<name>] [--checkpoint-minutes 5] [--stop-at-step N] [--max-minutes M]
  [--seed 1] [--backend auto|wasm|cpu] [--resume] [--device cpu|cuda|torch-cpu] [--python python3]
  --images: your noisy colour images as they are (any names; JPEG, PNG, TIFF; 8/16-bit; grey is read as RGB).
  --clean: clean photographs, any, never paired with the noisy ones (the synthetic pairs are made on them).
  --references: a clean reference named like a noisy image (any extension) makes that pair a held-out
    validation image; the PSNR against it is reported per round.
  --device cuda: the PyTorch port (tools/train/torch/mid.py, run by --python) trains on the GPU; its weights
    are imported into --out (probe checked, the same manifest). Stop it with --max-minutes, continue with --resume.
    --device torch-cpu runs the same port on the CPU (slow; for checking it without a GPU).
  The PolyU recipe of models/mid-rgb: --polyu-dir DIR [--extra-clean a.png,b.jpg] instead of --images/--clean.`;

/** A checked `npm run train -- mid` command line: the trainer's options, the device and the Python to run. */
export type MidCli = Omit<TrainMidOptions, 'commandLine' | 'backend' | 'log' | 'architecture'> & {
  architecture: MidArchitecture;
  device: Device;
  backend: string;
  python: string;
};

/** The command line, checked; nothing is read or run yet (null: --help). */
export function parseMidArgs(args: string[]): MidCli | null {
  const { steps: _steps, ...common } = COMMON_OPTIONS;
  const values = parseOptions(
    args,
    {
      ...common,
      clean: { type: 'string' },
      references: { type: 'string' },
      'polyu-dir': { type: 'string' },
      'extra-clean': { type: 'string' },
      'round-steps': { type: 'string', default: '500,300,300' },
      patch: { type: 'string' },
      'fine-tune-lr': { type: 'string' },
      'mask-ratio': { type: 'string', default: '0.3' },
      'residual-masks': { type: 'string' },
      'validation-masks': { type: 'string' },
      'eval-crop': { type: 'string', default: '256' },
      widths: { type: 'string', default: '16,32,64' },
      'round0-out': { type: 'string' },
      python: { type: 'string', default: 'python3' },
    } as const,
    USAGE,
  );
  if (values.help) return null;
  const shared = commonOptions(values, { name: 'mid-rgb', steps: 1, batch: 12, lr: 1e-3 });
  if (shared.initFrom)
    throw new UsageError('mid has no --init-from: round r > 0 fine-tunes round r-1 itself');
  const roundSteps = values['round-steps'].split(',').map(Number);
  if (!roundSteps.every((s) => Number.isInteger(s) && s > 0))
    throw new UsageError('--round-steps must be positive integers, e.g. 500,300,300', USAGE);
  const maskRatio = Number(values['mask-ratio']);
  if (!(maskRatio >= 0 && maskRatio < 1)) throw new UsageError('--mask-ratio must be in [0, 1)');
  const widths = values.widths.split(',').map(Number);
  if (widths.length !== 3 || !widths.every((w) => Number.isInteger(w) && w > 0))
    throw new UsageError('--widths must be three positive integers, e.g. 16,32,64');
  if (!values.images === !values['polyu-dir'])
    throw new UsageError('give the noisy images: --images DIR (or --polyu-dir DIR)', USAGE);
  const evalCrop = Number(values['eval-crop']);
  if (!(Number.isInteger(evalCrop) && evalCrop >= 0))
    throw new UsageError('--eval-crop must be an integer >= 0 (0: whole images)');
  modelIdFromOut(shared.out);
  return {
    ...shared,
    noisyDir: values.images,
    cleanDir: values.clean,
    referencesDir: values.references,
    polyuDir: values['polyu-dir'],
    extraClean: values['extra-clean']?.split(',').filter(Boolean) ?? [],
    roundSteps,
    patch: positiveNumber('patch', values.patch, 48, true),
    fineTuneLr: positiveNumber('fine-tune-lr', values['fine-tune-lr'], 3e-4),
    maskRatio,
    residualMasks: positiveNumber('residual-masks', values['residual-masks'], 3, true),
    validationMasks: positiveNumber('validation-masks', values['validation-masks'], 2, true),
    evalCrop,
    architecture: { kind: 'mid-unet', widths: widths as [number, number, number] },
    round0Out: values['round0-out'],
    python: values.python,
  };
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/** The PyTorch trainer's command line for a GPU run (data packed at `packed`, run written to `runDir`). */
export function midTorchCommand(cli: MidCli, packed: string, runDir: string): TorchCommand {
  const args = [
    join(TORCH_DIR, 'mid.py'),
    ...['--images', packed, '--out', runDir, '--device', torchDeviceArg(cli.device)],
    ...[
      '--round-steps',
      cli.roundSteps.join(','),
      '--batch',
      String(cli.batch),
      '--patch',
      String(cli.patch),
    ],
    ...[
      '--lr',
      String(cli.lr),
      '--fine-tune-lr',
      String(cli.fineTuneLr),
      '--mask-ratio',
      String(cli.maskRatio),
    ],
    ...['--residual-masks', String(cli.residualMasks), '--validation-masks', String(cli.validationMasks)],
    ...['--widths', cli.architecture.widths.join(','), '--seed', String(cli.seed)],
    ...torchRunArgs(cli),
  ];
  return { python: cli.python, args };
}

/**
 * `--device cuda`: the data is read here (mid-data.ts) and packed for PyTorch, tools/train/torch/mid.py trains,
 * and its weights are imported into --out (probe checked, mid.ts's manifest): one step. A run stopped by
 * --max-minutes keeps its checkpoint (continue with --resume) and exports the rounds it finished.
 */
export async function trainMidCuda(
  cli: MidCli,
  commandLine: string,
  log: (line: string) => void,
  deps: { checkTorch: typeof checkTorch; runTorch: typeof runTorch } = { checkTorch, runTorch },
): Promise<void> {
  const { torch, runDir } = await startTorchRun(cli, deps.checkTorch);
  const packed = join(cli.checkpointDir, 'torch', 'data');
  const { packMidData } = await import('./torch/pack-mid.js');
  if (!cli.resume) {
    if (await exists(join(runDir, 'checkpoint.pt')))
      throw new Error(
        `${runDir} holds a checkpoint: pass --resume to continue it, or remove it to start over`,
      );
    const summary = await packMidData(cli, packed);
    log(
      `data: ${summary.noisy} noisy images, ${summary.clean} clean images, ${summary.validation} validation ` +
        `pairs (packed in ${packed})`,
    );
  }
  await keepTorchSettings(cli.checkpointDir, cli.resume, midSettings(cli, cli.architecture));
  await deps.runTorch(midTorchCommand(cli, packed, runDir), log);
  if (!(await exists(join(runDir, 'train.json'))))
    return log('stopped before the end of round 0: nothing to import yet (continue with --resume)');
  const { importMid } = await import('./torch/import-mid.js');
  await importMid({
    from: runDir,
    out: cli.out,
    round0Out: cli.round0Out,
    commandLine: `import by npm run train (--device ${cli.device})`,
    trainingCommand: commandLine,
    lineage: {
      trainer: `tools/train/torch/mid.py (PyTorch ${torch})`,
      device: torchDeviceArg(cli.device),
    },
    log,
  });
}

export async function runMidCli(args: string[], commandLine: string): Promise<void> {
  const cli = parseMidArgs(args);
  if (!cli) return void console.log(USAGE);
  if (usesTorch(cli.device)) return trainMidCuda(cli, commandLine, (line) => console.log(line));
  const runtime = await initTfjs(cli.backend as BackendPreference);
  await trainMid(runtime.tf, {
    ...cli,
    commandLine,
    backend: runtime.backend,
    log: process.stderr.isTTY ? undefined : (line) => console.log(line),
  });
}
