/**
 * `npm run bench:wiener`: the pilot-guided Wiener stage after Noise2Score (src/denoise/wiener.ts; refine=wiener) on
 * the held-out SELECTION split only (bench/denoise/heldout.ts: brick, chelsea, coins, gravel, motorcycle_left,
 * 256x256 grey crops, 8-bit clipped Gaussian uploads at sigma 15, 25, 50, level given), against Tweedie's output
 * alone (refine=none), for block strides 1 to 4 and the mix with the pilot; then the stage's time at 512x512
 * (camera.png centre crop, sigma 25, median of 9 calls). The report split and Set12 are not read here: the settings
 * are chosen on these figures, and the report split is measured once by `npm run bench:denoise-heldout`.
 *
 * Flags: --no-write (print only); --dump DIR also writes, per selection image and sigma, the clean image, the
 * noisy upload, the clip-treated input and Tweedie's output as raw float32 (DIR/<name>.x.f32,
 * <name>.<sigma>.{y,yi,p}.f32) for bench/denoise/wiener_explore.py, the numpy exploration of the block size, the
 * aggregation window, alpha and BM3D-style collaborative filtering.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { imputeCensored } from '../../src/denoise/censored.js';
import { loadNoise2ScoreModel } from '../../src/denoise/model.js';
import { denoiseNoise2Score } from '../../src/denoise/noise2score.js';
import { DEFAULT_WIENER_MIX, DEFAULT_WIENER_STRIDE, wienerRefine } from '../../src/denoise/wiener.js';
import { psnr } from '../../src/imaging/metrics.js';
import { initTfjs } from '../../src/nn/backend.js';
import { resolveModel, scanModelRepository } from '../../src/nn/repository.js';
import { writeResultsSection } from '../results-file.js';
import { heldoutNoisy, heldoutSplit, loadHeldoutImage } from './heldout.js';
import { REPO_ROOT } from './inputs.js';
import { median } from './timing.js';

const SIGMAS = [15, 25, 50];
const STRIDES = [1, 2, 3, 4];
const MIXES = [1, DEFAULT_WIENER_MIX, 0.7];

const write = !process.argv.includes('--no-write');
const dumpAt = process.argv.indexOf('--dump');
const dumpDir = dumpAt >= 0 ? process.argv[dumpAt + 1] : undefined;
if (dumpDir) mkdirSync(dumpDir, { recursive: true });
const dump = (file: string, values: Float32Array | Float64Array) => {
  if (dumpDir) writeFileSync(join(dumpDir, file), Buffer.from(Float32Array.from(values).buffer));
};
const { tf } = await initTfjs('wasm');
const entry = resolveModel(await scanModelRepository(join(REPO_ROOT, 'models')), 'noise2score-gaussian');
if (!entry?.manifest) throw new Error('no valid noise2score-gaussian model');
const model = await loadNoise2ScoreModel(tf, entry.dir);
const modelId = `${entry.manifest.name}@${entry.manifest.version}`;
const names = heldoutSplit().selection;
const images = await Promise.all(names.map((f) => loadHeldoutImage(f)));

/** PSNR per variant, per sigma, per image. */
const rows = new Map<string, Map<number, number[]>>();
const add = (variant: string, sigma: number, value: number) => {
  if (!rows.has(variant)) rows.set(variant, new Map());
  const bySigma = rows.get(variant)!;
  if (!bySigma.has(sigma)) bySigma.set(sigma, []);
  bySigma.get(sigma)!.push(value);
};
for (const sigma of SIGMAS) {
  for (const image of images) {
    const { width, height } = image;
    const y = heldoutNoisy(image, 'gaussian', sigma / 255);
    const input = { data: y, width, height, channels: 1 };
    const options = { noise: 'gaussian' as const, level: sigma / 255, multiple: model.multiple };
    const none = await denoiseNoise2Score(tf, model.model, input, { ...options, refine: 'none' });
    add('Tweedie alone (refine=none)', sigma, psnr(image.x, none.data));
    const served = await denoiseNoise2Score(tf, model.model, input, { ...options, refine: 'wiener' });
    add('refine=wiener as served (defaults)', sigma, psnr(image.x, served.data));
    // The variants, on the same pilot: the noisy input as the service's Gaussian path sees it (clipped pixels
    // replaced, src/denoise/censored.ts, as denoiseNoise2Score does), or as uploaded.
    const treated = imputeCensored(y, width, height, sigma / 255, { radius: 3, fill: 'mean', seed: 0 }).plane;
    dump(`${image.name}.x.f32`, image.x);
    dump(`${image.name}.${sigma}.y.f32`, y);
    dump(`${image.name}.${sigma}.yi.f32`, treated);
    dump(`${image.name}.${sigma}.p.f32`, none.data);
    for (const stride of STRIDES) {
      for (const mix of MIXES) {
        const out = wienerRefine(treated, none.data, width, height, sigma / 255, { stride, mix });
        add(`stride ${stride}, mix ${mix}`, sigma, psnr(image.x, out));
      }
    }
    const raw = wienerRefine(y, none.data, width, height, sigma / 255);
    add(
      `stride ${DEFAULT_WIENER_STRIDE}, mix ${DEFAULT_WIENER_MIX}, clipped pixels as uploaded`,
      sigma,
      psnr(image.x, raw),
    );
  }
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const base = rows.get('Tweedie alone (refine=none)')!;
const lines: string[] = [];
lines.push(
  `Selection split (${images.map((i) => i.name).join(', ')}; 256x256, 8-bit clipped Gaussian noise, level given), ` +
    `${modelId} on wasm; mean PSNR (dB) and gain over Tweedie alone. Defaults: stride ${DEFAULT_WIENER_STRIDE}, ` +
    `mix ${DEFAULT_WIENER_MIX}, Kaiser beta 2, alpha 1.`,
  '',
  `| variant | ${SIGMAS.map((s) => `sigma ${s}`).join(' | ')} |`,
  `|---|${SIGMAS.map(() => '---').join('|')}|`,
);
for (const [variant, bySigma] of rows) {
  const cells = SIGMAS.map((s) => {
    const m = mean(bySigma.get(s)!);
    const gain = m - mean(base.get(s)!);
    return variant === 'Tweedie alone (refine=none)'
      ? m.toFixed(2)
      : `${m.toFixed(2)} (${gain >= 0 ? '+' : ''}${gain.toFixed(2)})`;
  });
  lines.push(`| ${variant} | ${cells.join(' | ')} |`);
}
const served = rows.get('refine=wiener as served (defaults)')!;
lines.push('', 'Per image, gain of refine=wiener (defaults) over Tweedie alone (dB):', '');
lines.push(
  `| image | ${SIGMAS.map((s) => `sigma ${s}`).join(' | ')} |`,
  `|---|${SIGMAS.map(() => '---').join('|')}|`,
);
for (const [k, image] of images.entries()) {
  const cells = SIGMAS.map((s) => (served.get(s)![k] - base.get(s)![k]).toFixed(2));
  lines.push(`| ${image.name} | ${cells.join(' | ')} |`);
}

// Time of the stage alone at 512x512 (camera.png centre crop, sigma 25), per stride.
const camera = await loadHeldoutImage('camera.png', 512);
const y512 = heldoutNoisy(camera, 'gaussian', 25 / 255);
const pilot512 = (
  await denoiseNoise2Score(
    tf,
    model.model,
    { data: y512, width: 512, height: 512, channels: 1 },
    { noise: 'gaussian', level: 25 / 255, multiple: model.multiple, refine: 'none' },
  )
).data;
const times: string[] = [];
for (const stride of STRIDES) {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let k = 0; k < 9; k++) {
    const c = process.cpuUsage();
    const t = performance.now();
    wienerRefine(y512, pilot512, 512, 512, 25 / 255, { stride });
    wall.push(performance.now() - t);
    const used = process.cpuUsage(c);
    cpu.push((used.user + used.system) / 1000);
  }
  times.push(`stride ${stride}: ${median(cpu).toFixed(0)} ms CPU (wall ${median(wall).toFixed(0)} ms)`);
}
lines.push(
  '',
  `Time of the stage alone at 512x512 (camera.png, sigma 25, medians of 9 calls, one thread; CPU time, as the ` +
    `shared machine's wall time depends on the other jobs; load average ${loadavg()[0].toFixed(1)} on ` +
    `${cpus().length} cores): ${times.join('; ')}.`,
);
const markdown = `### Wiener stage after Noise2Score (refine=wiener): selection split\n\n\`npm run bench:wiener\`\n\n${lines.join('\n')}\n`;
console.log(markdown);
if (write) writeResultsSection('wiener', markdown);
