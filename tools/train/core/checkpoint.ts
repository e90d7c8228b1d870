/**
 * Checkpoints: <dir>/step-<n>/{state.json, tensors.json, tensors.bin}, written to a staging folder and renamed
 * (a crash never leaves a half-written checkpoint), then <dir>/latest.json is replaced (write + rename) to name it;
 * the two newest step folders are kept, so the previous one survives a crash while the next is written.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type NamedArray, readTensors, writeTensors } from '../tensor-file.js';
import { UsageError } from './options.js';
import { getLearningRate, setLearningRate } from './schedules.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Optimizer = import('@tensorflow/tfjs').Optimizer;
type Scalar = import('@tensorflow/tfjs').Scalar;
type Variable = import('@tensorflow/tfjs').Variable;

export interface CheckpointStateBase {
  step: number;
  elapsedSeconds: number;
}

export interface LoadedCheckpoint<S extends CheckpointStateBase> {
  dir: string;
  state: S;
  arrays: NamedArray[];
}

/** Writes `arrays` and `state` to `dir` atomically (staging folder + rename). */
export async function writeArraysAtomic(dir: string, arrays: NamedArray[], state: object): Promise<void> {
  const staging = `${dir}.partial`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  await writeTensors(staging, arrays);
  await writeFile(join(staging, 'state.json'), JSON.stringify(state, null, 2));
  await rm(dir, { recursive: true, force: true });
  await rename(staging, dir);
}

export async function writeCheckpoint(
  dir: string,
  arrays: NamedArray[],
  state: CheckpointStateBase,
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const stepDir = join(dir, `step-${String(state.step).padStart(7, '0')}`);
  await writeArraysAtomic(stepDir, arrays, state);
  await writeFile(join(dir, 'latest.json.partial'), JSON.stringify({ dir: stepDir, step: state.step }));
  await rename(join(dir, 'latest.json.partial'), join(dir, 'latest.json'));
  const steps = (await readdir(dir)).filter((n) => /^step-\d+$/.test(n)).sort();
  for (const name of steps.slice(0, -2)) await rm(join(dir, name), { recursive: true, force: true });
  return stepDir;
}

/** The newest checkpoint of `dir`, or null when it holds none. */
export async function readCheckpoint<S extends CheckpointStateBase>(
  dir: string,
): Promise<LoadedCheckpoint<S> | null> {
  let latest: { dir: string };
  try {
    latest = JSON.parse(await readFile(join(dir, 'latest.json'), 'utf8'));
  } catch {
    return null;
  }
  const state = JSON.parse(await readFile(join(latest.dir, 'state.json'), 'utf8')) as S;
  return { dir: latest.dir, state, arrays: await readTensors(latest.dir) };
}

/** Refuses to start over a checkpoint without --resume (it would be silently replaced step by step). */
export async function assertFreshCheckpointDir(dir: string): Promise<void> {
  try {
    await readFile(join(dir, 'latest.json'));
  } catch {
    return;
  }
  throw new Error(`${dir} holds a checkpoint: pass --resume to continue it, or remove it to start over`);
}

/**
 * The checkpoint a run starts from: the newest one of `dir` with --resume (null, and a line saying so, when there
 * is none), else null after checking that `dir` holds none (assertFreshCheckpointDir).
 */
export async function openCheckpoint<S extends CheckpointStateBase>(
  dir: string,
  resume: boolean,
  log: (line: string) => void,
): Promise<LoadedCheckpoint<S> | null> {
  if (!resume) {
    await assertFreshCheckpointDir(dir);
    return null;
  }
  const saved = await readCheckpoint<S>(dir);
  log(
    saved
      ? `resumed from step ${saved.state.step} (${dir})`
      : `no checkpoint in ${dir}; starting from scratch`,
  );
  return saved;
}

/**
 * Refuses to resume a checkpoint made with other settings of those that fix the data stream or the network (its
 * batches or shapes would not continue the same run); the others (--lr, --steps) may change on a resume.
 */
export function assertSameSettings(
  dir: string,
  saved: Record<string, unknown> | undefined,
  current: Record<string, number | string>,
): void {
  const differ = Object.keys(current).filter((k) => saved?.[k] !== current[k]);
  if (differ.length === 0) return;
  const list = (values: Record<string, unknown> | undefined) =>
    differ.map((k) => `${k} ${String(values?.[k])}`).join(', ');
  throw new UsageError(
    `the checkpoint in ${dir} was made with ${list(saved)}, not ${list(current)}: resume with the same settings`,
  );
}

export function modelArrays(model: LayersModel, prefix = 'model/'): NamedArray[] {
  return model.weights.map((w) => {
    const value = w.read();
    return { name: `${prefix}${w.name}`, shape: value.shape, values: Float32Array.from(value.dataSync()) };
  });
}

/**
 * Adam's running powers beta1^t and beta2^t. tf.js keeps them in variables of its own (not in getWeights) and,
 * on setWeights, rebuilds them as pow(beta, t + 1), which differs in the last bit from the running product an
 * uninterrupted run holds (beta2 = 0.999 at t = 25, for one): a resumed run would drift from the uninterrupted
 * one. So the checkpoint keeps their values and restoreOptimizer puts them back.
 */
const ADAM_POWERS = ['accBeta1', 'accBeta2'] as const;
type AdamPowers = Partial<Record<(typeof ADAM_POWERS)[number], Variable>>;
const adamPowers = (optimizer: Optimizer) => optimizer as unknown as AdamPowers;

export async function optimizerArrays(optimizer: Optimizer): Promise<NamedArray[]> {
  const weights = await optimizer.getWeights();
  const arrays = weights.map((w) => ({
    name: `optimizer/${w.name}`,
    shape: w.tensor.shape,
    values: Float32Array.from(w.tensor.dataSync() as Float32Array),
  }));
  // getWeights makes a new scalar for the iteration count each time; the moments are the optimizer's own.
  disposeIterations(weights);
  for (const name of ADAM_POWERS) {
    const power = adamPowers(optimizer)[name];
    if (power)
      arrays.push({
        name: `optimizer-state/${name}`,
        shape: power.shape,
        values: Float32Array.from(power.dataSync()),
      });
  }
  return arrays;
}

/** The iteration count getWeights returns first: a new tensor of each call, not the optimizer's. */
function disposeIterations(weights: { name: string; tensor: { dispose(): void } }[]): void {
  for (const w of weights) if (w.name === 'iter') w.tensor.dispose();
}

export function setModelArrays(tf: Tf, model: LayersModel, arrays: NamedArray[], prefix = 'model/'): void {
  const weights = arrays.filter((a) => a.name.startsWith(prefix));
  if (weights.length !== model.weights.length)
    throw new Error(`checkpoint has ${weights.length} weights, the model ${model.weights.length}`);
  // The variables take the values (assign shares the data): the tensors made to carry them are freed after.
  const values = weights.map((a) => tf.tensor(a.values, a.shape));
  try {
    model.setWeights(values);
  } finally {
    tf.dispose(values);
  }
}

/**
 * Restores Adam's moments, iteration count and running powers. Adam creates its variables on its first update,
 * so one update at rate 0 (of `warmLoss`, any scalar of the model's output) makes them exist in the model's
 * variable order first.
 */
export async function restoreOptimizer(
  tf: Tf,
  optimizer: Optimizer,
  arrays: NamedArray[],
  warmLoss: () => Scalar,
): Promise<void> {
  const saved = arrays.filter((a) => a.name.startsWith('optimizer/'));
  if (saved.length === 0) return;
  const rate = getLearningRate(optimizer);
  setLearningRate(optimizer, 0);
  tf.tidy(() => {
    optimizer.minimize(warmLoss);
  });
  setLearningRate(optimizer, rate);
  // setWeights makes new moment variables from the values and drops the ones it replaces (the warm-up's, or an
  // earlier restore's) without freeing them; the tensors that carry the values stay allocated too. Free both.
  const replaced = await optimizer.getWeights();
  const values = saved.map((a) => ({
    name: a.name.slice('optimizer/'.length),
    tensor: tf.tensor(a.values, a.shape),
  }));
  try {
    await optimizer.setWeights(values);
  } finally {
    tf.dispose(values.map((v) => v.tensor));
  }
  disposeIterations(replaced);
  tf.dispose(replaced.filter((w) => w.name !== 'iter').map((w) => w.tensor));
  for (const name of ADAM_POWERS) {
    const power = adamPowers(optimizer)[name];
    const value = arrays.find((a) => a.name === `optimizer-state/${name}`);
    if (power && value) tf.tidy(() => power.assign(tf.tensor(value.values, value.shape)));
  }
}
