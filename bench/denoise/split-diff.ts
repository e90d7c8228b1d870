/**
 * `npx tsx bench/denoise/split-diff.ts`: how far a score map split for several workers (planScoreWindows with 2, 3,
 * 4 and 8 parts, computed here on one thread) is from the one-window map at 512x512 (a smooth synthetic picture with
 * seeded sigma 25 noise, noise2score-gaussian v7, level given): the largest absolute difference of the denoised
 * output and of the score, and the 8-bit pixels that change. The windows' margins cover the network's receptive
 * field, so only float rounding may differ.
 */
import { join } from 'node:path';
import { denoiseNoise2Score, planScoreWindows, scoreMap } from '../../src/denoise/noise2score.js';
import { initTfjs } from '../../src/nn/backend.js';
import { getModel } from '../../src/nn/repository.js';
import { Rng } from '../../src/util/random.js';
import { REPO_ROOT } from './inputs.js';

const { tf } = await initTfjs('wasm');
const { model } = await getModel(tf, join(REPO_ROOT, 'models'), 'noise2score-gaussian', 'v7');
const n = 512;
const rng = new Rng(3);
const data = new Float32Array(n * n);
for (let r = 0; r < n; r++)
  for (let c = 0; c < n; c++)
    data[r * n + c] = Math.min(
      1,
      Math.max(0, 0.5 + 0.3 * Math.sin(r / 11) * Math.cos(c / 7) + (25 / 255) * rng.normal()),
    );
const opts = { noise: 'gaussian' as const, level: 25 / 255, tile: 512, multiple: 8 };
const whole = await denoiseNoise2Score(tf, model, { data, width: n, height: n, channels: 1 }, opts);
const sWhole = await scoreMap(tf, model, data, n, n, opts);
for (const parts of [2, 3, 4, 8]) {
  const p = planScoreWindows(n, n, opts, parts);
  const s = await denoiseNoise2Score(
    tf,
    model,
    { data, width: n, height: n, channels: 1 },
    { ...opts, split: { parts: () => parts } },
  );
  const sc = await scoreMap(tf, model, data, n, n, { ...opts, split: { parts: () => parts } });
  let d = 0,
    ds = 0,
    d8 = 0;
  for (let i = 0; i < data.length; i++) {
    d = Math.max(d, Math.abs(s.data[i] - whole.data[i]));
    ds = Math.max(ds, Math.abs(sc[i] - sWhole[i]));
    if (Math.round(s.data[i] * 255) !== Math.round(whole.data[i] * 255)) d8++;
  }
  console.log(
    JSON.stringify({
      parts,
      rows: p.rows.length,
      rowLen: p.rows[0].end - p.rows[0].start,
      cols: p.cols.length,
      colLen: p.cols[0].end - p.cols[0].start,
      maxAbsDiffOutput: d,
      maxAbsDiffScore: ds,
      pixels8bitChanged: d8,
    }),
  );
}
