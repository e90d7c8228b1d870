/**
 * `npx tsx bench/denoise/tv-clipped.ts [selection|report] [--sigmas 15,25,35,50] [--train400]`: the TV rule
 * (Noise2Score Gaussian, level auto, estimator=tv) on 8-bit uploads whose pixels clip at 0 and 1 (issue 18).
 *
 * Inputs: the held-out photographs of the split (bench/denoise/heldout.ts: 256x256 grey centre crops, seeded noise,
 * clipped and rounded as an upload is), with --train400 (selection only) the last TRAIN400_HOLDOUT train400 images
 * too. Rows, mean PSNR (dB), mean level x255 and mean ms per image (wasm, this process):
 *  - default estimator (wavelet, clip-refined) and the level given, for reference;
 *  - the TV rule as the service runs it (src/denoise/noise2score.ts: censored pixels imputed at the clip-aware
 *    wavelet pilot, the level read on the imputed planes);
 *  - "TV before": the previous path, rebuilt here from the same parts: the level read on the untreated planes,
 *    then the pixels imputed at it and the network run again;
 *  - the bound: the same noise only rounded (nothing clipped), TV rule.
 * Tune on the selection split only; the report split gives figures.
 *
 * `--polyu training|validation` instead runs the PolyU crops of those scenes (colour camera JPEGs as given,
 * src/mid/data.ts split): the TV rule as the service runs it against "TV before", with the count of clipped pixels.
 */
import { join } from 'node:path';
import { imputeCensored } from '../../src/denoise/censored.js';
import { applyTweedie, estimateLevelByTotalVariation } from '../../src/denoise/estimate.js';
import { loadNoise2ScoreModel } from '../../src/denoise/model.js';
import { addNoise } from '../../src/denoise/noise.js';
import { DEFAULT_CLIPPED_RADIUS, denoiseNoise2Score, scoreMap } from '../../src/denoise/noise2score.js';
import { psnr } from '../../src/imaging/metrics.js';
import { listPolyuPairs, loadColourImage, splitPolyuScenes } from '../../src/mid/data.js';
import { initTfjs } from '../../src/nn/backend.js';
import { resolveModel, scanModelRepository } from '../../src/nn/repository.js';
import { Rng } from '../../src/util/random.js';
import {
  eightBitClipped,
  heldoutNoiseSeed,
  heldoutSplit,
  loadHeldoutImage,
  loadTrain400Image,
  train400Holdout,
} from './heldout.js';
import { REPO_ROOT } from './inputs.js';

const argv = process.argv.slice(2);
const split = (argv.find((a) => a === 'selection' || a === 'report') ?? 'selection') as
  | 'selection'
  | 'report';
const sigmasAt = argv.indexOf('--sigmas');
const sigmas = (sigmasAt >= 0 ? argv[sigmasAt + 1] : '15,25,35,50').split(',').map(Number);

const polyuAt = argv.indexOf('--polyu');

const { tf } = await initTfjs('wasm');
const entry = resolveModel(await scanModelRepository(join(REPO_ROOT, 'models')), 'noise2score-gaussian');
if (!entry?.manifest) throw new Error('no noise2score-gaussian model');
const { model, multiple } = await loadNoise2ScoreModel(tf, entry.dir);

const clip01 = (v: Float32Array) => v.map((x) => (Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0));
const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;

/** The previous TV path, rebuilt from the same parts: the level on the untreated planes, then imputed and rerun. */
async function tvBefore(planes: Float32Array[], width: number, height: number) {
  const scores = await Promise.all(planes.map((p) => scoreMap(tf, model, p, width, height, { multiple })));
  const levels = planes
    .map((p, c) => estimateLevelByTotalVariation('gaussian', p, scores[c], width, height).level)
    .sort((a, b) => a - b);
  const m = levels.length >> 1;
  const level = levels.length % 2 ? levels[m] : 0.5 * (levels[m - 1] + levels[m]);
  const out = await Promise.all(
    planes.map(async (p, c) => {
      const imputed = imputeCensored(p, width, height, level, {
        radius: DEFAULT_CLIPPED_RADIUS,
        fill: 'mean',
        seed: c,
      });
      const score =
        imputed.censored > 0
          ? await scoreMap(tf, model, imputed.plane, width, height, { multiple })
          : scores[c];
      return clip01(applyTweedie('gaussian', imputed.plane, score, level));
    }),
  );
  return { out, level };
}

if (polyuAt >= 0) {
  const which = argv[polyuAt + 1] === 'validation' ? 'validation' : 'training';
  const dir = join(REPO_ROOT, '../shared/data/polyu');
  const pairs = await listPolyuPairs(dir);
  const split = splitPolyuScenes(pairs);
  const scenes =
    which === 'validation' ? split.validationScenes : [...split.noisyScenes, ...split.cleanScenes];
  const chosen = pairs.filter((p) => scenes.includes(p.scene));
  const sums = { noisy: 0, service: 0, before: 0, clipped: 0 };
  for (const pair of chosen) {
    const real = await loadColourImage(pair.real);
    const x = Float64Array.from((await loadColourImage(pair.mean)).data);
    const { width, height } = real;
    const r = await denoiseNoise2Score(
      tf,
      model,
      { data: real.data, width, height, channels: 3 },
      { noise: 'gaussian', level: 'auto', estimator: 'tv', multiple },
    );
    const planes = [0, 1, 2].map((c) =>
      Float32Array.from({ length: width * height }, (_, i) => real.data[3 * i + c]),
    );
    const before = await tvBefore(planes, width, height);
    const merged = new Float32Array(real.data.length);
    before.out.forEach((p, c) => {
      for (let i = 0; i < p.length; i++) merged[3 * i + c] = p[i];
    });
    sums.noisy += psnr(x, real.data) / chosen.length;
    sums.service += psnr(x, r.data) / chosen.length;
    sums.before += psnr(x, merged) / chosen.length;
    sums.clipped += r.clippedPixels / chosen.length;
    console.log(
      `${pair.scene} ${pair.crop}: clipped ${r.clippedPixels}, level x255 ${(255 * r.level).toFixed(2)} ` +
        `(before ${(255 * before.level).toFixed(2)}), ${psnr(x, r.data).toFixed(3)} dB (before ${psnr(x, merged).toFixed(3)})`,
    );
  }
  console.log(
    `PolyU ${which} scenes, ${chosen.length} crops: noisy ${sums.noisy.toFixed(3)} dB, TV rule (service) ` +
      `${sums.service.toFixed(3)}, TV before ${sums.before.toFixed(3)}; mean clipped pixels ${sums.clipped.toFixed(0)}`,
  );
  process.exit(0);
}

const images = await Promise.all(heldoutSplit()[split].map((file) => loadHeldoutImage(file)));
if (argv.includes('--train400') && split === 'selection')
  images.push(...(await Promise.all(train400Holdout().map(loadTrain400Image))));
console.log(
  `${entry.manifest.name}@${entry.manifest.version}; ${split} split, ${images.length} images ` +
    `(${images.map((i) => i.name).join(', ')})`,
);

for (const sigma of sigmas) {
  const rows = new Map<string, { psnr: number[]; level: number[]; ms: number[] }>();
  const add = (id: string, value: number, level: number, ms: number) => {
    const row = rows.get(id) ?? { psnr: [], level: [], ms: [] };
    row.psnr.push(value);
    row.level.push(level * 255);
    row.ms.push(ms);
    rows.set(id, row);
  };
  let clippedFraction = 0;
  for (const image of images) {
    const { width, height } = image;
    const raw = addNoise(
      'gaussian',
      Float32Array.from(image.x),
      sigma / 255,
      new Rng(heldoutNoiseSeed(image.name, 'gaussian', sigma / 255)),
    );
    const y = eightBitClipped(raw); // the same as heldoutNoisy(image, 'gaussian', sigma / 255)
    clippedFraction += y.filter((v) => v === 0 || v === 1).length / y.length / images.length;
    const run = async (id: string, data: Float32Array, options: object) => {
      const t = performance.now();
      const r = await denoiseNoise2Score(
        tf,
        model,
        { data, width, height, channels: 1 },
        { noise: 'gaussian', level: 'auto', multiple, ...options },
      );
      add(id, psnr(image.x, r.data), r.level, performance.now() - t);
    };
    await run('level given', y, { level: sigma / 255 });
    await run('default estimator', y, {});
    await run('TV rule (service)', y, { estimator: 'tv' });
    {
      const t = performance.now();
      const first = await scoreMap(tf, model, y, width, height, { multiple });
      const level = estimateLevelByTotalVariation('gaussian', y, first, width, height).level;
      const imputed = imputeCensored(y, width, height, level, {
        radius: DEFAULT_CLIPPED_RADIUS,
        fill: 'mean',
      });
      const score =
        imputed.censored > 0 ? await scoreMap(tf, model, imputed.plane, width, height, { multiple }) : first;
      const out = clip01(applyTweedie('gaussian', imputed.plane, score, level));
      add('TV before (level on untreated planes)', psnr(image.x, out), level, performance.now() - t);
    }
    await run(
      'bound: only rounded, TV rule',
      raw.map((v) => Math.round(v * 255) / 255),
      { estimator: 'tv' },
    );
  }
  console.log(`\nsigma ${sigma}: ${(100 * clippedFraction).toFixed(2)} % of pixels clipped on average`);
  console.log('| setting | mean PSNR (dB) | mean level x255 | ms per image |');
  for (const [id, row] of rows)
    console.log(
      `| ${id} | ${mean(row.psnr).toFixed(3)} | ${mean(row.level).toFixed(2)} | ${mean(row.ms).toFixed(0)} |`,
    );
}
