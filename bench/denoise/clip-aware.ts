/**
 * `npx tsx bench/denoise/clip-aware.ts [--sigmas 5,15,25,35,50] [--families] [--timing]`: how Noise2Score treats pixels
 * clipped at 0 or 1 by an 8-bit upload (Noise2ScoreOptions.clipped, src/denoise/censored.ts), on the held-out
 * SELECTION photographs only (bench/denoise/heldout.ts): each photograph's centre 256x256 crop and its four
 * 256x256 corners (25 crops). For each sigma: the same seeded noise clipped and rounded (as uploaded) or only
 * rounded (the bound: no censoring), and the treatments of the clipped pixels, with the level given and 'auto'.
 * With --families, Poisson (zeta 0.01, 0.05) and Gamma (k 100, 25) as well, clipped vs only rounded, plain path.
 * Prints mean PSNR (dB) per setting, the mean over the crops that hold a clipped pixel, and ms per crop.
 * With --timing, CPU ms at 512x512 (camera.png, sigma 25 and 50) with the treatment off and on. `--sigmas none`
 * skips the PSNR part.
 */
import { join } from 'node:path';
import sharp from 'sharp';
import { loadNoise2ScoreModel } from '../../src/denoise/model.js';
import { addNoise, type NoiseFamily } from '../../src/denoise/noise.js';
import { denoiseNoise2Score, type Noise2ScoreOptions } from '../../src/denoise/noise2score.js';
import { psnr } from '../../src/imaging/metrics.js';
import { initTfjs } from '../../src/nn/backend.js';
import { resolveModel, scanModelRepository } from '../../src/nn/repository.js';
import { Rng } from '../../src/util/random.js';
import {
  eightBitClipped,
  heldoutNoiseSeed,
  heldoutNoisy,
  heldoutSplit,
  loadHeldoutImage,
  SKIMAGE_DATA_DIR,
} from './heldout.js';
import { REPO_ROOT } from './inputs.js';

const SIDE = 256;

interface Crop {
  name: string;
  width: number;
  height: number;
  x: Float64Array;
}

async function selectionCrops(): Promise<Crop[]> {
  const crops: Crop[] = [];
  for (const file of heldoutSplit().selection) {
    const path = join(SKIMAGE_DATA_DIR, file);
    const meta = await sharp(path).metadata();
    const W = meta.width ?? 0;
    const H = meta.height ?? 0;
    const w = Math.min(SIDE, W);
    const h = Math.min(SIDE, H);
    const origins: [string, number, number][] = [
      ['centre', Math.floor((W - w) / 2), Math.floor((H - h) / 2)],
      ['tl', 0, 0],
      ['tr', W - w, 0],
      ['bl', 0, H - h],
      ['br', W - w, H - h],
    ];
    for (const [where, left, top] of origins) {
      const { data } = await sharp(path)
        .extract({ left, top, width: w, height: h })
        .greyscale()
        .raw()
        .toBuffer({ resolveWithObject: true });
      const x = Float64Array.from(data.subarray(0, w * h), (v) => v / 255);
      crops.push({ name: `${file.replace(/\.(png|jpg)$/, '')}-${where}`, width: w, height: h, x });
    }
  }
  return crops;
}

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** Rounded to 8 bits without clipping (the bound: the same noise, nothing censored). */
const eightBitOnly = (y: Float32Array) => Float32Array.from(y, (v) => Math.round(v * 255) / 255);

async function main() {
  const sigmasArg = argValue('--sigmas') ?? '5,15,25,35,50';
  const sigmas = sigmasArg === 'none' ? [] : sigmasArg.split(',').map(Number);
  const { tf } = await initTfjs('wasm');
  const entries = await scanModelRepository(join(REPO_ROOT, 'models'));
  const load = async (family: NoiseFamily) => {
    const entry = resolveModel(entries, `noise2score-${family}`);
    if (!entry?.manifest) throw new Error(`no noise2score-${family} model`);
    return {
      ...(await loadNoise2ScoreModel(tf, entry.dir)),
      id: `${entry.manifest.name}@${entry.manifest.version}`,
    };
  };
  const gaussian = await load('gaussian');
  const crops = await selectionCrops();
  console.log(`${gaussian.id}; ${crops.length} selection crops (${crops.map((c) => c.name).join(', ')})`);

  type Setting = { id: string; unclipped?: boolean; auto?: boolean; options: Partial<Noise2ScoreOptions> };
  const settings: Setting[] = [
    { id: 'rounded only (bound)', unclipped: true, options: { clipped: 'off' } },
    { id: 'rounded only (bound), auto', unclipped: true, auto: true, options: { clipped: 'off' } },
    { id: 'clipped, off', options: { clipped: 'off' } },
    { id: 'clipped, off, auto', auto: true, options: { clipped: 'off' } },
    ...[1, 2, 3, 5].map((r) => ({
      id: `clipped, mean r${r}`,
      options: { clipped: 'mean', clippedRadius: r },
    })),
    { id: 'clipped, draw r3', options: { clipped: 'draw', clippedRadius: 3 } },
    ...[0, 1, 2, 3].map((rounds) => ({
      id: `clipped, mean r3, auto, ${rounds} estimate rounds`,
      auto: true,
      options: { clipped: 'mean', clippedRadius: 3, clippedEstimateRounds: rounds },
    })),
  ] as Setting[];

  for (const sigma of sigmas) {
    const rows = new Map<string, { all: number[]; clipped: number[]; ms: number[]; levels: number[] }>();
    const add = (id: string, value: number, hasClip: boolean, ms: number, level: number) => {
      const row = rows.get(id) ?? { all: [], clipped: [], ms: [], levels: [] };
      row.all.push(value);
      if (hasClip) row.clipped.push(value);
      row.ms.push(ms);
      row.levels.push(level * 255);
      rows.set(id, row);
    };
    let clippedFraction = 0;
    for (const crop of crops) {
      const rng = new Rng(heldoutNoiseSeed(crop.name, 'gaussian', sigma / 255));
      const raw = addNoise('gaussian', Float32Array.from(crop.x), sigma / 255, rng);
      const uploaded = eightBitClipped(raw);
      let count = 0;
      for (const v of uploaded) if (v === 0 || v === 1) count++;
      clippedFraction += count / uploaded.length / crops.length;
      const hasClip = count > 0;
      for (const setting of settings) {
        const data = setting.unclipped ? eightBitOnly(raw) : uploaded;
        {
          const level = setting.auto ? 'auto' : sigma / 255;
          const result = await denoiseNoise2Score(
            tf,
            gaussian.model,
            { data, width: crop.width, height: crop.height, channels: 1 },
            { noise: 'gaussian', level, multiple: gaussian.multiple, ...setting.options },
          );
          add(setting.id, psnr(crop.x, result.data), hasClip, result.timings.totalMs, result.level);
        }
      }
    }
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);
    console.log(`\nsigma ${sigma}: ${(100 * clippedFraction).toFixed(2)} % of pixels clipped on average`);
    console.log(
      'setting | mean PSNR (dB) | mean over crops with clipping (n) | mean level x255 | ms per crop',
    );
    for (const [id, row] of rows) {
      console.log(
        `${id} | ${mean(row.all).toFixed(3)} | ${mean(row.clipped).toFixed(3)} (${row.clipped.length}) | ${mean(row.levels).toFixed(2)} | ${mean(row.ms).toFixed(0)}`,
      );
    }
  }

  if (process.argv.includes('--timing')) {
    // camera.png at 512x512 (the held-out benchmark's timing image), the treatment off and on, interleaved; the
    // least CPU time of five calls each (one thread), level given and auto.
    const camera = await loadHeldoutImage('camera.png', 512);
    for (const sigma of [25, 50]) {
      const data = heldoutNoisy(camera, 'gaussian', sigma / 255);
      let clipped = 0;
      for (const v of data) if (v === 0 || v === 1) clipped++;
      const best = new Map<string, number>();
      for (let round = 0; round < 5; round++) {
        for (const level of [sigma / 255, 'auto' as const]) {
          for (const treatment of ['off', 'mean'] as const) {
            const cpu = process.cpuUsage();
            await denoiseNoise2Score(
              tf,
              gaussian.model,
              { data, width: camera.width, height: camera.height, channels: 1 },
              { noise: 'gaussian', level, multiple: gaussian.multiple, clipped: treatment },
            );
            const used = process.cpuUsage(cpu);
            const key = `${level === 'auto' ? 'auto' : 'given'} ${treatment}`;
            best.set(
              key,
              Math.min(best.get(key) ?? Number.POSITIVE_INFINITY, (used.user + used.system) / 1e3),
            );
          }
        }
      }
      console.log(
        `timing camera 512x512 sigma ${sigma} (${clipped} pixels clipped): ` +
          [...best].map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', '),
      );
    }
  }

  if (process.argv.includes('--families')) {
    for (const [family, levels] of [
      ['poisson', [0.01, 0.05]],
      ['gamma', [100, 25]],
    ] as [NoiseFamily, number[]][]) {
      const loaded = await load(family);
      for (const level of levels) {
        const sums = { clipped: 0, rounded: 0, fraction: 0 };
        for (const crop of crops) {
          const rng = new Rng(heldoutNoiseSeed(crop.name, family, level));
          const raw = addNoise(family, Float32Array.from(crop.x), level, rng);
          const uploaded = eightBitClipped(raw);
          let count = 0;
          for (const v of uploaded) if (v === 1) count++;
          sums.fraction += count / uploaded.length / crops.length;
          for (const [key, data] of [
            ['clipped', uploaded],
            ['rounded', eightBitOnly(raw)],
          ] as const) {
            const result = await denoiseNoise2Score(
              tf,
              loaded.model,
              { data, width: crop.width, height: crop.height, channels: 1 },
              { noise: family, level, multiple: loaded.multiple },
            );
            sums[key] += psnr(crop.x, result.data) / crops.length;
          }
        }
        console.log(
          `${loaded.id} level ${level}: clipped at 1 ${(100 * sums.fraction).toFixed(2)} % of pixels; PSNR clipped ${sums.clipped.toFixed(3)} dB, rounded only ${sums.rounded.toFixed(3)} dB`,
        );
      }
    }
  }
}

await main();
