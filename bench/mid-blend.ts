/**
 * `npm run bench:mid-blend`: chooses the weight w of MID's blend with Noise2Score, x = w * MID(y) + (1 - w) *
 * N2S(y), where MID(y) is the service default (the manifest's K and guided stage with its safeguard) and N2S(y) is
 * Noise2Score blind (Gaussian model, estimator 'tv', refine 'wiener', the library defaults otherwise). On TRAINING
 * crops only (the PolyU scenes of the noisy and clean training sets, src/mid/data.ts splitPolyuScenes; never the
 * validation scenes), as bench/mid-wiener.ts and `bench:mid-sweep --caps` do: centre 256x256 of each crop, and a
 * synthetic texture-rich copy (clean mean sharpened by 1.5 (x - G_1(x)) plus the crop's own real noise).
 *
 * The two outputs are computed once per crop and cached (bench/out/mid-blend/*.f32), so the sweep over w is
 * instant. Rule, on the noisy-set scenes (the selection split): admissible are the weights with no real crop worse
 * than the noisy input and a worst synthetic crop no lower than MID's alone (w = 1); among them the best real mean.
 * The clean-set scenes are the held-out check (reported, not used). The blend is served only if that weight gains
 * at least COST_MARGIN_DB over MID alone, as it costs a Noise2Score pass besides MID's.
 *
 * Options: --limit N (first N crops), --size S (centre crop side), --weights 0,0.1,...,1 (default step 0.05),
 * --fresh (ignore the cache). --local: also a locally adaptive weight (discrepancy rule: per pixel and channel, the
 * share of each output grows as its local residual energy mean((y - out)^2) over a window is closer to the noisy
 * input's coarse noise variance, w = e_n^p / (e_m^p + e_n^p) with e = |r / sigma^2 - 1|), and per-channel global
 * weights (each channel's best mean per-channel PSNR on the selection crops, reported only).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/compute/handlers/layers.js';
import { denoiseNoise2Score } from '../src/denoise/noise2score.js';
import { listPolyuPairs, loadColourImage, splitPolyuScenes } from '../src/mid/data.js';
import { denoiseMid, midInferenceDefaults } from '../src/mid/denoise.js';
import { channelSigmas } from '../src/mid/guided.js';
import { initTfjs } from '../src/nn/backend.js';
import { getModel } from '../src/nn/repository.js';
import { centreCrop, clippedPsnr, syntheticPair } from './mid-crops.js';

const REPO_ROOT = join(import.meta.dirname, '..');
const OUT = join(REPO_ROOT, 'bench/out/mid-blend');
const { values } = parseArgs({
  options: {
    limit: { type: 'string' },
    size: { type: 'string', default: '256' },
    weights: { type: 'string' },
    fresh: { type: 'boolean', default: false },
    local: { type: 'boolean', default: false },
    'polyu-dir': { type: 'string', default: join(REPO_ROOT, '../shared/data/polyu') },
  },
});
const size = Number(values.size);
const weights = values.weights
  ? values.weights.split(',').map(Number)
  : Array.from({ length: 21 }, (_, i) => i / 20);
const { tf } = await initTfjs('wasm');
const mid = await getModel(tf, join(REPO_ROOT, 'models'), 'mid-rgb');
const n2s = await getModel(tf, join(REPO_ROOT, 'models'), 'noise2score-gaussian');
const n2sMultiple = (n2s.manifest.architecture as { multiple?: number }).multiple ?? 8;
const dropRatio = (mid.manifest.extra as { maskRatio: number }).maskRatio;
const masks = (mid.manifest.extra as { masksDefault?: number }).masksDefault ?? 8;
const { guided } = midInferenceDefaults(mid.manifest.extra);
const pairs = await listPolyuPairs(values['polyu-dir']);
const split = splitPolyuScenes(pairs);
let tuning = pairs.filter((p) => [...split.noisyScenes, ...split.cleanScenes].includes(p.scene));
if (values.limit) tuning = tuning.slice(0, Number(values.limit));
console.log(
  `${tuning.length} crops of the noisy- and clean-set training scenes, centre ${size}px; MID ${mid.name}@${mid.version} K = ${masks}${guided ? ' + guided stage' : ''}; ${n2s.name}@${n2s.version} blind tv`,
);
mkdirSync(OUT, { recursive: true });

const psnr = clippedPsnr;
const centre = (data: Float32Array, width: number, height: number) => centreCrop(data, width, height, size);
const cached = async (file: string, compute: () => Promise<Float32Array>) => {
  const path = join(OUT, file);
  if (!values.fresh && existsSync(path)) {
    const b = readFileSync(path);
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  }
  const out = await compute();
  writeFileSync(path, Buffer.from(out.buffer, out.byteOffset, out.byteLength));
  return out;
};

type Case = {
  set: 'noisy' | 'clean';
  synthetic: boolean;
  x: Float32Array;
  y: Float32Array;
  sigmas: number[];
  mid: Float32Array;
  n2s: Float32Array;
  noisyPsnr: number;
};
const cases: Case[] = [];
const t0 = performance.now();
for (const p of tuning) {
  const noisy = await loadColourImage(p.real);
  const clean = await loadColourImage(p.mean);
  const x = centre(clean.data, clean.width, clean.height);
  const y = centre(noisy.data, noisy.width, noisy.height);
  const { xs, ys } = syntheticPair(x, y, size);
  for (const [synthetic, cx, cy] of [
    [false, x, y],
    [true, xs, ys],
  ] as const) {
    const key = `${p.scene}_${p.crop}_${size}${synthetic ? '_syn' : ''}`;
    const image = { data: cy, width: size, height: size, channels: 3 };
    const m = await cached(
      `${key}_mid.f32`,
      async () => (await denoiseMid(tf, mid.model, image, { masks, dropRatio, seed: 0, guided })).data,
    );
    const n = await cached(
      `${key}_n2s.f32`,
      async () =>
        (
          await denoiseNoise2Score(tf, n2s.model, image, {
            noise: 'gaussian',
            level: 'auto',
            estimator: 'tv',
            refine: 'wiener',
            multiple: n2sMultiple,
          })
        ).data,
    );
    cases.push({
      set: split.noisyScenes.includes(p.scene) ? 'noisy' : 'clean',
      synthetic,
      x: cx,
      y: cy,
      sigmas: channelSigmas(cy, size, size, 3),
      mid: m,
      n2s: n,
      noisyPsnr: psnr(cy, cx),
    });
  }
}
console.log(`prepared ${cases.length} cases in ${((performance.now() - t0) / 1000).toFixed(0)} s`);

const mean = (xs: number[]) => xs.reduce((a, v) => a + v, 0) / xs.length;
const blend = (c: Case, w: number) => Float32Array.from(c.mid, (v, i) => w * v + (1 - w) * c.n2s[i]);
type Row = {
  w: number;
  real: number;
  realWorst: number;
  syn: number;
  synWorst: number;
  clean: number;
  cleanWorst: number;
};
const report = (name: string, out: (c: Case) => Float32Array) => {
  const per = cases.map((c) => ({ c, v: psnr(out(c), c.x) }));
  const stats = (set: 'noisy' | 'clean', synthetic: boolean) => {
    const ps = per.filter((p) => p.c.set === set && p.c.synthetic === synthetic);
    return { mean: mean(ps.map((p) => p.v)), worst: Math.min(...ps.map((p) => p.v - p.c.noisyPsnr)) };
  };
  const real = stats('noisy', false);
  const syn = stats('noisy', true);
  const clean = stats('clean', false);
  const row = {
    real: real.mean,
    realWorst: real.worst,
    syn: syn.mean,
    synWorst: syn.worst,
    clean: clean.mean,
    cleanWorst: clean.worst,
  };
  console.log(
    `${name.padEnd(22)} real ${row.real.toFixed(3)} (worst ${row.realWorst.toFixed(3)}) | synthetic ${row.syn.toFixed(3)} (worst ${row.synWorst.toFixed(3)}) | clean-set ${row.clean.toFixed(3)} (worst ${row.cleanWorst.toFixed(3)})`,
  );
  return row;
};
const rows: Row[] = weights.map((w) => ({ w, ...report(`w ${w.toFixed(2)}`, (c) => blend(c, w)) }));
if (values.local) {
  // Per-channel global weights: each channel's squared error is separate, so each channel's best is its own.
  const sse = (c: Case, w: number, k: number) => {
    let e = 0;
    for (let i = k; i < c.x.length; i += 3) {
      const v = Math.min(1, Math.max(0, w * c.mid[i] + (1 - w) * c.n2s[i]));
      e += (v - c.x[i]) ** 2;
    }
    return e;
  };
  const sel = cases.filter((c) => c.set === 'noisy' && !c.synthetic);
  const perChannel = [0, 1, 2].map((k) => {
    let best = { w: 1, e: Number.POSITIVE_INFINITY };
    for (const w of weights) {
      const e = sel.reduce((a, c) => a + Math.log10(sse(c, w, k)), 0);
      if (e < best.e) best = { w, e };
    }
    return best.w;
  });
  const perChannelBlend = (c: Case) =>
    Float32Array.from(c.mid, (v, i) => perChannel[i % 3] * v + (1 - perChannel[i % 3]) * c.n2s[i]);
  report(`per-channel w ${perChannel.join('/')}`, perChannelBlend);
  const boxMean = (src: Float32Array, side: number) => {
    const r = side >> 1;
    const tmp = new Float32Array(src.length);
    const out = new Float32Array(src.length);
    for (const [from, to, horizontal] of [
      [src, tmp, true],
      [tmp, out, false],
    ] as const)
      for (let row = 0; row < size; row++)
        for (let col = 0; col < size; col++)
          for (let k = 0; k < 3; k++) {
            let s = 0;
            let n = 0;
            for (let d = -r; d <= r; d++) {
              const rr = horizontal ? row : row + d;
              const cc = horizontal ? col + d : col;
              if (rr < 0 || cc < 0 || rr >= size || cc >= size) continue;
              s += from[(rr * size + cc) * 3 + k];
              n++;
            }
            to[(row * size + col) * 3 + k] = s / n;
          }
    return out;
  };
  const energies = new Map<Case, Map<number, [Float32Array, Float32Array]>>();
  const local = (side: number, p: number) => (c: Case) => {
    let byside = energies.get(c);
    if (!byside) energies.set(c, (byside = new Map()));
    let e = byside.get(side);
    if (!e) {
      e = [
        boxMean(
          Float32Array.from(c.y, (v, i) => (v - c.mid[i]) ** 2),
          side,
        ),
        boxMean(
          Float32Array.from(c.y, (v, i) => (v - c.n2s[i]) ** 2),
          side,
        ),
      ];
      byside.set(side, e);
    }
    const [rm, rn] = e;
    return Float32Array.from(c.mid, (v, i) => {
      const s2 = c.sigmas[i % 3] ** 2 || 1e-12;
      const em = Math.abs(rm[i] / s2 - 1) ** p;
      const en = Math.abs(rn[i] / s2 - 1) ** p;
      const w = em + en > 0 ? en / (em + en) : 0.5;
      return w * v + (1 - w) * c.n2s[i];
    });
  };
  for (const side of [5, 9, 17])
    for (const p of [1, 2]) report(`local window ${side} p ${p}`, local(side, p));
}
const midAlone = rows.find((r) => r.w === 1);
const admissible = (r: Row) => r.realWorst >= 0 && (!midAlone || r.synWorst >= midAlone.synWorst);
const best = rows.filter(admissible).sort((a, b) => b.real - a.real)[0];
/**
 * The blend runs a Noise2Score pass besides MID's (about 1.7x MID's own time at 512x512, bench/RESULTS.md `mid`):
 * it is served only if it gains at least this much over MID alone on the selection crops, the cost margin
 * bench/mid-sweep.ts applies to a costlier setting.
 */
const COST_MARGIN_DB = 0.05;
if (!best) console.log('chosen: none admissible');
else {
  const gain = midAlone ? best.real - midAlone.real : Number.NaN;
  console.log(
    `rule's best: w ${best.w} real ${best.real.toFixed(3)} (worst ${best.realWorst.toFixed(3)}; ${gain >= 0 ? '+' : ''}${gain.toFixed(3)} dB over MID alone), synthetic ${best.syn.toFixed(3)} (worst ${best.synWorst.toFixed(3)}), clean-set ${best.clean.toFixed(3)} (worst ${best.cleanWorst.toFixed(3)})`,
  );
  console.log(
    gain >= COST_MARGIN_DB
      ? `chosen: w ${best.w} (gain >= ${COST_MARGIN_DB} dB, the cost margin)`
      : `chosen: MID alone (w 1): the gain is below the ${COST_MARGIN_DB} dB cost margin of the extra Noise2Score pass`,
  );
}
