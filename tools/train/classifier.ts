/**
 * `npm run train -- classifier [options]` (CLASSIFIER_USAGE): trains the Fashion-MNIST CNN of
 * src/adversarial/classifier.ts with Adam on softmax cross-entropy over the 60k training images (a seeded reshuffle
 * every epoch), the learning rate decaying linearly to a tenth, on the loop of tools/train/core (progress,
 * checkpoints every N minutes, --stop-at-step / --max-minutes, --resume). At the end it measures the accuracy on
 * the full 10k test split (never seen in training) and exports the model folder with its manifest (data, command,
 * lineage, test accuracy). `--init-from DIR` continues training a committed model (its weights, a fresh Adam).
 *
 * Reproducible and resumable: the batches are one stream (Rng(seed): a shuffle per epoch, read in order), so a
 * resumed run replays the stream up to its step, and a checkpoint holds the weights, Adam's moments and iteration
 * count and the loss average: a run stopped at step k and resumed gives the bytes of an uninterrupted run.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  accuracy,
  buildClassifier,
  CLASSIFIER_CLASSES,
  CLASSIFIER_IMAGE_SIZE,
  DEFAULT_CLASSIFIER,
  FASHION_MNIST_CLASSES,
  loadClassifier,
  loadFashionMnistLabels,
  predictClasses,
  unitImages,
} from '../../src/adversarial/classifier.js';
import { FASHION_MNIST_DIR, loadFashionMnistImages } from '../../src/diffusion/fashion-mnist.js';
import { type BackendPreference, initTfjs } from '../../src/nn/backend.js';
import { parseModelManifest } from '../../src/nn/manifest.js';
import { Rng } from '../../src/util/random.js';
import {
  assertSameSettings,
  type LoadedCheckpoint,
  modelArrays,
  openCheckpoint,
  optimizerArrays,
  restoreOptimizer,
  setModelArrays,
} from './core/checkpoint.js';
import {
  exportLayersModel,
  type Lineage,
  type ManifestBody,
  modelIdFromOut,
  trainedManifest,
} from './core/export.js';
import { runTraining, type StepResult } from './core/loop.js';
import {
  COMMON_OPTIONS,
  COMMON_USAGE,
  type CommonOptions,
  commonOptions,
  parseOptions,
  UsageError,
} from './core/options.js';
import { linearDecay, setLearningRate } from './core/schedules.js';

type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type Scalar = import('@tensorflow/tfjs').Scalar;
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Optimizer = import('@tensorflow/tfjs').Optimizer;

export const CLASSIFIER_USAGE = `usage: npm run train -- classifier [--images /usr/share/datasets/fashion-mnist]
${COMMON_USAGE}
  Defaults: --steps 2800 --batch 64 --lr 1e-3 (decaying linearly to 1e-4), --out models/classifier-fashion-mnist/<today>.
  --images: the folder of Fashion-MNIST's IDX files (apt-get install dataset-fashion-mnist).
  --init-from models/classifier-fashion-mnist/<version> (or --init): continue training a committed model; its
    steps and command are carried into the new manifest. There is no GPU port (--device cpu only).
  e.g. npm run train -- classifier --steps 2800 --out models/classifier-fashion-mnist/2`;

export interface ClassifierTrainingOptions {
  steps: number;
  batch: number;
  lr: number;
  /** models/<name>/<version>: the model folder written at the end. */
  out: string;
  seed: number;
  commandLine: string;
  backend: string;
  /** Folder of the Fashion-MNIST IDX files. */
  dataDir?: string;
  checkpointDir: string;
  checkpointMinutes: number;
  resume: boolean;
  stopAtStep?: number;
  maxMinutes?: number;
  /**
   * Continue from this committed model folder (its weights, a fresh Adam state) instead of a new network; its
   * manifest's steps and command are carried into the new manifest, so the recorded command stays exact.
   */
  initFrom?: string;
  /** Use only the first N training and test images (tests). */
  limitImages?: number;
  /** Plain progress lines go here (a bar on a terminal when absent). */
  log?: (line: string) => void;
}

export interface ClassifierTrainingResult {
  /** Steps done in all (less than `steps` after a stop: continue with --resume). */
  steps: number;
  /** Accuracy on the test split, or null when the run stopped before the end. */
  testAccuracy: number | null;
  trainingSeconds: number;
  finalLoss: number;
}

interface CheckpointState {
  step: number;
  elapsedSeconds: number;
  /** What fixes the batch stream: a resume must keep them. */
  settings: { seed: number; batch: number; images: number };
  /** Exponential moving average of the loss (null before the first step). */
  lossEma: number | null;
}

function shuffled(count: number, rng: Rng): Int32Array {
  const order = new Int32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  for (let i = count - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = order[i];
    order[i] = order[j];
    order[j] = tmp;
  }
  return order;
}

/** The training images in a seeded reshuffle per epoch, read in order: one stream for the whole run. */
class EpochStream {
  private readonly rng: Rng;
  private order: Int32Array;
  private cursor = 0;

  constructor(
    private readonly count: number,
    seed: number,
  ) {
    this.rng = new Rng(seed);
    this.order = shuffled(count, this.rng);
  }

  next(): number {
    if (this.cursor === this.order.length) {
      this.order = shuffled(this.count, this.rng);
      this.cursor = 0;
    }
    return this.order[this.cursor++];
  }

  /** Draws (and drops) `n` indices: where a resumed run's stream stands. */
  skip(n: number): void {
    for (let i = 0; i < n; i++) this.next();
  }
}

interface ClassifierRun {
  model: LayersModel;
  optimizer: Optimizer;
  stream: EpochStream;
  trainX: Float32Array;
  trainLabels: Uint8Array;
  batchX: Float32Array;
  batchY: Int32Array;
  startStep: number;
  elapsedBefore: number;
  lossEma: number;
  previous?: PreviousRun;
  resumedFrom?: { checkpointDir: string; step: number };
}

async function loadTrainingSplit(options: ClassifierTrainingOptions) {
  const [images, labels] = await Promise.all([
    loadFashionMnistImages('train', options.dataDir),
    loadFashionMnistLabels('train', options.dataDir),
  ]);
  const count = Math.min(images.count, options.limitImages ?? images.count);
  return { trainX: unitImages(images, 0, count), trainLabels: labels.subarray(0, count), count };
}

/** The network, Adam and the batch stream: fresh, from --init-from, or where the checkpoint left them. */
async function startClassifier(
  tf: Tf,
  options: ClassifierTrainingOptions,
  log: (line: string) => void,
): Promise<ClassifierRun> {
  const { trainX, trainLabels, count } = await loadTrainingSplit(options);
  const previous = options.initFrom ? await readPreviousRun(options.initFrom) : undefined;
  const model = options.initFrom
    ? await loadClassifier(tf, options.initFrom)
    : buildClassifier(tf, DEFAULT_CLASSIFIER, options.seed);
  const pixels = CLASSIFIER_IMAGE_SIZE * CLASSIFIER_IMAGE_SIZE;
  const run: ClassifierRun = {
    ...{ model, optimizer: tf.train.adam(options.lr), stream: new EpochStream(count, options.seed) },
    ...{ trainX, trainLabels, batchX: new Float32Array(options.batch * pixels) },
    ...{
      batchY: new Int32Array(options.batch),
      startStep: 0,
      elapsedBefore: 0,
      lossEma: Number.NaN,
      previous,
    },
  };
  log(`classifier: ${count} training images, ${model.countParams()} parameters, ${options.steps} steps`);
  const saved = await openCheckpoint<CheckpointState>(options.checkpointDir, options.resume, log);
  if (saved) await resumeClassifier(tf, options, run, saved);
  return run;
}

async function resumeClassifier(
  tf: Tf,
  options: ClassifierTrainingOptions,
  run: ClassifierRun,
  saved: LoadedCheckpoint<CheckpointState>,
): Promise<void> {
  const { state } = saved;
  assertSameSettings(options.checkpointDir, state.settings, settingsOf(options, run));
  setModelArrays(tf, run.model, saved.arrays);
  const size = CLASSIFIER_IMAGE_SIZE;
  await restoreOptimizer(
    tf,
    run.optimizer,
    saved.arrays,
    () => tf.mean(run.model.apply(tf.zeros([1, size, size, 1])) as Tensor) as Scalar,
  );
  run.stream.skip(state.step * options.batch);
  Object.assign(run, { startStep: state.step, elapsedBefore: state.elapsedSeconds });
  run.lossEma = state.lossEma ?? Number.NaN;
  run.resumedFrom = { checkpointDir: options.checkpointDir, step: state.step };
}

const settingsOf = (options: ClassifierTrainingOptions, run: ClassifierRun) => ({
  seed: options.seed,
  batch: options.batch,
  images: run.trainLabels.length,
});

/** One Adam step on a batch of the stream (step counts from 0). */
function classifierStep(
  tf: Tf,
  options: ClassifierTrainingOptions,
  run: ClassifierRun,
  step: number,
): StepResult {
  // Linear decay to a tenth of the initial rate: a short run (two or three epochs) settles instead of ending noisy.
  const lr = linearDecay(options.lr, step, options.steps, 0.1);
  setLearningRate(run.optimizer, lr);
  const pixels = CLASSIFIER_IMAGE_SIZE * CLASSIFIER_IMAGE_SIZE;
  for (let b = 0; b < options.batch; b++) {
    const index = run.stream.next();
    run.batchX.set(run.trainX.subarray(index * pixels, (index + 1) * pixels), b * pixels);
    run.batchY[b] = run.trainLabels[index];
  }
  const loss = tf.tidy(() => {
    const x = tf.tensor4d(run.batchX, [options.batch, CLASSIFIER_IMAGE_SIZE, CLASSIFIER_IMAGE_SIZE, 1]);
    const y = tf.oneHot(tf.tensor1d(run.batchY, 'int32'), CLASSIFIER_CLASSES);
    const cost = run.optimizer.minimize(
      () => tf.losses.softmaxCrossEntropy(y, run.model.apply(x, { training: true }) as Tensor),
      true,
    );
    if (cost === null) throw new Error('optimizer.minimize returned no cost');
    return cost.dataSync()[0];
  });
  if (!Number.isFinite(loss)) return { loss };
  run.lossEma = Number.isNaN(run.lossEma) ? loss : 0.98 * run.lossEma + 0.02 * loss;
  return { loss, fields: { avg: { value: run.lossEma, digits: 5 }, lr: { value: lr, digits: 3 } } };
}

/** Trains (or resumes) the classifier and, at the end, measures its test accuracy and exports it. */
export async function trainClassifier(
  tf: Tf,
  options: ClassifierTrainingOptions,
): Promise<ClassifierTrainingResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const run = await startClassifier(tf, options, log);
  const result = await runTraining({
    ...{ label: 'classifier', options, startStep: run.startStep, elapsedBefore: run.elapsedBefore },
    step: (step) => classifierStep(tf, options, run, step),
    snapshot: async () => ({
      arrays: [...modelArrays(run.model), ...(await optimizerArrays(run.optimizer))],
      state: { settings: settingsOf(options, run), lossEma: Number.isNaN(run.lossEma) ? null : run.lossEma },
    }),
  });
  const testAccuracy =
    result.reason === 'done' ? await testAndExport(tf, options, run, result.seconds) : null;
  tf.dispose([run.model, run.optimizer] as unknown as Tensor[]);
  return { steps: result.done, testAccuracy, trainingSeconds: result.seconds, finalLoss: run.lossEma };
}

async function testAndExport(
  tf: Tf,
  options: ClassifierTrainingOptions,
  run: ClassifierRun,
  trainingSeconds: number,
): Promise<number> {
  const [testImages, testLabels] = await Promise.all([
    loadFashionMnistImages('t10k', options.dataDir),
    loadFashionMnistLabels('t10k', options.dataDir),
  ]);
  const count = Math.min(testImages.count, options.limitImages ?? testImages.count);
  const testX = unitImages(testImages, 0, count);
  const testAccuracy = accuracy(await predictClasses(tf, run.model, testX), testLabels.subarray(0, count));
  const log = options.log ?? ((line: string) => console.log(line));
  log(`test accuracy ${(testAccuracy * 100).toFixed(2)}% on ${count} images`);
  const lineage: Lineage = {
    trainer: `tools/train/classifier.ts (tf.js ${options.backend})`,
    device: 'cpu',
    ...(options.initFrom && { initialisedFrom: options.initFrom }),
    ...(run.resumedFrom && { resumedFrom: run.resumedFrom }),
  };
  const { previous } = run;
  const command = previous ? `${previous.command} && ${options.commandLine}` : options.commandLine;
  const data =
    `Fashion-MNIST training split (${options.dataDir ?? FASHION_MNIST_DIR}/train-*-idx*-ubyte.gz, ` +
    `${run.trainLabels.length} images), bytes/255`;
  const body = classifierManifestBody(options, run, {
    ...{ testAccuracy, testImages: count, trainingSeconds },
  });
  await exportLayersModel(
    run.model,
    options.out,
    trainedManifest({ out: options.out, data, command, lineage }, body),
  );
  log(`exported ${options.out}`);
  return testAccuracy;
}

function classifierManifestBody(
  options: ClassifierTrainingOptions,
  run: ClassifierRun,
  figures: { testAccuracy: number; testImages: number; trainingSeconds: number },
): ManifestBody {
  const { previous } = run;
  return {
    task: 'classifier',
    format: 'layers',
    required: false,
    inputShape: [null, CLASSIFIER_IMAGE_SIZE, CLASSIFIER_IMAGE_SIZE, 1],
    valueRange: [0, 1],
    channels: 1,
    architecture: {
      kind: 'cnn',
      layers: `conv3x3(${DEFAULT_CLASSIFIER.filters[0]})-relu-maxpool2, conv3x3(${DEFAULT_CLASSIFIER.filters[1]})-relu-maxpool2, dense(${DEFAULT_CLASSIFIER.hidden})-relu, dense(10)`,
      output: 'logits [b, 10] (no softmax)',
      classes: [...FASHION_MNIST_CLASSES],
    },
    parameters: run.model.countParams(),
    trainingSteps: (previous?.steps ?? 0) + options.steps,
    metrics: {
      testAccuracy: figures.testAccuracy,
      testImages: figures.testImages,
      testData: 'Fashion-MNIST t10k split, never seen in training',
      finalTrainingLoss: run.lossEma,
      finalTrainingLossDefinition:
        'exponential moving average (0.98 per step) of the per-batch cross-entropy',
      trainingSeconds: (previous?.seconds ?? 0) + figures.trainingSeconds,
      epochs: (previous?.epochs ?? 0) + (options.steps * options.batch) / run.trainLabels.length,
      batch: options.batch,
      learningRate: options.lr,
      ...(previous ? { continuedFrom: `${previous.steps} steps at test accuracy ${previous.accuracy}` } : {}),
      learningRateSchedule: 'linear decay to 10% over the run',
      optimizer: 'adam',
      backend: options.backend,
      seed: options.seed,
    },
    description:
      'Fashion-MNIST CNN classifier: the model under attack in the EPS-AD evaluation (src/adversarial) and an example model.',
  };
}

interface PreviousRun {
  steps: number;
  command: string;
  seconds: number;
  epochs: number;
  accuracy: number;
}

async function readPreviousRun(dir: string): Promise<PreviousRun> {
  const parsed = parseModelManifest(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')));
  if (!parsed.ok) throw new Error(`--init-from ${dir}: manifest is invalid: ${parsed.error}`);
  const { trainingSteps, trainingCommand, metrics } = parsed.manifest;
  return {
    steps: trainingSteps,
    command: trainingCommand,
    seconds: Number(metrics.trainingSeconds ?? 0),
    epochs: Number(metrics.epochs ?? 0),
    accuracy: Number(metrics.testAccuracy ?? Number.NaN),
  };
}

const CLASSIFIER_OPTIONS = {
  ...COMMON_OPTIONS,
  /** The name of --init-from before the shared options (committed manifests' commands use it). */
  init: { type: 'string' },
} as const;

export interface ClassifierCli extends CommonOptions {
  dataDir?: string;
}

/** The command line, checked; nothing is read or run yet. Null for --help. */
export function parseClassifierArgs(args: string[]): ClassifierCli | null {
  const values = parseOptions(args, CLASSIFIER_OPTIONS, CLASSIFIER_USAGE);
  if (values.help) return null;
  const common = commonOptions(values, {
    name: 'classifier-fashion-mnist',
    steps: 2800,
    batch: 64,
    lr: 1e-3,
  });
  if (common.device !== 'cpu') throw new UsageError('classifier: there is no GPU port; use --device cpu');
  if (values.init && values['init-from']) throw new UsageError('give --init-from or --init, not both');
  modelIdFromOut(common.out);
  return { ...common, initFrom: values['init-from'] ?? values.init, dataDir: values.images };
}

export async function runClassifierCli(args: string[], commandLine: string): Promise<void> {
  const cli = parseClassifierArgs(args);
  if (!cli) return void console.log(CLASSIFIER_USAGE);
  const runtime = await initTfjs(cli.backend as BackendPreference);
  await trainClassifier(runtime.tf, {
    ...cli,
    commandLine,
    backend: runtime.backend,
    log: process.stderr.isTTY ? undefined : (line) => console.log(line),
  });
}
