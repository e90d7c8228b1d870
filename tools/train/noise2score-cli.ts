/**
 * `npm run train -- noise2score --images ./my-noisy --noise gaussian|poisson|gamma --out models/my-denoiser/1`:
 * a Noise2Score denoiser for the noise of one's own images, from the noisy images alone (or, with --clean-dir,
 * from clean images with synthetic noise). `--device cuda` runs the PyTorch port and imports its weights
 * (`--device torch-cpu`: the same port on the CPU).
 */
import { join, resolve } from 'node:path';
import { parseScoreArchitecture, type ScoreNetworkArchitecture } from '../../src/denoise/network.js';
import { NOISE_FAMILIES, type NoiseFamily } from '../../src/denoise/noise.js';
import { type BackendPreference, initTfjs } from '../../src/nn/backend.js';
import { modelIdFromOut } from './core/export.js';
import {
  COMMON_OPTIONS,
  COMMON_USAGE,
  type CommonOptions,
  commonOptions,
  parseOptions,
  positiveNumber,
  UsageError,
} from './core/options.js';
import { FAMILY_TRAINING, trainNoise2Score } from './noise2score.js';
import { importNoise2Score } from './torch/import-noise2score.js';
import { packImages } from './torch/pack-images.js';
import {
  checkTorch,
  keepTorchSettings,
  runTorch,
  startTorchRun,
  TORCH_DIR,
  type TorchCommand,
  torchDeviceArg,
  torchRunArgs,
  usesTorch,
} from './torch/run.js';

export const NOISE2SCORE_USAGE = `usage: npm run train -- noise2score --noise gaussian|poisson|gamma
  (--images DIR_OF_NOISY_IMAGES | --clean-dir DIR_OF_CLEAN_IMAGES) [--references DIR_OF_CLEAN_IMAGES]
  [--patch 48] [--architecture JSON] [--python python3]
${COMMON_USAGE}
  --images: your noisy images as they are (any names; JPEG, PNG, TIFF; 8/16-bit; grey or colour, read as grey).
  --clean-dir: clean images; noise of the family is synthesised at a random level per patch.
  --references: clean images for validation: noise at the family's validation level is added, PSNR reported.
  --out models/<name>/<version> (default models/noise2score-<noise>/<today>); serve it with model=<name>.
  --device cuda runs the PyTorch port (tools/train/torch/noise2score.py) and imports its weights into --out;
    --device torch-cpu runs the same port on the CPU (slow: for checking it without a GPU).`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  noise: { type: 'string' },
  'clean-dir': { type: 'string' },
  // The old name of --images.
  'noisy-dir': { type: 'string' },
  references: { type: 'string' },
  'validation-dir': { type: 'string' },
  patch: { type: 'string' },
  architecture: { type: 'string' },
  python: { type: 'string', default: 'python3' },
} as const;

export interface Noise2ScoreCli extends CommonOptions {
  noise: NoiseFamily;
  cleanDir?: string;
  noisyDir?: string;
  validationDir?: string;
  patch: number;
  architecture?: ScoreNetworkArchitecture;
  architectureJson?: string;
  python: string;
}

/** The command line, checked; nothing is read or run yet. */
export function parseNoise2ScoreArgs(args: string[]): Noise2ScoreCli | null {
  const values = parseOptions(args, OPTIONS, NOISE2SCORE_USAGE);
  if (values.help) return null;
  const noise = values.noise as NoiseFamily;
  if (!NOISE_FAMILIES.includes(noise))
    throw new UsageError(`--noise must be one of ${NOISE_FAMILIES.join(', ')}`, NOISE2SCORE_USAGE);
  const noisyDir = values.images ?? values['noisy-dir'];
  const cleanDir = values['clean-dir'];
  if (!noisyDir === !cleanDir)
    throw new UsageError(
      'give the training images: --images DIR (noisy) or --clean-dir DIR (clean)',
      NOISE2SCORE_USAGE,
    );
  const common = commonOptions(values, { name: `noise2score-${noise}`, steps: 6000, batch: 32, lr: 1e-3 });
  modelIdFromOut(common.out);
  const references = values.references ?? values['validation-dir'];
  return {
    ...common,
    noise,
    cleanDir,
    noisyDir,
    validationDir: references === 'none' ? undefined : references,
    patch: positiveNumber('patch', values.patch, 48, true),
    architecture:
      values.architecture === undefined
        ? undefined
        : parseScoreArchitecture(values.architecture, FAMILY_TRAINING[noise].outputScale),
    architectureJson: values.architecture,
    python: values.python,
  };
}

/**
 * The PyTorch trainer's command line for a `--device cuda|torch-cpu` run (images packed at `packed`, run written
 * to `runDir`).
 */
export function noise2scoreTorchCommand(cli: Noise2ScoreCli, packed: string, runDir: string): TorchCommand {
  const args = [
    join(TORCH_DIR, 'noise2score.py'),
    ...['--noise', cli.noise, '--images', packed, '--out', runDir],
    ...['--steps', String(cli.steps), '--batch', String(cli.batch), '--patch', String(cli.patch)],
    ...['--lr', String(cli.lr), '--seed', String(cli.seed), '--device', torchDeviceArg(cli.device)],
    ...torchRunArgs(cli),
  ];
  if (cli.initFrom) args.push('--init-from', resolve(cli.initFrom));
  if (cli.architectureJson) args.push('--architecture', cli.architectureJson);
  if (cli.noisyDir) args.push('--noisy');
  return { python: cli.python, args };
}

/**
 * `--device cuda|torch-cpu`: PyTorch trains, then its weights are imported into --out (probe checked, manifest
 * written).
 */
export async function trainNoise2ScoreCuda(
  cli: Noise2ScoreCli,
  commandLine: string,
  log: (line: string) => void,
  deps: { checkTorch: typeof checkTorch; runTorch: typeof runTorch } = { checkTorch, runTorch },
): Promise<void> {
  const { torch, runDir } = await startTorchRun(cli, deps.checkTorch);
  const packed = join(cli.checkpointDir, 'torch', 'images');
  if (!cli.resume) await packImages((cli.cleanDir ?? cli.noisyDir)!, packed);
  await keepTorchSettings(cli.checkpointDir, cli.resume, {
    ...{ noise: cli.noise, images: cli.cleanDir ? 'clean' : 'noisy', patch: cli.patch, batch: cli.batch },
    ...{ seed: cli.seed, architecture: cli.architectureJson ?? 'default' },
  });
  await deps.runTorch(noise2scoreTorchCommand(cli, packed, runDir), log);
  await importNoise2Score({
    from: runDir,
    out: cli.out,
    validationDir: cli.validationDir,
    commandLine: `import by npm run train (--device ${cli.device})`,
    trainingCommand: commandLine,
    lineage: {
      trainer: `tools/train/torch/noise2score.py (PyTorch ${torch})`,
      device: cli.device === 'cuda' ? 'cuda' : 'cpu',
      ...(cli.initFrom && { initialisedFrom: cli.initFrom }),
    },
    log,
  });
}

export async function runNoise2ScoreCli(args: string[], commandLine: string): Promise<void> {
  const cli = parseNoise2ScoreArgs(args);
  if (!cli) {
    console.log(NOISE2SCORE_USAGE);
    return;
  }
  const log = (line: string) => console.log(line);
  if (usesTorch(cli.device)) return trainNoise2ScoreCuda(cli, commandLine, log);
  const runtime = await initTfjs(cli.backend as BackendPreference);
  await trainNoise2Score(runtime.tf, {
    ...cli,
    commandLine,
    backend: runtime.backend,
    log: process.stdout.isTTY ? undefined : log,
  });
}
