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
 * ../shared/data/train400 with the 8 flips/rotations of the square (tools/train/data.ts), [0,1] -> [-1, 1].
 *
 * Reproducible and resumable: step s draws its images, timesteps and noise from Rng(mix(seed, s)), and a checkpoint
 * holds the weights, the EMA, Adam's moments and iteration count, the step and the loss average, so `--resume`
 * continues the same trajectory.
 *
 * Run as `npm run train -- ddpm ...` (tools/train/cli.ts) or directly: `npx tsx tools/train/ddpm.ts ...`.
 */

import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
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
import { type ModelManifestInput, parseModelManifest } from '../../src/nn/manifest.js';
import { Rng } from '../../src/util/random.js';
import { type GreyImage, loadGreyImages, samplePatch } from './data.js';
import { type NamedArray, readTensors, writeTensors } from './tensor-file.js';

type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Optimizer = import('@tensorflow/tfjs').AdamOptimizer;

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
  name: string;
  version: string;
  commandLine: string;
  log?: (line: string) => void;
  backend?: string;
}

export interface TrainDdpmResult {
  steps: number;
  finalLoss: number | null;
  outDir: string;
}

export const FASHION_MNIST_PAD = 2;
const SAMPLE_SEED = 20240127;

function stepRng(seed: number, step: number): Rng {
  return new Rng((Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca77)) >>> 0);
}

/** Linear warm-up over the first 2% of steps (at most 500), then cosine decay to 10% of the peak. */
export function ddpmLearningRate(peak: number, step: number, steps: number): number {
  const warmup = Math.max(1, Math.min(500, Math.round(0.02 * steps)));
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const t = Math.min(1, (step - warmup) / Math.max(1, steps - warmup));
  return peak * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * t)));
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
// Checkpoints: <checkpointDir>/step-<n>/{state.json, tensors.json, tensors.bin}; latest.json names the newest.

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

async function saveCheckpoint(dir: string, training: TrainingState, state: CheckpointState): Promise<void> {
  const stepDir = join(dir, `step-${String(state.step).padStart(7, '0')}`);
  const staging = `${stepDir}.partial`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  const tensors: NamedArray[] = [
    ...training.model.weights.map((w, i) => {
      const value = w.read();
      return {
        name: `model/${i}/${w.originalName}`,
        shape: value.shape,
        values: value.dataSync() as Float32Array,
      };
    }),
    ...training.ema.map((v, i) => ({
      name: `ema/${i}`,
      shape: v.shape,
      values: Float32Array.from(v.dataSync() as Float32Array),
    })),
    ...(await training.optimizer.getWeights()).map((w) => ({
      name: `optimizer/${w.name}`,
      shape: w.tensor.shape,
      values: Float32Array.from(w.tensor.dataSync() as Float32Array),
    })),
  ];
  await writeTensors(staging, tensors);
  await writeFile(join(staging, 'state.json'), JSON.stringify(state));
  await rm(stepDir, { recursive: true, force: true });
  await rename(staging, stepDir);
  await writeFile(join(dir, 'latest.json.partial'), JSON.stringify({ dir: stepDir, step: state.step }));
  await rename(join(dir, 'latest.json.partial'), join(dir, 'latest.json'));
  // Keep the two newest: the previous one survives a crash while the next is written.
  const old = (await readdir(dir)).filter((n) => /^step-\d+$/.test(n)).sort();
  for (const name of old.slice(0, -2)) await rm(join(dir, name), { recursive: true, force: true });
}

async function loadCheckpoint(
  tf: Tf,
  dir: string,
  training: TrainingState,
  multiple: number,
): Promise<CheckpointState | null> {
  let latest: { dir: string };
  try {
    latest = JSON.parse(await readFile(join(dir, 'latest.json'), 'utf8'));
  } catch {
    return null;
  }
  const { model, ema, optimizer } = training;
  // Adam creates its moment variables on its first update; one zero-learning-rate update makes them exist (in the
  // model's variable order) so setWeights can overwrite them.
  const rate = optimizer as unknown as { learningRate: number };
  const saved = rate.learningRate;
  rate.learningRate = 0;
  tf.tidy(() => {
    const x = tf.zeros([1, multiple, multiple, 1]);
    optimizer.minimize(
      () => tf.mean(model.apply([x, tf.zeros([1, 1])]) as Tensor) as import('@tensorflow/tfjs').Scalar,
    );
  });
  rate.learningRate = saved;

  const state = JSON.parse(await readFile(join(latest.dir, 'state.json'), 'utf8')) as CheckpointState;
  const tensors = await readTensors(latest.dir);
  const modelTensors = tensors.filter((t) => t.name.startsWith('model/'));
  const emaTensors = tensors.filter((t) => t.name.startsWith('ema/'));
  if (modelTensors.length !== model.weights.length || emaTensors.length !== ema.length)
    throw new Error(`checkpoint has ${modelTensors.length} weights, the model ${model.weights.length}`);
  model.setWeights(modelTensors.map((t) => tf.tensor(t.values, t.shape)));
  emaTensors.forEach((t, i) => {
    ema[i].assign(tf.tensor(t.values, t.shape));
  });
  await optimizer.setWeights(
    tensors
      .filter((t) => t.name.startsWith('optimizer/'))
      .map((t) => ({ name: t.name.slice('optimizer/'.length), tensor: tf.tensor(t.values, t.shape) })),
  );
  return state;
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
  const log = options.log ?? console.log;
  await withEmaWeights(tf, training, async () => {
    await mkdir(options.out, { recursive: true });
    await saveDiffusionModel(training.model, options.out);
    if (withSamples) {
      const started = performance.now();
      const images = await sampleDdpm(tf, training.model, schedule, {
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
        .toFile(join(options.out, 'samples.png'));
      log(
        `samples.png: ${options.sampleCount} samples in ${((performance.now() - started) / 1000).toFixed(1)} s`,
      );
    }
  });
  const data =
    options.dataset === 'fashion-mnist'
      ? `Fashion-MNIST training split (${options.dataDir}/train-images-idx3-ubyte.gz, ${options.limitImages ?? 60000} ` +
        `images; the 10k test images are not used), 28x28 zero-padded to 32x32, bytes/127.5 - 1`
      : `${options.dataDir} (${options.size}x${options.size} random crops with the 8 flips/rotations of the square, ` +
        'grey [0,1] -> [-1,1]); never Set12';
  const manifest: ModelManifestInput = {
    name: options.name,
    version: options.version,
    task: 'diffusion-eps',
    format: 'layers',
    required: false,
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
    parameters: training.model.countParams(),
    trainingData: data,
    trainingSteps: step,
    trainingCommand: options.commandLine,
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
    createdAt: new Date().toISOString(),
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
  // Validate against the repository's schema here, so a bad manifest fails the training run, not the service.
  const parsed = parseModelManifest(manifest);
  if (!parsed.ok) throw new Error(`manifest for ${options.out} is invalid: ${parsed.error}`);
  await writeFile(join(options.out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

// ---------------------------------------------------------------------------------------------------------------

function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

/** Trains (or resumes) a DDPM U-Net and exports its EMA; see the module comment. */
export async function trainDdpm(tf: Tf, options: TrainDdpmOptions): Promise<TrainDdpmResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const architecture = options.architecture ?? DEFAULT_UNET;
  if (options.size % unetMultiple(architecture) !== 0)
    throw new Error(`--size ${options.size} must be a multiple of ${unetMultiple(architecture)}`);
  const schedule = linearSchedule();
  const data = await loadDataset(options);
  const model = buildUnet(tf, architecture);
  const ema = model.getWeights().map((w) => tf.variable(w.clone(), false));
  const optimizer = tf.train.adam(options.lr) as Optimizer;
  const training: TrainingState = { model, ema, optimizer };
  log(
    `ddpm ${options.dataset}: ${data.kind === 'fashion-mnist' ? data.images.count : data.images.length} images, ` +
      `${model.countParams()} parameters, ${options.steps} steps, batch ${options.batch} of ${options.size}x${options.size}`,
  );

  let startStep = 0;
  let elapsedBefore = 0;
  let lossAverage: number | null = null;
  const losses: number[] = [];
  if (options.resume) {
    const state = await loadCheckpoint(tf, options.checkpointDir, training, unetMultiple(architecture));
    if (state) {
      if (state.dataset !== options.dataset)
        throw new Error(`checkpoint is for ${state.dataset}, not ${options.dataset}`);
      startStep = state.step;
      elapsedBefore = state.elapsedSeconds;
      lossAverage = state.lossAverage;
      losses.push(...state.losses);
      log(`resumed from step ${startStep} (${options.checkpointDir})`);
    } else {
      log(`no checkpoint in ${options.checkpointDir}; starting from scratch`);
    }
  }
  await mkdir(options.checkpointDir, { recursive: true });

  const runStart = performance.now();
  const elapsed = () => elapsedBefore + (performance.now() - runStart) / 1000;
  let lastCheckpoint = performance.now();
  let lastSamples = performance.now();
  let windowLoss = 0;
  let windowCount = 0;
  const snapshot = (step: number): CheckpointState => ({
    step,
    seed: options.seed,
    dataset: options.dataset,
    steps: options.steps,
    architecture,
    elapsedSeconds: elapsed(),
    lossAverage,
    losses: losses.slice(-1000),
  });
  // Manifest metrics are numbers or strings only (src/nn/manifest.ts).
  const lossMetrics = (step: number, partial: boolean): Record<string, number | string> => ({
    status: partial ? `partial export at step ${step} of ${options.steps}` : 'complete',
    ...(lossAverage === null ? {} : { finalTrainingLoss: +lossAverage.toFixed(5) }),
    finalTrainingLossDefinition: 'exponential moving average (0.99 per step) of the per-batch loss',
    trainingSeconds: Math.round(elapsed()),
    ...(step > startStep
      ? { secondsPerStep: +((performance.now() - runStart) / 1000 / (step - startStep)).toFixed(3) }
      : {}),
    ...(startStep > 0 ? { resumedAtStep: startStep } : {}),
  });

  const pixels = options.size * options.size;
  for (let step = startStep; step < options.steps; step++) {
    const lr = ddpmLearningRate(options.lr, step, options.steps);
    (optimizer as unknown as { learningRate: number }).learningRate = lr;
    const batch = makeBatch(options, data, schedule, step);
    const loss = tf.tidy(() => {
      const x = tf.tensor4d(batch.noisy, [options.batch, options.size, options.size, 1]);
      const t = tf.tensor2d(batch.times, [options.batch, 1]);
      const eps = tf.tensor4d(batch.noise, [options.batch, options.size, options.size, 1]);
      const cost = optimizer.minimize(
        () =>
          tf.mean(
            tf.squaredDifference(model.apply([x, t], { training: true }) as Tensor, eps),
          ) as import('@tensorflow/tfjs').Scalar,
        true,
      );
      return cost!.dataSync()[0];
    });
    if (!Number.isFinite(loss)) throw new Error(`loss is ${loss} at step ${step}: lower --lr`);
    const decay = emaDecayAt(options.emaDecay, step);
    tf.tidy(() => {
      model.weights.forEach((w, i) => {
        ema[i].assign(tf.add(tf.mul(ema[i], decay), tf.mul(w.read(), 1 - decay)));
      });
    });
    lossAverage = lossAverage === null ? loss : 0.99 * lossAverage + 0.01 * loss;
    losses.push(loss);
    if (losses.length > 2000) losses.splice(0, losses.length - 1000);
    windowLoss += loss;
    windowCount++;
    const done = step + 1;
    const logEvery = options.steps <= 200 ? 10 : 50;
    if (done % logEvery === 0 || done === options.steps) {
      const secondsPerStep = (performance.now() - runStart) / 1000 / (done - startStep);
      log(
        `step ${done}/${options.steps} loss ${(windowLoss / windowCount).toFixed(5)} avg ${lossAverage.toFixed(5)} ` +
          `lr ${lr.toExponential(2)} ${secondsPerStep.toFixed(3)} s/step ` +
          `ETA ${formatDuration(secondsPerStep * (options.steps - done))} (${pixels * options.batch} px/step)`,
      );
      windowLoss = 0;
      windowCount = 0;
    }
    if (performance.now() - lastCheckpoint > options.checkpointMinutes * 60_000 && done < options.steps) {
      await saveCheckpoint(options.checkpointDir, training, snapshot(done));
      const samples = performance.now() - lastSamples > options.sampleMinutes * 60_000;
      await exportModel(
        tf,
        training,
        schedule,
        options,
        architecture,
        done,
        lossMetrics(done, true),
        samples,
      );
      if (samples) lastSamples = performance.now();
      lastCheckpoint = performance.now();
      log(`checkpoint step ${done}${samples ? ' (with samples)' : ''}`);
    }
  }
  const finalStep = Math.max(options.steps, startStep);
  await saveCheckpoint(options.checkpointDir, training, snapshot(finalStep));
  await exportModel(
    tf,
    training,
    schedule,
    options,
    architecture,
    finalStep,
    lossMetrics(finalStep, false),
    true,
  );
  log(`exported ${options.out} (final loss average ${lossAverage?.toFixed(5)})`);
  tf.dispose([model, optimizer, ...ema] as unknown as Tensor[]);
  return { steps: finalStep, finalLoss: lossAverage, outDir: options.out };
}

// ---------------------------------------------------------------------------------------------------------------
// Command line

export const DDPM_USAGE = `usage: npm run train -- ddpm --dataset fashion-mnist|natural-grey [--steps N] [--batch B] [--lr LR]
  [--size S (natural-grey crop; Fashion-MNIST is 32)] [--data-dir DIR] [--out models/ddpm-<dataset>/<version>]
  [--checkpoint-dir checkpoints/ddpm-<dataset>] [--checkpoint-minutes M] [--sample-minutes M] [--resume]
  [--seed S] [--ema-decay D] [--sample-steps K] [--samples N] [--version V] [--backend auto|wasm|cpu]`;

function positiveNumber(name: string, value: string | undefined, fallback: number, integer = false): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
    throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got '${value}'`);
  return n;
}

export async function runDdpmCli(args: string[], commandLine: string): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      dataset: { type: 'string' },
      'data-dir': { type: 'string' },
      steps: { type: 'string' },
      batch: { type: 'string' },
      lr: { type: 'string' },
      size: { type: 'string' },
      out: { type: 'string' },
      'checkpoint-dir': { type: 'string' },
      'checkpoint-minutes': { type: 'string' },
      'sample-minutes': { type: 'string' },
      'ema-decay': { type: 'string' },
      'sample-steps': { type: 'string' },
      samples: { type: 'string' },
      version: { type: 'string' },
      resume: { type: 'boolean', default: false },
      seed: { type: 'string' },
      backend: { type: 'string', default: 'auto' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(DDPM_USAGE);
    return;
  }
  const dataset = values.dataset as DdpmDataset;
  if (!DDPM_DATASETS.includes(dataset))
    throw new Error(`--dataset must be one of ${DDPM_DATASETS.join(', ')}\n${DDPM_USAGE}`);
  const fashion = dataset === 'fashion-mnist';
  const version = values.version ?? new Date().toISOString().slice(0, 10).replaceAll('-', '');
  const name = `ddpm-${dataset}`;
  const runtime = await initTfjs(values.backend as BackendPreference);
  const emaDecay = values['ema-decay'] === undefined ? 0.999 : Number(values['ema-decay']);
  if (!(emaDecay >= 0 && emaDecay < 1)) throw new Error('--ema-decay must be in [0, 1)');
  await trainDdpm(runtime.tf, {
    dataset,
    dataDir:
      values['data-dir'] ?? (fashion ? '/usr/share/datasets/fashion-mnist' : '../shared/data/train400'),
    steps: positiveNumber('steps', values.steps, 8000, true),
    batch: positiveNumber('batch', values.batch, fashion ? 32 : 16, true),
    lr: positiveNumber('lr', values.lr, 1e-3),
    size: positiveNumber('size', values.size, fashion ? 32 : 48, true),
    out: values.out ?? `models/${name}/${version}`,
    checkpointDir: values['checkpoint-dir'] ?? `checkpoints/${name}`,
    checkpointMinutes: positiveNumber('checkpoint-minutes', values['checkpoint-minutes'], 5),
    sampleMinutes: positiveNumber('sample-minutes', values['sample-minutes'], 30),
    resume: values.resume ?? false,
    seed: values.seed === undefined ? 1 : Number(values.seed),
    emaDecay,
    sampleSteps: positiveNumber('sample-steps', values['sample-steps'], 100, true),
    sampleCount: positiveNumber('samples', values.samples, fashion ? 64 : 36, true),
    name,
    version,
    commandLine,
    backend: runtime.backend,
  });
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (invokedDirectly) {
  const argv = process.argv.slice(2);
  // The recorded command reproduces the run: --resume only says how it was interrupted.
  const commandLine = `npx tsx tools/train/ddpm.ts ${argv
    .filter((a) => a !== '--resume')
    .map((a) => (/^[\w./=:@-]+$/.test(a) ? a : JSON.stringify(a)))
    .join(' ')}`;
  runDdpmCli(argv, commandLine).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
