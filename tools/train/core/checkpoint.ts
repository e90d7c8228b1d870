/**
 * Checkpoints: <dir>/step-<n>/{state.json, tensors.json, tensors.bin}, written to a staging folder and renamed
 * (a crash never leaves a half-written checkpoint), then <dir>/latest.json is replaced (write + rename) to name it;
 * the two newest step folders are kept, so the previous one survives a crash while the next is written.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type NamedArray, readTensors, writeTensors } from '../tensor-file.js';
import { getLearningRate, setLearningRate } from './schedules.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Optimizer = import('@tensorflow/tfjs').Optimizer;
type Scalar = import('@tensorflow/tfjs').Scalar;

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

export function modelArrays(model: LayersModel, prefix = 'model/'): NamedArray[] {
  return model.weights.map((w) => {
    const value = w.read();
    return { name: `${prefix}${w.name}`, shape: value.shape, values: Float32Array.from(value.dataSync()) };
  });
}

export async function optimizerArrays(optimizer: Optimizer): Promise<NamedArray[]> {
  return (await optimizer.getWeights()).map((w) => ({
    name: `optimizer/${w.name}`,
    shape: w.tensor.shape,
    values: Float32Array.from(w.tensor.dataSync() as Float32Array),
  }));
}

export function setModelArrays(tf: Tf, model: LayersModel, arrays: NamedArray[], prefix = 'model/'): void {
  const weights = arrays.filter((a) => a.name.startsWith(prefix));
  if (weights.length !== model.weights.length)
    throw new Error(`checkpoint has ${weights.length} weights, the model ${model.weights.length}`);
  model.setWeights(weights.map((a) => tf.tensor(a.values, a.shape)));
}

/**
 * Restores Adam's moments and iteration count. Adam creates its variables on its first update, so one update at
 * rate 0 (of `warmLoss`, any scalar of the model's output) makes them exist in the model's variable order first.
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
  await optimizer.setWeights(
    saved.map((a) => ({ name: a.name.slice('optimizer/'.length), tensor: tf.tensor(a.values, a.shape) })),
  );
}
