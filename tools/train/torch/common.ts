/**
 * What the importers of GPU runs share: reading a run folder written by the Python trainers in this folder
 * (train.json + tensors in tf.js layout under tf.js names, with a probe), setting a tf.js model's weights by name,
 * the probe check, and the command line.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { tidyValues } from '../../../src/nn/read.js';
import type { Lineage } from '../core/export.js';
import { type NamedArray, readTensors } from '../tensor-file.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Tensor = import('@tensorflow/tfjs').Tensor;

/** train.json, as both Python trainers write it (plus each one's own fields). */
export interface TorchRunSummary {
  steps: number;
  batch: number;
  lr: number;
  seed: number;
  initFrom: string | null;
  seconds: number;
  finalLoss: number | null;
  device: string;
  torch: string;
  command: string;
  images: { source: string; count: number };
  log: { step: number; loss: number }[];
}

/**
 * The lineage of an imported PyTorch run: the caller's record when it gives one (npm run train), else the trainer
 * script with PyTorch's version and device, the model it started from, and the caller's text as a note.
 */
export function torchLineage(
  script: string,
  summary: Pick<TorchRunSummary, 'torch' | 'device'> & { initFrom?: string | null },
  given: string | Lineage | undefined,
): Lineage {
  if (typeof given === 'object') return given;
  return {
    trainer: `tools/train/torch/${script} (PyTorch ${summary.torch} on ${summary.device})`,
    device: summary.device === 'cpu' ? 'cpu' : 'cuda',
    ...(summary.initFrom && { initialisedFrom: summary.initFrom }),
    ...(given && { note: given }),
  };
}

/** Refuse weights whose tf.js output differs from PyTorch's on the probe by this much (relative). */
export const PROBE_TOLERANCE = 1e-3;

export async function readTorchRun<S extends TorchRunSummary>(
  from: string,
): Promise<{ summary: S; tensors: Map<string, NamedArray> }> {
  const summary = JSON.parse(await readFile(join(from, 'train.json'), 'utf8')) as S;
  const tensors = new Map((await readTensors(from)).map((t) => [t.name, t]));
  return { summary, tensors };
}

/** Sets every weight of `model` from the run's tensor of the same tf.js name; a missing or misshapen one throws. */
export function setWeightsByName(
  tf: Tf,
  model: LayersModel,
  tensors: Map<string, NamedArray>,
  from: string,
): void {
  model.setWeights(
    model.weights.map((w) => {
      // originalName: the name in model.json (tf.js suffixes `name` with _1, _2 when a process builds it again).
      const t = tensors.get(w.originalName);
      if (!t) throw new Error(`${from} has no weight ${w.originalName}`);
      if (t.shape.join() !== w.shape.join())
        throw new Error(`${w.originalName}: shape ${t.shape} in ${from}, ${w.shape} in the network`);
      return tf.tensor(t.values, t.shape);
    }),
  );
}

export function probeTensor(tensors: Map<string, NamedArray>, name: string, from: string): NamedArray {
  const found = tensors.get(name);
  if (!found) throw new Error(`${from} has no ${name}`);
  return found;
}

/** Largest |a - b| over the largest |b|. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(scale, 1e-12);
}

/**
 * Runs `model` on the probe inputs and compares with PyTorch's output: returns the relative error, or throws when
 * it is `tolerance` (default PROBE_TOLERANCE) or more.
 */
export async function checkProbe(
  tf: Tf,
  model: LayersModel,
  inputs: NamedArray[],
  expected: NamedArray,
  log: (line: string) => void,
  tolerance = PROBE_TOLERANCE,
): Promise<number> {
  const out = await tidyValues(tf, () => {
    const xs = inputs.map((t) => tf.tensor(t.values, t.shape));
    return model.predict(xs.length === 1 ? xs[0] : xs) as Tensor;
  });
  const error = relativeError(out, expected.values);
  log(`probe: tf.js against PyTorch, relative error ${error.toExponential(2)}`);
  if (!(error < tolerance)) throw new Error(`tf.js does not compute what PyTorch did (${error})`);
  return error;
}

/**
 * --from, --out, --lineage and any `extra` string options (--version is accepted and ignored: the version is
 * the last folder of --out); prints `usage` and exits when one of `required` is missing.
 */
export function parseImportArgs(usage: string, extra: string[] = [], required = ['from', 'out']) {
  const { values } = parseArgs({
    options: Object.fromEntries(
      ['from', 'out', 'version', 'lineage', ...extra].map((name) => [name, { type: 'string' as const }]),
    ),
  });
  if (required.some((name) => !values[name])) {
    console.error(usage);
    process.exit(2);
  }
  return {
    values: values as Record<string, string | undefined> & { from: string; out: string },
    commandLine: `npx tsx ${process.argv[1]?.replace(`${process.cwd()}/`, '')} ${process.argv.slice(2).join(' ')}`,
  };
}
