/**
 * Is Tweedie's formula calibrated for a Gaussian Noise2Score model? Denoises Set12 (the benchmark's seeded sigma-25
 * noise) with xhat = y + alpha sigma^2 R(y) for a range of alpha and prints the mean PSNR per alpha. A peak far
 * from alpha = 1 would mean the network's score is off by a scale (the level it answers for is not the input's).
 *
 *   npx tsx bench/denoise/tweedie-scale.ts [models/noise2score-gaussian/v5] (K=6: the first K images)
 */
import { join } from 'node:path';
import { loadNoise2ScoreModel } from '../../src/denoise/model.js';
import { scoreMap } from '../../src/denoise/noise2score.js';
import { psnr } from '../../src/imaging/metrics.js';
import { initTfjs } from '../../src/nn/backend.js';
import { loadSet12Image, noisyVersion, REPO_ROOT, set12Names } from './inputs.js';

const { tf } = await initTfjs('wasm');
const net = await loadNoise2ScoreModel(
  tf,
  join(REPO_ROOT, process.argv[2] ?? 'models/noise2score-gaussian/v5'),
);
const sigma = 25 / 255;
const alphas = [0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3];
const sums = alphas.map(() => 0);
const names = set12Names().slice(0, Number(process.env.K ?? 6));
for (const name of names) {
  const image = await loadSet12Image(name);
  const y = noisyVersion(image, 'gaussian');
  const score = await scoreMap(tf, net.model, y, image.width, image.height);
  alphas.forEach((alpha, k) => {
    const estimate = Float64Array.from(y, (v, i) =>
      Math.min(1, Math.max(0, v + alpha * sigma * sigma * score[i])),
    );
    sums[k] += psnr(Float64Array.from(image.x), estimate);
  });
}
for (const [k, alpha] of alphas.entries())
  console.log(`alpha ${alpha.toFixed(1)}: ${(sums[k] / names.length).toFixed(3)} dB`);
net.model.dispose();
