/**
 * `npm run train -- <family> [options]`: one training command per model family.
 * Each entry parses its own options (node:util parseArgs) and runs in this process; add new families to
 * TRAINERS (ddpm, eps-ad and mid are planned).
 */
import { parseArgs } from 'node:util';
import { parseScoreArchitecture } from '../../src/denoise/network.js';
import { NOISE_FAMILIES, type NoiseFamily } from '../../src/denoise/noise.js';
import { type BackendPreference, initTfjs } from '../../src/nn/backend.js';
import { runClassifierCli } from './classifier.js';
import { runDdpmCli } from './ddpm.js';
import { runEpsAdCli } from './eps-ad.js';
import { runMidCli } from './mid.js';
import { FAMILY_TRAINING, trainNoise2Score } from './noise2score.js';

type Trainer = { summary: string; run: (args: string[], commandLine: string) => Promise<void> };

const NOISE2SCORE_USAGE = `usage: npm run train -- noise2score --noise gaussian|poisson|gamma
  [--clean-dir ../shared/data/train400 | --noisy-dir DIR] [--steps N] [--batch B] [--patch P] [--lr LR]
  [--out models/noise2score-<family>/<version>] [--checkpoint-dir checkpoints/noise2score-<family>] [--resume]
  [--seed S] [--init-from MODEL_DIR] [--stop-at-step N] [--checkpoint-minutes M] [--validation-dir ../shared/data/set12 | none] [--version V] [--backend auto|wasm|cpu]
  [--architecture JSON]   e.g. '{"kind":"unet","widths":[16,48,128],"skip":"add","convs":[1,1,3,1,1]}' (src/denoise/network.ts)`;

function positiveNumber(name: string, value: string | undefined, fallback: number, integer = false): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got '${value}'`);
  }
  return n;
}

async function runNoise2Score(args: string[], commandLine: string): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      noise: { type: 'string' },
      'clean-dir': { type: 'string' },
      'noisy-dir': { type: 'string' },
      steps: { type: 'string' },
      batch: { type: 'string' },
      patch: { type: 'string' },
      lr: { type: 'string' },
      out: { type: 'string' },
      'checkpoint-dir': { type: 'string' },
      'checkpoint-minutes': { type: 'string' },
      'validation-dir': { type: 'string' },
      'init-from': { type: 'string' },
      'stop-at-step': { type: 'string' },
      architecture: { type: 'string' },
      version: { type: 'string' },
      resume: { type: 'boolean', default: false },
      seed: { type: 'string' },
      backend: { type: 'string', default: 'auto' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(NOISE2SCORE_USAGE);
    return;
  }
  const noise = values.noise as NoiseFamily;
  if (!NOISE_FAMILIES.includes(noise))
    throw new Error(`--noise must be one of ${NOISE_FAMILIES.join(', ')}\n${NOISE2SCORE_USAGE}`);
  if (values['clean-dir'] && values['noisy-dir'])
    throw new Error('give --clean-dir or --noisy-dir, not both');
  const cleanDir = values['noisy-dir'] ? undefined : (values['clean-dir'] ?? '../shared/data/train400');
  const version = values.version ?? new Date().toISOString().slice(0, 10).replaceAll('-', '');
  const architecture =
    values.architecture === undefined
      ? undefined
      : parseScoreArchitecture(values.architecture, FAMILY_TRAINING[noise].outputScale);
  const runtime = await initTfjs(values.backend as BackendPreference);
  await trainNoise2Score(runtime.tf, {
    noise,
    architecture,
    cleanDir,
    noisyDir: values['noisy-dir'],
    steps: positiveNumber('steps', values.steps, 6000, true),
    batch: positiveNumber('batch', values.batch, 32, true),
    patch: positiveNumber('patch', values.patch, 48, true),
    lr: positiveNumber('lr', values.lr, 1e-3),
    out: values.out ?? `models/noise2score-${noise}/${version}`,
    checkpointDir: values['checkpoint-dir'] ?? `checkpoints/noise2score-${noise}`,
    checkpointMinutes: positiveNumber('checkpoint-minutes', values['checkpoint-minutes'], 5),
    validationDir:
      values['validation-dir'] === 'none' ? undefined : (values['validation-dir'] ?? '../shared/data/set12'),
    resume: values.resume ?? false,
    initFrom: values['init-from'],
    stopAtStep:
      values['stop-at-step'] === undefined
        ? undefined
        : positiveNumber('stop-at-step', values['stop-at-step'], 1, true),
    seed: values.seed === undefined ? 1 : Number(values.seed),
    version,
    commandLine,
    backend: runtime.backend,
  });
}

/** The training commands, by family name. */
export const TRAINERS: Record<string, Trainer> = {
  noise2score: {
    summary: 'Noise2Score score network (gaussian | poisson | gamma noise)',
    run: runNoise2Score,
  },
  ddpm: {
    summary:
      'DDPM eps-prediction U-Net, prior of RED-Diff and score model of EPS-AD (fashion-mnist | natural-grey)',
    run: runDdpmCli,
  },
  classifier: {
    summary: 'Fashion-MNIST CNN classifier, the model under attack in the EPS-AD evaluation (eps-ad family)',
    run: runClassifierCli,
  },
  'eps-ad': {
    summary: 'EPS-AD deep kernel, reference set and calibrated thresholds (adversarial detection)',
    run: runEpsAdCli,
  },
  mid: {
    summary: 'MID real-camera-noise denoiser (masked U-Net, iteratively refined noise sampler; PolyU)',
    run: runMidCli,
  },
};

async function main(argv: string[]): Promise<void> {
  const [family, ...rest] = argv;
  const trainer = family ? TRAINERS[family] : undefined;
  if (!trainer) {
    const list = Object.entries(TRAINERS)
      .map(([name, t]) => `  ${name.padEnd(12)} ${t.summary}`)
      .join('\n');
    console.error(`usage: npm run train -- <family> [options]\nfamilies:\n${list}`);
    process.exitCode = 2;
    return;
  }
  const commandLine = `npm run train -- ${argv.map((a) => (/^[\w./=:@-]+$/.test(a) ? a : JSON.stringify(a))).join(' ')}`;
  await trainer.run(rest, commandLine);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
