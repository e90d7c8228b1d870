/**
 * `npm run bench:denoise-heldout`: the service's Noise2Score models against classical peers on images no model was
 * trained or selected on (bench/denoise/heldout.ts), then Set12 and the PolyU validation scenes as final figures.
 *
 * 1. Inputs: the held-out photographs (selection and report splits, 256x256 grey crops), camera.png at 512x512
 *    for times, and Set12 (final figures), each with seeded noise, clipped and rounded to 8 bits as an upload is:
 *    Gaussian sigma 15, 25, 50; Poisson zeta 0.01; Gamma k 100. Written once to bench/out/denoise-heldout/.
 * 2. Peers: bench/denoise/heldout_peers.py (/usr/bin/python3: scikit-image NLM with h tuned on the selection
 *    split, OpenCV's NLM with h tuned there too, TV, wavelet; Anscombe NLM for Poisson, log NLM for Gamma).
 * 3. Ours in this process on wasm, as the service runs them: level given (Gaussian also without the Wiener stage
 *    after Tweedie, refine=none); level auto with the default estimator
 *    (wavelet on weak-texture tiles, the TV rule when the noise is not white) and with the TV rule; Gaussian also
 *    with the level off by +-3/255, and with the self-ensemble of 2 and 8 flips, and with
 *    the clip-aware treatment off (Noise2ScoreOptions.clipped = 'off', level given and auto).
 * 4. Real camera noise: Noise2Score Gaussian blind (default estimator and TV) on the PolyU crops of the training
 *    scenes (selection) and the validation scenes (final), colour, 8-bit JPEG as given (src/mid/data.ts split).
 * 5. Time at 512x512: NLM (its tuned h) and ours (level given) on the timing image, side by side, medians of 3
 *    rounds x 3 calls (bench/denoise/timing.ts, shared with `npm run bench:denoise-time`).
 * 6. Writes the `denoise-heldout` section of bench/RESULTS.md.
 *
 * Flags: --no-set12, --no-polyu, --reuse-peers, --no-write, --polyu-max N (training-scene crops, default all; the
 * validation scenes always run whole).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { type LoadedScoreNetwork, loadNoise2ScoreModel } from '../../src/denoise/model.js';
import type { NoiseFamily } from '../../src/denoise/noise.js';
import { denoiseNoise2Score, type Noise2ScoreOptions } from '../../src/denoise/noise2score.js';
import { psnr } from '../../src/imaging/metrics.js';
import { listPolyuPairs, loadColourImage, splitPolyuScenes } from '../../src/mid/data.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { resolveModel, scanModelRepository } from '../../src/nn/repository.js';
import { writeResultsSection } from '../results-file.js';
import { HELDOUT_PHOTOS, heldoutNoisy, heldoutSplit, loadHeldoutImage, TRAIN400_HOLDOUT } from './heldout.js';
import { type CleanImage, loadSet12Image, REPO_ROOT, set12Names } from './inputs.js';
import { median, type TimedModel, timeSideBySide } from './timing.js';

const OUT_DIR = join(REPO_ROOT, 'bench/out/denoise-heldout');
const POLYU_DIR = join(REPO_ROOT, '../shared/data/polyu');

type Split = 'selection' | 'report' | 'timing' | 'set12';
interface Case {
  family: NoiseFamily;
  level: number;
  levelId: string;
  label: string;
}
const CASES: Case[] = [
  { family: 'gaussian', level: 15 / 255, levelId: 'gaussian-15', label: 'Gaussian sigma 15' },
  { family: 'gaussian', level: 25 / 255, levelId: 'gaussian-25', label: 'Gaussian sigma 25' },
  { family: 'gaussian', level: 50 / 255, levelId: 'gaussian-50', label: 'Gaussian sigma 50' },
  { family: 'poisson', level: 0.01, levelId: 'poisson-0.01', label: 'Poisson zeta 0.01' },
  { family: 'gamma', level: 100, levelId: 'gamma-100', label: 'Gamma k 100' },
];
const TIMING_CASE = 'gaussian-25';

interface Image extends CleanImage {
  split: Split;
  noisy: Map<string, Float32Array>;
}
interface Cell {
  name: string;
  split: Split;
  psnr: number;
  seconds: number;
  cpuSeconds: number;
  width: number;
  height: number;
  level?: number;
  estimator?: string;
}
interface PeersOutput {
  skimage: string;
  opencv: string;
  cases: Record<string, { parameters: Record<string, number | null>; methods: Record<string, Cell[]> }>;
}

function parseArgs(argv: string[]) {
  const args = {
    set12: true,
    polyu: true,
    reusePeers: false,
    write: true,
    polyuMax: Number.POSITIVE_INFINITY,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--no-set12') args.set12 = false;
    else if (a === '--no-polyu') args.polyu = false;
    else if (a === '--reuse-peers') args.reusePeers = true;
    else if (a === '--no-write') args.write = false;
    else if (a === '--polyu-max') args.polyuMax = Number(argv[++i]);
    else throw new Error(`unknown flag ${a}`);
  }
  return args;
}

async function prepareImages(withSet12: boolean): Promise<Image[]> {
  const split = heldoutSplit();
  const images: Image[] = [];
  for (const s of ['selection', 'report'] as const) {
    for (const file of split[s])
      images.push({ ...(await loadHeldoutImage(file)), split: s, noisy: new Map() });
  }
  const timing = await loadHeldoutImage('camera.png', 512);
  images.push({ ...timing, name: 'camera-512', split: 'timing', noisy: new Map() });
  if (withSet12) {
    for (const name of set12Names())
      images.push({ ...(await loadSet12Image(name)), split: 'set12', noisy: new Map() });
  }
  for (const image of images) {
    for (const c of CASES) {
      if (image.split === 'timing' && c.levelId !== TIMING_CASE) continue;
      image.noisy.set(c.levelId, heldoutNoisy(image, c.family, c.level));
    }
  }
  return images;
}

function writeInputs(images: Image[]): string {
  mkdirSync(OUT_DIR, { recursive: true });
  const index = {
    cases: CASES,
    images: images.map((image) => {
      const clean = join(OUT_DIR, `${image.split}-${image.name}.clean.u8`);
      writeFileSync(clean, image.u8);
      const noisy: Record<string, string> = {};
      for (const [id, y] of image.noisy) {
        noisy[id] = join(OUT_DIR, `${image.split}-${image.name}.${id}.f32`);
        writeFileSync(noisy[id], Buffer.from(y.buffer, y.byteOffset, y.byteLength));
      }
      return { name: image.name, split: image.split, width: image.width, height: image.height, clean, noisy };
    }),
  };
  const path = join(OUT_DIR, 'index.json');
  writeFileSync(path, JSON.stringify(index, null, 1));
  return path;
}

function runPeers(indexPath: string, reuse: boolean): PeersOutput {
  const cache = join(OUT_DIR, 'peers.json');
  if (reuse && existsSync(cache)) return JSON.parse(readFileSync(cache, 'utf8')) as PeersOutput;
  console.log('running peers (bench/denoise/heldout_peers.py) ...');
  const child = spawnSync(
    '/usr/bin/python3',
    [join(REPO_ROOT, 'bench/denoise/heldout_peers.py'), indexPath],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' },
    },
  );
  if (child.status !== 0) throw new Error(`heldout_peers.py failed with status ${child.status}`);
  writeFileSync(cache, child.stdout);
  return JSON.parse(child.stdout) as PeersOutput;
}

async function modelFor(tf: Tf, family: NoiseFamily) {
  const entries = await scanModelRepository(join(REPO_ROOT, 'models'));
  const entry = resolveModel(entries, `noise2score-${family}`);
  if (!entry?.manifest) return undefined;
  return { ...(await loadNoise2ScoreModel(tf, entry.dir)), dir: entry.dir };
}

interface Mode {
  id: string;
  label: string;
  options: (c: Case) => Omit<Noise2ScoreOptions, 'noise' | 'multiple'>;
  families: NoiseFamily[];
}
const MODES: Mode[] = [
  {
    id: 'given',
    label: 'level given',
    options: (c) => ({ level: c.level }),
    families: ['gaussian', 'poisson', 'gamma'],
  },
  {
    id: 'given-refine-none',
    label: 'level given, no Wiener stage after Tweedie (refine=none)',
    options: (c) => ({ level: c.level, refine: 'none' }),
    families: ['gaussian'],
  },
  {
    id: 'auto',
    label: 'level auto (default estimator)',
    options: () => ({ level: 'auto' }),
    families: ['gaussian', 'poisson', 'gamma'],
  },
  {
    id: 'auto-tv',
    label: 'level auto (TV rule)',
    options: () => ({ level: 'auto', estimator: 'tv' }),
    families: ['gaussian', 'poisson', 'gamma'],
  },
  {
    id: 'given-clip-off',
    label: 'level given, clipped pixels taken as observed (clipped=off)',
    options: (c) => ({ level: c.level, clipped: 'off' }),
    families: ['gaussian'],
  },
  {
    id: 'auto-clip-off',
    label: 'level auto (default estimator), clipped=off',
    options: () => ({ level: 'auto', clipped: 'off' }),
    families: ['gaussian'],
  },
  {
    id: 'minus3',
    label: 'level given - 3/255',
    options: (c) => ({ level: c.level - 3 / 255 }),
    families: ['gaussian'],
  },
  {
    id: 'plus3',
    label: 'level given + 3/255',
    options: (c) => ({ level: c.level + 3 / 255 }),
    families: ['gaussian'],
  },
  {
    id: 'ens2',
    label: 'level given, ensemble=2',
    options: (c) => ({ level: c.level, ensemble: 2 }),
    families: ['gaussian'],
  },
  {
    id: 'ens8',
    label: 'level given, ensemble=8',
    options: (c) => ({ level: c.level, ensemble: 8 }),
    families: ['gaussian'],
  },
];

async function runOurs(
  tf: Tf,
  model: LoadedScoreNetwork,
  c: Case,
  images: Image[],
  mode: Mode,
): Promise<Cell[]> {
  const cells: Cell[] = [];
  for (const image of images) {
    const y = image.noisy.get(c.levelId);
    if (!y) continue;
    const t = performance.now();
    const cpu = process.cpuUsage();
    const r = await denoiseNoise2Score(
      tf,
      model.model,
      { data: y, width: image.width, height: image.height, channels: 1 },
      { noise: c.family, multiple: model.multiple, ...mode.options(c) },
    );
    const used = process.cpuUsage(cpu);
    cells.push({
      name: image.name,
      split: image.split,
      psnr: psnr(image.x, r.data),
      seconds: (performance.now() - t) / 1000,
      cpuSeconds: (used.user + used.system) / 1e6,
      width: image.width,
      height: image.height,
      level: r.level,
      estimator: r.estimator,
    });
  }
  return cells;
}

const TIME_ROUNDS = 3;
const TIME_PER_ROUND = 3;

/** The time row: NLM (its tuned h) and ours (level given) on the timing image, side by side (timing.ts). */
async function timeAgainstNlm(tf: Tf, images: Image[], peers: PeersOutput) {
  const image = images.find((i) => i.split === 'timing');
  const y = image?.noisy.get(TIMING_CASE);
  const nlmH = peers.cases[TIMING_CASE]?.parameters.nlm;
  const c = CASES.find((k) => k.levelId === TIMING_CASE);
  const model = await modelFor(tf, 'gaussian');
  if (!image || !y || typeof nlmH !== 'number' || !c || !model) return undefined;
  const mine: TimedModel = { model, y, level: c.level, times: [] };
  const { nlm } = await timeSideBySide({
    tf,
    size: image.width,
    nlmInput: y,
    nlmPath: join(OUT_DIR, 'timing-side-by-side.f32'),
    sigma: c.level,
    nlmH,
    rounds: TIME_ROUNDS,
    perRound: TIME_PER_ROUND,
    ours: [mine],
  });
  return { nlm, ours: mine.times, nlmH };
}

interface PolyuRow {
  split: 'training scenes' | 'validation scenes';
  crops: number;
  noisy: number;
  modes: Record<string, { psnr: number; levels: number[]; estimators: string[] }>;
}

/** Noise2Score Gaussian blind on PolyU crops (colour, as uploaded): default estimator and TV rule. */
async function runPolyu(tf: Tf, model: LoadedScoreNetwork, max: number): Promise<PolyuRow[]> {
  const pairs = await listPolyuPairs(POLYU_DIR);
  const split = splitPolyuScenes(pairs);
  const rows: PolyuRow[] = [];
  for (const [label, scenes] of [
    ['training scenes', [...split.noisyScenes, ...split.cleanScenes]],
    ['validation scenes', split.validationScenes],
  ] as const) {
    // The validation scenes are final figures: every crop. --polyu-max bounds the training (selection) crops only.
    const all = pairs.filter((p) => scenes.includes(p.scene));
    const chosen = label === 'validation scenes' ? all : all.slice(0, max);
    const row: PolyuRow = { split: label, crops: chosen.length, noisy: 0, modes: {} };
    const sums: Record<string, number> = { default: 0, tv: 0 };
    for (const pair of chosen) {
      const real = await loadColourImage(pair.real);
      const mean = await loadColourImage(pair.mean);
      const x = Float64Array.from(mean.data);
      row.noisy += psnr(x, real.data) / chosen.length;
      for (const [id, estimator] of [
        ['default', undefined],
        ['tv', 'tv'],
      ] as const) {
        const r = await denoiseNoise2Score(
          tf,
          model.model,
          { data: real.data, width: real.width, height: real.height, channels: 3 },
          { noise: 'gaussian', level: 'auto', estimator, multiple: model.multiple },
        );
        sums[id] += psnr(x, r.data) / chosen.length;
        row.modes[id] ??= { psnr: 0, levels: [], estimators: [] };
        row.modes[id].levels.push(r.level * 255);
        row.modes[id].estimators.push(r.estimator ?? '');
      }
      console.log(`polyu ${label} ${pair.scene} ${pair.crop} done`);
    }
    for (const id of Object.keys(row.modes)) row.modes[id].psnr = sums[id];
    rows.push(row);
  }
  return rows;
}

// ---- report ----------------------------------------------------------------------------------------------------

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');
const bySplit = (cells: Cell[] | undefined, split: Split) => (cells ?? []).filter((c) => c.split === split);
const meanPsnr = (cells: Cell[]) => (cells.length ? mean(cells.map((c) => c.psnr)) : Number.NaN);

function noisyCells(images: Image[], c: Case): Cell[] {
  return images
    .filter((i) => i.noisy.has(c.levelId))
    .map((i) => ({
      name: i.name,
      split: i.split,
      psnr: psnr(i.x, i.noisy.get(c.levelId) as Float32Array),
      seconds: 0,
      cpuSeconds: 0,
      width: i.width,
      height: i.height,
    }));
}

const PEER_LABELS: Record<string, string> = {
  nlm: 'skimage NLM, h tuned (sigma given)',
  'nlm-blind': 'skimage NLM, h tuned, sigma by estimate_sigma (blind)',
  'opencv-nlm': 'OpenCV fastNlMeansDenoising, h tuned',
  tv: 'skimage TV Chambolle, weight tuned',
  wavelet: 'skimage wavelet BayesShrink + cycle_spin 3',
  'nlm-anscombe': 'skimage NLM after Anscombe, h tuned',
  'nlm-log': 'skimage NLM on log y, h tuned',
};

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const started = new Date();
  const load0 = loadavg()[0];
  const images = await prepareImages(args.set12);
  const peers = runPeers(writeInputs(images), args.reusePeers);
  const { tf } = await initTfjs('wasm');
  const ours: Record<string, Record<string, Cell[]>> = {};
  const models: Partial<Record<NoiseFamily, string>> = {};
  for (const family of ['gaussian', 'poisson', 'gamma'] as const) {
    const model = await modelFor(tf, family);
    if (!model) continue;
    models[family] = `${model.manifest.name}@${model.manifest.version}`;
    // Warm-up at both sizes.
    for (const size of [256, 512]) {
      await denoiseNoise2Score(
        tf,
        model.model,
        { data: new Float32Array(size * size).fill(0.5), width: size, height: size, channels: 1 },
        {
          noise: family,
          level: CASES.find((c) => c.family === family)?.level ?? 0.1,
          multiple: model.multiple,
        },
      );
    }
    for (const c of CASES.filter((k) => k.family === family)) {
      ours[c.levelId] = {};
      for (const mode of MODES.filter((m) => m.families.includes(family))) {
        // Set12 is a final figure: only the modes a client would use (given, default auto).
        const subset = images.filter((i) => i.split !== 'set12' || mode.id === 'given' || mode.id === 'auto');
        ours[c.levelId][mode.id] = await runOurs(tf, model, c, subset, mode);
        console.log(
          `ours ${c.levelId} ${mode.id}: report ${f2(meanPsnr(bySplit(ours[c.levelId][mode.id], 'report')))} dB`,
        );
      }
    }
  }
  let polyu: PolyuRow[] = [];
  const gaussianModel = args.polyu ? await modelFor(tf, 'gaussian') : undefined;
  if (gaussianModel) polyu = await runPolyu(tf, gaussianModel, args.polyuMax);
  const sideBySide = await timeAgainstNlm(tf, images, peers);

  // ---- the section
  const splits = heldoutSplit();
  const lines: string[] = [
    '## Denoising on held-out photographs (`npm run bench:denoise-heldout`)',
    '',
    `Run ${started.toISOString()}; nproc ${cpus().length}, ${cpus()[0]?.model.trim()}, Linux ${release()}, Node ${process.version}, ` +
      `tfjs ${tf.version.tfjs} on ${tf.getBackend()} (one thread); scikit-image ${peers.skimage}, OpenCV ${peers.opencv}. ` +
      `Load average ${load0.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the end. Models: ` +
      `${Object.values(models).join(', ')}.`,
    '',
    'Data (bench/denoise/heldout.ts): every committed Noise2Score model was trained on all 400 train400 images, so ' +
      "none of train400 is unseen; the held-out set is scikit-image's natural photographs (Debian python3-skimage), " +
      `grey (sharp greyscale), centre crops 256x256, split by a fixed rule (sorted; odd index: selection, even: report). ` +
      `Selection (tuning only): ${splits.selection.join(', ')}. Report (never tuned on): ${splits.report.join(', ')}. ` +
      `Future models should be trained without the last ${TRAIN400_HOLDOUT} train400 images, which then join the held-out set. ` +
      `Photographs considered: ${HELDOUT_PHOTOS.join(', ')}.`,
    '',
    'Inputs as an 8-bit upload: y = x + noise (seeded per image and level, src/util/random.ts Rng), clipped to [0,1] ' +
      'and rounded to 8 bits; both sides read the same float32 files (bench/out/denoise-heldout/). PSNR against x = u8/255, ' +
      'outputs clipped, no border crop, mean over images. Peers: bench/denoise/heldout_peers.py; every tuned parameter ' +
      'is chosen on the selection split alone and applied unchanged to the report split and Set12.',
    '',
  ];
  for (const c of CASES) {
    const peer = peers.cases[c.levelId];
    const mine = ours[c.levelId] ?? {};
    const rows: { label: string; cells: Cell[] }[] = [
      { label: 'noisy input (8-bit clipped)', cells: noisyCells(images, c) },
    ];
    for (const mode of MODES) {
      if (mine[mode.id]) rows.push({ label: `Noise2Score, ${mode.label}`, cells: mine[mode.id] });
    }
    for (const [name, cells] of Object.entries(peer?.methods ?? {})) {
      const p = peer.parameters[name];
      rows.push({ label: `${PEER_LABELS[name] ?? name}${typeof p === 'number' ? ` (${p})` : ''}`, cells });
    }
    lines.push(`### ${c.label}`, '');
    lines.push('| method | selection (dB) | report (dB) | Set12, final (dB) |', '|---|---:|---:|---:|');
    for (const row of rows) {
      lines.push(
        `| ${row.label} | ${f2(meanPsnr(bySplit(row.cells, 'selection')))} | ${f2(meanPsnr(bySplit(row.cells, 'report')))} | ${f2(meanPsnr(bySplit(row.cells, 'set12')))} |`,
      );
    }
    const auto = mine.auto ? bySplit(mine.auto, 'report') : [];
    if (auto.length) {
      const scale = c.family === 'gaussian' ? 255 : 1;
      lines.push(
        '',
        `Estimated level on the report split (default estimator${c.family === 'gaussian' ? ', x255' : ''}): ` +
          auto
            .map(
              (a) =>
                `${a.name} ${((a.level ?? 0) * scale).toPrecision(3)}${a.estimator === 'tv' ? ' (tv)' : ''}`,
            )
            .join(', ') +
          `; true ${(c.level * scale).toPrecision(3)}.`,
      );
    }
    lines.push('');
  }
  // Time at 512x512 (camera.png, sigma 25): ours (level given) against tuned NLM, side by side, medians of
  // TIME_ROUNDS x TIME_PER_ROUND calls each (bench/denoise/timing.ts); ensemble=2 from its single timed call.
  const timing = (cells: Cell[] | undefined) => bySplit(cells, 'timing')[0];
  const nlmT = timing(peers.cases[TIMING_CASE]?.methods.nlm);
  const ens2T = timing(ours[TIMING_CASE]?.ens2);
  if (sideBySide) {
    const nlmMedian = median(sideBySide.nlm);
    const oursMedian = median(sideBySide.ours);
    lines.push(
      '### Time at 512x512 (camera.png, sigma 25, CPU seconds of one call, one thread)',
      '',
      `Side by side (bench/denoise/timing.ts: ${TIME_ROUNDS} rounds, each NLM ${TIME_PER_ROUND} times then ours ` +
        `${TIME_PER_ROUND} times; medians of ${sideBySide.nlm.length} calls): skimage NLM (tuned h, ${sideBySide.nlmH} sigma) ` +
        `${nlmMedian.toFixed(3)} s; Noise2Score level given ${oursMedian.toFixed(3)} s ` +
        `(${(oursMedian / nlmMedian).toFixed(2)}x NLM; minima ${Math.min(...sideBySide.nlm).toFixed(3)} s and ` +
        `${Math.min(...sideBySide.ours).toFixed(3)} s)` +
        (ens2T && nlmT
          ? `; ensemble=2, one call, ${ens2T.cpuSeconds.toFixed(2)} s (${(ens2T.cpuSeconds / nlmT.cpuSeconds).toFixed(2)}x NLM's one call).`
          : '.') +
        ' `npm run bench:denoise-time` repeats it with the Poisson and Gamma models and a time per layer.',
      '',
    );
  }
  if (polyu.length) {
    lines.push(
      '### Real camera noise (PolyU, colour JPEG crops as given; Noise2Score Gaussian blind)',
      '',
      'Split by scene (src/mid/data.ts splitPolyuScenes): the training scenes select, the validation scenes are final.',
      '',
      '| crops | n | noisy (dB) | level auto, default estimator (dB) | level auto, TV rule (dB) |',
      '|---|---:|---:|---:|---:|',
      ...polyu.map(
        (r) =>
          `| ${r.split} | ${r.crops} | ${f2(r.noisy)} | ${f2(r.modes.default?.psnr ?? Number.NaN)} | ${f2(r.modes.tv?.psnr ?? Number.NaN)} |`,
      ),
      '',
      ...polyu.map(
        (r) =>
          `${r.split}: default estimator levels (x255) ${r.modes.default?.levels.map((l) => l.toFixed(1)).join(', ')} ` +
          `(estimator used: ${[...new Set(r.modes.default?.estimators)].join('/')}).`,
      ),
      '',
    );
  }
  lines.push(
    `Command: \`npm run bench:denoise-heldout${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\` ` +
      '(flags: --no-set12, --no-polyu, --polyu-max N for the training-scene crops, --reuse-peers to reuse ' +
      'bench/out/denoise-heldout/peers.json, --no-write).',
  );
  const section = lines.join('\n');
  if (args.write) {
    writeResultsSection('denoise-heldout', section);
    console.log('wrote bench/RESULTS.md (denoise-heldout)');
  } else console.log(section);
  writeFileSync(join(OUT_DIR, 'ours.json'), JSON.stringify({ ours, polyu }, null, 1));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
