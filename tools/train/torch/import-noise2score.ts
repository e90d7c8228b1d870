/**
 * Imports a score network trained by tools/train/torch/noise2score.py (a GPU run) as a tf.js model folder:
 * rebuilds the network of src/denoise/network.ts, sets the weights by name, checks that tf.js computes the same
 * function as PyTorch did on the probe written with the weights (relative error under 1e-3, else it refuses),
 * measures Set12 at the family's validation level with the TypeScript protocol, and writes model.json,
 * weights.bin and manifest.json (with the Python command, its log and the import command).
 *
 *   npx tsx tools/train/torch/import-noise2score.ts --from <python --out> --out models/noise2score-gaussian/v6 \
 *     [--validation-dir ../shared/data/set12] [--lineage <text>]
 */
import {
  buildScoreNetwork,
  DEFAULT_ARCHITECTURE,
  networkMultiple,
  type ScoreNetworkArchitecture,
} from '../../../src/denoise/network.js';
import type { NoiseFamily } from '../../../src/denoise/noise.js';
import { initTfjs } from '../../../src/nn/backend.js';
import type { Lineage } from '../core/export.js';
import { loadGreyImages } from '../data.js';
import { exportModel, FAMILY_TRAINING, validationPsnr, validationRecord } from '../noise2score.js';
import {
  checkProbe,
  parseImportArgs,
  probeTensor,
  readTorchRun,
  setWeightsByName,
  type TorchRunSummary,
  torchLineage,
} from './common.js';

interface Noise2ScoreRun extends TorchRunSummary {
  noise: NoiseFamily;
  /** Trained on the noisy images as they are (--noisy); absent in older runs: clean images. */
  noisyImages?: boolean;
  patch: number;
  /** Absent in runs before the architecture became an option: the default. */
  architecture?: ScoreNetworkArchitecture;
  /** Set when the run distilled a committed network instead of using the AR-DAE loss. */
  teacher?: string | null;
  teacherEnsemble?: number | null;
}

export async function importNoise2Score(options: {
  from: string;
  /** The model folder, `<models dir>/<name>/<version>`. */
  out: string;
  validationDir?: string;
  /** Where the weights came from: a text (run script, machine, the init model's commit), or the lineage record. */
  lineage?: string | Lineage;
  /** The architecture's speed/quality trade-off, measured, for the manifest. */
  tradeoff?: string;
  commandLine: string;
  /** The manifest's training command when not the Python one (npm run train --device cuda). */
  trainingCommand?: string;
  log?: (line: string) => void;
}): Promise<{ probeError: number; validationPsnr: number | null }> {
  const log = options.log ?? ((line: string) => console.log(line));
  const { summary, tensors } = await readTorchRun<Noise2ScoreRun>(options.from);
  const family = FAMILY_TRAINING[summary.noise];
  const architecture = summary.architecture ?? { ...DEFAULT_ARCHITECTURE, outputScale: family.outputScale };
  const { tf } = await initTfjs('wasm');
  const model = buildScoreNetwork(tf, architecture, 1);
  setWeightsByName(tf, model, tensors, options.from);
  const probeError = await checkProbe(
    tf,
    model,
    [probeTensor(tensors, 'probe/input', options.from)],
    probeTensor(tensors, 'probe/output', options.from),
    log,
  );

  let validation: Awaited<ReturnType<typeof validationPsnr>> | null = null;
  if (options.validationDir) {
    const images = await loadGreyImages(options.validationDir);
    validation = await validationPsnr(tf, model, summary.noise, images, networkMultiple(architecture));
    log(
      `validation ${options.validationDir} at ${family.validationLevelLabel}: ${validation.mean.toFixed(3)} dB`,
    );
  }
  const record = validationRecord(summary.noise, options.validationDir, validation);
  await exportModel(
    model,
    {
      noise: summary.noise,
      ...(summary.noisyImages ? { noisyDir: summary.images.source } : { cleanDir: summary.images.source }),
      steps: summary.steps,
      batch: summary.batch,
      patch: summary.patch,
      lr: summary.lr,
      out: options.out,
      checkpointDir: '',
      resume: false,
      seed: summary.seed,
      checkpointMinutes: 0,
      commandLine: options.trainingCommand ?? summary.command,
      backend: `PyTorch ${summary.torch} on ${summary.device} (tools/train/torch/noise2score.py)`,
      ...(summary.initFrom && { initFrom: summary.initFrom }),
      lineage: torchLineage('noise2score.py', summary, options.lineage),
    },
    architecture,
    summary.steps,
    {
      status: 'final',
      ...record.metrics,
      finalLoss: summary.finalLoss == null ? null : +summary.finalLoss.toFixed(6),
      trainingSeconds: Math.round(summary.seconds),
      probeRelativeError: +probeError.toPrecision(3),
    },
    {
      ...(options.trainingCommand && { torchCommand: summary.command }),
      ...(summary.teacher && { teacher: summary.teacher, teacherEnsemble: summary.teacherEnsemble }),
      importCommand: options.commandLine,
      torchLog: summary.log,
      ...record.extra,
    },
    {
      ...(options.tradeoff && { tradeoff: options.tradeoff }),
      ...(summary.teacher && {
        loss:
          `distillation || sigma (R(y) - T(y)) ||^2 on noisy crops y (sigma: the crop's noise level), T: ` +
          `${summary.teacher} averaged over ${summary.teacherEnsemble} symmetries of the square`,
        description:
          `Noise2Score score network for ${summary.noise} noise (Kim & Ye, NeurIPS 2021), distilled from ` +
          `${summary.teacher}, a score network trained self-supervised with the AR-DAE loss; both see noisy ` +
          "images only. Denoise with Tweedie's formula (src/denoise/noise2score.ts).",
      }),
    },
  );
  model.dispose();
  log(`exported ${options.out}`);
  return { probeError, validationPsnr: validation?.mean ?? null };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, commandLine } = parseImportArgs(
    'usage: npx tsx tools/train/torch/import-noise2score.ts --from <dir> --out <models dir>/<name>/<version> ' +
      '[--validation-dir <dir>] [--lineage <text>] [--tradeoff <text>]',
    ['validation-dir', 'tradeoff'],
  );
  await importNoise2Score({
    from: values.from,
    out: values.out,
    validationDir: values['validation-dir'],
    lineage: values.lineage,
    tradeoff: values.tradeoff,
    commandLine,
  });
}
