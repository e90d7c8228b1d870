/**
 * `npm run bench:denoise`: Noise2Score against scikit-image's classical denoisers on Set12, side by side in one run.
 *
 * 1. Writes the inputs once to bench/out/denoise/ (clean u8 and seeded float32 noisy arrays, bench/denoise/inputs.ts),
 *    so both sides read identical bytes.
 * 2. Runs bench/denoise/peers.py (scikit-image via /usr/bin/python3): NLM, TV, wavelet for Gaussian; NLM after the
 *    Anscombe transform for Poisson; NLM on log(y) and on y for Gamma. Each call timed in Python.
 * 3. Runs ours in this process on the wasm backend: Gaussian with the level given, with level 'auto' (wavelet
 *    estimator, and the paper's TV rule), and Poisson/Gamma when their models exist.
 * 4. HTTP overhead: the same 512x512 image through POST /v1/denoise on a real app listening on 127.0.0.1
 *    (WORKERS=1, the real models dir) against an in-process call, medians of alternating repetitions.
 * 5. Writes the section between <!-- denoise:begin --> and <!-- denoise:end --> of bench/RESULTS.md.
 *
 * Flags: --images 01,06 (a subset), --reuse-peers (read bench/out/denoise/peers.json instead of rerunning Python),
 * --no-http, --no-tv, --no-write (print the section instead of writing RESULTS.md), --repeats N (timing repeats
 * of the level-given run, default 2, best kept), --speed-rounds N (alternating NLM / ours rounds for the speed
 * target, default 7; 0 skips them).
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { buildApp } from '../../src/app.js';
import { testConfig } from '../../src/config.js';
import { type LoadedScoreNetwork, loadNoise2ScoreModel } from '../../src/denoise/model.js';
import type { NoiseFamily } from '../../src/denoise/noise.js';
import { denoiseNoise2Score } from '../../src/denoise/noise2score.js';
import { decodeImage } from '../../src/imaging/codec.js';
import { psnr } from '../../src/imaging/metrics.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { resolveModel, scanModelRepository } from '../../src/nn/repository.js';
import { writeResultsSection } from '../results-file.js';
import {
  BENCH_LEVELS,
  type CleanImage,
  loadSet12Image,
  NOISE_SEED_BASE,
  noisyVersion,
  REPO_ROOT,
  set12Names,
} from './inputs.js';

const OUT_DIR = join(REPO_ROOT, 'bench/out/denoise');
const RESULTS = join(REPO_ROOT, 'bench/RESULTS.md');
const BEGIN = '<!-- denoise:begin -->';
const END = '<!-- denoise:end -->';
const FAMILIES: NoiseFamily[] = ['gaussian', 'poisson', 'gamma'];
const HTTP_IMAGE = '08';
const HTTP_REPEATS = 11;
const HTTP_JSON_REPEATS = 3;

interface Args {
  images?: string[];
  reusePeers: boolean;
  http: boolean;
  tv: boolean;
  write: boolean;
  repeats: number;
  speedRounds: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { reusePeers: false, http: true, tv: true, write: true, repeats: 2, speedRounds: 7 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--images') args.images = argv[++i].split(',');
    else if (a === '--reuse-peers') args.reusePeers = true;
    else if (a === '--no-http') args.http = false;
    else if (a === '--no-tv') args.tv = false;
    else if (a === '--no-write') args.write = false;
    else if (a === '--repeats') args.repeats = Math.max(1, Number(argv[++i]));
    else if (a === '--speed-rounds') args.speedRounds = Math.max(0, Number(argv[++i]));
    else throw new Error(`unknown flag ${a}`);
  }
  return args;
}

/** One row cell: a method's result on one image. */
interface Cell {
  name: string;
  psnr: number;
  /** Wall-clock seconds of the denoiser call. */
  seconds: number;
  /** CPU seconds of the process during the call (user + system): robust to other jobs sharing the cores. */
  cpuSeconds?: number;
  width: number;
  height: number;
  level?: number;
}

interface PeersOutput {
  skimage: string;
  numpy: string;
  families: Record<string, Record<string, Cell[]>>;
}

/** Writes clean u8 and noisy float32 arrays plus an index for peers.py; returns the in-memory copies. */
async function prepareInputs(names: string[]) {
  mkdirSync(OUT_DIR, { recursive: true });
  const images: CleanImage[] = [];
  const noisy: Record<NoiseFamily, Map<string, Float32Array>> = {
    gaussian: new Map(),
    poisson: new Map(),
    gamma: new Map(),
  };
  const index = { levels: BENCH_LEVELS, seeds: NOISE_SEED_BASE, images: [] as unknown[] };
  for (const name of names) {
    const image = await loadSet12Image(name);
    images.push(image);
    const cleanPath = join(OUT_DIR, `${name}.clean.u8`);
    writeFileSync(cleanPath, image.u8);
    const noisyPaths: Record<string, string> = {};
    for (const family of FAMILIES) {
      const y = noisyVersion(image, family);
      noisy[family].set(name, y);
      noisyPaths[family] = join(OUT_DIR, `${name}.${family}.f32`);
      // Little-endian float32 on every machine we run on (x86/arm); peers.py reads '<f4'.
      writeFileSync(noisyPaths[family], Buffer.from(y.buffer, y.byteOffset, y.byteLength));
    }
    index.images.push({
      name,
      width: image.width,
      height: image.height,
      clean: cleanPath,
      noisy: noisyPaths,
    });
  }
  const indexPath = join(OUT_DIR, 'index.json');
  writeFileSync(indexPath, JSON.stringify(index, null, 1));
  return { images, noisy, indexPath };
}

function runPeers(indexPath: string, reuse: boolean): PeersOutput {
  const cache = join(OUT_DIR, 'peers.json');
  if (reuse && existsSync(cache)) return JSON.parse(readFileSync(cache, 'utf8')) as PeersOutput;
  console.log('running scikit-image peers (bench/denoise/peers.py) ...');
  const child = spawnSync('/usr/bin/python3', [join(REPO_ROOT, 'bench/denoise/peers.py'), indexPath], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' },
  });
  if (child.status !== 0) throw new Error(`peers.py failed with status ${child.status}`);
  writeFileSync(cache, child.stdout);
  return JSON.parse(child.stdout) as PeersOutput;
}

/** The folder of the highest valid version of noise2score-<family>, or undefined when there is none. */
async function modelDir(family: NoiseFamily): Promise<string | undefined> {
  const entries = await scanModelRepository(join(REPO_ROOT, 'models'));
  const entry = resolveModel(entries, `noise2score-${family}`);
  return entry && !entry.error ? entry.dir : undefined;
}

type Mode = {
  id: string;
  label: string;
  level: number | 'auto';
  estimator?: 'wavelet' | 'tv';
  /** Self-ensemble size (Noise2ScoreOptions.ensemble); 1 when absent. */
  ensemble?: number;
};

async function runOurs(
  tf: Tf,
  loaded: LoadedScoreNetwork,
  family: NoiseFamily,
  images: CleanImage[],
  noisy: Map<string, Float32Array>,
  modes: Mode[],
  repeats: number,
): Promise<Record<string, Cell[]>> {
  // Warm-up at both sizes: the first call on a new shape pays for wasm kernel setup.
  for (const size of new Set(images.map((i) => i.width))) {
    const image = images.find((i) => i.width === size) as CleanImage;
    await denoiseNoise2Score(
      tf,
      loaded.model,
      { data: noisy.get(image.name) as Float32Array, width: image.width, height: image.height, channels: 1 },
      { noise: family, level: BENCH_LEVELS[family], multiple: loaded.multiple },
    );
  }
  const out: Record<string, Cell[]> = {};
  for (const mode of modes) {
    out[mode.id] = [];
    for (const image of images) {
      const input = {
        data: noisy.get(image.name) as Float32Array,
        width: image.width,
        height: image.height,
        channels: 1,
      };
      let best = Number.POSITIVE_INFINITY;
      let bestCpu = Number.POSITIVE_INFINITY;
      let result: Awaited<ReturnType<typeof denoiseNoise2Score>> | undefined;
      for (let r = 0; r < (mode.level === 'auto' ? 1 : repeats); r++) {
        const t = performance.now();
        const cpu = process.cpuUsage();
        result = await denoiseNoise2Score(tf, loaded.model, input, {
          noise: family,
          level: mode.level,
          estimator: mode.estimator,
          ensemble: mode.ensemble,
          multiple: loaded.multiple,
        });
        const used = process.cpuUsage(cpu);
        best = Math.min(best, (performance.now() - t) / 1000);
        bestCpu = Math.min(bestCpu, (used.user + used.system) / 1e6);
      }
      const r = result as Awaited<ReturnType<typeof denoiseNoise2Score>>;
      out[mode.id].push({
        name: image.name,
        psnr: psnr(image.x, r.data),
        seconds: best,
        cpuSeconds: bestCpu,
        width: image.width,
        height: image.height,
        level: r.level,
      });
    }
    const mean = out[mode.id].reduce((s, c) => s + c.psnr, 0) / out[mode.id].length;
    console.log(`ours ${family} ${mode.id}: mean PSNR ${mean.toFixed(2)} dB`);
  }
  return out;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : 0.5 * (s[m - 1] + s[m]);
}

interface HttpResult {
  inProcessMs: number[];
  httpMs: number[];
  serverTotalMs: number[];
  model: string;
  bytes: number;
  psnrHttp: number;
  psnrInProcess: number;
  /** max |HTTP output - in-process output|: at most half an 8-bit step when both ran the same model. */
  maxAbsDiff: number;
  /** Medians of the server's timings from `output=json` requests (decodeMs, computeMs, encodeMs, network.*). */
  serverBreakdownMs: Record<string, number>;
}

interface SpeedRounds {
  image: string;
  nlm: { seconds: number[]; cpuSeconds: number[] };
  ours: { seconds: number[]; cpuSeconds: number[] };
}

/**
 * The speed target measured side by side in time: rounds that each time one scikit-image NLM call (a fresh
 * /usr/bin/python3 process, the call alone timed inside it after a warm-up) and then one denoiseNoise2Score call
 * here, on the same 512x512 noisy array. This machine's speed drifts by tens of percent over minutes, and the
 * per-image table times the two sides minutes apart; alternating them puts both under the same drift.
 */
async function runSpeedRounds(
  loaded: LoadedScoreNetwork,
  tf: Tf,
  image: CleanImage,
  y: Float32Array,
  path: string,
  rounds: number,
): Promise<SpeedRounds> {
  const out: SpeedRounds = {
    image: image.name,
    nlm: { seconds: [], cpuSeconds: [] },
    ours: { seconds: [], cpuSeconds: [] },
  };
  const input = { data: y, width: image.width, height: image.height, channels: 1 };
  const ours = () =>
    denoiseNoise2Score(tf, loaded.model, input, {
      noise: 'gaussian',
      level: 25 / 255,
      multiple: loaded.multiple,
    });
  await ours(); // warm-up
  for (let r = 0; r < rounds; r++) {
    const child = spawnSync(
      '/usr/bin/python3',
      [
        join(REPO_ROOT, 'bench/denoise/peers.py'),
        '--nlm-once',
        path,
        String(image.width),
        String(image.height),
        String(25 / 255),
      ],
      { encoding: 'utf8' },
    );
    if (child.status !== 0) throw new Error(`peers.py --nlm-once failed: ${child.stderr}`);
    const nlm = JSON.parse(child.stdout) as { seconds: number; cpuSeconds: number };
    out.nlm.seconds.push(nlm.seconds);
    out.nlm.cpuSeconds.push(nlm.cpuSeconds);
    const t = performance.now();
    const cpu = process.cpuUsage();
    await ours();
    const used = process.cpuUsage(cpu);
    out.ours.seconds.push((performance.now() - t) / 1000);
    out.ours.cpuSeconds.push((used.user + used.system) / 1e6);
  }
  return out;
}

/**
 * The same 512x512 noisy image (clipped to [0,1] and written as a 16-bit grey PNG, since PNG cannot hold values
 * outside [0,1]) sent as a raw body to POST /v1/denoise, against denoiseNoise2Score in this process on the bytes the
 * server decodes. Client time covers the whole request (upload, decode, queue, worker, encode, download).
 */
async function runHttp(tf: Tf, loaded: LoadedScoreNetwork, image: CleanImage, y: Float32Array) {
  const u16 = new Uint16Array(y.length);
  for (let i = 0; i < y.length; i++) u16[i] = Math.round(Math.min(1, Math.max(0, y[i])) * 65535);
  const bytes = await encodeGrey16Png(u16, image.width, image.height);
  const decoded = await decodeImage(bytes, { maxPixels: 1 << 24, mode: 'keep' });
  if (decoded.bitDepth !== 16 || decoded.image.channels !== 1) {
    throw new Error(`HTTP input decoded as ${decoded.bitDepth}-bit, ${decoded.image.channels} channels`);
  }
  const cfg = testConfig({
    WORKERS: 1,
    MODELS_DIR: join(REPO_ROOT, 'models'),
    TFJS_BACKEND: 'wasm',
    LOG_LEVEL: 'silent',
    // The in-process denoise of each repetition runs on this process's event loop (about 1 s), which the
    // pressure guard would read as an overloaded server and answer the next request with 503.
    PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
  });
  const app = await buildApp(cfg);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no TCP address');
  const url = `http://127.0.0.1:${address.port}/v1/denoise?noise=gaussian&level=25`;
  const post = async () => {
    const t = performance.now();
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body: bytes,
    });
    const body = Buffer.from(await response.arrayBuffer());
    const ms = performance.now() - t;
    if (response.status !== 200) throw new Error(`POST /v1/denoise: ${response.status} ${body.toString()}`);
    return { ms, body, headers: response.headers };
  };
  try {
    // Warm-up: the worker loads the model on its first task; the model may also still be loading at start.
    for (let attempt = 0; ; attempt++) {
      try {
        await post();
        break;
      } catch (error) {
        if (attempt > 60) throw error;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    const inProcess = async () => {
      const t = performance.now();
      const r = await denoiseNoise2Score(tf, loaded.model, decoded.image, {
        noise: 'gaussian',
        level: 25 / 255,
        multiple: loaded.multiple,
      });
      return { ms: performance.now() - t, data: r.data };
    };
    await inProcess();
    const result: HttpResult = {
      inProcessMs: [],
      httpMs: [],
      serverTotalMs: [],
      model: '',
      bytes: bytes.length,
      psnrHttp: 0,
      psnrInProcess: 0,
      maxAbsDiff: 0,
      serverBreakdownMs: {},
    };
    for (let r = 0; r < HTTP_REPEATS; r++) {
      const local = await inProcess();
      result.inProcessMs.push(local.ms);
      result.psnrInProcess = psnr(image.x, local.data);
      const remote = await post();
      result.httpMs.push(remote.ms);
      result.serverTotalMs.push(Number(remote.headers.get('x-timing-total-ms')));
      result.model = remote.headers.get('x-model') ?? '';
      const out = await decodeImage(remote.body, { maxPixels: 1 << 24, mode: 'keep' });
      result.psnrHttp = psnr(image.x, out.image.data);
      for (let i = 0; i < local.data.length; i++) {
        result.maxAbsDiff = Math.max(result.maxAbsDiff, Math.abs(out.image.data[i] - local.data[i]));
      }
    }
    const breakdowns: Record<string, number>[] = [];
    for (let r = 0; r < HTTP_JSON_REPEATS; r++) {
      const response = await fetch(`${url}&output=json`, {
        method: 'POST',
        headers: { 'content-type': 'image/png' },
        body: bytes,
      });
      breakdowns.push(((await response.json()) as { timings: Record<string, number> }).timings);
    }
    for (const key of Object.keys(breakdowns[0] ?? {})) {
      result.serverBreakdownMs[key] = median(breakdowns.map((b) => b[key]));
    }
    return result;
  } finally {
    await app.close();
  }
}

/** A 16-bit grey PNG. sharp takes 16-bit raw samples only as a Uint16Array (a Buffer would be read as 8-bit). */
async function encodeGrey16Png(u16: Uint16Array, width: number, height: number): Promise<Buffer> {
  return sharp(u16, { raw: { width, height, channels: 1 } })
    .toColourspace('grey16')
    .png()
    .toBuffer();
}

// ---------------------------------------------------------------------------------------------------------------
// Report

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const f2 = (x: number) => x.toFixed(2);
const f3 = (x: number) => x.toFixed(3);

function meanPsnr(cells: Cell[]): number {
  return mean(cells.map((c) => c.psnr));
}

function meanSeconds(cells: Cell[], size: number, clock: 'wall' | 'cpu' = 'wall'): number {
  const sel = cells.filter((c) => c.width === size);
  const pick = (c: Cell) => (clock === 'wall' ? c.seconds : (c.cpuSeconds ?? Number.NaN));
  return sel.length ? mean(sel.map(pick)) : Number.NaN;
}

/** PSNR of the noisy input itself, unclipped (what the denoisers receive) or clipped to [0,1]. */
function noisyCells(images: CleanImage[], noisy: Map<string, Float32Array>, clip: boolean): Cell[] {
  return images.map((image) => {
    const y = noisy.get(image.name) as Float32Array;
    const v = clip ? Float32Array.from(y, (t) => Math.min(1, Math.max(0, t))) : y;
    return { name: image.name, psnr: psnr(image.x, v), seconds: 0, width: image.width, height: image.height };
  });
}

interface Row {
  label: string;
  cells: Cell[] | undefined;
  note?: string;
  timed?: boolean;
}

function machineLine(peers: PeersOutput, tf: Tf): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  return (
    `Machine: nproc ${cpus().length}, CPU ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}; ` +
    `Node ${process.version}, @tensorflow/tfjs ${tf.version.tfjs} on the ${tf.getBackend()} backend (wasm SIMD ` +
    `${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}, wasm threads ${tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')}); ` +
    `Python ${pythonVersion()}, scikit-image ${peers.skimage}, numpy ${peers.numpy}.`
  );
}

function pythonVersion(): string {
  const r = spawnSync('/usr/bin/python3', ['-c', 'import platform; print(platform.python_version())'], {
    encoding: 'utf8',
  });
  return r.stdout.trim() || '?';
}

function table(rows: Row[], sizes: number[], reference?: Record<string, string>): string {
  const head = `| method | mean PSNR (dB) | ${sizes.map((s) => `s/image ${s}x${s}, wall (CPU)`).join(' | ')} |${reference ? ' reference |' : ''}`;
  const sep = `|---|---:|${sizes.map(() => '---:').join('|')}|${reference ? '---|' : ''}`;
  const lines = rows.map((row) => {
    const ref = reference ? ` ${reference[row.label] ?? ''} |` : '';
    if (!row.cells)
      return `| ${row.label} | ${row.note ?? '-'} | ${sizes.map(() => '-').join(' | ')} |${ref}`;
    const times = sizes.map((s) =>
      row.timed === false
        ? '-'
        : `${f3(meanSeconds(row.cells as Cell[], s))} (${f3(meanSeconds(row.cells as Cell[], s, 'cpu'))})`,
    );
    return `| ${row.label} | ${f2(meanPsnr(row.cells))} | ${times.join(' | ')} |${ref}`;
  });
  return [head, sep, ...lines].join('\n');
}

function perImageTable(rows: Row[], names: string[]): string {
  const present = rows.filter((r) => r.cells);
  const head = `| method | ${names.join(' | ')} | mean |`;
  const sep = `|---|${names.map(() => '---:').join('|')}|---:|`;
  const lines = present.map((row) => {
    const byName = new Map((row.cells as Cell[]).map((c) => [c.name, c.psnr]));
    return `| ${row.label} | ${names.map((n) => f2(byName.get(n) ?? Number.NaN)).join(' | ')} | ${f2(meanPsnr(row.cells as Cell[]))} |`;
  });
  return [head, sep, ...lines].join('\n');
}

function writeSection(section: string) {
  writeResultsSection('denoise', section);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const started = new Date();
  const loadAtStart = loadavg()[0];
  const names = args.images ?? set12Names();
  const { images, noisy, indexPath } = await prepareInputs(names);
  const peers = runPeers(indexPath, args.reusePeers);

  const { tf } = await initTfjs('wasm');
  const models: Partial<Record<NoiseFamily, LoadedScoreNetwork & { dir: string }>> = {};
  for (const family of FAMILIES) {
    const dir = await modelDir(family);
    if (dir) models[family] = { ...(await loadNoise2ScoreModel(tf, dir)), dir };
  }
  const ours: Partial<Record<NoiseFamily, Record<string, Cell[]>>> = {};
  for (const family of FAMILIES) {
    const loaded = models[family];
    if (!loaded) continue;
    const modes: Mode[] = [{ id: 'given', label: 'level given', level: BENCH_LEVELS[family] }];
    if (family === 'gaussian') {
      modes.push({ id: 'auto-wavelet', label: 'level auto (wavelet)', level: 'auto', estimator: 'wavelet' });
      if (args.tv) modes.push({ id: 'auto-tv', label: 'level auto (TV)', level: 'auto', estimator: 'tv' });
      for (const ensemble of [2, 8])
        modes.push({
          id: `given-ens${ensemble}`,
          label: `ensemble=${ensemble}`,
          level: BENCH_LEVELS[family],
          ensemble,
        });
    }
    ours[family] = await runOurs(tf, loaded, family, images, noisy[family], modes, args.repeats);
  }

  const gaussianModel = models.gaussian;
  const httpImage = images.find((i) => i.name === HTTP_IMAGE);
  let speed: SpeedRounds | undefined;
  if (args.speedRounds > 0 && gaussianModel && httpImage) {
    console.log(`speed rounds (NLM and ours alternating, ${args.speedRounds}) ...`);
    speed = await runSpeedRounds(
      gaussianModel,
      tf,
      httpImage,
      noisy.gaussian.get(HTTP_IMAGE) as Float32Array,
      join(OUT_DIR, `${HTTP_IMAGE}.gaussian.f32`),
      args.speedRounds,
    );
  }
  let http: HttpResult | undefined;
  if (args.http && gaussianModel && httpImage) {
    console.log('HTTP overhead ...');
    http = await runHttp(tf, gaussianModel, httpImage, noisy.gaussian.get(HTTP_IMAGE) as Float32Array);
  }

  // ---- the section
  const sizes = [...new Set(images.map((i) => i.width))].sort((a, b) => a - b);
  const g = peers.families.gaussian ?? {};
  const og = ours.gaussian;
  const manifest = gaussianModel?.manifest;
  const status = (manifest?.metrics as { status?: string } | undefined)?.status;
  const partial = typeof status === 'string' && status.startsWith('partial');
  const modelLabel = manifest
    ? `${manifest.name}@${manifest.version} (${manifest.trainingSteps} training steps${partial ? `, PARTIAL export: ${status}` : ''})`
    : 'none';
  const gaussianRows: Row[] = [
    { label: 'noisy input', cells: noisyCells(images, noisy.gaussian, false), timed: false },
    { label: 'noisy input, clipped to [0,1]', cells: noisyCells(images, noisy.gaussian, true), timed: false },
    {
      label: 'Noise2Score, level given (sigma = 25)',
      cells: og?.given,
      note: 'no Gaussian model in models/',
    },
    {
      label: 'Noise2Score, level given, ensemble=2 (score averaged over 2 flips)',
      cells: og?.['given-ens2'],
      note: 'not run',
    },
    {
      label: 'Noise2Score, level given, ensemble=8 (all 8 flips)',
      cells: og?.['given-ens8'],
      note: 'not run',
    },
    { label: 'Noise2Score, level auto (wavelet MAD)', cells: og?.['auto-wavelet'], note: 'not run' },
    { label: 'Noise2Score, level auto (Tweedie-TV rule)', cells: og?.['auto-tv'], note: 'not run' },
    { label: 'skimage denoise_nl_means', cells: g.nlm },
    { label: 'skimage denoise_tv_chambolle', cells: g.tv },
    { label: 'skimage denoise_wavelet (cycle_spin 3)', cells: g.wavelet },
  ];
  const reference: Record<string, string> = {
    'noisy input': '20.17 (= 20 log10(255/25))',
    'noisy input, clipped to [0,1]': "20.35 (the literature's noisy figure)",
    'Noise2Score, level given (sigma = 25)': 'paper 30.13; BM3D 29.97',
    'skimage denoise_nl_means': '~28.7',
    'skimage denoise_tv_chambolle': '~28.0',
    'skimage denoise_wavelet (cycle_spin 3)': '~27.9',
  };

  const mark = (ok: boolean | undefined) =>
    ok === undefined ? 'not measured' : ok ? '**met**' : '**not met**';
  const given = og?.given ? meanPsnr(og.given) : undefined;
  const autoW = og?.['auto-wavelet'] ? meanPsnr(og['auto-wavelet']) : undefined;
  const ens2 = og?.['given-ens2'] ? meanPsnr(og['given-ens2']) : undefined;
  const ens2At512 = og?.['given-ens2'] ? meanSeconds(og['given-ens2'], 512, 'cpu') : Number.NaN;
  const autoTv = og?.['auto-tv'] ? meanPsnr(og['auto-tv']) : undefined;
  const nlm512 = g.nlm ? meanSeconds(g.nlm, 512) : Number.NaN;
  const ours512 = og?.given ? meanSeconds(og.given, 512) : Number.NaN;
  const ratio512 = ours512 / nlm512;
  const nlm512Cpu = g.nlm ? meanSeconds(g.nlm, 512, 'cpu') : Number.NaN;
  const ours512Cpu = og?.given ? meanSeconds(og.given, 512, 'cpu') : Number.NaN;
  const ratio512Cpu = ours512Cpu / nlm512Cpu;
  const speedRatio = speed
    ? Math.min(...speed.ours.cpuSeconds) / Math.min(...speed.nlm.cpuSeconds)
    : Number.NaN;
  const speedRatios = speed ? speed.ours.cpuSeconds.map((o, i) => o / speed.nlm.cpuSeconds[i]) : [];
  const httpOverhead = http ? median(http.httpMs) / median(http.inProcessMs) - 1 : undefined;
  const httpOverheadMin = http ? Math.min(...http.httpMs) / Math.min(...http.inProcessMs) - 1 : undefined;
  // What HTTP adds by construction, from the server's own clocks: client-to-server gap (upload, parsing, download)
  // plus decode, encode and the compute-pool round trip around the worker's denoise call. Robust to load noise,
  // which moves the wall-clock medians by more than the overhead itself on a shared machine.
  const bd = http?.serverBreakdownMs;
  const structuralMs =
    http && bd
      ? median(http.httpMs) - median(http.serverTotalMs) + (bd.totalMs - bd['network.totalMs'])
      : undefined;
  const structuralRatio = structuralMs !== undefined && bd ? structuralMs / bd['network.totalMs'] : undefined;
  const targets = [
    '| target | measured | |',
    '|---|---|---|',
    `| Gaussian sigma 25, level given: >= 29.2 dB (reach for BM3D 29.97) | ${given === undefined ? '-' : `${f2(given)} dB`} | ${mark(given === undefined ? undefined : given >= 29.2)} |`,
    `| the same with \`ensemble=2\` (a request option; default 1) | ${ens2 === undefined ? '-' : `${f2(ens2)} dB, ${f3(ens2At512)} s CPU at 512x512 (NLM ${f3(nlm512Cpu)} s)`} | ${mark(ens2 === undefined ? undefined : ens2 >= 29.2)} |`,
    `| level auto (wavelet) within 0.2 dB of level given | ${autoW === undefined || given === undefined ? '-' : `${f2(autoW)} dB (${f2(autoW - given)})`} | ${mark(autoW === undefined || given === undefined ? undefined : given - autoW <= 0.2)} |`,
    `| level auto (TV rule) within 0.2 dB of level given | ${autoTv === undefined || given === undefined ? '-' : `${f2(autoTv)} dB (${f2(autoTv - given)})`} | ${mark(autoTv === undefined || given === undefined ? undefined : given - autoTv <= 0.2)} |`,
    `| speed at 512x512: ours / skimage NLM <= 1.0, CPU time, alternating rounds on image ${HTTP_IMAGE} (minima; median of the per-round ratios) | ${speed ? `${f3(Math.min(...speed.ours.cpuSeconds))} s / ${f3(Math.min(...speed.nlm.cpuSeconds))} s = ${f2(speedRatio)} (${f2(median(speedRatios))})` : '-'} | ${mark(Number.isFinite(speedRatio) ? speedRatio <= 1 : undefined)} |`,
    `| speed at 512x512: ours / skimage NLM <= 1.0, CPU time, table means (the two sides minutes apart) | ${Number.isFinite(ratio512Cpu) ? `${f3(ours512Cpu)} s / ${f3(nlm512Cpu)} s = ${f2(ratio512Cpu)}` : '-'} | ${mark(Number.isFinite(ratio512Cpu) ? ratio512Cpu <= 1 : undefined)} |`,
    `| speed at 512x512: ours / skimage NLM <= 1.0, wall time, table means | ${Number.isFinite(ratio512) ? `${f3(ours512)} s / ${f3(nlm512)} s = ${f2(ratio512)}` : '-'} | ${mark(Number.isFinite(ratio512) ? ratio512 <= 1 : undefined)} |`,
    `| HTTP adds < 10% (512x512), from the server's timings: added ms / worker denoise ms | ${structuralMs === undefined || structuralRatio === undefined ? '-' : `${structuralMs.toFixed(0)} ms / ${(bd as Record<string, number>)['network.totalMs'].toFixed(0)} ms: ${(100 * structuralRatio).toFixed(1)}%`} | ${mark(structuralRatio === undefined ? undefined : structuralRatio < 0.1)} |`,
    `| HTTP adds < 10% to the in-process time (512x512), wall-clock medians | ${httpOverhead === undefined || !http ? '-' : `${f3(median(http.httpMs) / 1000)} s vs ${f3(median(http.inProcessMs) / 1000)} s: ${(100 * httpOverhead).toFixed(1)}%`} | ${mark(httpOverhead === undefined ? undefined : httpOverhead < 0.1)} |`,
    `| HTTP adds < 10% to the in-process time (512x512), wall-clock minima | ${httpOverheadMin === undefined || !http ? '-' : `${f3(Math.min(...http.httpMs) / 1000)} s vs ${f3(Math.min(...http.inProcessMs) / 1000)} s: ${(100 * httpOverheadMin).toFixed(1)}%`} | ${mark(httpOverheadMin === undefined ? undefined : httpOverheadMin < 0.1)} |`,
  ].join('\n');

  const otherRows = (family: 'poisson' | 'gamma'): Row[] => {
    const peer = peers.families[family] ?? {};
    const mine = ours[family];
    const rows: Row[] = [
      { label: 'noisy input', cells: noisyCells(images, noisy[family], false), timed: false },
      { label: 'Noise2Score, level given', cells: mine?.given, note: 'model not trained yet' },
    ];
    if (family === 'poisson') {
      rows.push({
        label: 'skimage NLM after Anscombe (sigma 1, exact unbiased inverse)',
        cells: peer['nlm-anscombe'],
      });
    } else {
      rows.push({
        label: 'skimage NLM on log(y) (sigma sqrt(psi1(k)), bias-corrected exp)',
        cells: peer['nlm-log'],
      });
      rows.push({ label: 'skimage NLM on y (sigma mean(y)/sqrt(k))', cells: peer['nlm-direct'] });
    }
    return rows;
  };

  const httpText = http
    ? [
        `Image ${HTTP_IMAGE}.png (512x512) with sigma-25 noise, clipped to [0,1] and sent as a 16-bit grey PNG (${http.bytes} bytes) ` +
          `as a raw body to \`POST /v1/denoise?noise=gaussian&level=25\` on an app built like \`makeApp\` (WORKERS=1, ` +
          `MODELS_DIR=models, wasm) listening on 127.0.0.1, served ${http.model}; client time from fetch() to the last ` +
          'byte of the PNG answer. In-process: `denoiseNoise2Score` on the same decoded pixels in the benchmark process. ' +
          `${HTTP_REPEATS} alternating repetitions after a warm-up; medians and minima (the minimum is the least ` +
          'disturbed by other jobs on the cores).',
        '',
        '| path | median (s) | min (s) | all (s) |',
        '|---|---:|---:|---|',
        `| in-process denoiseNoise2Score | ${f3(median(http.inProcessMs) / 1000)} | ${f3(Math.min(...http.inProcessMs) / 1000)} | ${http.inProcessMs.map((m) => f3(m / 1000)).join(', ')} |`,
        `| HTTP, client wall time | ${f3(median(http.httpMs) / 1000)} | ${f3(Math.min(...http.httpMs) / 1000)} | ${http.httpMs.map((m) => f3(m / 1000)).join(', ')} |`,
        `| HTTP, server x-timing-total-ms (decode + worker + encode) | ${f3(median(http.serverTotalMs) / 1000)} | ${f3(Math.min(...http.serverTotalMs) / 1000)} | ${http.serverTotalMs.map((m) => f3(m / 1000)).join(', ')} |`,
        '',
        `PSNR of the two outputs: HTTP ${f2(http.psnrHttp)} dB (8-bit PNG answer), in-process ${f2(http.psnrInProcess)} dB ` +
          `(the input was clipped for PNG, so both differ slightly from the table above); max |HTTP - in-process| = ` +
          `${http.maxAbsDiff.toExponential(2)} (half an 8-bit step is ${(0.5 / 255).toExponential(2)}).`,
        '',
        `Server-side breakdown (medians of ${HTTP_JSON_REPEATS} \`output=json\` requests, ms): ` +
          Object.entries(http.serverBreakdownMs)
            .map(([k, v]) => `${k} ${v.toFixed(1)}`)
            .join(', ') +
          '. computeMs is the compute-pool round trip (queue, transfer to the worker thread, network, transfer back); ' +
          'network.* are measured inside the worker.',
      ].join('\n')
    : 'Not measured in this run.';

  const section = [
    '## Denoising: Noise2Score vs scikit-image on Set12 (`npm run bench:denoise`)',
    '',
    machineLine(peers, tf),
    `Run on ${started.toISOString()} (${names.length} images: ${names.join(', ')}). Model: ${modelLabel}. ` +
      `1-minute load average ${loadAtStart.toFixed(1)} at the start and ${loadavg()[0].toFixed(1)} at the end, on ` +
      `${cpus().length} cores${
        Math.max(loadAtStart, loadavg()[0]) > 1.25 * cpus().length
          ? ': other jobs were sharing the cores, so wall times are inflated and CPU times (process CPU seconds during the call) are the better measure of speed'
          : ' (this run and little else: wall and CPU times agree)'
      }.`,
    partial
      ? '\n**The Gaussian model was still training: these figures are from a partial export, not the final model.**\n'
      : '',
    'Protocol (../shared/data/README.md): x = u8/255; y = x + (sigma/255) z, z ~ N(0,1), no clipping or rounding of y; ' +
      'every output clipped to [0,1]; PSNR = 10 log10(1/mean((xhat - x)^2)) per image, no border crop, mean over images. ' +
      `Noise: src/util/random.ts \`Rng\` (xoshiro128** + Box-Muller), seeded per image: seed = ${NOISE_SEED_BASE.gaussian} + NN ` +
      `for Gaussian (image NN.png), ${NOISE_SEED_BASE.poisson} + NN for Poisson, ${NOISE_SEED_BASE.gamma} + NN for Gamma ` +
      '(bench/denoise/inputs.ts). The noisy arrays are written once as float32 to bench/out/denoise/ and both sides read ' +
      'those files. Times: seconds per image of the denoiser call alone, wall clock and (in parentheses) process CPU ' +
      '(Python: time.perf_counter / time.process_time around the scikit-image call; ours: performance.now / ' +
      `process.cpuUsage, best of ${args.repeats} calls of denoiseNoise2Score for "level given", one call for "auto"), ` +
      'after a warm-up, single-threaded on both sides, averaged over the images of each size.',
    '',
    '### Gaussian noise, sigma = 25',
    '',
    table(gaussianRows, sizes, reference),
    '',
    'References: noisy 20.35, scikit-image NLM ~28.7, TV ~28.0, wavelet ~27.9 (measured on this machine when the ' +
      'issue was filed), BM3D 29.97 and Noise2Score 30.13 (the paper, Kim & Ye 2021, Set12 sigma 25).',
    '',
    `Parameters: NLM fast_mode, h = 0.6 sigma, patch_size 5, patch_distance 6, sigma given; TV Chambolle weight 0.08, ` +
      'max_num_iter 1000 (the 0.19 keyword), eps 1e-6; wavelet BayesShrink, soft, db1, sigma given, via ' +
      'cycle_spin(max_shifts=3, num_workers=1). Ours: one forward pass of the score network on the whole image ' +
      '(512x512 fits one tile) and Tweedie xhat = y + sigma^2 R(y); "auto" estimates sigma by the wavelet MAD ' +
      "(scikit-image's estimate_sigma rule) or by the paper's rule (the level on a grid whose Tweedie output has the least TV).",
    '',
    '<details><summary>Per-image PSNR (dB), Gaussian sigma 25</summary>',
    '',
    perImageTable(gaussianRows, names),
    '',
    og?.['auto-wavelet']
      ? `Estimated sigma (x255) with auto (wavelet): ${og['auto-wavelet'].map((c) => `${c.name} ${((c.level ?? 0) * 255).toFixed(1)}`).join(', ')}.`
      : '',
    og?.['auto-tv']
      ? `Estimated sigma (x255) with auto (TV): ${og['auto-tv'].map((c) => `${c.name} ${((c.level ?? 0) * 255).toFixed(1)}`).join(', ')}.`
      : '',
    '</details>',
    '',
    '### Targets',
    '',
    targets,
    '',
    speed
      ? `Speed rounds (image ${speed.image}, 512x512, ${speed.nlm.cpuSeconds.length} rounds of one NLM call in a fresh Python process ` +
        `then one denoiseNoise2Score call here), CPU seconds per round: NLM ${speed.nlm.cpuSeconds.map(f3).join(', ')}; ` +
        `ours ${speed.ours.cpuSeconds.map(f3).join(', ')}.`
      : '',
    '',
    '### HTTP overhead',
    '',
    httpText,
    '',
    '### Poisson zeta = 0.01 and Gamma k = 100',
    '',
    'y = zeta Poisson(x / zeta) and y = x g with g ~ Gamma(k, 1/k), same images and protocol; paper (Noise2Score, Set12): ' +
      'Poisson 31.58 dB, Gamma 33.01 dB. The Noise2Score models for these families are not trained yet.',
    '',
    '**Poisson, zeta = 0.01**',
    '',
    table(otherRows('poisson'), sizes),
    '',
    '**Gamma, k = 100**',
    '',
    table(otherRows('gamma'), sizes),
    '',
    'Poisson baseline: a = 2 sqrt(y/zeta + 3/8) (unit-variance noise), NLM with sigma 1 and the parameters above, then the ' +
      'closed-form unbiased inverse of Makitalo & Foi (2011), times zeta. Gamma baselines: NLM on l = log(max(y, 0.5/255)) ' +
      "(additive noise, mean psi(k) - log k, std sqrt(psi'(k)) = 0.100 at k = 100) and exp(l_hat - (psi(k) - log k)); " +
      'and NLM on y itself with sigma = mean(y)/sqrt(k) (the noise std at the mean intensity). Noisy PSNR is of the ' +
      'unclipped y.',
    '',
    '<details><summary>Per-image PSNR (dB), Poisson and Gamma</summary>',
    '',
    perImageTable(otherRows('poisson'), names),
    '',
    perImageTable(otherRows('gamma'), names),
    '</details>',
    '',
    '### Commands',
    '',
    '```',
    'npm run bench:denoise                       # everything: inputs, scikit-image peers, ours, HTTP, this section',
    '/usr/bin/python3 bench/denoise/peers.py bench/out/denoise/index.json   # the scikit-image side alone',
    'npx vitest run test/denoise/quality.test.ts # the quality test (Set12 01 and 06 with the committed model)',
    '```',
    `Source: ${relative(REPO_ROOT, join(REPO_ROOT, 'bench/denoise'))}/{run.ts,inputs.ts,peers.py}. ` +
      `Model folder used: ${gaussianModel ? relative(REPO_ROOT, gaussianModel.dir) : 'none'}.`,
  ]
    .filter((line, i, all) => !(line === '' && all[i - 1] === ''))
    .join('\n');

  if (args.write) {
    writeSection(section);
    console.log(`wrote ${relative(REPO_ROOT, RESULTS)} (${BEGIN} ... ${END})`);
  } else {
    console.log(section);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
