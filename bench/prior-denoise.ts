/**
 * How good a diffusion prior is as a denoiser: one Tweedie step x0 = (x_t - sqrt(1 - ab) epsHat) / sqrt(ab) on the
 * 12 Set12 64x64 centre crops (bench/restore.ts set12Problems) with Gaussian noise of sigma 15, 25 and 50 (on
 * [0, 255]; the timestep whose noise-to-signal ratio matches), seeded. Prints the mean PSNR of the noisy input and
 * of the estimate. Used to follow ddpm-natural-grey's training (its manifest's extra.lineage).
 *
 *   npx tsx bench/prior-denoise.ts models/ddpm-natural-grey/20261129
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadDiffusionModel } from '../src/diffusion/model.js';
import { linearSchedule } from '../src/diffusion/schedule.js';
import { predictEps } from '../src/diffusion/unet.js';
import { psnr } from '../src/imaging/metrics.js';
import { initTfjs } from '../src/nn/backend.js';
import { Rng } from '../src/util/random.js';
import { REPO_ROOT, set12Names } from './denoise/inputs.js';
import { set12Problems } from './restore.js';

type Tensor4D = import('@tensorflow/tfjs').Tensor4D;

const dir = process.argv[2] ?? 'models/ddpm-natural-grey/20261129';
const { tf } = await initTfjs('wasm');
const model = await loadDiffusionModel(tf, join(REPO_ROOT, dir));
const manifest = JSON.parse(readFileSync(join(REPO_ROOT, dir, 'manifest.json'), 'utf8'));
const schedule = linearSchedule(manifest.extra?.schedule ?? {});
const [p] = await set12Problems(set12Names(), 64);
const size = p.height * p.width;
const unit = (v: number) => Math.min(1, Math.max(0, (v + 1) / 2));
for (const sigma of [15, 25, 50]) {
  // Noise of sigma/255 on [0, 1] is 2 sigma/255 on the model's [-1, 1]: x_t / sqrt(ab) = x0 + (sqrt(1-ab)/sqrt(ab)) eps.
  const ratio = (2 * sigma) / 255;
  let t = 0;
  for (let k = 0; k < schedule.timesteps; k++)
    if (
      Math.abs(schedule.sqrtOneMinusAlphaBars[k] / schedule.sqrtAlphaBars[k] - ratio) <
      Math.abs(schedule.sqrtOneMinusAlphaBars[t] / schedule.sqrtAlphaBars[t] - ratio)
    )
      t = k;
  const noise = new Float32Array(p.x.length);
  new Rng(7).fillNormal(noise);
  const a = schedule.sqrtAlphaBars[t];
  const s = schedule.sqrtOneMinusAlphaBars[t];
  let denoised = 0;
  let noisy = 0;
  for (let b = 0; b < p.count; b++) {
    const clean = Float64Array.from(p.x.subarray(b * size, (b + 1) * size));
    const y = Float32Array.from(clean, (v, i) => 2 * v - 1 + ratio * noise[b * size + i]);
    const x0 = tf.tidy(() => {
      const xt = tf.mul(tf.tensor4d(y, [1, p.height, p.width, 1]), a) as Tensor4D;
      return tf.div(tf.sub(xt, tf.mul(predictEps(tf, model, xt, t), s)), a).dataSync() as Float32Array;
    });
    denoised += psnr(clean, Float64Array.from(x0, unit));
    noisy += psnr(clean, Float64Array.from(y, unit));
  }
  console.log(
    `sigma ${sigma} (t ${t}): noisy ${(noisy / p.count).toFixed(2)} dB, Tweedie ${(denoised / p.count).toFixed(2)} dB`,
  );
}
model.dispose();
