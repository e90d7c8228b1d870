/**
 * CPU time of the CPU tier against scikit-image NLM on one 512x512 image, side by side: shared by
 * `npm run bench:denoise-time` (bench/denoise/time.ts) and the time row of `npm run bench:denoise-heldout`.
 *
 * Rounds, each: NLM `perRound` times in one Python process (bench/denoise/nlm_time.py: the held-out bench's 'nlm',
 * h = nlmH x sigma; OMP_NUM_THREADS=1), then each of ours `perRound` times in this process (denoiseNoise2Score with
 * the level given, as the service runs it). CPU seconds of one call (process_time / process.cpuUsage); both sides
 * alternate, so they see the same machine load. NLM's wall seconds are returned too (for wall-clock comparisons).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadedScoreNetwork } from '../../src/denoise/model.js';
import { denoiseNoise2Score } from '../../src/denoise/noise2score.js';
import type { Tf } from '../../src/nn/backend.js';
import { REPO_ROOT } from './inputs.js';

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : 0.5 * (s[m - 1] + s[m]);
}

export const cpuSeconds = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** NLM CPU seconds of `count` calls on the raw float32 image at `path` (one Python process). */
export function runNlm(path: string, size: number, sigma: number, factor: number, count: number) {
  const child = spawnSync(
    '/usr/bin/python3',
    [
      join(REPO_ROOT, 'bench/denoise/nlm_time.py'),
      path,
      `${size}`,
      `${size}`,
      `${sigma}`,
      `${factor}`,
      `${count}`,
    ],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' },
    },
  );
  if (child.status !== 0) throw new Error(`nlm_time.py failed with status ${child.status}`);
  return JSON.parse(child.stdout) as { skimage: string; cpuSeconds: number[]; seconds: number[] };
}

/** CPU seconds of one denoiseNoise2Score call on a square grey image, level given. */
export async function timeDenoise(
  tf: Tf,
  model: LoadedScoreNetwork,
  y: Float32Array,
  size: number,
  level: number,
): Promise<number> {
  const t = cpuSeconds();
  await denoiseNoise2Score(
    tf,
    model.model,
    { data: y, width: size, height: size, channels: 1 },
    { noise: model.noise, level, multiple: model.multiple },
  );
  return cpuSeconds() - t;
}

export interface TimedModel {
  model: LoadedScoreNetwork;
  y: Float32Array;
  level: number;
  /** Filled: CPU seconds of each call. */
  times: number[];
  /** Extra timed work per call (time.ts: the network alone), run right after each denoise call. */
  extra?: () => Promise<void>;
}

/**
 * NLM on `nlmInput` (written to `nlmPath` as raw float32) against each of `ours`, `rounds` x `perRound` calls each
 * (one warm-up call of each model first, not counted). Returns NLM's CPU seconds and scikit-image's version.
 */
export async function timeSideBySide(options: {
  tf: Tf;
  size: number;
  nlmInput: Float32Array;
  nlmPath: string;
  sigma: number;
  nlmH: number;
  rounds: number;
  perRound: number;
  ours: TimedModel[];
  onRound?: (round: number, nlm: number[], nlmWall: number[]) => void;
  /** More timed work in each round, after ours (time.ts: requests through the service). */
  eachRound?: (round: number) => Promise<void>;
}): Promise<{ nlm: number[]; nlmWall: number[]; skimage: string }> {
  const { tf, size, ours } = options;
  const y = options.nlmInput;
  writeFileSync(options.nlmPath, Buffer.from(y.buffer, y.byteOffset, y.byteLength));
  for (const o of ours) await timeDenoise(tf, o.model, o.y, size, o.level);
  const nlm: number[] = [];
  const nlmWall: number[] = [];
  let skimage = '';
  for (let round = 0; round < options.rounds; round++) {
    const peer = runNlm(options.nlmPath, size, options.sigma, options.nlmH, options.perRound);
    skimage = peer.skimage;
    nlm.push(...peer.cpuSeconds);
    nlmWall.push(...peer.seconds);
    for (const o of ours) {
      for (let i = 0; i < options.perRound; i++) {
        o.times.push(await timeDenoise(tf, o.model, o.y, size, o.level));
        await o.extra?.();
      }
    }
    await options.eachRound?.(round);
    options.onRound?.(round, nlm, nlmWall);
  }
  return { nlm, nlmWall, skimage };
}
