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
 * Results go to bench/RESULTS.md between <!-- ot-scale:begin --> and <!-- ot-scale:end -->.
 *
 *   npm run bench:ot-scale [-- --sizes 10000,30000 --dims 2 | --cases 10000x2,100000x3] [--cap 30000:20,100000:2]
 *     [--no-pot] [--no-write] [--note 'line|line']
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onlineCostScale, sinkhornOnline } from '../../src/ot/online.js';
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
  /** Ours: RSS before the solve, and the bytes of the solver's own arrays. */
  baseRssMb?: number;
  arraysMb?: number;
  scaleSeconds?: number;
  backend?: string;
  skipped?: string;
}

async function solveOnline(x: Float64Array, y: Float64Array, n: number, d: number, maxIter: number) {
  const base = { x, n, y, m: n, dim: d, cost: 'sqeuclidean' as const };
  const t0 = performance.now();
  const costScale = onlineCostScale(base, 'max');
  const scaleSeconds = (performance.now() - t0) / 1000;
  const a = new Float64Array(n).fill(1 / n);
  const cpu0 = process.cpuUsage();
  const t1 = performance.now();
  const r = await sinkhornOnline({ ...base, costScale }, a, a, { reg: REG, tol: TOL, maxIter });
  const seconds = (performance.now() - t1) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { r, costScale, seconds, scaleSeconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

/** Child: warm up on a small problem, then one timed solve; prints one JSON line. */
async function child(n: number, d: number, maxIter: number): Promise<void> {
  const warm = gaussianClouds(400, d);
  await solveOnline(warm.x, warm.y, 400, d, 50);
  const { x, y } = readProblem(n, d);
  const baseRssMb = process.memoryUsage().rss / 2 ** 20;
  const { r, costScale, seconds, scaleSeconds, cpuSeconds } = await solveOnline(x, y, n, d, maxIter);
  // The solver's arrays: both clouds twice (input, dim-major copy), ~14 vectors of length n (potentials,
  // weights, logs, scratch, column sums).
  const arraysMb = (8 * (2 * 2 * n * d + 14 * n)) / 2 ** 20;
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
    scaleSeconds,
    backend: r.backend,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

function runChild(command: string, args: string[], timeoutSeconds: number): Outcome {
  const res = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', timeout: timeoutSeconds * 1000 });
  if (res.error && (res.error as NodeJS.ErrnoException).code === 'ETIMEDOUT')
    return { skipped: `over ${timeoutSeconds} s` };
  if (res.status !== 0)
    return { skipped: `failed: ${(res.stderr || String(res.error)).trim().split('\n').pop()}` };
  return JSON.parse(res.stdout.trim().split('\n').pop() ?? '{}') as Outcome;
}

interface Row {
  n: number;
  d: number;
  cap?: number;
  ours: Outcome;
  pot?: Outcome;
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

function render(rows: Row[], notes: string[]): string {
  const lines = [
    '## Optimal transport at scale: online Sinkhorn (`npm run bench:ot-scale`)',
    '',
    `Machine: ${machine()}; run on ${new Date().toISOString().slice(0, 10)}, load average ${loadavg()[0].toFixed(1)}`,
    'when the table was written (the 2 cores were shared with other jobs: wall times vary, CPU times less).',
    'Problems: x ~ N(0, I), y ~ N(1, I), n = m, uniform weights, squared Euclidean cost, reg = 1e-2 max C,',
    'tolerance 1e-6. Ours: `sinkhornOnline` on one compute thread (CPU backend, WebAssembly SIMD), cost computed',
    'from the points, stopping on the L1 marginal error. POT: dense `ot.sinkhorn` (matrix built outside the timer),',
    'stopping on the L2 norm of its column error (weaker: its L1 error at the stop is shown). Peak RSS is the whole',
    'child process; "arrays" is what our solver allocates; the rest of our RSS is Node itself.',
    'Ours makes about three passes over the n*m pairs besides its iterations (the column sums at the start, the',
    'column sums and <C, P> at the end): "s / iteration" includes them, so it overstates a capped run. The max-C',
    'pass that scales the cost (not in the times) takes about one cost pass without exp.',
    '',
    '| n = m | d | solver | iterations | wall (s) | CPU (s) | s / iteration | L1 marginal error | cost | peak RSS (MB) | arrays (MB) |',
    '|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const o = r.ours;
    const capped = r.cap ? `, capped at ${r.cap} iteration${r.cap === 1 ? '' : 's'}` : '';
    const oursLabel = `online CPU (${o.backend ?? 'cpu'})${capped}`;
    const perIt = o.seconds !== undefined && o.iterations ? o.seconds / o.iterations : undefined;
    lines.push(
      o.skipped
        ? `| ${r.n} | ${r.d} | ${oursLabel} | ${o.skipped} | | | | | | | |`
        : `| ${r.n} | ${r.d} | ${oursLabel} | ${o.iterations}${o.converged ? '' : ' (not converged)'} | ${f(o.seconds)} | ${f(o.cpuSeconds)} | ${f(perIt, 2)} | ${e(o.marginalError)} | ${o.cost?.toFixed(6)} | ${f(o.maxRssMb, 0)} | ${f(o.arraysMb, 2)} |`,
    );
    if (r.pot) {
      const p = r.pot;
      const perItPot = p.seconds !== undefined && p.iterations ? p.seconds / p.iterations : undefined;
      lines.push(
        p.skipped
          ? `| ${r.n} | ${r.d} | POT dense ot.sinkhorn | ${p.skipped} | | | | | | | |`
          : `| ${r.n} | ${r.d} | POT dense ot.sinkhorn | ${p.iterations} | ${f(p.seconds)} | ${f(p.cpuSeconds)} | ${f(perItPot, 2)} | ${e(p.marginalError)} | ${p.cost?.toFixed(6)} | ${f(p.maxRssMb, 0)} | ${f((3 * 8 * r.n * r.n) / 2 ** 20, 0)} (M, K, plan) |`,
      );
    }
  }
  lines.push('| 100000 | 2, 3 | online WebGPU (H200) | left for a machine with a GPU | | | | | | | |');
  if (notes.length) lines.push('', ...notes);
  return lines.join('\n');
}

async function main(args: string[]): Promise<void> {
  if (args[0] === '--child') {
    await child(Number(args[1]), Number(args[2]), Number(args[3]));
    return;
  }
  const opt = (name: string) => {
    const k = args.indexOf(name);
    return k >= 0 ? args[k + 1] : undefined;
  };
  const sizes = (opt('--sizes') ?? '10000,30000,100000').split(',').map(Number);
  const dims = (opt('--dims') ?? '2,3').split(',').map(Number);
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
  for (const [n, d] of cases) {
    writeProblem(n, d);
    const cap = caps[n];
    const ours = runChild(
      process.execPath,
      [
        '--import',
        'tsx',
        fileURLToPath(import.meta.url),
        '--child',
        String(n),
        String(d),
        String(cap ?? 100_000),
      ],
      3600,
    );
    process.stdout.write(`n=${n} d=${d} ours ${JSON.stringify(ours)}\n`);
    const row: Row = { n, d, cap, ours };
    if (n <= POT_MAX_N && !args.includes('--no-pot')) {
      row.pot = runChild(
        '/usr/bin/python3',
        [join(HERE, 'pot_scale.py'), problemPath(n, d), String(n), String(d), String(TOL)],
        3600,
      );
      process.stdout.write(`n=${n} d=${d} POT ${JSON.stringify(row.pot)}\n`);
    }
    rows.push(row);
    // After every case, so that an interrupted run keeps what it measured.
    if (!args.includes('--no-write')) writeResultsSection('ot-scale', render(rows, notes));
  }
  if (args.includes('--no-write')) process.stdout.write(`\n${render(rows, notes)}\n`);
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  });
}
