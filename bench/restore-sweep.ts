/**
 * RED-Diff settings sweep behind each diffusion model's manifest `extra.redDiff` (start, largest timestep, lambda,
 * lr): runs bench/restore.ts's problems with the given settings and prints PSNR, SSIM, PSNR on the missing pixels,
 * the residual and seconds per image. No peers and no RESULTS.md: `npm run bench:restore` is the benchmark.
 *
 *   npx tsx bench/restore-sweep.ts fashion|set12 '<JSON list of RedDiffOptions without seed>' [modelDir]
 *   e.g. npx tsx bench/restore-sweep.ts set12 '[{"steps":100,"lambda":0.1,"lr":0.005,"init":"smooth","tMax":30}]'
 * Environment: N = Fashion-MNIST images (default 60), ONLY = comma-separated problem ids (fashion-mask80, set12-sr2, ...).
 * The first line per problem is the smooth start alone (src/diffusion/initial.ts), for reference.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initialEstimate } from '../src/diffusion/initial.js';
import { loadDiffusionModel } from '../src/diffusion/model.js';
import type { RedDiffOptions } from '../src/diffusion/red-diff.js';
import { linearSchedule } from '../src/diffusion/schedule.js';
import { initTfjs } from '../src/nn/backend.js';
import { REPO_ROOT, set12Names } from './denoise/inputs.js';
import { fashionProblems, operatorFor, runRedDiff, score, set12Problems } from './restore.js';

const [which = 'set12', configsJson = '[]', modelDirArg] = process.argv.slice(2);
const configs = JSON.parse(configsJson) as Omit<RedDiffOptions, 'seed'>[];
const { tf } = await initTfjs('wasm');
const problems =
  which === 'set12'
    ? await set12Problems(set12Names(), 64)
    : await fashionProblems(Number(process.env.N ?? 60));
const only = process.env.ONLY?.split(',');
for (const p of problems) {
  if (only && !only.includes(p.id)) continue;
  const dir = modelDirArg ?? p.modelDir;
  const model = await loadDiffusionModel(tf, join(REPO_ROOT, dir));
  const manifest = JSON.parse(readFileSync(join(REPO_ROOT, dir, 'manifest.json'), 'utf8'));
  const schedule = linearSchedule(manifest.extra?.schedule ?? {});
  const size = p.height * p.width;
  const start = new Float32Array(p.count * size);
  for (let s = 0; s < p.count; s += p.batch) {
    const n = Math.min(p.batch, p.count - s);
    const op = operatorFor(p, s, n);
    const clean = Float32Array.from(p.x.subarray(s * size, (s + n) * size), (v) => 2 * v - 1);
    const y = tf.tidy(() => op.forward(tf, tf.tensor4d(clean, [n, p.height, p.width, 1])));
    const x0 = await initialEstimate(tf, op, y, 'smooth');
    const d = await x0.data();
    for (let i = 0; i < d.length; i++) start[s * size + i] = (d[i] + 1) / 2;
    tf.dispose([x0, y]);
    op.dispose();
  }
  const line = (label: string, x: Float32Array, seconds?: number) => {
    const s = score(p, x);
    console.log(
      `${p.id} ${label} psnr ${s.psnr.toFixed(2)} ssim ${s.ssim.toFixed(3)} missing ${s.psnrMissing?.toFixed(2) ?? '-'} ` +
        `residual ${s.residual.toExponential(1)}${seconds === undefined ? '' : ` ${seconds.toFixed(2)} s/image`}`,
    );
  };
  line('smooth start alone', start);
  for (const c of configs) {
    const r = await runRedDiff(tf, model, schedule, p, c);
    line(JSON.stringify(c), r.x, r.seconds / p.count);
  }
  model.dispose();
}
