/**
 * `npm run bench:ot`: our OT solvers against POT (Python Optimal Transport) on the same problems.
 *
 * Problems: 2-D Gaussian clouds x ~ N(0, I), y ~ N(1, I), uniform weights, squared Euclidean cost, n = m.
 * The parent writes each problem to a binary file; every (solver, size) then runs in its own child process
 * (ours: this file with --child; POT: bench/ot/pot_bench.py), so timings do not share a heap or a JIT and the
 * peak RSS of each child is the solver's own. Both sides build the cost outside the timed region and warm up
 * on a small problem first. Results go to bench/RESULTS.md between <!-- ot:begin --> and <!-- ot:end -->.
 *
 * Adding rows: export an array `benchEntries: OtBenchEntry[]` from your module, with `module: import.meta.url`
 * on each entry, and call `runOtBench({ entries: [...otBenchEntries, ...yours] })` (or add your module's path
 * to EXTRA_ENTRY_MODULES below). Children import `entry.module` to find the entry.
 * Adding a table: bench/ot/sns.ts exports `benchSns()` (returns markdown); the CLI runs it after the solver
 * rows and nests its table inside the OT section between <!-- sns:begin --> / <!-- sns:end --> (the markers
 * its own writeSnsSection() uses). `--no-sns` skips it and keeps the SNS table already in RESULTS.md.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { emd } from '../../src/ot/emd.js';
import { costMatrix, maxCost } from '../../src/ot/geometry.js';
import { uniform } from '../../src/ot/marginals.js';
import { sinkhorn } from '../../src/ot/sinkhorn.js';
import type { CostMatrix } from '../../src/ot/types.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const RESULTS = join(ROOT, 'bench/RESULTS.md');
const BEGIN = '<!-- ot:begin -->';
const END = '<!-- ot:end -->';
const SNS_BEGIN = '<!-- sns:begin -->';
const SNS_END = '<!-- sns:end -->';
const SNS_MODULE = 'bench/ot/sns.ts';
/** Modules (repo-relative) whose `benchEntries` are appended by the CLI. Missing files are skipped. */
const EXTRA_ENTRY_MODULES = ['bench/ot/sns.entries.ts'];

export interface OtBenchProblem {
  n: number;
  x: Float64Array;
  y: Float64Array;
  a: Float64Array;
  b: Float64Array;
  C: CostMatrix;
  maxC: number;
}

export interface OtBenchOutcome {
  seconds: number;
  cost: number;
  iterations?: number;
  status?: string;
}

export interface PotBaseline {
  /** pot_bench.py method: emd | sinkhorn | sinkhorn_log. */
  method: string;
  params?: Record<string, unknown>;
  /** Sizes to run POT at (default: the entry's sizes). */
  sizes?: number[];
  /** Label of the POT column, e.g. "ot.sinkhorn". */
  label: string;
}

export interface OtBenchEntry {
  id: string;
  /** Row label, e.g. "sinkhorn (reg 1e-2 max C, tol 1e-9)". */
  label: string;
  sizes: number[];
  /** URL of the module exporting this entry (as `benchEntries` or `otBenchEntries`); children import it. */
  module: string;
  run: (problem: OtBenchProblem) => OtBenchOutcome;
  pot?: PotBaseline[];
  /** Kill a child after this long and report the size as skipped. Default 300. */
  timeoutSeconds?: number;
}

function timed<T>(fn: () => T): { value: T; seconds: number } {
  const t = performance.now();
  const value = fn();
  return { value, seconds: (performance.now() - t) / 1000 };
}

export const otBenchEntries: OtBenchEntry[] = [
  {
    id: 'emd',
    label: 'emd (network simplex, uncapped pivots)',
    sizes: [500, 1000, 2000, 5000],
    module: import.meta.url,
    run: (p) => {
      const { value, seconds } = timed(() => emd(p.a, p.b, p.C, { maxIter: 1e9 }));
      return { seconds, cost: value.cost, iterations: value.iterations, status: value.status };
    },
    pot: [{ method: 'emd', params: { maxIter: 1e9 }, label: 'ot.emd' }],
    timeoutSeconds: 400,
  },
  {
    id: 'sinkhorn',
    label: "sinkhorn (method 'auto', reg 1e-2 max C, tol 1e-9)",
    sizes: [500, 1000, 2000, 5000],
    module: import.meta.url,
    run: (p) => {
      const { value, seconds } = timed(() =>
        sinkhorn(p.a, p.b, p.C, 1e-2 * p.maxC, { tol: 1e-9, maxIter: 100_000 }),
      );
      return { seconds, cost: value.cost, iterations: value.iterations, status: value.method };
    },
    pot: [
      { method: 'sinkhorn', params: { regRelative: 1e-2, tol: 1e-9 }, label: 'ot.sinkhorn' },
      {
        method: 'sinkhorn_log',
        params: { regRelative: 1e-2, tol: 1e-9 },
        sizes: [500, 1000],
        label: "ot.sinkhorn(method='sinkhorn_log')",
      },
    ],
  },
  {
    id: 'sinkhorn-log',
    label: "sinkhorn forced log domain (method 'log', reg 1e-2 max C, tol 1e-9)",
    sizes: [500, 1000],
    module: import.meta.url,
    run: (p) => {
      const { value, seconds } = timed(() =>
        sinkhorn(p.a, p.b, p.C, 1e-2 * p.maxC, { tol: 1e-9, maxIter: 100_000, method: 'log' }),
      );
      return { seconds, cost: value.cost, iterations: value.iterations, status: value.method };
    },
    pot: [
      {
        method: 'sinkhorn_log',
        params: { regRelative: 1e-2, tol: 1e-9 },
        label: "ot.sinkhorn(method='sinkhorn_log')",
      },
    ],
  },
];

/** Deterministic 2-D Gaussian clouds (mulberry32 + Box-Muller). */
export function benchClouds(n: number, seed = 20261127): { x: Float64Array; y: Float64Array } {
  let s = (seed ^ (n * 2654435761)) >>> 0;
  const random = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const x = new Float64Array(2 * n).map(gauss);
  const y = new Float64Array(2 * n).map(() => gauss() + 1);
  return { x, y };
}

function problemPath(n: number): string {
  return join(tmpdir(), 'tweedie-ot-bench', `clouds-${n}.bin`);
}

function writeProblem(n: number): void {
  const { x, y } = benchClouds(n);
  mkdirSync(dirname(problemPath(n)), { recursive: true });
  const buf = new Float64Array(4 * n);
  buf.set(x, 0);
  buf.set(y, 2 * n);
  writeFileSync(problemPath(n), Buffer.from(buf.buffer));
}

function readProblem(n: number): OtBenchProblem {
  const raw = readFileSync(problemPath(n));
  const all = new Float64Array(raw.buffer, raw.byteOffset, 4 * n);
  const x = all.slice(0, 2 * n);
  const y = all.slice(2 * n, 4 * n);
  const C = costMatrix({ data: x, n, d: 2 }, { data: y, n, d: 2 });
  return { n, x, y, a: uniform(n), b: uniform(n), C, maxC: maxCost(C) };
}

async function findEntry(module: string, id: string): Promise<OtBenchEntry> {
  const mod = await import(module);
  const list: OtBenchEntry[] = mod.benchEntries ?? mod.otBenchEntries ?? [];
  const entry = list.find((e) => e.id === id);
  if (!entry) throw new Error(`bench entry ${id} not found in ${module}`);
  return entry;
}

/** Repetitions per cell (best time reported, both sides alike): the shared 2-core machine is noisy. */
export function repetitions(n: number): number {
  return n <= 1000 ? 3 : n <= 2000 ? 2 : 1;
}

/** Child mode: warm up on a small problem, then time the solve (best of repetitions(n)), print one JSON line. */
async function child(module: string, id: string, n: number): Promise<void> {
  const entry = await findEntry(module, id);
  // Three small solves: enough for V8 to optimise the hot functions before the timed runs.
  const warmN = 200;
  writeProblem(warmN);
  const warm = readProblem(warmN);
  for (let r = 0; r < 3; r++) entry.run(warm);
  const problem = readProblem(n);
  let outcome = entry.run(problem);
  for (let r = 1; r < repetitions(n); r++) {
    const again = entry.run(problem);
    if (again.seconds < outcome.seconds) outcome = again;
  }
  const maxRssMb = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(`${JSON.stringify({ ...outcome, maxRssMb })}\n`);
}

interface ChildResult {
  seconds?: number;
  cost?: number;
  iterations?: number;
  status?: string;
  maxRssMb?: number;
  skipped?: string;
}

function runChild(command: string, args: string[], timeoutSeconds: number): ChildResult {
  const res = spawnSync(command, args, {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: timeoutSeconds * 1000,
    maxBuffer: 1 << 20,
  });
  if (res.error && (res.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') {
    return { skipped: `skipped: over ${timeoutSeconds} s` };
  }
  if (res.status !== 0)
    return { skipped: `failed: ${(res.stderr || String(res.error)).trim().split('\n').pop()}` };
  const line = res.stdout.trim().split('\n').pop() ?? '{}';
  return JSON.parse(line) as ChildResult;
}

export interface OtBenchRow {
  entry: string;
  baseline?: string;
  n: number;
  ours: ChildResult;
  pot?: ChildResult;
}

export interface RunOtBenchOptions {
  entries?: OtBenchEntry[];
  /** Restrict to these sizes. */
  sizes?: number[];
  /** Write the section into bench/RESULTS.md (default true). */
  write?: boolean;
  log?: (line: string) => void;
}

/** Runs every entry at every size (ours and its POT baselines), returns the rows and writes RESULTS.md. */
export async function runOtBench(options: RunOtBenchOptions = {}): Promise<OtBenchRow[]> {
  const entries = options.entries ?? otBenchEntries;
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const rows: OtBenchRow[] = [];
  const allSizes = [...new Set(entries.flatMap((e) => e.sizes))].sort((p, q) => p - q);
  const sizes = options.sizes ? allSizes.filter((n) => options.sizes!.includes(n)) : allSizes;
  for (const n of sizes) writeProblem(n);
  const potCache = new Map<string, ChildResult>();
  for (const entry of entries) {
    const timeout = entry.timeoutSeconds ?? 300;
    for (const n of entry.sizes.filter((s) => sizes.includes(s))) {
      const ours = runChild(
        process.execPath,
        ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', entry.module, entry.id, String(n)],
        timeout,
      );
      log(`${entry.id} n=${n}: ours ${JSON.stringify(ours)}`);
      const baselines = (entry.pot ?? []).filter((b) => (b.sizes ?? entry.sizes).includes(n));
      if (baselines.length === 0) rows.push({ entry: entry.label, n, ours });
      for (const baseline of baselines) {
        const key = `${baseline.method}:${JSON.stringify(baseline.params ?? {})}:${n}`;
        let pot = potCache.get(key);
        if (!pot) {
          pot = runChild(
            '/usr/bin/python3',
            [
              join(HERE, 'pot_bench.py'),
              problemPath(n),
              String(n),
              baseline.method,
              JSON.stringify({ ...baseline.params, repetitions: repetitions(n) }),
            ],
            timeout,
          );
          potCache.set(key, pot);
          log(`${entry.id} n=${n}: ${baseline.label} ${JSON.stringify(pot)}`);
        }
        rows.push({ entry: entry.label, baseline: baseline.label, n, ours, pot });
      }
    }
  }
  if (options.write ?? true) writeOtSection(renderOtSection(rows));
  return rows;
}

function machine(): string {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    cpu = /model name\s*:\s*(.*)/.exec(info)?.[1] ?? cpu;
  } catch {}
  let nproc = String(cpus().length);
  try {
    nproc = execFileSync('nproc', { encoding: 'utf8' }).trim();
  } catch {}
  let potVersion = 'unknown';
  try {
    potVersion = execFileSync('/usr/bin/python3', ['-c', 'import ot; print(ot.__version__)'], {
      encoding: 'utf8',
    }).trim();
  } catch {}
  return `nproc ${nproc}, CPU ${cpu}, Node ${process.version}, POT ${potVersion}`;
}

const fmtS = (r?: ChildResult) => (r?.seconds === undefined ? (r?.skipped ?? '-') : r.seconds.toFixed(3));
const fmtMb = (r?: ChildResult) => (r?.maxRssMb === undefined ? '-' : r.maxRssMb.toFixed(0));

/** Markdown for the OT section (without the markers). */
export function renderOtSection(rows: OtBenchRow[], notes: string[] = []): string {
  const lines = [
    '## Optimal transport (`npm run bench:ot`)',
    '',
    `Machine: ${machine()}. Run on ${new Date().toISOString().slice(0, 10)}, load average ${loadavg()[0].toFixed(1)} when`,
    'the table was written: the cores were shared with other jobs, so single cells vary by 2x between runs.',
    'Problems: 2-D Gaussian clouds x ~ N(0, I), y ~ N(1, I), n = m, uniform weights,',
    'squared Euclidean cost; identical data on both sides (written to a file). Times exclude building the cost.',
    'Each cell: best of 3 (n <= 1000), 2 (n = 2000) or 1 (n = 5000) runs in a fresh process after a small warm-up.',
    'ratio = ours / POT (below 1: we are faster). POT iters is its log["niter"] (0-based index of the last',
    'iteration). Stopping: ours on the L1 marginal error, POT on its L2 norm (smaller), both at 1e-9 and tested',
    'every 10 iterations, so we often run up to 10 iterations more for the stricter test.',
    'Peak RSS is the whole child process (Node ~50 MB and Python+numpy ~60 MB at rest), e.g. at n = 5000 one dense',
    'float64 matrix is 200 MB.',
    '',
    '| solver | baseline | n | ours (s) | POT (s) | ratio | our iters | POT iters | rel. cost diff | our peak RSS (MB) | POT peak RSS (MB) |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const ratio =
      r.ours.seconds !== undefined && r.pot?.seconds !== undefined
        ? (r.ours.seconds / r.pot.seconds).toFixed(2)
        : '-';
    const diff =
      r.ours.cost !== undefined && r.pot?.cost !== undefined
        ? (Math.abs(r.ours.cost - r.pot.cost) / Math.abs(r.pot.cost)).toExponential(1)
        : '-';
    lines.push(
      `| ${r.entry} | ${r.baseline ?? '-'} | ${r.n} | ${fmtS(r.ours)} | ${fmtS(r.pot)} | ${ratio} | ${r.ours.iterations ?? '-'} | ${r.pot?.iterations ?? '-'} | ${diff} | ${fmtMb(r.ours)} | ${fmtMb(r.pot)} |`,
    );
  }
  if (notes.length > 0) lines.push('', ...notes);
  return lines.join('\n');
}

/** Replaces (or appends) the OT section of bench/RESULTS.md, leaving everything else alone. */
export function writeOtSection(markdown: string, path = RESULTS): void {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    text = '# Benchmark results\n\n';
  }
  const block = `${BEGIN}\n${markdown}\n${END}`;
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (start >= 0 && end > start) text = text.slice(0, start) + block + text.slice(end + END.length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(path, text);
}

async function loadExtraEntries(): Promise<OtBenchEntry[]> {
  const extra: OtBenchEntry[] = [];
  for (const rel of EXTRA_ENTRY_MODULES) {
    const path = join(ROOT, rel);
    try {
      readFileSync(path);
    } catch {
      continue;
    }
    const mod = await import(pathToFileURL(path).href);
    extra.push(...((mod.benchEntries ?? []) as OtBenchEntry[]));
  }
  return extra;
}

/** The SNS table from bench/ot/sns.ts's benchSns(), or undefined when that module is absent. */
async function snsMarkdown(): Promise<string | undefined> {
  const path = join(ROOT, SNS_MODULE);
  try {
    readFileSync(path);
  } catch {
    return undefined;
  }
  const mod = await import(pathToFileURL(path).href);
  return typeof mod.benchSns === 'function' ? ((await mod.benchSns()) as string) : undefined;
}

/** The SNS block currently in RESULTS.md (markers included), to keep it when SNS is not rerun. */
function existingSnsBlock(): string | undefined {
  try {
    const text = readFileSync(RESULTS, 'utf8');
    const start = text.indexOf(SNS_BEGIN);
    const end = text.indexOf(SNS_END);
    return start >= 0 && end > start ? text.slice(start, end + SNS_END.length) : undefined;
  } catch {
    return undefined;
  }
}

async function main(args: string[]): Promise<void> {
  if (args[0] === '--child') {
    await child(args[1], args[2], Number(args[3]));
    return;
  }
  // Optional: --sizes 500,1000 --only emd,sinkhorn --no-sns --no-write
  const sizesArg = args.indexOf('--sizes');
  const onlyArg = args.indexOf('--only');
  const sizes = sizesArg >= 0 ? args[sizesArg + 1].split(',').map(Number) : undefined;
  let entries = [...otBenchEntries, ...(await loadExtraEntries())];
  if (onlyArg >= 0) {
    const only = args[onlyArg + 1].split(',');
    entries = entries.filter((e) => only.includes(e.id));
  }
  const rows = await runOtBench({ entries, sizes, write: false });
  let snsBlock = existingSnsBlock();
  if (!args.includes('--no-sns')) {
    const sns = await snsMarkdown();
    if (sns) snsBlock = `${SNS_BEGIN}\n${sns}\n${SNS_END}`;
  }
  const notes = [
    "Skipped on purpose: POT's `sinkhorn_log` and our forced log domain above n = 1000 (POT needs about 5 s at",
    'n = 1000 and scales as n^2 per iteration). Everything else ran at every size; nothing hit its time limit.',
    "Our 'auto' Sinkhorn runs in the kernel domain here ((max C - min C)/eps = 100 <= 250) with WebAssembly SIMD",
    'dot/axpy; the forced log domain uses a vectorised exp (src/ot/simd.ts). emd runs without a pivot cap on both',
    "sides (POT's default numItermax = 100000 would stop early at n = 5000).",
  ];
  const markdown = renderOtSection(rows, notes) + (snsBlock ? `\n\n${snsBlock}` : '');
  if (!args.includes('--no-write')) writeOtSection(markdown);
  else process.stdout.write(`\n${markdown}\n`);
}

// No top-level await: children import this very module to look up entries, and a module cannot import
// itself while suspended in a top-level await.
const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  });
}
