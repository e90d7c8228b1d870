/**
 * The CPU soft-min of online Sinkhorn on several threads for one problem: the calling thread and up to
 * threads - 1 helper threads (online-thread.ts) split every sweep by rows (by columns for a column sweep).
 * The clouds and the vectors of each call live in one SharedArrayBuffer per solve; each thread keeps its own
 * CpuSoftmin (its own WebAssembly memory, a copy of the clouds: O((n + m) dim) per thread) and takes blocks of
 * rows from a shared counter, so a thread slowed by other work on its core takes fewer. Every row is computed
 * exactly as on one thread; only the sums over rows (the column accumulator of the fused sweep, the transport
 * cost) add the threads' partial sums, so results equal the one-thread ones to rounding (about 1e-16 relative),
 * not bit for bit.
 *
 * Helper threads are kept per calling thread between solves (starting one costs tens of milliseconds, more from
 * the TypeScript sources), unreferenced while idle, and ended after ONLINE_THREAD_IDLE_MS without a solve. A
 * compute worker that is terminated (a deadline) takes its helper threads with it.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CpuSoftmin, type SoftminCostBackend, setThreadedFactory } from './online-cpu.js';
import type { OnlineGeometry } from './online-kernel.js';
import {
  CONTROL_WORDS,
  cancelBlocks,
  type HelperCall,
  type HelperMessage,
  resetBlocks,
  runShare,
  type SharedLayout,
  type SharedViews,
  sharedBytes,
  sharedViews,
} from './online-threads-shared.js';

/** Below this many pairs per thread, a problem uses fewer threads (a call's messages cost ~0.1 ms). */
export const MIN_PAIRS_PER_THREAD = 1_000_000;
/**
 * Each thread holds its own copy of both clouds ((n + m) dim doubles, in its WebAssembly memory): a problem gets
 * at most as many threads as copies fit in this many bytes (at least one).
 */
export const MAX_THREAD_CLOUD_BYTES = 512 * 2 ** 20;
/** Idle helper threads are ended after this long without a solve. */
let idleMs = 30_000;

interface Helper {
  worker: Worker;
  pending?: { seq: number; resolve: (value: number) => void; reject: (err: Error) => void };
  dead: boolean;
  timer?: NodeJS.Timeout;
}

const idle: Helper[] = [];
let live = 0;

let devBundle: string | undefined;

/**
 * A new helper thread. Compiled (dist/*.js): online-thread.js. From the TypeScript sources (tests, tsx): the same
 * entry bundled once by esbuild (a dev dependency) and run as a CommonJS script: tsx's loader would cost each
 * helper about 40 MB, where a helper of compiled code costs a few MB.
 */
function newHelperWorker(): Worker {
  const self = fileURLToPath(import.meta.url);
  // No inherited execArgv: a helper needs no loader (tsx's `--import` would cost it ~10 MB) nor other flags.
  if (!self.endsWith('.ts'))
    return new Worker(self.replace(/online-threads\.js$/, 'online-thread.js'), { execArgv: [] });
  if (devBundle === undefined) {
    const esbuild = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
    const out = esbuild.buildSync({
      entryPoints: [self.replace(/online-threads\.ts$/, 'online-thread.ts')],
      bundle: true,
      format: 'cjs',
      platform: 'node',
      write: false,
      logLevel: 'silent',
    });
    devBundle = out.outputFiles[0].text;
  }
  return new Worker(devBundle, { eval: true, execArgv: [] });
}

function spawnHelper(): Helper {
  const helper: Helper = { worker: newHelperWorker(), dead: false };
  live++;
  const fail = (err: Error) => {
    if (!helper.dead) live--;
    helper.dead = true;
    const pending = helper.pending;
    helper.pending = undefined;
    pending?.reject(err);
    const k = idle.indexOf(helper);
    if (k >= 0) idle.splice(k, 1);
  };
  helper.worker.on('message', (msg: { seq: number; value: number }) => {
    const pending = helper.pending;
    if (!pending || pending.seq !== msg.seq) return;
    helper.pending = undefined;
    pending.resolve(msg.value);
  });
  helper.worker.on('error', (err) => fail(err));
  helper.worker.on('exit', (code) => fail(new Error(`online helper thread exited (code ${code})`)));
  return helper;
}

function acquireHelpers(count: number): Helper[] {
  const out: Helper[] = [];
  while (out.length < count) {
    const helper = idle.pop() ?? spawnHelper();
    if (helper.timer) clearTimeout(helper.timer);
    helper.timer = undefined;
    helper.worker.ref();
    out.push(helper);
  }
  return out;
}

function releaseHelper(helper: Helper): void {
  if (helper.dead) return;
  if (helper.pending) {
    // A call still running (the solve failed in between): stop it and end the thread.
    endHelper(helper);
    return;
  }
  helper.worker.postMessage({ op: 'free' } satisfies HelperMessage);
  helper.worker.unref();
  helper.timer = setTimeout(() => {
    const k = idle.indexOf(helper);
    if (k >= 0) idle.splice(k, 1);
    endHelper(helper);
  }, idleMs);
  helper.timer.unref();
  idle.push(helper);
}

function endHelper(helper: Helper): void {
  if (helper.timer) clearTimeout(helper.timer);
  if (!helper.dead) live--;
  helper.dead = true;
  helper.pending?.reject(new Error('online helper thread ended'));
  helper.pending = undefined;
  void helper.worker.terminate();
}

/** Helper threads of this thread: alive (idle or in a solve) and idle. */
export function onlineThreadStats(): { live: number; idle: number } {
  return { live, idle: idle.length };
}

/** Ends the idle helper threads now (shutdown, tests); those in a solve end when it does. */
export async function closeOnlineThreads(): Promise<void> {
  const all = idle.splice(0);
  await Promise.all(
    all.map(async (helper) => {
      if (helper.timer) clearTimeout(helper.timer);
      if (!helper.dead) live--;
      helper.dead = true;
      await helper.worker.terminate();
    }),
  );
}

/** How long idle helper threads are kept (ms); returns the previous value. For tests. */
export function setOnlineThreadIdleMs(ms: number): number {
  const previous = idleMs;
  idleMs = ms;
  return previous;
}

export interface ThreadedSoftminOptions {
  /** Threads for one problem, the calling thread included. */
  threads: number;
  /** Fewer threads below this many pairs per thread. Default MIN_PAIRS_PER_THREAD. */
  minPairsPerThread?: number;
}

/**
 * The threads a problem of n x m pairs in `dim` dimensions gets out of `threads`: fewer when it is small (under
 * minPairsPerThread pairs per thread) or when the clouds' copies would pass MAX_THREAD_CLOUD_BYTES.
 */
export function threadsFor(
  n: number,
  m: number,
  threads: number,
  minPairsPerThread = MIN_PAIRS_PER_THREAD,
  dim = 1,
): number {
  const cloudBytes = 8 * (n + m) * dim;
  const wanted = Math.max(1, Math.min(Math.floor(threads), Math.floor(MAX_THREAD_CLOUD_BYTES / cloudBytes)));
  if (minPairsPerThread <= 0) return wanted;
  return Math.max(1, Math.min(wanted, Math.floor((n * m) / minPairsPerThread)));
}

/** The threaded CPU soft-min for one geometry; use threadedCpuSoftmin() as a factory. */
export class ThreadedCpuSoftmin implements SoftminCostBackend {
  /** The one-thread name and the threads: 'cpu-wasm-simd x2'. */
  readonly name: string;
  readonly threads: number;
  private readonly local: CpuSoftmin;
  private readonly helpers: Helper[];
  private readonly views: SharedViews;
  private seq = 0;
  private disposed = false;

  constructor(geometry: OnlineGeometry, threads: number) {
    this.local = new CpuSoftmin(geometry);
    const { n, m, dim } = geometry;
    const layout: SharedLayout = { n, m, dim, threads };
    const buffer = new SharedArrayBuffer(sharedBytes(layout));
    const control = new SharedArrayBuffer(4 * CONTROL_WORDS);
    this.views = sharedViews(layout, buffer, control);
    this.views.x.set(geometry.x);
    this.views.y.set(geometry.y);
    this.helpers = acquireHelpers(threads - 1);
    this.threads = threads;
    this.name = `${this.local.name} x${threads}`;
    const { cost, costScale } = geometry;
    this.helpers.forEach((helper, k) => {
      helper.worker.postMessage({
        op: 'init',
        layout,
        buffer,
        control,
        geometry: { n, m, dim, cost, costScale },
        index: k + 1,
      } satisfies HelperMessage);
    });
  }

  /** One call on every thread: the helpers' shares posted, this thread's share run, their partial sums. */
  private async call(op: HelperCall['op'], eps: number, count: number): Promise<number> {
    if (this.disposed) throw new Error('the threaded soft-min was disposed');
    const seq = ++this.seq;
    const block = Math.max(1, Math.min(64, Math.ceil(count / (this.threads * 16))));
    const msg: HelperCall = { op, seq, eps, block };
    resetBlocks(this.views.control);
    const replies = this.helpers.map(
      (helper) =>
        new Promise<number>((resolve, reject) => {
          if (helper.dead) {
            reject(new Error('online helper thread ended'));
            return;
          }
          helper.pending = { seq, resolve, reject };
          helper.worker.postMessage(msg);
        }),
    );
    let own: number;
    try {
      own = runShare(this.local, this.views, 0, msg);
    } catch (err) {
      cancelBlocks(this.views.control);
      await Promise.allSettled(replies);
      throw err;
    }
    const values = await Promise.all(replies);
    return values.reduce((total, v) => total + v, own);
  }

  async rows(h: Float64Array, eps: number, out: Float64Array): Promise<void> {
    this.views.u.set(h.subarray(0, this.local.m));
    await this.call('rows', eps, this.local.n);
    out.set(this.views.out.subarray(0, this.local.n));
  }

  async cols(h: Float64Array, eps: number, out: Float64Array): Promise<void> {
    this.views.u.set(h.subarray(0, this.local.n));
    await this.call('cols', eps, this.local.m);
    out.set(this.views.out.subarray(0, this.local.m));
  }

  async costSum(hr: Float64Array, hc: Float64Array, eps: number): Promise<number> {
    this.views.u.set(hr.subarray(0, this.local.n));
    this.views.w.set(hc.subarray(0, this.local.m));
    return this.call('cost', eps, this.local.n);
  }

  async rowsFused(
    g: Float64Array,
    a: Float64Array,
    b: Float64Array,
    eps: number,
    f: Float64Array,
    colAcc: Float64Array,
  ): Promise<void> {
    const { n, m } = this.local;
    const { u, out } = this.views;
    u.set(g.subarray(0, m));
    this.views.a.set(a.subarray(0, n));
    this.views.b.set(b.subarray(0, m));
    out.set(f.subarray(0, n));
    await this.call('fused', eps, n);
    f.set(out.subarray(0, n));
    // The column sums in a fixed order: this thread's, then each helper's.
    colAcc.set(this.local.fusedColumns.subarray(0, m));
    for (let t = 1; t < this.threads; t++) {
      const partial = this.views.partial(t);
      for (let j = 0; j < m; j++) colAcc[j] += partial[j];
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    cancelBlocks(this.views.control);
    this.local.dispose();
    for (const helper of this.helpers) releaseHelper(helper);
  }
}

/**
 * A SoftminFactory on `threads` threads (the calling one included); one thread, or a problem too small to
 * share (see threadsFor), is the plain CpuSoftmin.
 */
export function threadedCpuSoftmin(
  options: ThreadedSoftminOptions,
): (geometry: OnlineGeometry) => SoftminCostBackend {
  return (geometry) => {
    const { n, m, dim } = geometry;
    const threads = threadsFor(n, m, options.threads, options.minPairsPerThread, dim);
    return threads > 1 ? new ThreadedCpuSoftmin(geometry, threads) : new CpuSoftmin(geometry);
  };
}

/**
 * Threads for one online problem in this thread's cpuSoftmin (the default CPU backend): OT_ONLINE_THREADS,
 * set by each compute worker at start. 1 (the default) keeps every solve on the calling thread.
 */
export function setOnlineThreads(threads: number, minPairsPerThread = MIN_PAIRS_PER_THREAD): void {
  setThreadedFactory(threads > 1 ? threadedCpuSoftmin({ threads, minPairsPerThread }) : undefined);
}
