/**
 * `npm run train -- <family> [options]`: one training command per model family (`--help` after the family
 * lists its options). The families share tools/train/core (loop, checkpoints, progress, export, options).
 * Exit code 2: a bad command line; 1: the run failed.
 */

import { runClassifierCli } from './classifier.js';
import { UsageError } from './core/options.js';
import { runDdpmCli } from './ddpm.js';
import { runEpsAdCli } from './eps-ad.js';
import { runMidCli } from './mid.js';
import { runNoise2ScoreCli } from './noise2score-cli.js';

type Trainer = { summary: string; run: (args: string[], commandLine: string) => Promise<void> };

/** The training commands, by family name. */
export const TRAINERS: Record<string, Trainer> = {
  noise2score: {
    summary: 'Noise2Score score network (gaussian | poisson | gamma noise)',
    run: runNoise2ScoreCli,
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
  process.exitCode = error instanceof UsageError ? 2 : 1;
});
