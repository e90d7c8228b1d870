/**
 * Imports a DDPM U-Net trained by tools/train/torch/ddpm.py (a GPU run) as a tf.js model folder: rebuilds the network
 * of src/diffusion/unet.ts, sets the EMA weights by name, checks that tf.js computes what PyTorch did on the probe
 * written with them (relative error under 1e-3, else it refuses), and exports through the TypeScript trainer's
 * exportModel (model.json, weights.bin, samples.png, manifest.json), adding the Python command, its log and the
 * import command under extra.torch.
 *
 *   npx tsx tools/train/torch/import-ddpm.ts --from <python --out> --out models/ddpm-natural-grey/<version> \
 *     [--lineage "..."]
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { linearSchedule } from '../../../src/diffusion/schedule.js';
import { buildUnet, DEFAULT_UNET } from '../../../src/diffusion/unet.js';
import { initTfjs } from '../../../src/nn/backend.js';
import type { Lineage } from '../core/export.js';
import { exportModel, type TrainingState } from '../ddpm.js';
import {
  checkProbe,
  parseImportArgs,
  probeTensor,
  readTorchRun,
  setWeightsByName,
  type TorchRunSummary,
  torchLineage,
} from './common.js';

interface DdpmRun extends TorchRunSummary {
  size: number;
  emaDecay: number;
}

export async function importDdpm(options: {
  from: string;
  /** The model folder, `<models dir>/<name>/<version>`. */
  out: string;
  /** Where the weights came from: a text (run script, machine), or the lineage record. */
  lineage?: string | Lineage;
  commandLine: string;
  /** The manifest's training command when not the Python one (npm run train --device cuda). */
  trainingCommand?: string;
  sampleSteps?: number;
  /** Samples drawn into samples.png (default 16). */
  sampleCount?: number;
  log?: (line: string) => void;
}): Promise<{ probeError: number }> {
  const log = options.log ?? ((line: string) => console.log(line));
  const { summary, tensors } = await readTorchRun<DdpmRun>(options.from);
  const { tf } = await initTfjs('wasm');
  const model = buildUnet(tf, DEFAULT_UNET);
  setWeightsByName(tf, model, tensors, options.from);
  const probeError = await checkProbe(
    tf,
    model,
    [probeTensor(tensors, 'probe/x', options.from), probeTensor(tensors, 'probe/t', options.from)],
    probeTensor(tensors, 'probe/eps', options.from),
    log,
  );

  const training = {
    model,
    ema: model.weights.map((w) => tf.variable(w.read().clone(), false)),
    optimizer: undefined,
  } as unknown as TrainingState;
  const backend = `PyTorch ${summary.torch} on ${summary.device} (tools/train/torch/ddpm.py)`;
  await exportModel(
    tf,
    training,
    linearSchedule(),
    {
      dataset: 'natural-grey',
      dataDir: summary.images.source,
      steps: summary.steps,
      batch: summary.batch,
      lr: summary.lr,
      size: summary.size,
      out: options.out,
      checkpointDir: '',
      checkpointMinutes: 0,
      sampleMinutes: 0,
      resume: false,
      seed: summary.seed,
      emaDecay: summary.emaDecay,
      sampleSteps: options.sampleSteps ?? 100,
      sampleCount: options.sampleCount ?? 16,
      commandLine: options.trainingCommand ?? summary.command,
      backend,
      log,
      lineage: torchLineage('ddpm.py', summary, options.lineage),
    },
    DEFAULT_UNET,
    summary.steps,
    {
      status: 'complete',
      ...(summary.finalLoss != null && {
        finalTrainingLoss: +summary.finalLoss.toFixed(5),
        finalTrainingLossDefinition: 'mean of the per-batch loss every 100th step over the last 2000 steps',
      }),
      trainingSeconds: Math.round(summary.seconds),
      learningRateSchedule:
        'linear warm-up (2% of steps, <= 500) then cosine to 10%, on progress max(step / steps, time / max-seconds)',
      probeRelativeError: +probeError.toPrecision(3),
    },
    true,
  );
  const manifestPath = join(options.out, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
  manifest.extra = {
    ...manifest.extra,
    torch: {
      command: summary.command,
      initFrom: summary.initFrom,
      importCommand: options.commandLine,
      log: summary.log,
    },
  };
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  tf.dispose(training.ema);
  model.dispose();
  log(`exported ${options.out}`);
  return { probeError };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, commandLine } = parseImportArgs(
    'usage: npx tsx tools/train/torch/import-ddpm.ts --from <dir> --out <models dir>/<name>/<version> [--lineage <text>]',
    [],
    ['from', 'out'],
  );
  await importDdpm({
    from: values.from,
    out: values.out,
    lineage: values.lineage,
    commandLine,
  });
}
