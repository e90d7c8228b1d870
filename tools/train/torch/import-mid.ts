/**
 * Imports a MID denoiser trained by tools/train/torch/mid.py (a GPU run) as a tf.js model folder: rebuilds the
 * network of src/mid/network.ts with the run's widths, sets the weights by name, checks that tf.js computes what
 * PyTorch did on the probe written with the weights (largest difference under 1e-4 of the output's scale, else it
 * refuses), and writes model.json, weights.bin and manifest.json with mid.ts's own export: the same manifest as a
 * CPU run (per-round records, validation figures, noise statistics), plus the Python command, its log and the
 * probe error.
 *
 *   npx tsx tools/train/torch/import-mid.ts --from <python --out> --out models/mid-rgb/<version> \
 *     [--round0-out models/mid-rgb-round0/<version>] [--lineage <text>]
 */
import { join } from 'node:path';
import { buildMidNetwork, type MidArchitecture } from '../../../src/mid/network.js';
import type { NoiseStatistics } from '../../../src/mid/sampler.js';
import { initTfjs } from '../../../src/nn/backend.js';
import type { Lineage } from '../core/export.js';
import { exportMidModel, type RoundRecord } from '../mid.js';
import { type NamedArray, readTensors } from '../tensor-file.js';
import {
  checkProbe,
  parseImportArgs,
  probeTensor,
  readTorchRun,
  setWeightsByName,
  type TorchRunSummary,
  torchLineage,
} from './common.js';

/** train.json of tools/train/torch/mid.py. */
export interface MidTorchRun extends TorchRunSummary {
  roundSteps: number[];
  patch: number;
  fineTuneLr: number;
  maskRatio: number;
  residualMasks: number;
  validationMasks: number;
  architecture: MidArchitecture;
  /** 'final', or 'partial (round r of R)' for a run stopped by --max-seconds. */
  status: string;
  rounds: RoundRecord[];
  data: {
    description: string;
    split: Record<string, unknown>;
    reference: NoiseStatistics | null;
    validationNoisyPsnr: number | null;
    evalCrop: number;
  };
}

/** The probe must agree to this (largest |difference| over largest |output|): the output is an image on [0, 1]. */
export const MID_PROBE_TOLERANCE = 1e-4;

export interface ImportMidOptions {
  from: string;
  /** The model folder, `<models dir>/<name>/<version>`. */
  out: string;
  /** Also export round 0's model (the Gaussian sampler's, the run's round-0/ weights) here. */
  round0Out?: string;
  /** Where the weights came from: a text (run script, machine), or the lineage record. */
  lineage?: string | Lineage;
  commandLine: string;
  /** The manifest's training command when not the Python one (npm run train -- mid --device cuda). */
  trainingCommand?: string;
  log?: (line: string) => void;
}

export async function importMid(
  options: ImportMidOptions,
): Promise<{ probeError: number; validationPsnr: number | null }> {
  const log = options.log ?? ((line: string) => console.log(line));
  const { summary, tensors } = await readTorchRun<MidTorchRun>(options.from);
  if (!summary.rounds?.length)
    throw new Error(`${options.from}: the run finished no round, nothing to import`);
  if (options.round0Out) {
    const round0 = new Map((await readTensors(join(options.from, 'round-0'))).map((t) => [t.name, t]));
    const status = 'final (round 0 only: Gaussian sampler)';
    await importWeights(options, summary, round0, options.round0Out, summary.rounds.slice(0, 1), status, log);
  }
  const { rounds, status } = summary;
  const probeError = await importWeights(options, summary, tensors, options.out, rounds, status, log);
  return { probeError, validationPsnr: summary.rounds.at(-1)?.validationPsnr ?? null };
}

/** Rebuilds the network from `tensors`, checks their probe and exports the model after `rounds`. */
async function importWeights(
  options: ImportMidOptions,
  summary: MidTorchRun,
  tensors: Map<string, NamedArray>,
  out: string,
  rounds: RoundRecord[],
  status: string,
  log: (line: string) => void,
): Promise<number> {
  const { tf } = await initTfjs('wasm');
  const model = buildMidNetwork(tf, summary.architecture, summary.seed);
  try {
    setWeightsByName(tf, model, tensors, options.from);
    const probeError = await checkProbe(
      tf,
      model,
      [probeTensor(tensors, 'probe/input', options.from)],
      probeTensor(tensors, 'probe/output', options.from),
      log,
      MID_PROBE_TOLERANCE,
    );
    // MID's run has no initialisation (each round fine-tunes the previous one itself).
    const lineage = torchLineage('mid.py', { ...summary, initFrom: null }, options.lineage);
    await exportMidModel(
      {
        model,
        architecture: summary.architecture,
        settings: {
          ...summary,
          evalCrop: summary.data.evalCrop,
          commandLine: options.trainingCommand ?? summary.command,
          backend: `PyTorch ${summary.torch} on ${summary.device} (tools/train/torch/mid.py)`,
        },
        data: summary.data,
        reference: summary.data.reference,
        validationNoisyPsnr: summary.data.validationNoisyPsnr,
        trainingSeconds: summary.seconds,
        lineage,
        metrics: { probeRelativeError: +probeError.toPrecision(3) },
        extra: {
          ...(options.trainingCommand && { torchCommand: summary.command }),
          importCommand: options.commandLine,
          torchLog: summary.log,
        },
      },
      out,
      rounds,
      status,
    );
    log(`exported ${out} (${status})`);
    return probeError;
  } finally {
    model.dispose();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, commandLine } = parseImportArgs(
    'usage: npx tsx tools/train/torch/import-mid.ts --from <dir> --out <models dir>/<name>/<version> ' +
      '[--round0-out <models dir>/<name>/<version>] [--lineage <text>]',
    ['round0-out'],
  );
  await importMid({
    from: values.from,
    out: values.out,
    round0Out: values['round0-out'],
    lineage: values.lineage,
    commandLine,
  });
}
