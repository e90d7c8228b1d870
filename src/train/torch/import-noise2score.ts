/**
 * Imports a score network trained by src/train/torch/noise2score.py (a GPU run) as a tf.js model folder:
 * rebuilds the network of src/denoise/network.ts, sets the weights by name, checks that tf.js computes the same
 * function as PyTorch did on the probe written with the weights (relative error under 1e-3, else it refuses),
 * measures Set12 at the family's validation level with the TypeScript protocol, and writes model.json,
 * weights.bin and manifest.json (with the Python command, its log and the import command).
 *
 *   npx tsx src/train/torch/import-noise2score.ts --from <python --out> --out models/noise2score-gaussian/v6 \
 *     --version v6 [--validation-dir ../shared/data/set12] [--lineage <text>]
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildScoreNetwork, DEFAULT_ARCHITECTURE, networkMultiple } from '../../denoise/network.js';
import type { NoiseFamily } from '../../denoise/noise.js';
import { initTfjs } from '../../nn/backend.js';
import { loadGreyImages } from '../data.js';
import { exportModel, FAMILY_TRAINING, VALIDATION_SEED, validationPsnr } from '../noise2score.js';
import { readTensors } from '../tensor-file.js';

interface TorchSummary {
  noise: NoiseFamily;
  steps: number;
  batch: number;
  patch: number;
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

export async function importNoise2Score(options: {
  from: string;
  out: string;
  version: string;
  validationDir?: string;
  /** Where the weights came from (run script, machine, the init model's commit), for the manifest. */
  lineage?: string;
  commandLine: string;
  log?: (line: string) => void;
}): Promise<{ probeError: number; validationPsnr: number | null }> {
  const log = options.log ?? ((line: string) => console.log(line));
  const summary = JSON.parse(await readFile(join(options.from, 'train.json'), 'utf8')) as TorchSummary;
  const family = FAMILY_TRAINING[summary.noise];
  const architecture = { ...DEFAULT_ARCHITECTURE, outputScale: family.outputScale };
  const { tf } = await initTfjs('wasm');
  const model = buildScoreNetwork(tf, architecture, 1);
  const tensors = new Map((await readTensors(options.from)).map((t) => [t.name, t]));
  model.setWeights(
    model.weights.map((w) => {
      // originalName: the name in model.json (tf.js suffixes `name` with _1, _2 when a process builds it again).
      const t = tensors.get(w.originalName);
      if (!t) throw new Error(`${options.from} has no weight ${w.originalName}`);
      if (t.shape.join() !== w.shape.join())
        throw new Error(`${w.originalName}: shape ${t.shape} in ${options.from}, ${w.shape} in the network`);
      return tf.tensor(t.values, t.shape);
    }),
  );
  const probeIn = tensors.get('probe/input');
  const probeOut = tensors.get('probe/output');
  if (!probeIn || !probeOut) throw new Error(`${options.from} has no probe`);
  const out = tf.tidy(() =>
    (
      model.predict(
        tf.tensor4d(probeIn.values, probeIn.shape as [number, number, number, number]),
      ) as import('@tensorflow/tfjs').Tensor
    ).dataSync(),
  );
  const probeError = relativeError(out, probeOut.values);
  log(`probe: tf.js against PyTorch, relative error ${probeError.toExponential(2)}`);
  if (!(probeError < 1e-3)) throw new Error(`tf.js does not compute what PyTorch did (${probeError})`);

  let validation: ReturnType<typeof validationPsnr> | null = null;
  if (options.validationDir) {
    const images = await loadGreyImages(options.validationDir);
    validation = validationPsnr(tf, model, summary.noise, images, networkMultiple(architecture));
    log(
      `validation ${options.validationDir} at ${family.validationLevelLabel}: ${validation.mean.toFixed(3)} dB`,
    );
  }
  const key = `psnr_set12_${summary.noise}_${family.validationLevelLabel.replace(/[^\w.]+/g, '')}`;
  await exportModel(
    model,
    {
      noise: summary.noise,
      cleanDir: summary.images.source,
      steps: summary.steps,
      batch: summary.batch,
      patch: summary.patch,
      lr: summary.lr,
      out: options.out,
      checkpointDir: '',
      resume: false,
      seed: summary.seed,
      checkpointMinutes: 0,
      version: options.version,
      commandLine: summary.command,
      backend: `PyTorch ${summary.torch} on ${summary.device} (src/train/torch/noise2score.py)`,
      ...(summary.initFrom && { initFrom: summary.initFrom }),
    },
    architecture,
    summary.steps,
    {
      status: 'final',
      ...(validation && {
        [key]: +validation.mean.toFixed(3),
        validationPsnr: +validation.mean.toFixed(3),
        validationNoisyPsnr: +(
          validation.perImage.reduce((s, p) => s + p.noisyPsnr, 0) / validation.perImage.length
        ).toFixed(3),
        validationSet: options.validationDir,
        validationLevel: `${family.validationLevelLabel} (given, not estimated)`,
        validationProtocol:
          `x = u8/255; noise from Rng(${VALIDATION_SEED} + image index in sorted order) (xoshiro128**, ` +
          'src/util/random.ts); no clipping of y; output clipped to [0,1]; PSNR per image, no border crop; mean',
      }),
      finalLoss: summary.finalLoss == null ? null : +summary.finalLoss.toFixed(6),
      trainingSeconds: Math.round(summary.seconds),
      probeRelativeError: +probeError.toPrecision(3),
    },
    {
      ...(options.lineage && { lineage: options.lineage }),
      importCommand: options.commandLine,
      torchLog: summary.log,
      ...(validation && {
        validationPerImage: validation.perImage.map((p) => ({
          name: p.name,
          psnr: +p.psnr.toFixed(3),
          noisyPsnr: +p.noisyPsnr.toFixed(3),
        })),
      }),
    },
  );
  log(`exported ${options.out}`);
  return { probeError, validationPsnr: validation?.mean ?? null };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      from: { type: 'string' },
      out: { type: 'string' },
      version: { type: 'string' },
      'validation-dir': { type: 'string' },
      lineage: { type: 'string' },
    },
  });
  if (!values.from || !values.out || !values.version) {
    console.error(
      'usage: npx tsx src/train/torch/import-noise2score.ts --from <dir> --out <model dir> --version <v> [--validation-dir <dir>] [--lineage <text>]',
    );
    process.exit(2);
  }
  await importNoise2Score({
    from: values.from,
    out: values.out,
    version: values.version,
    validationDir: values['validation-dir'],
    lineage: values.lineage,
    commandLine: `npx tsx src/train/torch/import-noise2score.ts ${process.argv.slice(2).join(' ')}`,
  });
}
