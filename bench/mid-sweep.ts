/**
 * `npm run bench:mid-sweep`: chooses MID's inference settings (K and the guided second stage, src/mid/guided.ts)
 * on TUNING crops only: the PolyU scenes of the noisy training set (src/mid/data.ts splitPolyuScenes; their noisy
 * shots fed training, their means never did), never the validation scenes. Centre 256x256 of each crop (CPU
 * budget), x = mean/255, y = noisy/255, outputs clipped to [0, 1], PSNR on RGB, mean over crops.
 *
 * Stages: the K-mask average (the pilot) at K = 1, 2, 4, 8; the guided stage on the K = 8 pilot over h (fixed,
 * and proportional to the coarse noise estimate of src/mid/sampler.ts), then patch and search radius at the best
 * h; then the chosen setting on the pilots of every K. A larger search window (the cost grows with its area) is
 * chosen only if it gains COST_MARGIN_DB. Then the safeguard (src/mid/guided.ts guidedSafeguard: Wiener-style
 * blend towards the pilot, residual bound around the pilot, both in units of the per-channel coarse noise level) on
 * the chosen stage, over a grid of blend x bound: the setting with the best mean among those never worse than the
 * noisy input on any tuning crop (the best mean if none is). Prints a table and the chosen manifest section.
 *
 * --aggregation: only the guided stage's aggregation (src/mid/guided.ts `aggregation`) on the K = 8 pilot, each
 * setting with the manifest's safeguard: the manifest's stage (pixel aggregation) against patch aggregation over
 * a grid of h; per crop and the mean, and the worst crop against the noisy input. With --scenes clean it runs on
 * the crops of the clean-set TRAINING scenes (their means trained the model, their noisy shots never did): the
 * held-out selection split that checks what the noisy-set scenes chose.
 *
 * --pilot-weight 0,0.2,0.4: only the share of the pilot in the values the guided stage averages (src/mid/guided.ts
 * pilotWeight), the manifest's stage and safeguard otherwise, on the K = 8 pilot.
 *
 * --caps: only the safeguard's local energy caps (src/mid/guided.ts pilotCap and residualCap) on the manifest's
 * stage and bounds, K = 8 pilot, over a grid of window x kappa, on the crops of BOTH training sets (noisy-set and
 * clean-set scenes) and on a synthetic texture-rich version of each: its clean mean sharpened,
 * x' = clip(x + SHARPEN (x - G(x)), 0, 1) with G a Gaussian blur of sigma 1, plus the crop's own real noise
 * (y - x), so y' = x' + y - x: the training scenes never make the guided stage lose to the noisy input, these do.
 * Rule, on the noisy-set scenes (selection split): admissible are the settings with no real crop worse than the
 * noisy input that cost at most CAP_BUDGET_DB of the real crops' mean (against no caps); among them, the one whose
 * worst synthetic crop against the noisy input is best (leaving out the synthetic crops where the K = 8 average
 * alone is already worse than the input: the pilot's failure, not the stage's), ties by the real mean. The stricter
 * rule (no synthetic crop worse than the input at any cost) is printed too: on these crops it costs about three
 * times the budget. The clean-set scenes are the held-out check (reported, not used).
 *
 * --caps --pilot-residual: the residual cap's anchor instead (src/mid/guided.ts pilotResidualCap: the anchor moves
 * from the pilot towards y where the pilot's own residual energy is high), over a grid of window x kappa (relative to
 * the median) with the manifest's residual cap and two nearby ones. Same crops and budget; stricter rule, since this
 * setting exists for the crops where the pilot fails: admissible are the settings with no real crop of the noisy
 * set worse than the input (all crops counted) within ANCHOR_BUDGET_DB of the real mean without caps, and among them
 * the best worst synthetic noisy-set crop counting ALL of them (pilot failures included), ties by the real mean.
 *
 * Options: --limit N (first N tuning crops), --size S (centre crop side), --scenes noisy|clean (default noisy),
 * --aggregation, --h 3,3.5,4,s1 (the patch-aggregation h grid, 1/255 units; sX: X times the crop's coarse noise
 * estimate).
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/compute/handlers/layers.js';
import { listPolyuPairs, loadColourImage, splitPolyuScenes } from '../src/mid/data.js';
import { midInferenceDefaults, midRgb } from '../src/mid/denoise.js';
import {
  channelSigmas,
  type GuidedAverageOptions,
  guidedNonLocalMeans,
  guidedSafeguard,
  guidedStage,
} from '../src/mid/guided.js';
import { estimateSigmaCoarse } from '../src/mid/sampler.js';
import { initTfjs } from '../src/nn/backend.js';
import { getModel } from '../src/nn/repository.js';
import { centreCrop, clippedPsnr, syntheticPair } from './mid-crops.js';

const REPO_ROOT = join(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    limit: { type: 'string' },
    size: { type: 'string', default: '256' },
    scenes: { type: 'string', default: 'noisy' },
    aggregation: { type: 'boolean', default: false },
    h: { type: 'string', default: '3,3.5,4,4.5' },
    'pilot-weight': { type: 'string' },
    caps: { type: 'boolean', default: false },
    'pilot-residual': { type: 'boolean', default: false },
    'polyu-dir': { type: 'string', default: join(REPO_ROOT, '../shared/data/polyu') },
  },
});
const size = Number(values.size);
/**
 * --caps: the most a cap may cost of the real noisy-set crops' mean PSNR (dB). The issue's margins over the peers
 * are 0.3 dB; the service default held them by 0.37 dB on validation before the caps, so a cap may spend 0.05.
 */
const CAP_BUDGET_DB = 0.05;
/**
 * --caps --pilot-residual: the budget against the real noisy-set mean without caps is the cost the current default
 * (residual cap 5/1.5 x median, -0.029 dB) already spends: the anchor must not cost more of the mean than that.
 */
const ANCHOR_BUDGET_DB = 0.03;
const { tf } = await initTfjs('wasm');
const mid = await getModel(tf, join(REPO_ROOT, 'models'), 'mid-rgb');
const dropRatio = (mid.manifest.extra as { maskRatio: number }).maskRatio;
const pairs = await listPolyuPairs(values['polyu-dir']);
const split = splitPolyuScenes(pairs);
if (values.scenes !== 'noisy' && values.scenes !== 'clean') throw new Error('--scenes is noisy or clean');
const scenes = values.scenes === 'noisy' ? split.noisyScenes : split.cleanScenes;
let tuning = pairs.filter((p) =>
  values.caps ? [...split.noisyScenes, ...split.cleanScenes].includes(p.scene) : scenes.includes(p.scene),
);
if (values.limit) tuning = tuning.slice(0, Number(values.limit));
console.log(
  values.caps
    ? `${tuning.length} tuning crops of the noisy- and clean-set training scenes, centre ${size}px`
    : `${tuning.length} tuning crops of ${scenes.length} ${values.scenes}-set scenes, centre ${size}px`,
);

const psnr = clippedPsnr;
const centre = (data: Float32Array, width: number, height: number) => centreCrop(data, width, height, size);
const coarseSigma = (y: Float32Array) => {
  const sigmas = [0, 1, 2].map((c) => {
    const plane = new Float32Array(size * size);
    for (let i = 0; i < plane.length; i++) plane[i] = y[i * 3 + c];
    return estimateSigmaCoarse(plane, size, size);
  });
  return sigmas.sort((a, b) => a - b)[1];
};

const KS = values.aggregation || values['pilot-weight'] || values.caps ? [8] : [1, 2, 4, 8];
const crops: { x: Float32Array; y: Float32Array; sigma: number; pilots: Map<number, Float32Array> }[] = [];
for (const p of tuning) {
  const noisy = await loadColourImage(p.real);
  const clean = await loadColourImage(p.mean);
  const y = centre(noisy.data, noisy.width, noisy.height);
  const pilots = new Map<number, Float32Array>();
  for (const k of KS)
    pilots.set(k, (await midRgb(tf, mid.model, y, size, size, { masks: k, dropRatio, seed: 0 })).data);
  crops.push({ x: centre(clean.data, clean.width, clean.height), y, sigma: coarseSigma(y), pilots });
}
const scores = new Map<string, number>();
const mean = (xs: number[]) => xs.reduce((a, v) => a + v, 0) / xs.length;
if (values['pilot-weight']) {
  await sweepPilotWeight(values['pilot-weight'].split(',').map(Number));
  process.exit(0);
}
if (values.caps) {
  await sweepCaps();
  process.exit(0);
}
if (values.aggregation) {
  await sweepAggregation();
  process.exit(0);
}
const score = (label: string, f: (c: (typeof crops)[number]) => Float32Array) => {
  const t = performance.now();
  const v = mean(crops.map((c) => psnr(f(c), c.x)));
  scores.set(label, v);
  console.log(
    `${label.padEnd(44)} ${v.toFixed(3)} dB  (${((performance.now() - t) / crops.length).toFixed(0)} ms/crop)`,
  );
  return v;
};
score('noisy', (c) => c.y);
for (const k of KS) score(`K=${k} average`, (c) => c.pilots.get(k)!);
type Setting = { patch: number; search: number; h255?: number; hSigma?: number };
const guided = (c: (typeof crops)[number], k: number, s: Setting) => {
  const h = s.h255 !== undefined ? s.h255 / 255 : (s.hSigma as number) * c.sigma;
  const options: GuidedAverageOptions = { patch: s.patch, search: s.search, h };
  return guidedNonLocalMeans(c.y, c.pilots.get(k)!, size, size, 3, options);
};
const name = (s: Setting) =>
  `patch ${s.patch} search ${s.search} ${s.h255 !== undefined ? `h ${s.h255}/255` : `h ${s.hSigma} sigma`}`;
let best: { setting: Setting; psnr: number } = { setting: { patch: 5, search: 7, h255: 5 }, psnr: -1 };
/** A setting that costs more (a larger search window) must gain at least this much to be chosen. */
const COST_MARGIN_DB = 0.05;
const trySetting = (s: Setting) => {
  const v = score(`K=8 + guided ${name(s)}`, (c) => guided(c, 8, s));
  const margin = s.search > best.setting.search ? COST_MARGIN_DB : 0;
  if (v > best.psnr + margin) best = { setting: s, psnr: v };
};
for (const h255 of [3, 4, 5, 6, 7]) trySetting({ patch: 5, search: 7, h255 });
for (const hSigma of [0.8, 1, 1.25, 1.5]) trySetting({ patch: 5, search: 7, hSigma });
const h = best.setting;
for (const patch of [3, 7]) trySetting({ ...h, patch });
for (const search of [5, 10]) trySetting({ ...h, patch: best.setting.patch, search });
for (const k of KS.filter((k) => k !== 8))
  score(`K=${k} + guided ${name(best.setting)}`, (c) => guided(c, k, best.setting));
console.log(`chosen: ${name(best.setting)} (${best.psnr.toFixed(3)} dB at K = 8)`);

// Safeguard on the chosen stage at K = 8: worst crop against the noisy input, and the mean.
const base = best.setting;
const stages = crops.map((c) => guided(c, 8, base));
const sigmas = crops.map((c) => channelSigmas(c.y, size, size, 3));
type Guard = { blend: number | null; bound: number | null; noisyBound: number | null };
const guardName = (g: Guard) =>
  `blend ${g.blend ?? '-'} bound ${g.bound ?? '-'} noisyBound ${g.noisyBound ?? '-'}`;
const noisyPsnr = crops.map((c) => psnr(c.y, c.x));
let chosenGuard: { guard: Guard; psnr: number; worst: number } | null = null;
const grid: Guard[] = [
  ...[null, 0.5, 1, 2, 4, 8].flatMap((blend) =>
    [null, 0.5, 1, 1.5, 2, 3, 4].map((bound) => ({ blend, bound, noisyBound: null })),
  ),
  ...[null, 2, 3].flatMap((bound) =>
    [1, 1.5, 2, 2.5, 3, 4].map((noisyBound) => ({ blend: null, bound, noisyBound })),
  ),
];
for (const guard of grid) {
  {
    const outs = crops.map((c, i) =>
      guard.blend == null && guard.bound == null && guard.noisyBound == null
        ? stages[i]
        : guidedSafeguard(c.y, c.pilots.get(8)!, stages[i], size, size, 3, sigmas[i], {
            ...guard,
            patch: base.patch,
          }),
    );
    const per = outs.map((o, i) => psnr(o, crops[i].x));
    const v = mean(per);
    const worst = Math.min(...per.map((p, i) => p - noisyPsnr[i]));
    console.log(
      `K=8 + guided + ${guardName(guard).padEnd(28)} ${v.toFixed(3)} dB  worst vs noisy ${worst.toFixed(3)}`,
    );
    const safe = (w: number) => w >= 0;
    if (
      !chosenGuard ||
      (safe(worst) && !safe(chosenGuard.worst)) ||
      (safe(worst) === safe(chosenGuard.worst) && v > chosenGuard.psnr)
    )
      chosenGuard = { guard, psnr: v, worst };
  }
}
const g = chosenGuard!;
console.log(
  `chosen safeguard: ${guardName(g.guard)} (${g.psnr.toFixed(3)} dB, worst crop ${g.worst.toFixed(3)} dB vs noisy)`,
);
for (const k of KS.filter((k) => k !== 8)) {
  const per = crops.map((c) => {
    const stage = guided(c, k, base);
    const out = guidedSafeguard(
      c.y,
      c.pilots.get(k)!,
      stage,
      size,
      size,
      3,
      channelSigmas(c.y, size, size, 3),
      {
        ...g.guard,
        patch: base.patch,
      },
    );
    return psnr(out, c.x);
  });
  const worst = Math.min(...per.map((p, i) => p - noisyPsnr[i]));
  console.log(
    `K=${k} + guided + ${guardName(g.guard)}: ${mean(per).toFixed(3)} dB  worst vs noisy ${worst.toFixed(3)}`,
  );
}
const section: Record<string, unknown> = { kind: 'guided-nlm', ...base };
if (g.guard.blend != null) section.blend = g.guard.blend;
if (g.guard.bound != null) section.bound = g.guard.bound;
if (g.guard.noisyBound != null) section.noisyBound = g.guard.noisyBound;
console.log(JSON.stringify({ guided: section }));

/** --aggregation: the manifest's stage (pixel aggregation) against patch aggregation over the h grid. */
async function sweepAggregation() {
  const { guided: manifestStage } = midInferenceDefaults(mid.manifest.extra);
  if (!manifestStage) throw new Error('the mid-rgb manifest has no guided stage');
  const variants: {
    label: string;
    h?: (c: (typeof crops)[number]) => number;
    options: GuidedAverageOptions;
  }[] = [
    {
      label: `pixel h ${(manifestStage.h * 255).toFixed(2)}`,
      options: { ...manifestStage, aggregation: 'pixel' },
    },
    // 'sX': h = X times the crop's coarse noise estimate (median over channels); otherwise h in 1/255 units.
    ...values.h.split(',').map((h) => ({
      label: h.startsWith('s') ? `patch h ${h.slice(1)} sigma` : `patch h ${h}`,
      h: (c: (typeof crops)[number]) => (h.startsWith('s') ? Number(h.slice(1)) * c.sigma : Number(h) / 255),
      options: { ...manifestStage, aggregation: 'patch' as const },
    })),
  ];
  const per = new Map<string, number[]>([
    ['noisy', []],
    ['K=8 average', []],
  ]);
  const ms = new Map<string, number[]>();
  for (const [i, c] of crops.entries()) {
    const cells = [`${tuning[i].scene}_${tuning[i].crop} (sigma ${(255 * c.sigma).toFixed(2)})`];
    per.get('noisy')!.push(psnr(c.y, c.x));
    per.get('K=8 average')!.push(psnr(c.pilots.get(8)!, c.x));
    let pixelOut: Float32Array | null = null;
    for (const v of variants) {
      const t = performance.now();
      const options = v.h ? { ...v.options, h: v.h(c) } : v.options;
      const out = guidedStage(c.y, c.pilots.get(8)!, size, size, 3, options);
      ms.set(v.label, [...(ms.get(v.label) ?? []), performance.now() - t]);
      per.set(v.label, [...(per.get(v.label) ?? []), psnr(out, c.x)]);
      cells.push(`${v.label} ${(psnr(out, c.x) - psnr(c.y, c.x)).toFixed(3)}`);
      if (!pixelOut) pixelOut = out;
      else {
        // The mean of the two aggregations' outputs (each safeguarded).
        const pixel = pixelOut;
        const both = Float32Array.from(out, (o, j) => 0.5 * (o + pixel[j]));
        const label = `mean(pixel, ${v.label})`;
        per.set(label, [...(per.get(label) ?? []), psnr(both, c.x)]);
      }
    }
    console.log(cells.join(' | '));
  }
  const noisy = per.get('noisy')!;
  console.log(
    `\n${crops.length} crops (${values.scenes}-set training scenes), centre ${size}px, K = 8 pilot:`,
  );
  for (const [label, v] of per) {
    const worst = Math.min(...v.map((p, i) => p - noisy[i]));
    const time = ms.get(label);
    console.log(
      `${label.padEnd(16)} ${mean(v).toFixed(3)} dB  worst vs noisy ${worst.toFixed(3)}${time ? `  ${mean(time).toFixed(0)} ms/crop` : ''}`,
    );
  }
}

/** --pilot-weight: the manifest's stage with each share of the pilot in the averaged values. */
async function sweepPilotWeight(weights: number[]) {
  const { guided: manifestStage } = midInferenceDefaults(mid.manifest.extra);
  if (!manifestStage) throw new Error('the mid-rgb manifest has no guided stage');
  const per = new Map<string, number[]>([['noisy', crops.map((c) => psnr(c.y, c.x))]]);
  for (const [i, c] of crops.entries()) {
    const cells = [`${tuning[i].scene}_${tuning[i].crop}`];
    for (const pilotWeight of weights) {
      const out = guidedStage(c.y, c.pilots.get(8)!, size, size, 3, { ...manifestStage, pilotWeight });
      const label = `pilotWeight ${pilotWeight}`;
      per.set(label, [...(per.get(label) ?? []), psnr(out, c.x)]);
      cells.push(`${pilotWeight}: ${(psnr(out, c.x) - psnr(c.y, c.x)).toFixed(3)}`);
    }
    console.log(cells.join(' | '));
  }
  const noisy = per.get('noisy')!;
  console.log(
    `\n${crops.length} crops (${values.scenes}-set training scenes), centre ${size}px, K = 8 pilot:`,
  );
  for (const [label, v] of per)
    console.log(
      `${label.padEnd(18)} ${mean(v).toFixed(3)} dB  worst vs noisy ${Math.min(...v.map((p, i) => p - noisy[i])).toFixed(3)}`,
    );
}

/** --caps: the safeguard's energy caps on the manifest's stage, real and synthetic texture-rich crops. */
async function sweepCaps() {
  const { guided: manifestStage } = midInferenceDefaults(mid.manifest.extra);
  if (!manifestStage) throw new Error('the mid-rgb manifest has no guided stage');
  const base: GuidedAverageOptions = { ...manifestStage, pilotCap: null, residualCap: null };
  type Case = {
    name: string;
    set: 'noisy' | 'clean';
    synthetic: boolean;
    x: Float32Array;
    y: Float32Array;
    pilot: Float32Array;
    raw: Float32Array;
    sigmas: number[];
  };
  const cases: Case[] = [];
  const setOf = (scene: string) => (split.noisyScenes.includes(scene) ? 'noisy' : 'clean');
  for (const [i, c] of crops.entries()) {
    const name = `${tuning[i].scene}_${tuning[i].crop}`;
    const set = setOf(tuning[i].scene);
    const { xs, ys } = syntheticPair(c.x, c.y, size);
    const pilotS = (await midRgb(tf, mid.model, ys, size, size, { masks: 8, dropRatio, seed: 0 })).data;
    for (const [synthetic, x, y, pilot] of [
      [false, c.x, c.y, c.pilots.get(8)!],
      [true, xs, ys, pilotS],
    ] as const) {
      const sigmas = channelSigmas(y, size, size, 3);
      const raw = guidedNonLocalMeans(y, pilot, size, size, 3, base);
      cases.push({ name, set, synthetic, x, y, pilot, raw, sigmas });
    }
  }
  type Cap = { window: number; kappa: number; relativeTo?: 'sigma' | 'median' } | null;
  const capName = (c: Cap) =>
    c ? `${c.window}/${c.kappa}${c.relativeTo === 'median' ? ' x median' : ''}` : '-';
  const grid: { pilotCap: Cap; residualCap: Cap; pilotResidualCap?: Cap }[] = [];
  const pilotCaps: Cap[] = [null, { window: 9, kappa: 0.5 }];
  const residualCaps: Cap[] = [
    null,
    ...[5, 9].flatMap((window) => [0.5, 0.75, 1].map((kappa) => ({ window, kappa }))),
    ...[5, 9, 17].flatMap((window) =>
      [1.25, 1.5, 2, 3].map((kappa) => ({ window, kappa, relativeTo: 'median' as const })),
    ),
  ];
  const anchorMode = values['pilot-residual'];
  if (anchorMode) {
    grid.push({ pilotCap: null, residualCap: null });
    const median = (window: number, kappa: number) => ({ window, kappa, relativeTo: 'median' as const });
    const residuals = [manifestStage.residualCap ?? median(5, 1.5), median(5, 1.25), median(9, 1.25)];
    for (const residualCap of residuals) {
      grid.push({ pilotCap: null, residualCap });
      for (const window of [5, 9, 17])
        for (const kappa of [1, 1.5, 2, 3])
          grid.push({ pilotCap: null, residualCap, pilotResidualCap: median(window, kappa) });
    }
  } else
    for (const pilotCap of pilotCaps)
      for (const residualCap of residualCaps) grid.push({ pilotCap, residualCap });
  const noisyPsnr = cases.map((c) => psnr(c.y, c.x));
  const pilotLoses = cases.map((c, i) => psnr(c.pilot, c.x) < noisyPsnr[i]);
  const rows: {
    label: string;
    mean: Record<string, number>;
    worst: Record<string, number>;
    worstAll: Record<string, number>;
    ok: boolean;
  }[] = [];
  const perCase = new Map<string, number[]>();
  for (const g of grid) {
    const label = `pilotCap ${capName(g.pilotCap)} residualCap ${capName(g.residualCap)}${anchorMode ? ` pilotResidualCap ${capName(g.pilotResidualCap ?? null)}` : ''}`;
    const per = cases.map((c) => {
      const out = guidedSafeguard(c.y, c.pilot, c.raw, size, size, 3, c.sigmas, {
        bound: base.bound,
        noisyBound: base.noisyBound,
        blend: base.blend,
        patch: base.patch,
        ...g,
      });
      return psnr(out, c.x);
    });
    perCase.set(label, per);
    const mean: Record<string, number> = {};
    const worst: Record<string, number> = {};
    const worstAll: Record<string, number> = {};
    for (const set of ['noisy', 'clean'])
      for (const synthetic of [false, true]) {
        const key = `${set}${synthetic ? ' synthetic' : ''}`;
        const idx = cases.flatMap((c, i) => (c.set === set && c.synthetic === synthetic ? [i] : []));
        mean[key] = mean_(idx.map((i) => per[i]));
        worst[key] = Math.min(...idx.filter((i) => !pilotLoses[i]).map((i) => per[i] - noisyPsnr[i]));
        worstAll[key] = Math.min(...idx.map((i) => per[i] - noisyPsnr[i]));
      }
    const ok =
      (anchorMode ? worstAll.noisy : worst.noisy) >= 0 &&
      mean.noisy >= (rows[0]?.mean.noisy ?? mean.noisy) - (anchorMode ? ANCHOR_BUDGET_DB : CAP_BUDGET_DB);
    rows.push({ label, mean, worst, worstAll, ok });
    const signed = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(3)}`;
    console.log(
      `${label.padEnd(34)} ${Object.keys(mean)
        .map(
          (k) =>
            `${k} ${mean[k].toFixed(3)} (worst ${signed(worst[k])}${anchorMode ? `, all ${signed(worstAll[k])}` : ''})`,
        )
        .join(' | ')}${ok ? '' : '  [rejected]'}`,
    );
  }
  // rows[0] is the stage without caps (the budget's reference): always admissible.
  const key = (r: (typeof rows)[number]) =>
    anchorMode ? [r.worstAll['noisy synthetic'], r.mean.noisy] : [r.worst['noisy synthetic'], r.mean.noisy];
  const better = (a: (typeof rows)[number], b: (typeof rows)[number]) =>
    key(b)[0] > key(a)[0] || (key(b)[0] === key(a)[0] && key(b)[1] > key(a)[1]) ? b : a;
  const chosen = rows.filter((r) => r.ok).reduce(better);
  const strict = rows.filter((r) => r.worst.noisy >= 0 && r.worst['noisy synthetic'] >= 0);
  if (strict.length) {
    const s = strict.reduce((a, b) => (b.mean.noisy > a.mean.noisy ? b : a));
    console.log(
      `\nstrict rule (no synthetic crop worse than the input): ${s.label}, noisy-set mean ${s.mean.noisy.toFixed(3)} (${(s.mean.noisy - rows[0].mean.noisy).toFixed(3)} dB)`,
    );
  }
  if (anchorMode)
    console.log(
      `chosen (--pilot-residual): ${chosen.label}: worst real noisy-set crop (all) ${chosen.worstAll.noisy.toFixed(3)}, worst synthetic (all) ${chosen.worstAll['noisy synthetic'].toFixed(3)} (no caps ${rows[0].worstAll['noisy synthetic'].toFixed(3)}); held-out clean set worst real (all) ${chosen.worstAll.clean.toFixed(3)}, worst synthetic (all) ${chosen.worstAll['clean synthetic'].toFixed(3)}`,
    );
  console.log(
    `chosen: ${chosen.label}: noisy-set mean ${chosen.mean.noisy.toFixed(3)} (${(chosen.mean.noisy - rows[0].mean.noisy).toFixed(4)} dB; budget ${anchorMode ? ANCHOR_BUDGET_DB : CAP_BUDGET_DB}), worst synthetic crop vs noisy ${chosen.worst['noisy synthetic'].toFixed(3)} (no caps ${rows[0].worst['noisy synthetic'].toFixed(3)}); held-out clean set ${chosen.mean.clean.toFixed(3)} (no caps ${rows[0].mean.clean.toFixed(3)}), worst synthetic ${chosen.worst['clean synthetic'].toFixed(3)} (no caps ${rows[0].worst['clean synthetic'].toFixed(3)})`,
  );
  const none = perCase.get(rows[0].label)!;
  const best = perCase.get(chosen.label)!;
  // --pilot-residual: rows[1] is the manifest's residual cap alone (the current default).
  const current = anchorMode ? perCase.get(rows[1].label)! : null;
  console.log(
    `per crop (vs noisy): K = 8 average | stage without caps | ${current ? 'manifest residual cap | ' : ''}chosen`,
  );
  for (const [i, c] of cases.entries())
    console.log(
      `${c.set} ${c.synthetic ? 'synthetic' : 'real     '} ${c.name.padEnd(40)} ${(psnr(c.pilot, c.x) - noisyPsnr[i]).toFixed(3)} | ${(none[i] - noisyPsnr[i]).toFixed(3)} | ${current ? `${(current[i] - noisyPsnr[i]).toFixed(3)} | ` : ''}${(best[i] - noisyPsnr[i]).toFixed(3)}`,
    );
}

function mean_(xs: number[]) {
  return xs.reduce((a, v) => a + v, 0) / xs.length;
}
