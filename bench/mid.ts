/**
 * `npm run bench:mid`: MID against its peers on the PolyU validation scenes (real camera noise), side by side in one
 * run, and the section between <!-- mid:begin --> and <!-- mid:end --> of bench/RESULTS.md.
 *
 * Rows: the noisy input; scikit-image NLM (colour; sigma from estimate_sigma, and from MID's coarse estimator);
 * OpenCV's fastNlMeansDenoisingColored with h = hColor tuned on the crops of the TRAINING scenes (noisy and clean
 * sets of the split); the committed Noise2Score Gaussian model in blind mode (each channel as a grey image, level
 * estimated by the default wavelet estimator and by the TV estimator); MID after round 0 (Gaussian sampler only,
 * model mid-rgb-round0) and after the last round (mid-rgb) with K = 1, 2, 4, 8 masks, each as the K-mask average
 * alone and with the manifest's guided second stage (src/mid/guided.ts; the service's default when the manifest
 * has one). Settings are chosen on training scenes only (bench/mid-sweep.ts); this benchmark only reports. PSNR and SSIM on the RGB values (x = mean/255, y = noisy/255, outputs clipped to [0,1], no border
 * crop, SSIM with skimage's Gaussian-window settings via src/imaging/metrics.ts), mean over the crops, and seconds
 * per 512x512 image (this process, one thread; NLM in /usr/bin/python3).
 *
 * Options: --no-write (print instead of writing RESULTS.md), --limit N (first N validation crops),
 * --masks 1,2,4,8, --seed S (mask seed; default 0, what the service uses).
 */

import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { writeResultsSection } from './results-file.js';
import '../src/compute/handlers/layers.js';
import { denoiseNoise2Score } from '../src/denoise/noise2score.js';
import { psnr, ssim } from '../src/imaging/metrics.js';
import { listPolyuPairs, loadColourImage, splitPolyuScenes } from '../src/mid/data.js';
import { denoiseMid, midInferenceDefaults } from '../src/mid/denoise.js';
import { initTfjs } from '../src/nn/backend.js';
import { getModel } from '../src/nn/repository.js';

const REPO_ROOT = join(import.meta.dirname, '..');
const RESULTS = join(REPO_ROOT, 'bench/RESULTS.md');
const OUT = join(REPO_ROOT, 'bench/out/mid');
const BEGIN = '<!-- mid:begin -->';
const END = '<!-- mid:end -->';

const { values } = parseArgs({
  options: {
    'no-write': { type: 'boolean', default: false },
    limit: { type: 'string' },
    masks: { type: 'string', default: '1,2,4,8' },
    seed: { type: 'string', default: '0' },
    'polyu-dir': { type: 'string', default: join(REPO_ROOT, '../shared/data/polyu') },
  },
});
const maskCounts = values.masks.split(',').map(Number);
const seed = Number(values.seed);
const loadStart = loadavg()[0];

const { tf, backend } = await initTfjs('wasm');
const modelsDir = join(REPO_ROOT, 'models');
const mid = await getModel(tf, modelsDir, 'mid-rgb');
const mid0 = await getModel(tf, modelsDir, 'mid-rgb-round0');
const n2s = await getModel(tf, modelsDir, 'noise2score-gaussian');
const dropRatio = (mid.manifest.extra as { maskRatio: number }).maskRatio;
const dropRatio0 = (mid0.manifest.extra as { maskRatio: number }).maskRatio;

const pairs = await listPolyuPairs(values['polyu-dir']);
const split = splitPolyuScenes(pairs);
let validation = pairs.filter((p) => split.validationScenes.includes(p.scene));
if (values.limit) validation = validation.slice(0, Number(values.limit));
const images = await Promise.all(
  validation.map(async (p) => ({
    name: `${p.scene}_${p.crop}`,
    noisy: await loadColourImage(p.real),
    clean: await loadColourImage(p.mean),
  })),
);
console.log(`${images.length} validation crops from ${split.validationScenes.length} scenes`);
// OpenCV's h is tuned on the training scenes (noisy and clean sets): 8-bit crops for the Python side.
const training = pairs.filter((p) => !split.validationScenes.includes(p.scene));

interface Score {
  psnr: number;
  ssim: number;
  seconds: number;
}
const scores = new Map<string, Score[]>();
const record = (
  method: string,
  clean: Float32Array,
  w: number,
  h: number,
  out: Float32Array,
  seconds: number,
) => {
  const clipped = out.map((v) => Math.min(1, Math.max(0, v)));
  const list = scores.get(method) ?? [];
  list.push({ psnr: psnr(clean, clipped), ssim: ssim(clean, clipped, w, h, 3, { dataRange: 1 }), seconds });
  scores.set(method, list);
};

// scikit-image NLM (python), first so its numbers do not wait on ours.
mkdirSync(OUT, { recursive: true });
const index = {
  outDir: OUT,
  images: images.map((im, i) => {
    const path = join(OUT, `noisy-${i}.f32`);
    writeFileSync(
      path,
      Buffer.from(im.noisy.data.buffer, im.noisy.data.byteOffset, im.noisy.data.byteLength),
    );
    return { name: im.name, width: im.noisy.width, height: im.noisy.height, noisy: path };
  }),
};
const toBytes = (d: Float32Array) => Uint8Array.from(d, (v) => Math.round(v * 255));
const tune = await Promise.all(
  training.map(async (p, i) => {
    const [noisy, clean] = await Promise.all([loadColourImage(p.real), loadColourImage(p.mean)]);
    writeFileSync(join(OUT, `tune-noisy-${i}.u8`), toBytes(noisy.data));
    writeFileSync(join(OUT, `tune-clean-${i}.u8`), toBytes(clean.data));
    return {
      noisy: join(OUT, `tune-noisy-${i}.u8`),
      clean: join(OUT, `tune-clean-${i}.u8`),
      width: noisy.width,
      height: noisy.height,
    };
  }),
);
const OPENCV_H = [2, 3, 4, 5, 6, 7, 8, 10];
writeFileSync(join(OUT, 'index.json'), JSON.stringify({ ...index, tune, opencvH: OPENCV_H }));
// NLM runs in its own process while this one runs the networks; its output is read at the end.
const pythonDone = new Promise<string>((resolve, reject) => {
  const child = spawn('/usr/bin/python3', [join(REPO_ROOT, 'bench/mid_nlm.py'), join(OUT, 'index.json')]);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  child.on('close', (code) =>
    code === 0 ? resolve(stdout) : reject(new Error(`bench/mid_nlm.py failed: ${stderr}`)),
  );
});

const n2sMultiple = (n2s.manifest.architecture as { multiple?: number }).multiple ?? 8;
for (const im of images) {
  const t = performance.now();
  const out = await denoiseNoise2Score(
    tf,
    n2s.model,
    { ...im.noisy, channels: 3 },
    {
      noise: 'gaussian',
      level: 'auto',
      multiple: n2sMultiple,
    },
  );
  record('n2s', im.clean.data, im.clean.width, im.clean.height, out.data, (performance.now() - t) / 1000);
  const t1 = performance.now();
  const tv = await denoiseNoise2Score(
    tf,
    n2s.model,
    { ...im.noisy, channels: 3 },
    { noise: 'gaussian', level: 'auto', estimator: 'tv', multiple: n2sMultiple },
  );
  record('n2s-tv', im.clean.data, im.clean.width, im.clean.height, tv.data, (performance.now() - t1) / 1000);
}
console.log('Noise2Score done');

/** Round 0 and the last round are compared at the same K. */
const compareK = maskCounts.includes(4) ? 4 : maskCounts.at(-1)!;
const manifestK = (mid.manifest.extra as { masksDefault?: number }).masksDefault ?? 4;
const { guided } = midInferenceDefaults(mid.manifest.extra);
for (const im of images) {
  const t = performance.now();
  const out = await denoiseMid(
    tf,
    mid0.model,
    { ...im.noisy, channels: 3 },
    { masks: compareK, dropRatio: dropRatio0, seed },
  );
  record('mid-r0', im.clean.data, im.clean.width, im.clean.height, out.data, (performance.now() - t) / 1000);
  for (const k of maskCounts) {
    for (const stage of guided ? [null, guided] : [null]) {
      const t1 = performance.now();
      const o = await denoiseMid(
        tf,
        mid.model,
        { ...im.noisy, channels: 3 },
        { masks: k, dropRatio, seed, guided: stage },
      );
      record(
        `mid-${stage ? 'g' : 'k'}${k}`,
        im.clean.data,
        im.clean.width,
        im.clean.height,
        o.data,
        (performance.now() - t1) / 1000,
      );
    }
  }
}
console.log('MID done');
const peers = JSON.parse(await pythonDone) as {
  skimage: string;
  numpy: string;
  opencv: string;
  opencvTuning: { h: number; meanPsnrByH: Record<string, number>; crops: number };
  images: Record<string, { sigma255: number; seconds: number } | string>[];
};
const nlmSigmas: Record<string, number[]> = { nlm: [], 'nlm-coarse': [], opencv: [] };
images.forEach((im, i) => {
  record('noisy', im.clean.data, im.clean.width, im.clean.height, im.noisy.data, 0);
  for (const variant of ['nlm', 'nlm-coarse', 'opencv']) {
    const bytes = readFileSync(join(OUT, `${variant}-${i}.f32`));
    const out = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const info = peers.images[i][variant] as { sigma255: number; seconds: number };
    nlmSigmas[variant].push(info.sigma255);
    record(variant, im.clean.data, im.clean.width, im.clean.height, out, info.seconds);
  }
});
console.log('NLM done');
// The service's default: K from the manifest, with the guided stage when the manifest has one (chosen on training
// scenes by bench/mid-sweep.ts, never here).
const chosenK = maskCounts.includes(manifestK) ? manifestK : maskCounts.at(-1)!;
const serviceDefault = `mid-${guided ? 'g' : 'k'}${chosenK}`;

// ---------------------------------------------------------------------------------------------------------------
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const rounds = (mid.manifest.extra as { rounds: RoundInfo[] }).rounds;
interface Stats {
  stdPerBin255: (number | null)[];
  stdPerChannel255: number[];
  neighbourCorrelation: { horizontal: number; vertical: number };
  crossChannelCorrelation: number[];
}
interface RoundInfo {
  round: number;
  steps: number;
  sampler: string;
  samplerSigma255?: number[];
  validationPsnr: number;
  noiseDataset: Stats;
  samplerStatistics: Stats;
}
const reference = (mid.manifest.extra as { referenceRealNoise: Stats }).referenceRealNoise;
const lastRound = rounds.at(-1)!.round;
const labels: Record<string, string> = {
  noisy: 'noisy input',
  nlm: `scikit-image ${peers.skimage} NLM, colour, sigma = estimate_sigma (mean ${mean(nlmSigmas.nlm).toFixed(2)}/255)`,
  'nlm-coarse': `scikit-image NLM, colour, sigma = coarse estimate (mean ${mean(nlmSigmas['nlm-coarse']).toFixed(2)}/255)`,
  opencv: `OpenCV ${peers.opencv} fastNlMeansDenoisingColored, h = hColor = ${peers.opencvTuning.h} (tuned on the ${peers.opencvTuning.crops} training-scene crops)`,
  n2s: `Noise2Score Gaussian ${n2s.name}@${n2s.version}, blind (per channel, level estimated)`,
  'n2s-tv': `Noise2Score Gaussian ${n2s.name}@${n2s.version}, blind, estimator = tv`,
  'mid-r0': `MID after round 0 (Gaussian sampler) ${mid0.name}@${mid0.version}, K = ${compareK}`,
  ...Object.fromEntries(
    maskCounts.flatMap((k) => [
      [`mid-k${k}`, `MID after round ${lastRound} ${mid.name}@${mid.version}, K = ${k}, average only`],
      [
        `mid-g${k}`,
        `MID after round ${lastRound}, K = ${k} + guided stage${guided ? ` (patch ${guided.patch}, search ${guided.search}, h ${(guided.h * 255).toFixed(2)}/255${guided.blend != null ? `, blend ${guided.blend}` : ''}${guided.bound != null ? `, bound ${guided.bound} sigma` : ''}${guided.noisyBound != null ? `, noisy bound ${guided.noisyBound} sigma` : ''}${guided.pilotWeight ? `, pilot weight ${guided.pilotWeight}` : ''}${guided.pilotCap ? `, pilot cap ${guided.pilotCap.window}/${guided.pilotCap.kappa}${guided.pilotCap.relativeTo === 'median' ? ' x median' : ''}` : ''}${guided.residualCap ? `, residual cap ${guided.residualCap.window}/${guided.residualCap.kappa}${guided.residualCap.relativeTo === 'median' ? ' x median' : ''}` : ''}${guided.residualCap && guided.pilotResidualCap ? `, anchor towards y where the pilot's residual is above ${guided.pilotResidualCap.window}/${guided.pilotResidualCap.kappa}${guided.pilotResidualCap.relativeTo === 'median' ? ' x median' : ''}` : ''}${guided.aggregation === 'patch' ? ', patch aggregation' : ''})` : ''}`,
      ],
    ]),
  ),
};
const row = (m: string) => {
  const s = scores.get(m)!;
  const sec = mean(s.map((x) => x.seconds));
  return `| ${labels[m]}${m === serviceDefault ? ' **(service default)**' : ''} | ${mean(s.map((x) => x.psnr)).toFixed(3)} | ${mean(s.map((x) => x.ssim)).toFixed(4)} | ${m === 'noisy' ? '-' : sec.toFixed(2)} |`;
};
const methods = [
  'noisy',
  'nlm',
  'nlm-coarse',
  'opencv',
  'n2s',
  'n2s-tv',
  'mid-r0',
  ...maskCounts.flatMap((k) => (guided ? [`mid-k${k}`, `mid-g${k}`] : [`mid-k${k}`])),
];
const best = `mid-k${compareK}`;
const diff = (a: string, b: string) => scores.get(a)!.map((s, i) => s.psnr - scores.get(b)![i].psnr);
const summary = (a: string, b: string) => {
  const d = diff(a, b);
  return `${mean(d) >= 0 ? '+' : ''}${mean(d).toFixed(3)} dB (better on ${d.filter((x) => x > 0).length}/${d.length}, min ${Math.min(...d).toFixed(3)}, max ${Math.max(...d).toFixed(3)})`;
};
/** The issue's MID targets: >= 0.3 dB over OpenCV NLM and over Noise2Score TV on average, never below noisy. */
const targets = () => {
  const gain = (peer: string) => mean(diff(serviceDefault, peer));
  const worst = Math.min(...diff(serviceDefault, 'noisy'));
  const met = (ok: boolean) => (ok ? 'met' : 'NOT met');
  return [
    `>= 0.3 dB over OpenCV NLM ${met(gain('opencv') >= 0.3)} (${gain('opencv').toFixed(3)})`,
    `>= 0.3 dB over Noise2Score TV ${met(gain('n2s-tv') >= 0.3)} (${gain('n2s-tv').toFixed(3)})`,
    `never worse than noisy on a crop ${met(worst >= 0)} (worst ${worst.toFixed(3)} dB)`,
  ].join('; ');
};
const fmtStats = (s: Stats) =>
  `${s.stdPerChannel255.map((v) => v.toFixed(2)).join('/')} | ${s.stdPerBin255.map((v) => (v == null ? '-' : v.toFixed(1))).join(' ')} | ${s.neighbourCorrelation.horizontal.toFixed(2)} / ${s.neighbourCorrelation.vertical.toFixed(2)} | ${s.crossChannelCorrelation.map((v) => v.toFixed(2)).join(' ')}`;
const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
const lines = [
  BEGIN,
  '## MID: real camera noise on PolyU validation scenes (`npm run bench:mid`)',
  '',
  `${images.length} validation crops (512x512 RGB) of the ${split.validationScenes.length} held-out scenes ` +
    `(${split.validationScenes.join(', ')}); split rule: ${split.rule}. PSNR/SSIM on the RGB values against the ` +
    'mean of many shots (x = mean/255, y = noisy/255, outputs clipped to [0,1], no border crop; SSIM with the ' +
    `Gaussian window, data range 1), mean over crops. MID masks seeded with ${seed} (as the service's default seed). ` +
    'Seconds per 512x512 image: wall time of the denoiser alone, one thread (TF.js ' +
    `${backend}; NLM in Python).`,
  '',
  '| method | PSNR (dB) | SSIM | s / image |',
  '| --- | ---: | ---: | ---: |',
  ...methods.map(row),
  '',
  'Per-image PSNR differences (mean, images better, min, max):',
  '',
  `- MID last round vs round 0 (both K = ${compareK}): ${summary(best, 'mid-r0')}`,
  `- MID last round vs NLM (estimate_sigma): ${summary(best, 'nlm')}`,
  `- MID last round vs NLM (coarse sigma): ${summary(best, 'nlm-coarse')}`,
  `- MID last round vs Noise2Score Gaussian blind: ${summary(best, 'n2s')}`,
  `- MID K = ${compareK} vs K = 1 (single mask): ${summary(best, 'mid-k1')}`,
  `- MID K = ${chosenK} (the manifest's masksDefault) vs K = 1, both average only: ${summary(`mid-k${chosenK}`, 'mid-k1')}`,
  `- MID service default (${serviceDefault}) vs OpenCV NLM (h tuned on training scenes): ${summary(serviceDefault, 'opencv')}`,
  `- MID service default vs Noise2Score blind, TV estimator: ${summary(serviceDefault, 'n2s-tv')}`,
  `- MID service default vs the noisy input: ${summary(serviceDefault, 'noisy')}`,
  `- MID last round vs the noisy input: ${summary(best, 'noisy')}`,
  '',
  `Issue 18 targets for the service default (${serviceDefault}): ${targets()}.`,
  ...((mid.manifest.extra as { guided?: { capsSweep?: string } }).guided?.capsSweep
    ? [
        '',
        `The safeguard's energy caps of the service default, and the training-scene figures that chose them: ${mid.name}@${mid.version} manifest, \`extra.guided.capsSweep\` (\`npm run bench:mid-sweep -- --caps\`)${(mid.manifest.extra as { guided?: { pilotResidualSweep?: string } }).guided?.pilotResidualSweep ? " and, for the residual cap's anchor, `extra.guided.pilotResidualSweep` (`npm run bench:mid-sweep -- --caps --pilot-residual`)" : ''}.`,
      ]
    : []),
  '',
  `Per crop (MID at K = ${compareK}):`,
  '',
  `| crop | noisy | NLM | NLM coarse | OpenCV | N2S | N2S TV | MID r0 | MID last | last - r0 | default (${serviceDefault}) | default - OpenCV |`,
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...images.map((im, i) => {
    const p = (m: string) => scores.get(m)![i].psnr;
    return `| ${im.name} | ${p('noisy').toFixed(2)} | ${p('nlm').toFixed(2)} | ${p('nlm-coarse').toFixed(2)} | ${p('opencv').toFixed(2)} | ${p('n2s').toFixed(2)} | ${p('n2s-tv').toFixed(2)} | ${p('mid-r0').toFixed(2)} | ${p(best).toFixed(2)} | ${(p(best) - p('mid-r0')).toFixed(3)} | ${p(serviceDefault).toFixed(2)} | ${(p(serviceDefault) - p('opencv')).toFixed(3)} |`;
  }),
  '',
  `OpenCV h tuning (mean PSNR over the ${peers.opencvTuning.crops} training-scene crops, h = hColor): ` +
    Object.entries(peers.opencvTuning.meanPsnrByH)
      .map(([h, v]) => `${h}: ${v.toFixed(3)}`)
      .join(', '),
  '',
  `Training (from models/mid-rgb/${mid.version}/manifest.json; per-round validation on the centre ` +
    `${(mid.manifest.metrics as Record<string, unknown>).evalCrop}px of each validation crop, K = ` +
    `${(mid.manifest.metrics as Record<string, unknown>).validationMasks}):`,
  '',
  '| round | sampler | steps | validation PSNR |',
  '| --- | --- | ---: | ---: |',
  ...rounds.map(
    (r) =>
      `| ${r.round} | ${r.sampler}${r.samplerSigma255 ? ` (sigma ${r.samplerSigma255.map((s) => s.toFixed(2)).join('/')})` : ''} | ${r.steps} | ${r.validationPsnr.toFixed(3)} |`,
  ),
  '',
  'Noise statistics (std per channel R/G/B and per intensity bin of [0,1] in 8 bins, 0-255 units; lag-1 ' +
    'correlation horizontal / vertical; cross-channel correlation R-G G-B R-B). The sampler of round r is fitted ' +
    'to the noise dataset of round r-1; the reference is the real noise of the validation crops (noisy - mean), ' +
    'measured only:',
  '',
  '| noise | std R/G/B | std per bin | neighbour corr. | cross-channel corr. |',
  '| --- | --- | --- | --- | --- |',
  `| real noise (validation, reference) | ${fmtStats(reference)} |`,
  ...rounds.flatMap((r) => [
    `| round ${r.round} sampler (${r.sampler}) | ${fmtStats(r.samplerStatistics)} |`,
    `| round ${r.round} noise dataset y - D(y) | ${fmtStats(r.noiseDataset)} |`,
  ]),
  '',
  `Machine: nproc ${cpus().length}, CPU ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}; ` +
    `Node ${process.version}, TF.js ${tf.version.tfjs} (${backend}); Python scikit-image ${peers.skimage}, OpenCV ${peers.opencv}, ` +
    `numpy ${peers.numpy}. Load average ${loadStart.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the ` +
    'end (other trainings shared the 2 cores: timings are upper bounds).',
  '',
  `Command: \`npm run bench:mid${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\` ` +
    '(`--limit N`, `--masks 1,2,4,8`, `--no-write`); the guided stage and K were ' +
    "chosen by `npm run bench:mid-sweep` on training scenes, the safeguard's energy caps by " +
    '`npm run bench:mid-sweep -- --caps` (training scenes and a sharpened copy of each).',
  END,
];
const block = lines.join('\n');
writeFileSync(join(OUT, 'results.json'), JSON.stringify(Object.fromEntries(scores), null, 1));
if (values['no-write']) {
  console.log(block);
} else {
  writeResultsSection('mid', lines.slice(1, -1).join('\n'));
  console.log(block);
  console.log(`wrote ${relative(REPO_ROOT, RESULTS)}`);
}
