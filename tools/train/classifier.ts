/**
 * `npm run train -- classifier [--steps N] [--batch B] [--lr LR] [--out DIR] [--seed S] [--backend B]`
 *
 * Trains the Fashion-MNIST CNN of src/adversarial/classifier.ts with Adam on softmax cross-entropy over the 60k
 * training images (seeded reshuffle every epoch), then measures accuracy on the full 10k test split and writes
 * model.json, weights.bin and a manifest recording the command, the accuracy and the time taken. Training is short
 * (minutes on one wasm core), so there are no checkpoints; `--init DIR` continues from a committed model instead.
 * The test split is never seen during training.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
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
import { loadFashionMnistImages } from '../../src/diffusion/fashion-mnist.js';
import { type BackendPreference, initTfjs } from '../../src/nn/backend.js';
import { fileSystemIO } from '../../src/nn/fs-io.js';
import { type ModelManifestInput, parseModelManifest } from '../../src/nn/manifest.js';
import { Rng } from '../../src/util/random.js';
import { positiveNumber as positive } from './core/options.js';
import { setLearningRate } from './core/schedules.js';

type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type Scalar = import('@tensorflow/tfjs').Scalar;

export const CLASSIFIER_USAGE = `usage: npm run train -- classifier [--steps 2800] [--batch 64] [--lr 1e-3]
  [--out models/classifier-fashion-mnist/<version>] [--version V] [--seed 1] [--backend auto|wasm|cpu]
  [--init models/classifier-fashion-mnist/<version>]  (continue training a committed model)`;

export interface ClassifierTrainingOptions {
  steps: number;
  batch: number;
  lr: number;
  out: string;
  version: string;
  seed: number;
  commandLine: string;
  backend: string;
  /**
   * Continue from this committed model folder (its weights, a fresh Adam state) instead of a new network; its
   * manifest's steps and command are carried into the new manifest, so the recorded command stays exact.
   */
  init?: string;
  /** Log every this many steps. */
  logEvery?: number;
}

export interface ClassifierTrainingResult {
  testAccuracy: number;
  trainingSeconds: number;
  finalLoss: number;
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

export async function trainClassifier(
  tf: Tf,
  options: ClassifierTrainingOptions,
): Promise<ClassifierTrainingResult> {
  const [trainImages, trainLabels, testImages, testLabels] = await Promise.all([
    loadFashionMnistImages('train'),
    loadFashionMnistLabels('train'),
    loadFashionMnistImages('t10k'),
    loadFashionMnistLabels('t10k'),
  ]);
  const previous = options.init ? await readPreviousRun(options.init) : undefined;
  const model = options.init
    ? await loadClassifier(tf, options.init)
    : buildClassifier(tf, DEFAULT_CLASSIFIER, options.seed);
  const started = Date.now();
  const lossEma = await fitClassifier(tf, options, model, trainImages, trainLabels);
  const trainingSeconds = (Date.now() - started) / 1000;

  const testX = unitImages(testImages, 0, testImages.count);
  const testAccuracy = accuracy(await predictClasses(tf, model, testX), testLabels);
  console.log(`test accuracy ${(testAccuracy * 100).toFixed(2)}% on ${testImages.count} images`);

  await model.save(fileSystemIO(options.out));
  const run = { previous, testAccuracy, testImages: testImages.count, lossEma, trainingSeconds };
  const manifest = classifierManifest(options, model.countParams(), trainImages.count, run);
  const parsed = parseModelManifest(manifest);
  if (!parsed.ok) throw new Error(`manifest for ${options.out} is invalid: ${parsed.error}`);
  await writeFile(join(options.out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return { testAccuracy, trainingSeconds, finalLoss: lossEma };
}

/** Adam on shuffled epochs of the training split; returns the final loss average. */
async function fitClassifier(
  tf: Tf,
  options: ClassifierTrainingOptions,
  model: import('@tensorflow/tfjs').LayersModel,
  trainImages: Awaited<ReturnType<typeof loadFashionMnistImages>>,
  trainLabels: ArrayLike<number>,
): Promise<number> {
  const trainX = unitImages(trainImages, 0, trainImages.count);
  const pixels = CLASSIFIER_IMAGE_SIZE * CLASSIFIER_IMAGE_SIZE;
  const rng = new Rng(options.seed);
  const optimizer = tf.train.adam(options.lr);
  const batchX = new Float32Array(options.batch * pixels);
  const batchY = new Int32Array(options.batch);
  let order = shuffled(trainImages.count, rng);
  let cursor = 0;
  let lossEma = Number.NaN;
  const started = Date.now();
  const logEvery = options.logEvery ?? 100;

  for (let step = 1; step <= options.steps; step++) {
    // Linear decay to a tenth of the initial rate: a short run (two or three epochs) settles instead of ending noisy.
    setLearningRate(optimizer, options.lr * (1 - (0.9 * (step - 1)) / options.steps));
    for (let b = 0; b < options.batch; b++) {
      if (cursor === order.length) {
        order = shuffled(trainImages.count, rng);
        cursor = 0;
      }
      const index = order[cursor++];
      batchX.set(trainX.subarray(index * pixels, (index + 1) * pixels), b * pixels);
      batchY[b] = trainLabels[index];
    }
    const loss = tf.tidy((): Scalar => {
      const x = tf.tensor4d(batchX, [options.batch, CLASSIFIER_IMAGE_SIZE, CLASSIFIER_IMAGE_SIZE, 1]);
      const y = tf.oneHot(tf.tensor1d(batchY, 'int32'), CLASSIFIER_CLASSES);
      const cost = optimizer.minimize(
        () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as Tensor),
        true,
      );
      if (cost === null) throw new Error('optimizer.minimize returned no cost');
      return cost;
    });
    const value = (await loss.data())[0];
    loss.dispose();
    if (!Number.isFinite(value))
      throw new Error(`training stopped: the loss is ${value} at step ${step}; lower --lr`);
    lossEma = Number.isNaN(lossEma) ? value : 0.98 * lossEma + 0.02 * value;
    if (step % logEvery === 0 || step === options.steps) {
      const seconds = (Date.now() - started) / 1000;
      console.log(`step ${step}/${options.steps} loss ${lossEma.toFixed(4)} ${seconds.toFixed(0)}s`);
    }
  }
  return lossEma;
}

function classifierManifest(
  options: ClassifierTrainingOptions,
  parameters: number,
  trainCount: number,
  run: {
    previous: Awaited<ReturnType<typeof readPreviousRun>> | undefined;
    testAccuracy: number;
    testImages: number;
    lossEma: number;
    trainingSeconds: number;
  },
): ModelManifestInput {
  const { previous, testAccuracy, lossEma, trainingSeconds } = run;
  const manifest: ModelManifestInput = {
    name: 'classifier-fashion-mnist',
    version: options.version,
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
    parameters,
    trainingData:
      'Fashion-MNIST training split (/usr/share/datasets/fashion-mnist/train-*-idx*-ubyte.gz, 60000 images), bytes/255',
    trainingSteps: (previous?.steps ?? 0) + options.steps,
    trainingCommand: previous ? `${previous.command} && ${options.commandLine}` : options.commandLine,
    metrics: {
      testAccuracy,
      testImages: run.testImages,
      testData: 'Fashion-MNIST t10k split, never seen in training',
      finalTrainingLoss: lossEma,
      finalTrainingLossDefinition:
        'exponential moving average (0.98 per step) of the per-batch cross-entropy',
      trainingSeconds: (previous?.seconds ?? 0) + trainingSeconds,
      epochs: (previous?.epochs ?? 0) + (options.steps * options.batch) / trainCount,
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
    createdAt: new Date().toISOString(),
  };
  return manifest;
}

async function readPreviousRun(
  dir: string,
): Promise<{ steps: number; command: string; seconds: number; epochs: number; accuracy: number }> {
  const parsed = parseModelManifest(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')));
  if (!parsed.ok) throw new Error(`--init ${dir}: manifest is invalid: ${parsed.error}`);
  const { trainingSteps, trainingCommand, metrics } = parsed.manifest;
  return {
    steps: trainingSteps,
    command: trainingCommand,
    seconds: Number(metrics.trainingSeconds ?? 0),
    epochs: Number(metrics.epochs ?? 0),
    accuracy: Number(metrics.testAccuracy ?? Number.NaN),
  };
}

export async function runClassifierCli(args: string[], commandLine: string): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      steps: { type: 'string' },
      batch: { type: 'string' },
      lr: { type: 'string' },
      out: { type: 'string' },
      version: { type: 'string' },
      init: { type: 'string' },
      seed: { type: 'string' },
      backend: { type: 'string', default: 'auto' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(CLASSIFIER_USAGE);
    return;
  }
  const version = values.version ?? '1';
  const runtime = await initTfjs(values.backend as BackendPreference);
  await trainClassifier(runtime.tf, {
    steps: positive('steps', values.steps, 2800, true),
    batch: positive('batch', values.batch, 64, true),
    lr: positive('lr', values.lr, 1e-3),
    out: values.out ?? `models/classifier-fashion-mnist/${version}`,
    version,
    seed: values.seed === undefined ? 1 : Number(values.seed),
    commandLine,
    backend: runtime.backend,
    init: values.init,
  });
}
