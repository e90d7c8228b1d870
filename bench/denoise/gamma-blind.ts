/**
 * Blind Gamma on the held-out report photographs (bench/denoise/heldout.ts): per image, the estimated k (default
 * estimator, src/denoise/estimate.ts) and the PSNR of Noise2Score Gamma with k estimated against k given, at
 * k = 25, 100 and 400 (the committed model was trained on k in [50, 150]; 25 and 400 lie outside it). Inputs as an
 * 8-bit upload (seeded noise, clipped, rounded); wasm, as the service runs. Writes the `gamma-blind` section of
 * bench/RESULTS.md (--no-write prints it).
 *
 *   npx tsx bench/denoise/gamma-blind.ts [--split selection|report] [--no-write]
 */
import { join } from 'node:path';
import { loadNoise2ScoreModel } from '../../src/denoise/model.js';
import { denoiseNoise2Score } from '../../src/denoise/noise2score.js';
import { psnr } from '../../src/imaging/metrics.js';
import { initTfjs } from '../../src/nn/backend.js';
import { resolveModel, scanModelRepository } from '../../src/nn/repository.js';
import { writeResultsSection } from '../results-file.js';
import { heldoutNoisy, heldoutSplit, loadHeldoutImage } from './heldout.js';
import { REPO_ROOT } from './inputs.js';

const argv = process.argv.slice(2);
const split = (argv.includes('--split') ? argv[argv.indexOf('--split') + 1] : 'report') as
  | 'selection'
  | 'report';
const LEVELS = [25, 100, 400];

const { tf } = await initTfjs('wasm');
const entry = resolveModel(await scanModelRepository(join(REPO_ROOT, 'models')), 'noise2score-gamma');
if (!entry?.manifest) throw new Error('no noise2score-gamma model under models/');
const model = await loadNoise2ScoreModel(tf, entry.dir);
const images = await Promise.all(heldoutSplit()[split].map((file) => loadHeldoutImage(file)));

const lines = [
  `## Blind Gamma on held-out photographs (\`npx tsx bench/denoise/gamma-blind.ts${argv.length ? ` ${argv.join(' ')}` : ''}\`)`,
  '',
  `Run ${new Date().toISOString()}; ${entry.name}@${entry.version} on ${tf.getBackend()}; ${split} split ` +
    `(${images.map((i) => i.name).join(', ')}), 256x256 grey crops, y = x * Gamma(k, 1/k) seeded per image ` +
    '(bench/denoise/heldout.ts), clipped and rounded to 8 bits. k estimated by the default estimator ' +
    '(src/denoise/estimate.ts: noise-consistent weak-texture tiles to their fixed point, texture seen one Haar ' +
    'level up taken out); PSNR of the output clipped to [0,1].',
  '',
  '| k | image | k estimated | PSNR noisy (dB) | k given (dB) | k estimated (dB) |',
  '|---:|---|---:|---:|---:|---:|',
];
for (const k of LEVELS) {
  const sums = { noisy: 0, given: 0, auto: 0, err: 0 };
  for (const image of images) {
    const y = heldoutNoisy(image, 'gamma', k);
    const run = (level: number | 'auto') =>
      denoiseNoise2Score(
        tf,
        model.model,
        { data: y, width: image.width, height: image.height, channels: 1 },
        { noise: 'gamma', level, multiple: model.multiple },
      );
    const given = await run(k);
    const auto = await run('auto');
    const row = { noisy: psnr(image.x, y), given: psnr(image.x, given.data), auto: psnr(image.x, auto.data) };
    sums.noisy += row.noisy / images.length;
    sums.given += row.given / images.length;
    sums.auto += row.auto / images.length;
    sums.err = Math.max(sums.err, Math.abs(auto.level / k - 1));
    lines.push(
      `| ${k} | ${image.name} | ${auto.level.toFixed(1)} | ${row.noisy.toFixed(2)} | ${row.given.toFixed(2)} | ${row.auto.toFixed(2)} |`,
    );
  }
  lines.push(
    `| ${k} | **mean** (worst k error ${(100 * sums.err).toFixed(1)} %) | | ${sums.noisy.toFixed(2)} | ${sums.given.toFixed(2)} | ${sums.auto.toFixed(2)} |`,
  );
  console.log(`k ${k}: given ${sums.given.toFixed(2)} dB, estimated ${sums.auto.toFixed(2)} dB`);
}
const section = lines.join('\n');
if (argv.includes('--no-write')) console.log(section);
else writeResultsSection('gamma-blind', section);
