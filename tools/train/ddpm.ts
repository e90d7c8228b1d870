/**
 * Training of the DDPM eps-prediction U-Nets (`ddpm-fashion-mnist`, `ddpm-natural-grey`), the priors of RED-Diff and
 * the score models of EPS-AD:
 *
 *   L = E_{x0, t ~ U{0..T-1}, eps ~ N(0, I)} || eps_theta(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t) - eps ||^2
 *
 * (Ho et al. 2020, the "simple" loss; mean over pixels), Adam with linear warm-up and cosine decay, and an
 * exponential moving average of the weights, which is what gets exported (it samples markedly better than the raw
 * weights of a short run).
 *
 * Data: Fashion-MNIST's 60k TRAINING images (28x28 padded to 32x32 with background, [-1, 1]); or random crops of
 * a folder of images (--images; models/ddpm-natural-grey: train400) with the 8 flips/rotations of the square
 * (tools/train/data.ts), [0,1] -> [-1, 1].
 *
 * Reproducible and resumable: step s draws its images, timesteps and noise from Rng(mix(seed, s)), and a checkpoint
 * holds the weights, the EMA, Adam's moments and iteration count, the step and the loss average, so `--resume`
 * continues the same trajectory.
 *
 * Run as `npm run train -- ddpm --images DIR ...` (tools/train/cli.ts).
 */

import { join, resolve } from 'node:path';
import sharp from 'sharp';
import {
  type IdxImages,
  loadFashionMnistImages,
  writePaddedImage,
} from '../../src/diffusion/fashion-mnist.js';
import { saveDiffusionModel } from '../../src/diffusion/model.js';
import { imageGrid, sampleDdpm } from '../../src/diffusion/sampler.js';
import { type DdpmSchedule, describeSchedule, linearSchedule } from '../../src/diffusion/schedule.js';
import { buildUnet, DEFAULT_UNET, type UnetArchitecture, unetMultiple } from '../../src/diffusion/unet.js';
import { type BackendPreference, initTfjs } from '../../src/nn/backend.js';
import {
  modelArrays,
  openCheckpoint,
  optimizerArrays,
  restoreOptimizer,
  setModelArrays,
  writeCheckpoint,
} from './core/checkpoint.js';
import {
  type Lineage,
  type ManifestBody,
  modelIdFromOut,
  trainedManifest,
  writeModelFolder,
} from './core/export.js';
import { runTraining, type StepResult } from './core/loop.js';
import {
  COMMON_OPTIONS,
  COMMON_USAGE,
  type CommonOptions,
  commonOptions,
  parseOptions,
  positiveNumber,
  UsageError,
} from './core/options.js';
import { setLearningRate, stepRng, warmupCosine } from './core/schedules.js';
import { type GreyImage, loadGreyImages, samplePatch } from './data.js';
import type { NamedArray } from './tensor-file.js';
import { packImages } from './torch/pack-images.js';
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

type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Optimizer = import('@tensorflow/tfjs').AdamOptimizer;
type Scalar = import('@tensorflow/tfjs').Scalar;

export type DdpmDataset = 'fashion-mnist' | 'natural-grey';
export const DDPM_DATASETS: readonly DdpmDataset[] = ['fashion-mnist', 'natural-grey'];

export interface TrainDdpmOptions {
  dataset: DdpmDataset;
  /** Folder of the data (Fashion-MNIST IDX files, or grey images). */
  dataDir: string;
  steps: number;
  batch: number;
  lr: number;
  /** Training image size: 32 for Fashion-MNIST (28 padded), the crop size for natural-grey. */
  size: number;
  out: string;
  checkpointDir: string;
  checkpointMinutes: number;
  /** Minutes between sample grids at intermediate exports (the final export always has one). */
  sampleMinutes: number;
  resume: boolean;
  seed: number;
  emaDecay: number;
  /** Respaced ancestral sampling steps for samples.png. */
  sampleSteps: number;
  /** Images in samples.png (a square grid). */
  sampleCount: number;
  architecture?: UnetArchitecture;
  /** Use only the first N training images (tests). */
  limitImages?: number;
  commandLine: string;
  /** Plain progress lines go here (a bar on a terminal when absent). */
  log?: (line: string) => void;
  backend?: string;
  /** Stop (with a checkpoint and a partial export) once this step is reached; --resume continues. */
  stopAtStep?: number;
  /** Stop (with a checkpoint and a partial export) after this many minutes of this run. */
  maxMinutes?: number;
  /** How the weights were made, when not by this trainer (the GPU importer). */
  lineage?: Lineage;
}

export interface TrainDdpmResult {
  steps: number;
  finalLoss: number | null;
  outDir: string;
}

export const FASHION_MNIST_PAD = 2;
const SAMPLE_SEED = 20240127;

/** Linear warm-up over the first 2% of steps (at most 500), then cosine decay to 10% of the peak. */
export function ddpmLearningRate(peak: number, step: number, steps: number): number {
  return warmupCosine(peak, step, steps, { warmupFraction: 0.02, maxWarmup: 500, floor: 0.1 });
}

/** EMA decay with the usual warm-up (1 + s) / (10 + s), so early averages are not dominated by the random start. */
export function emaDecayAt(decay: number, step: number): number {
  return Math.min(decay, (1 + step) / (10 + step));
}

type Dataset = { kind: 'fashion-mnist'; images: IdxImages } | { kind: 'natural-grey'; images: GreyImage[] };

async function loadDataset(options: TrainDdpmOptions): Promise<Dataset> {
  if (options.dataset === 'fashion-mnist') {
    const images = await loadFashionMnistImages('train', options.dataDir);
    if (images.width + 2 * FASHION_MNIST_PAD !== options.size)
      throw new Error(
        `Fashion-MNIST trains at ${images.width + 2 * FASHION_MNIST_PAD}px, not --size ${options.size}`,
      );
    if (options.limitImages) images.count = Math.min(images.count, options.limitImages);
    return { kind: 'fashion-mnist', images };
  }
  const images = await loadGreyImages(options.dataDir);
  return {
    kind: 'natural-grey',
    images: options.limitImages ? images.slice(0, options.limitImages) : images,
  };
}

interface Batch {
  noisy: Float32Array;
  noise: Float32Array;
  times: Float32Array;
}

function makeBatch(options: TrainDdpmOptions, data: Dataset, schedule: DdpmSchedule, step: number): Batch {
  const rng = stepRng(options.seed, step);
  const pixels = options.size * options.size;
  const clean = new Float32Array(pixels);
  const noisy = new Float32Array(options.batch * pixels);
  const noise = new Float32Array(options.batch * pixels);
  const times = new Float32Array(options.batch);
  for (let b = 0; b < options.batch; b++) {
    if (data.kind === 'fashion-mnist') {
      writePaddedImage(data.images, rng.int(data.images.count), FASHION_MNIST_PAD, clean);
    } else {
      const { patch } = samplePatch(data.images, options.size, rng);
      for (let i = 0; i < pixels; i++) clean[i] = 2 * patch[i] - 1;
    }
    const t = rng.int(schedule.timesteps);
    times[b] = t;
    const a = schedule.sqrtAlphaBars[t];
    const s = schedule.sqrtOneMinusAlphaBars[t];
    for (let i = 0; i < pixels; i++) {
      const e = rng.normal();
      noise[b * pixels + i] = e;
      noisy[b * pixels + i] = a * clean[i] + s * e;
    }
  }
  return { noisy, noise, times };
}

// ---------------------------------------------------------------------------------------------------------------
// Checkpoints (tools/train/core/checkpoint.ts): the weights, the EMA, Adam's moments and this state.

interface CheckpointState {
  step: number;
  seed: number;
  dataset: DdpmDataset;
  steps: number;
  architecture: UnetArchitecture;
  elapsedSeconds: number;
  lossAverage: number | null;
  losses: number[];
}

export interface TrainingState {
  model: LayersModel;
  ema: import('@tensorflow/tfjs').Variable[];
  optimizer: Optimizer;
}

async function trainingArrays(training: TrainingState): Promise<NamedArray[]> {
  return [
    ...modelArrays(training.model),
    ...training.ema.map((v, i) => ({
      name: `ema/${i}`,
      shape: v.shape,
      values: Float32Array.from(v.dataSync() as Float32Array),
    })),
    ...(await optimizerArrays(training.optimizer)),
  ];
}

async function restoreTraining(
  tf: Tf,
  training: TrainingState,
  arrays: NamedArray[],
  multiple: number,
): Promise<void> {
  const { model, ema, optimizer } = training;
  setModelArrays(tf, model, arrays);
  const emaArrays = arrays.filter((a) => a.name.startsWith('ema/'));
  if (emaArrays.length !== ema.length)
    throw new Error(`checkpoint has ${emaArrays.length} EMA weights, the model ${ema.length}`);
  emaArrays.forEach((a, i) => {
    ema[i].assign(tf.tensor(a.values, a.shape));
  });
  await restoreOptimizer(
    tf,
    optimizer,
    arrays,
    () => tf.mean(model.apply([tf.zeros([1, multiple, multiple, 1]), tf.zeros([1, 1])]) as Tensor) as Scalar,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Export: the EMA weights, manifest.json and (optionally) samples.png.

/** Runs `fn` with the EMA weights loaded into the model, then restores the raw weights. */
async function withEmaWeights<T>(tf: Tf, training: TrainingState, fn: () => Promise<T>): Promise<T> {
  const raw = training.model.getWeights().map((w) => tf.clone(w));
  training.model.setWeights(training.ema);
  try {
    return await fn();
  } finally {
    training.model.setWeights(raw);
    tf.dispose(raw);
  }
}

function sampleGridColumns(count: number): number {
  return Math.ceil(Math.sqrt(count));
}

export async function exportModel(
  tf: Tf,
  training: TrainingState,
  schedule: DdpmSchedule,
  options: TrainDdpmOptions,
  architecture: UnetArchitecture,
  step: number,
  metrics: Record<string, number | string>,
  withSamples: boolean,
): Promise<void> {
  const data =
    options.dataset === 'fashion-mnist'
      ? `Fashion-MNIST training split (${options.dataDir}/train-images-idx3-ubyte.gz, ${options.limitImages ?? 60000} ` +
        `images; the 10k test images are not used), 28x28 zero-padded to 32x32, bytes/127.5 - 1`
      : `${options.dataDir} (${options.size}x${options.size} random crops with the 8 flips/rotations of the square, ` +
        'grey [0,1] -> [-1,1])';
  const lineage = options.lineage ?? {
    trainer: `tools/train/ddpm.ts (tf.js ${options.backend ?? 'wasm'})`,
    device: 'cpu' as const,
  };
  const manifest = trainedManifest(
    { out: options.out, data, command: options.commandLine, lineage },
    ddpmManifestBody(schedule, options, architecture, training.model.countParams(), step, metrics),
  );
  await withEmaWeights(tf, training, () =>
    writeModelFolder(options.out, manifest, async (dir) => {
      await saveDiffusionModel(training.model, dir);
      if (withSamples) await writeSamples(tf, training.model, schedule, options, dir);
    }),
  );
}

async function writeSamples(
  tf: Tf,
  model: LayersModel,
  schedule: DdpmSchedule,
  options: TrainDdpmOptions,
  dir: string,
): Promise<void> {
  const started = performance.now();
  const images = await sampleDdpm(tf, model, schedule, {
    count: options.sampleCount,
    height: options.size,
    width: options.size,
    steps: options.sampleSteps,
    seed: SAMPLE_SEED,
    batch: 64,
  });
  const grid = imageGrid(images, options.size, options.size, sampleGridColumns(options.sampleCount));
  await sharp(Buffer.from(grid.data), { raw: { width: grid.width, height: grid.height, channels: 1 } })
    .png()
    .toFile(join(dir, 'samples.png'));
  (options.log ?? console.log)(
    `samples.png: ${options.sampleCount} samples in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
}

function ddpmManifestBody(
  schedule: DdpmSchedule,
  options: TrainDdpmOptions,
  architecture: UnetArchitecture,
  parameters: number,
  step: number,
  metrics: Record<string, number | string>,
): ManifestBody {
  return {
    required: false,
    task: 'diffusion-eps',
    format: 'layers',
    inputShape: options.dataset === 'fashion-mnist' ? [null, 32, 32, 1] : [null, null, null, 1],
    valueRange: [-1, 1],
    channels: 1,
    architecture: {
      ...architecture,
      inputs: ['x [b, h, w, 1] in [-1, 1]', 't [b, 1] float timestep index 0..T-1'],
      output: 'eps_theta(x_t, t) [b, h, w, 1]',
      multiple: unetMultiple(architecture),
      customLayers: 'registerDiffusionLayers(tf) from src/diffusion/unet.ts',
    },
    parameters,
    trainingSteps: step,
    metrics: {
      ...metrics,
      loss: 'mean || eps_theta(x_t, t) - eps ||^2 over pixels, t ~ U{0..T-1} (DDPM simple loss)',
      backend: options.backend ?? 'unknown',
      batch: options.batch,
      learningRate: options.lr,
      learningRateSchedule: 'linear warm-up (2% of steps, <= 500) then cosine to 10%',
      emaDecay: options.emaDecay,
      seed: options.seed,
    },
    description:
      `DDPM eps-prediction U-Net trained on ${options.dataset === 'fashion-mnist' ? 'Fashion-MNIST' : 'grey natural-image patches'}; ` +
      'the exported weights are the EMA. Prior for RED-Diff (src/diffusion) and score model for EPS-AD ' +
      '(s = -eps_theta / sqrt(1 - alphaBar_t)).',
    extra: {
      schedule: describeSchedule(schedule),
      timeInput:
        'integer timestep index t in 0..T-1 passed as float32 [b,1]; alphaBar_t = prod_{s<=t} (1 - beta_s), ' +
        'beta linear from betaStart (t=0) to betaEnd (t=T-1); x_t = sqrt(alphaBar_t) x0 + sqrt(1-alphaBar_t) eps',
      samples: {
        file: 'samples.png',
        count: options.sampleCount,
        sampler:
          `ancestral DDPM on ${options.sampleSteps} respaced timesteps (improved-DDPM respacing, posterior ` +
          'variance beta-tilde, x0 estimate clipped to [-1,1]); src/diffusion/sampler.ts sampleDdpm',
        seed: SAMPLE_SEED,
        size: `${options.size}x${options.size}`,
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Training: the family's parts (data, batch, loss, EMA, export) run by the loop of tools/train/core.

interface DdpmRun {
  training: TrainingState;
  architecture: UnetArchitecture;
  schedule: DdpmSchedule;
  data: Dataset;
  startStep: number;
  elapsedBefore: number;
  lossAverage: number | null;
  losses: number[];
  resumedFrom?: { checkpointDir: string; step: number };
}

async function startDdpm(tf: Tf, options: TrainDdpmOptions, log: (line: string) => void): Promise<DdpmRun> {
  const architecture = options.architecture ?? DEFAULT_UNET;
  if (options.size % unetMultiple(architecture) !== 0)
    throw new Error(`--size ${options.size} must be a multiple of ${unetMultiple(architecture)}`);
  const data = await loadDataset(options);
  const model = buildUnet(tf, architecture);
  const ema = model.getWeights().map((w) => tf.variable(w.clone(), false));
  const optimizer = tf.train.adam(options.lr) as Optimizer;
  const run: DdpmRun = {
    training: { model, ema, optimizer },
    ...{
      architecture,
      schedule: linearSchedule(),
      data,
      startStep: 0,
      elapsedBefore: 0,
      lossAverage: null,
      losses: [],
    },
  };
  log(
    `ddpm ${options.dataset}: ${data.kind === 'fashion-mnist' ? data.images.count : data.images.length} images, ` +
      `${model.countParams()} parameters, ${options.steps} steps, batch ${options.batch} of ${options.size}x${options.size}`,
  );
  const saved = await openCheckpoint<CheckpointState>(options.checkpointDir, options.resume, log);
  if (saved) {
    if (saved.state.dataset !== options.dataset)
      throw new Error(
        `the checkpoint in ${options.checkpointDir} is for ${saved.state.dataset}, not ${options.dataset}`,
      );
    await restoreTraining(tf, run.training, saved.arrays, unetMultiple(architecture));
    const { step, elapsedSeconds, lossAverage, losses } = saved.state;
    Object.assign(run, { startStep: step, elapsedBefore: elapsedSeconds, lossAverage, losses });
    run.resumedFrom = { checkpointDir: options.checkpointDir, step };
  }
  return run;
}

/** One Adam step on the simple loss, then the EMA update. */
function ddpmStep(tf: Tf, options: TrainDdpmOptions, run: DdpmRun, step: number): StepResult {
  const { model, ema, optimizer } = run.training;
  const lr = ddpmLearningRate(options.lr, step, options.steps);
  setLearningRate(optimizer, lr);
  const batch = makeBatch(options, run.data, run.schedule, step);
  const loss = tf.tidy(() => {
    const x = tf.tensor4d(batch.noisy, [options.batch, options.size, options.size, 1]);
    const t = tf.tensor2d(batch.times, [options.batch, 1]);
    const eps = tf.tensor4d(batch.noise, [options.batch, options.size, options.size, 1]);
    const cost = optimizer.minimize(
      () => tf.mean(tf.squaredDifference(model.apply([x, t], { training: true }) as Tensor, eps)) as Scalar,
      true,
    );
    return cost!.dataSync()[0];
  });
  if (!Number.isFinite(loss)) return { loss };
  const decay = emaDecayAt(options.emaDecay, step);
  tf.tidy(() => {
    model.weights.forEach((w, i) => {
      ema[i].assign(tf.add(tf.mul(ema[i], decay), tf.mul(w.read(), 1 - decay)));
    });
  });
  run.lossAverage = run.lossAverage === null ? loss : 0.99 * run.lossAverage + 0.01 * loss;
  run.losses.push(loss);
  run.losses.splice(0, Math.max(0, run.losses.length - 1000));
  return { loss, fields: { avg: { value: run.lossAverage, digits: 5 }, lr: { value: lr, digits: 3 } } };
}

/** Trains (or resumes) a DDPM U-Net and exports its EMA; see the module comment. */
export async function trainDdpm(tf: Tf, options: TrainDdpmOptions): Promise<TrainDdpmResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const run = await startDdpm(tf, options, log);
  const runStart = performance.now();
  const elapsed = () => run.elapsedBefore + (performance.now() - runStart) / 1000;
  let lastSamples = performance.now();
  // The checkpoint's arrays and state (the step and the seconds are added by the core).
  const snapshot = async () => {
    const state: Omit<CheckpointState, 'step' | 'elapsedSeconds'> = {
      ...{
        seed: options.seed,
        dataset: options.dataset,
        steps: options.steps,
        architecture: run.architecture,
      },
      ...{ lossAverage: run.lossAverage, losses: run.losses.slice(-1000) },
    };
    return { arrays: await trainingArrays(run.training), state };
  };
  /** Exports the EMA model at `step` (a partial export after a checkpoint, or the final one). */
  const exportAt = async (step: number, partial: boolean, samples: boolean) => {
    const lineage = options.lineage ?? {
      trainer: `tools/train/ddpm.ts (tf.js ${options.backend ?? 'wasm'})`,
      device: 'cpu' as const,
      ...(run.resumedFrom && { resumedFrom: run.resumedFrom }),
    };
    const metrics = lossMetrics(
      options,
      run,
      step,
      partial,
      elapsed(),
      (performance.now() - runStart) / 1000,
    );
    await exportModel(
      tf,
      run.training,
      run.schedule,
      { ...options, lineage },
      run.architecture,
      step,
      metrics,
      samples,
    );
  };
  const result = await runTraining({
    label: `ddpm ${options.dataset}`,
    startStep: run.startStep,
    elapsedBefore: run.elapsedBefore,
    options,
    step: (step) => ddpmStep(tf, options, run, step),
    snapshot,
    afterCheckpoint: async (done, progressLog) => {
      const samples = performance.now() - lastSamples > options.sampleMinutes * 60_000;
      await exportAt(done, true, samples);
      if (samples) {
        lastSamples = performance.now();
        progressLog(`partial export at step ${done} with samples`);
      }
    },
  });
  if (result.reason === 'done') {
    const step = Math.max(options.steps, run.startStep);
    const { arrays, state } = await snapshot();
    await writeCheckpoint(options.checkpointDir, arrays, { ...state, step, elapsedSeconds: elapsed() });
    await exportAt(step, false, true);
    log(`exported ${options.out} (final loss average ${run.lossAverage?.toFixed(5)})`);
  }
  tf.dispose([run.training.model, run.training.optimizer, ...run.training.ema] as unknown as Tensor[]);
  return { steps: result.done, finalLoss: run.lossAverage, outDir: options.out };
}

/** Manifest metrics are numbers or strings only (src/nn/manifest.ts). */
function lossMetrics(
  options: TrainDdpmOptions,
  run: DdpmRun,
  step: number,
  partial: boolean,
  elapsedSeconds: number,
  thisRunSeconds: number,
): Record<string, number | string> {
  return {
    status: partial ? `partial export at step ${step} of ${options.steps}` : 'complete',
    ...(run.lossAverage === null ? {} : { finalTrainingLoss: +run.lossAverage.toFixed(5) }),
    finalTrainingLossDefinition: 'exponential moving average (0.99 per step) of the per-batch loss',
    trainingSeconds: Math.round(elapsedSeconds),
    ...(step > run.startStep
      ? { secondsPerStep: +(thisRunSeconds / (step - run.startStep)).toFixed(3) }
      : {}),
    ...(run.startStep > 0 ? { resumedAtStep: run.startStep } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Command line

export const DDPM_USAGE = `usage: npm run train -- ddpm --images DIR_OF_CLEAN_IMAGES [--dataset natural-grey|fashion-mnist]
  [--size 48 (natural-grey crop; Fashion-MNIST is 32)] [--ema-decay 0.999] [--sample-minutes 30]
  [--sample-steps 100] [--samples N] [--python python3]
${COMMON_USAGE}
  --images: the images the prior learns (any names; JPEG, PNG, TIFF; 8/16-bit; colour is read as grey);
    for --dataset fashion-mnist, the folder of its IDX files (apt-get install dataset-fashion-mnist:
    /usr/share/datasets/fashion-mnist).
  --out models/<name>/<version> (default models/ddpm-<dataset>/<today>).
  --device cuda runs tools/train/torch/ddpm.py (natural-grey) and imports its EMA weights into --out
    (--device torch-cpu: the same on the CPU, slowly).`;

const DDPM_OPTIONS = {
  ...COMMON_OPTIONS,
  dataset: { type: 'string', default: 'natural-grey' },
  'data-dir': { type: 'string' },
  size: { type: 'string' },
  'sample-minutes': { type: 'string' },
  'ema-decay': { type: 'string' },
  'sample-steps': { type: 'string' },
  samples: { type: 'string' },
  python: { type: 'string', default: 'python3' },
} as const;

export interface DdpmCli extends Omit<TrainDdpmOptions, 'commandLine' | 'backend'>, CommonOptions {
  python: string;
}

/** The command line, checked; nothing is read or run yet. */
export function parseDdpmArgs(args: string[]): DdpmCli | null {
  const values = parseOptions(args, DDPM_OPTIONS, DDPM_USAGE);
  if (values.help) return null;
  const dataset = values.dataset as DdpmDataset;
  if (!DDPM_DATASETS.includes(dataset))
    throw new UsageError(`--dataset must be one of ${DDPM_DATASETS.join(', ')}`, DDPM_USAGE);
  const fashion = dataset === 'fashion-mnist';
  const dataDir = values.images ?? values['data-dir'];
  if (!dataDir) throw new UsageError('give the training images: --images DIR', DDPM_USAGE);
  const common = commonOptions(values, {
    name: `ddpm-${dataset}`,
    steps: 8000,
    batch: fashion ? 32 : 16,
    lr: 1e-3,
  });
  modelIdFromOut(common.out);
  const emaDecay = values['ema-decay'] === undefined ? 0.999 : Number(values['ema-decay']);
  if (!(emaDecay >= 0 && emaDecay < 1)) throw new UsageError('--ema-decay must be in [0, 1)');
  if (usesTorch(common.device) && fashion)
    throw new UsageError(`--device ${common.device}: the PyTorch port trains the natural-grey prior only`);
  return {
    ...common,
    dataset,
    dataDir,
    size: positiveNumber('size', values.size, fashion ? 32 : 48, true),
    sampleMinutes: positiveNumber('sample-minutes', values['sample-minutes'], 30),
    emaDecay,
    sampleSteps: positiveNumber('sample-steps', values['sample-steps'], 100, true),
    sampleCount: positiveNumber('samples', values.samples, fashion ? 64 : 36, true),
    python: values.python,
  };
}

/** The PyTorch trainer's command line for a `--device cuda|torch-cpu` run. */
export function ddpmTorchCommand(cli: DdpmCli, packed: string, runDir: string): TorchCommand {
  const args = [
    join(TORCH_DIR, 'ddpm.py'),
    ...['--images', packed, '--out', runDir, '--size', String(cli.size), '--steps', String(cli.steps)],
    ...['--batch', String(cli.batch), '--lr', String(cli.lr), '--ema-decay', String(cli.emaDecay)],
    ...['--seed', String(cli.seed), '--device', torchDeviceArg(cli.device), ...torchRunArgs(cli)],
  ];
  if (cli.initFrom) args.push('--init-from', resolve(cli.initFrom));
  return { python: cli.python, args };
}

/**
 * `--device cuda|torch-cpu`: PyTorch trains (tools/train/torch/ddpm.py), then its EMA weights are imported into --out
 * (probe checked, samples drawn, manifest written).
 */
export async function trainDdpmCuda(
  cli: DdpmCli,
  commandLine: string,
  log: (line: string) => void,
  deps: { checkTorch: typeof checkTorch; runTorch: typeof runTorch } = { checkTorch, runTorch },
): Promise<void> {
  const { torch, runDir } = await startTorchRun(cli, deps.checkTorch);
  const packed = join(cli.checkpointDir, 'torch', 'images');
  if (!cli.resume) await packImages(cli.dataDir, packed);
  await keepTorchSettings(cli.checkpointDir, cli.resume, {
    size: cli.size,
    batch: cli.batch,
    seed: cli.seed,
  });
  await deps.runTorch(ddpmTorchCommand(cli, packed, runDir), log);
  const { importDdpm } = await import('./torch/import-ddpm.js');
  await importDdpm({
    from: runDir,
    out: cli.out,
    commandLine: `import by npm run train (--device ${cli.device})`,
    trainingCommand: commandLine,
    sampleSteps: cli.sampleSteps,
    sampleCount: cli.sampleCount,
    lineage: {
      trainer: `tools/train/torch/ddpm.py (PyTorch ${torch})`,
      device: cli.device === 'cuda' ? 'cuda' : 'cpu',
      ...(cli.initFrom && { initialisedFrom: cli.initFrom }),
    },
    log,
  });
}

export async function runDdpmCli(args: string[], commandLine: string): Promise<void> {
  const cli = parseDdpmArgs(args);
  if (!cli) return void console.log(DDPM_USAGE);
  const log = (line: string) => console.log(line);
  if (usesTorch(cli.device)) return trainDdpmCuda(cli, commandLine, log);
  if (cli.initFrom) throw new UsageError('ddpm on the CPU has no --init-from yet (the GPU port has)');
  const runtime = await initTfjs(cli.backend as BackendPreference);
  await trainDdpm(runtime.tf, {
    ...cli,
    commandLine,
    backend: runtime.backend,
    log: process.stderr.isTTY ? undefined : log,
  });
}
