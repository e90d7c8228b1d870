/**
 * `npm run bench:ot-scale`: online (matrix-free) Sinkhorn on large point clouds, against POT's dense
 * `ot.sinkhorn` where POT's n x n matrices fit in memory.
 *
 * Problems: x ~ N(0, I), y ~ N(1, I) in 2-D and 3-D, n = m, uniform weights, squared Euclidean cost,
 * reg = 1e-2 * max C, marginal tolerance 1e-6 (ours: L1 norm of the marginal error; POT: L2 norm of its
 * column error, a weaker test, so we also report the L1 error POT reached). Every solve runs in its own
 * child process (ours: this file with --child; POT: bench/ot/pot_scale.py) so that its peak RSS is its own.
 * Sizes whose iterations would take too long on the machine run with a capped iteration count (--cap),
 * which the table says; the time per iteration is reported for every row.
 * Ours runs on --threads threads (default: every core; OT_ONLINE_THREADS in the service) and tests its
 * stopping criterion every --check-every iterations (default 1: on a fused CPU backend the test is free).
 * Sizes POT can run are repeated --repeat times (default 3), ours and POT alternating, and the table gives
 * the min and median of each with the load average of the machine around each run.
 * Our child runs compiled JavaScript, as the service does (src/ and bench/ transpiled by esbuild into
 * node_modules/.cache/ot-scale: no tsx loader in the process or its helper threads).
 * Memory: both children report their RSS after reading the problem (before any warm-up) and their peak RSS
 * at the end (getrusage's maxrss, all threads): the increase is what solving the problem took, measured the
 * same way for both (POT's includes its cost matrix, which its dense problem needs).
 * Results go to bench/RESULTS.md between <!-- ot-scale:begin --> and <!-- ot-scale:end -->.
 *
 *   npm run bench:ot-scale [-- --sizes 10000,30000 --dims 2 | --cases 10000x2,100000x3] [--cap 30000:20,100000:2]
 *     [--threads 2] [--check-every 1] [--repeat 3] [--no-pot] [--no-write] [--note 'line|line']
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onlineCostScale, sinkhornOnline } from '../../src/ot/online.js';
import { closeOnlineThreads, threadedCpuSoftmin } from '../../src/ot/online-threads.js';
import { writeResultsSection } from '../results-file.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const REG = 1e-2;
const TOL = 1e-6;
/** Largest n at which POT's dense run is attempted (3 n x n float64 matrices: 2.4 GB at 10k). */
const POT_MAX_N = 10_000;
/** Default iteration caps (n: iterations): 100k x 100k costs minutes per iteration on 2 CPU cores. */
const DEFAULT_CAPS: Record<number, number> = { 100000: 2 };

/** Deterministic Gaussian clouds (mulberry32 + Box-Muller), x ~ N(0, I), y ~ N(1, I). */
export function gaussianClouds(n: number, d: number, seed = 20261204): { x: Float64Array; y: Float64Array } {
  let s = (seed ^ Math.imul(n, 2654435761) ^ (d << 24)) >>> 0;
  const random = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const x = new Float64Array(n * d).map(gauss);
  const y = new Float64Array(n * d).map(() => gauss() + 1);
  return { x, y };
}

function problemPath(n: number, d: number): string {
  return join(tmpdir(), 'tweedie-ot-scale', `clouds-${n}-${d}.bin`);
}

function writeProblem(n: number, d: number): void {
  const { x, y } = gaussianClouds(n, d);
  mkdirSync(dirname(problemPath(n, d)), { recursive: true });
  const buf = new Float64Array(2 * n * d);
  buf.set(x, 0);
  buf.set(y, n * d);
  writeFileSync(problemPath(n, d), Buffer.from(buf.buffer));
}

function readProblem(n: number, d: number): { x: Float64Array; y: Float64Array } {
  const raw = readFileSync(problemPath(n, d));
  const all = new Float64Array(raw.buffer, raw.byteOffset, 2 * n * d);
  return { x: all.slice(0, n * d), y: all.slice(n * d) };
}

interface Outcome {
  seconds?: number;
  cpuSeconds?: number;
  iterations?: number;
  converged?: boolean;
  cost?: number;
  marginalError?: number;
  maxRssMb?: number;
  /** RSS after reading the problem, before any warm-up (the memory increase is maxRssMb - baseRssMb). */
  baseRssMb?: number;
  /** Ours: the bytes of the solver's own arrays, and the threads it ran on. */
  threads?: number;
  arraysMb?: number;
  scaleSeconds?: number;
  backend?: string;
  skipped?: string;
}

interface SolveSettings {
  maxIter: number;
  threads: number;
  checkEvery: number;
  /** 0 in the warm-up: start the helper threads on a small problem. */
  minPairsPerThread?: number;
}

async function solveOnline(x: Float64Array, y: Float64Array, n: number, d: number, settings: SolveSettings) {
  const base = { x, n, y, m: n, dim: d, cost: 'sqeuclidean' as const };
  const t0 = performance.now();
  const costScale = onlineCostScale(base, 'max');
  const scaleSeconds = (performance.now() - t0) / 1000;
  const a = new Float64Array(n).fill(1 / n);
  const { maxIter, threads, checkEvery, minPairsPerThread } = settings;
  const factory = threadedCpuSoftmin({ threads, minPairsPerThread });
  const cpu0 = process.cpuUsage();
  const t1 = performance.now();
  const r = await sinkhornOnline(
    { ...base, costScale },
    a,
    a,
    { reg: REG, tol: TOL, maxIter, checkEvery },
    factory,
  );
  const seconds = (performance.now() - t1) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { r, costScale, seconds, scaleSeconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

/** Child: warm up on a small problem, then one timed solve; prints one JSON line. */
async function child(n: number, d: number, settings: SolveSettings): Promise<void> {
  const { x, y } = readProblem(n, d);
  const baseRssMb = process.memoryUsage().rss / 2 ** 20;
  // The warm-up compiles the kernels and starts the helper threads (kept for the timed solve).
  const warm = gaussianClouds(400, d);
  await solveOnline(warm.x, warm.y, 400, d, { ...settings, maxIter: 50, minPairsPerThread: 0 });
  const { r, costScale, seconds, scaleSeconds, cpuSeconds } = await solveOnline(x, y, n, d, settings);
  await closeOnlineThreads();
  // The solver's arrays: the clouds (input, shared copy, each thread's dim-major copy), ~14 vectors of length
  // n (potentials, weights, logs, scratch, column sums), the shared vectors and each thread's workspace vectors.
  const t = settings.threads;
  const arraysMb = (8 * ((2 + t) * 2 * n * d + 14 * n + (7 + t) * n + t * 6 * n)) / 2 ** 20;
  const out: Outcome = {
    seconds,
    cpuSeconds,
    iterations: r.iterations,
    converged: r.converged,
    cost: r.cost * costScale,
    marginalError: r.marginalError,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    baseRssMb,
    arraysMb,
    threads: settings.threads,
    scaleSeconds,
    backend: r.backend,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

/** Transpiles src/ and bench/ (esbuild, one file each, as tsc would) and returns the compiled scale.js. */
function compileForChild(): string {
  const out = join(ROOT, 'node_modules', '.cache', 'ot-scale');
  rmSync(out, { recursive: true, force: true });
  const files = ['src', 'bench'].flatMap((dir) =>
    (readdirSync(join(ROOT, dir), { recursive: true }) as string[])
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
      .map((f) => join(ROOT, dir, f)),
  );
  const esbuild = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
  esbuild.buildSync({
    entryPoints: files,
    outdir: out,
    outbase: ROOT,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    logLevel: 'silent',
  });
  writeFileSync(join(out, 'package.json'), '{ "type": "module" }\n');
  return join(out, 'bench', 'ot', 'scale.js');
}

function runChild(command: string, args: string[], timeoutSeconds: number): Outcome {
  const res = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', timeout: timeoutSeconds * 1000 });
  if (res.error && (res.error as NodeJS.ErrnoException).code === 'ETIMEDOUT')
    return { skipped: `over ${timeoutSeconds} s` };
  if (res.status !== 0)
    return { skipped: `failed: ${(res.stderr || String(res.error)).trim().split('\n').pop()}` };
  return JSON.parse(res.stdout.trim().split('\n').pop() ?? '{}') as Outcome;
}

/** One child run and the machine's 1-minute load average just before and just after it. */
interface Run {
  outcome: Outcome;
  load: [number, number];
}

interface Row {
  n: number;
  d: number;
  cap?: number;
  ours: Run[];
  pot?: Run[];
}

function timed(command: string, args: string[], timeoutSeconds: number): Run {
  const before = loadavg()[0];
  const outcome = runChild(command, args, timeoutSeconds);
  return { outcome, load: [before, loadavg()[0]] };
}

function machine(): string {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpu;
  } catch {}
  let pot = 'unknown';
  try {
    pot = execFileSync('/usr/bin/python3', ['-c', 'import ot; print(ot.__version__)'], {
      encoding: 'utf8',
    }).trim();
  } catch {}
  const gb = (totalmem() / 2 ** 30).toFixed(0);
  return `${cpus().length} cores (${cpu}), ${gb} GB RAM, Node ${process.version}, POT ${pot}`;
}

const f = (v: number | undefined, digits = 1) => (v === undefined ? '-' : v.toFixed(digits));
const e = (v: number | undefined) => (v === undefined ? '-' : v.toExponential(1));

function median(values: number[]): number | undefined {
  if (!values.length) return undefined;
  const sorted = [...values].sort((p, q) => p - q);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The measured runs of a side, and their summaries. */
function summary(runs: Run[]) {
  const ok = runs.filter((r) => !r.outcome.skipped);
  const pick = (key: keyof Outcome) => ok.map((r) => r.outcome[key] as number).filter((v) => v !== undefined);
  const wall = pick('seconds');
  const increase = ok
    .map((r) => (r.outcome.maxRssMb ?? Number.NaN) - (r.outcome.baseRssMb ?? Number.NaN))
    .filter(Number.isFinite);
  const loads = runs.flatMap((r) => r.load);
  return {
    ok,
    skipped: runs.find((r) => r.outcome.skipped)?.outcome.skipped,
    wallMin: wall.length ? Math.min(...wall) : undefined,
    wallMedian: median(wall),
    cpuMedian: median(pick('cpuSeconds')),
    increaseMax: increase.length ? Math.max(...increase) : undefined,
    peakMax: ok.length ? Math.max(...pick('maxRssMb')) : undefined,
    loadMin: Math.min(...loads),
    loadMax: Math.max(...loads),
    last: ok[ok.length - 1]?.outcome,
  };
}

function render(rows: Row[], notes: string[], settings: { threads: number; checkEvery: number }): string {
  const lines = [
    '## Optimal transport at scale: online Sinkhorn (`npm run bench:ot-scale`)',
    '',
    `Machine: ${machine()}; run on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC. The cores are`,
    'shared with other jobs: the 1-minute load average before and after each run is given (lowest-highest).',
    'Problems: x ~ N(0, I), y ~ N(1, I), n = m, uniform weights, squared Euclidean cost, reg = 1e-2 max C,',
    `tolerance 1e-6. Ours: \`sinkhornOnline\` with the CPU backend (WebAssembly SIMD) on ${settings.threads} thread(s)`,
    `(OT_ONLINE_THREADS), cost computed from the points, stopping on the L1 marginal error tested every`,
    `${settings.checkEvery} iteration(s). POT: dense \`ot.sinkhorn\` (matrix built outside the timer), stopping on the L2`,
    'norm of its column error tested every 10 iterations (weaker: its L1 error at the stop is shown). Sizes POT can',
    'run are repeated, ours and POT alternating: wall times are min / median of the runs. Memory: each child',
    "process's peak RSS (getrusage maxrss, all threads) minus its RSS after reading the points, before any",
    'warm-up, measured the same way for both (POT\'s includes its cost matrix); the worst run is shown. "arrays" is',
    'what our solver allocates (every thread included). "s / iteration" includes the passes outside the',
    'iterations (one column soft-min at the start, the transport cost at the end), so it overstates a capped run.',
    'The max-C pass that scales the cost is not in the times (about one cost pass without exp).',
    '',
    '| n = m | d | solver | runs | iterations | wall (s) min / median | CPU (s) median | s / iteration | L1 marginal error | cost | memory increase (MB) | peak RSS (MB) | arrays (MB) | load |',
    '|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const verdicts: string[] = [];
  for (const r of rows) {
    const o = summary(r.ours);
    const capped = r.cap ? `, capped at ${r.cap} iteration${r.cap === 1 ? '' : 's'}` : '';
    const oursLabel = `online CPU (${o.last?.backend ?? 'cpu'})${capped}`;
    const load = (s: ReturnType<typeof summary>) => `${f(s.loadMin)}-${f(s.loadMax)}`;
    const row = (label: string, s: ReturnType<typeof summary>, runs: number, arrays: string) => {
      const x = s.last;
      if (!x)
        return `| ${r.n} | ${r.d} | ${label} | ${runs} | ${s.skipped ?? '-'} | | | | | | | | | ${load(s)} |`;
      const perIt = s.wallMedian !== undefined && x.iterations ? s.wallMedian / x.iterations : undefined;
      return `| ${r.n} | ${r.d} | ${label} | ${s.ok.length} | ${x.iterations}${x.converged === false ? ' (not converged)' : ''} | ${f(s.wallMin)} / ${f(s.wallMedian)} | ${f(s.cpuMedian)} | ${f(perIt, 2)} | ${e(x.marginalError)} | ${x.cost?.toFixed(6)} | ${f(s.increaseMax, 0)} | ${f(s.peakMax, 0)} | ${arrays} | ${load(s)} |`;
    };
    lines.push(row(oursLabel, o, r.ours.length, f(o.last?.arraysMb, 2)));
    if (r.pot) {
      const p = summary(r.pot);
      lines.push(
        row('POT dense ot.sinkhorn', p, r.pot.length, `${f((3 * 8 * r.n * r.n) / 2 ** 20, 0)} (M, K, plan)`),
      );
      if (o.wallMin && o.wallMedian && p.wallMin && p.wallMedian && o.increaseMax && p.increaseMax) {
        const tMin = o.wallMin / p.wallMin;
        const tMed = o.wallMedian / p.wallMedian;
        const mem = p.increaseMax / o.increaseMax;
        const time =
          tMin <= 1.5 && tMed <= 1.5
            ? 'met'
            : tMin <= 1.5
              ? 'met on the min only, not on the median'
              : 'not met';
        verdicts.push(
          `| ${r.n} | ${r.d} | ${tMin.toFixed(2)}x / ${tMed.toFixed(2)}x | ${time} | ${mem.toFixed(0)}x | ${mem >= 100 ? 'met' : 'not met'} |`,
        );
      }
    }
  }
  lines.push('| 100000 | 2, 3 | online WebGPU (H200) | left for a machine with a GPU | | | | | | | | | | |');
  if (verdicts.length)
    lines.push(
      '',
      "Targets (ours within 1.5x POT's time, with 100x less memory), from the table: time = our wall time over",
      "POT's, on the min and on the median of the runs (met only if both are); memory = POT's increase over ours.",
      '',
      '| n = m | d | time ratio min / median | 1.5x target | memory ratio | 100x target |',
      '|---:|---:|---:|---|---:|---|',
      ...verdicts,
    );
  if (notes.length) lines.push('', ...notes);
  return lines.join('\n');
}

async function main(args: string[]): Promise<void> {
  const opt = (name: string) => {
    const k = args.indexOf(name);
    return k >= 0 ? args[k + 1] : undefined;
  };
  if (args[0] === '--child') {
    await child(Number(args[1]), Number(args[2]), {
      maxIter: Number(args[3]),
      threads: Number(args[4]),
      checkEvery: Number(args[5]),
    });
    return;
  }
  const sizes = (opt('--sizes') ?? '10000,30000,100000').split(',').map(Number);
  const dims = (opt('--dims') ?? '2,3').split(',').map(Number);
  const threads = Number(opt('--threads') ?? availableParallelism());
  const checkEvery = Number(opt('--check-every') ?? 1);
  const repeat = Math.max(1, Number(opt('--repeat') ?? 3));
  const caps: Record<number, number> = { ...DEFAULT_CAPS };
  for (const pair of (opt('--cap') ?? '').split(',').filter(Boolean)) {
    const [n, it] = pair.split(':').map(Number);
    caps[n] = it;
  }
  // --cases 10000x2,100000x3 picks (n, d) pairs instead of every size with every dimension.
  const cases =
    opt('--cases')
      ?.split(',')
      .map((c) => c.split('x').map(Number) as [number, number]) ??
    sizes.flatMap((n) => dims.map((d) => [n, d] as [number, number]));
  const notes = (opt('--note') ?? '').split('|').filter(Boolean);
  const rows: Row[] = [];
  const settings = { threads, checkEvery };
  const compiled = compileForChild();
  for (const [n, d] of cases) {
    writeProblem(n, d);
    const cap = caps[n];
    const withPot = n <= POT_MAX_N && !args.includes('--no-pot');
    const row: Row = { n, d, cap, ours: [], pot: withPot ? [] : undefined };
    rows.push(row);
    for (let k = 0; k < (withPot ? repeat : 1); k++) {
      const ours = timed(
        process.execPath,
        [
          compiled,
          '--child',
          String(n),
          String(d),
          String(cap ?? 100_000),
          String(threads),
          String(checkEvery),
        ],
        3600,
      );
      row.ours.push(ours);
      process.stdout.write(`n=${n} d=${d} ours ${JSON.stringify(ours)}\n`);
      if (row.pot) {
        const pot = timed(
          '/usr/bin/python3',
          [join(HERE, 'pot_scale.py'), problemPath(n, d), String(n), String(d), String(TOL)],
          3600,
        );
        row.pot.push(pot);
        process.stdout.write(`n=${n} d=${d} POT ${JSON.stringify(pot)}\n`);
      }
      // After every run, so that an interrupted run keeps what it measured.
      if (!args.includes('--no-write')) writeResultsSection('ot-scale', render(rows, notes, settings));
    }
  }
  if (args.includes('--no-write')) process.stdout.write(`\n${render(rows, notes, settings)}\n`);
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  });
}
