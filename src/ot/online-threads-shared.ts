/**
 * What the calling thread and the helper threads of the threaded CPU soft-min (online-threads.ts) share: the
 * layout of one solve's shared memory, the messages, the block counter and each thread's share of a call.
 */
import type { CpuSoftmin } from './online-cpu.js';
import type { OnlineCost } from './online-kernel.js';

/** Lengths (float64 elements) of the shared arrays of one solve with `threads` threads. */
export interface SharedLayout {
  n: number;
  m: number;
  dim: number;
  threads: number;
}

/** Int32 words of the control memory. */
const NEXT = 0;
const CANCEL = 1;
export const CONTROL_WORDS = 2;

export interface SharedViews {
  /** The clouds, row-major as in OnlineGeometry. */
  x: Float64Array;
  y: Float64Array;
  /** The call's inputs: u (h of a sweep, g of a fused sweep, hr of costSum), w (hc of costSum). */
  u: Float64Array;
  w: Float64Array;
  a: Float64Array;
  b: Float64Array;
  /** Per-index outputs (f of a fused sweep, read and written; out of a sweep). */
  out: Float64Array;
  /** The column accumulator of thread t (t >= 1; thread 0, the caller, keeps its own). */
  partial(t: number): Float64Array;
  control: Int32Array;
}

export function sharedBytes(layout: SharedLayout): number {
  const { n, m, dim, threads } = layout;
  const big = Math.max(n, m);
  return 8 * ((n + m) * dim + 3 * big + n + m + threads * m);
}

export function sharedViews(
  layout: SharedLayout,
  buffer: SharedArrayBuffer,
  control: SharedArrayBuffer,
): SharedViews {
  const { n, m, dim } = layout;
  const big = Math.max(n, m);
  let offset = 0;
  const take = (len: number) => {
    const view = new Float64Array(buffer, offset, len);
    offset += 8 * len;
    return view;
  };
  const x = take(n * dim);
  const y = take(m * dim);
  const u = take(big);
  const w = take(big);
  const a = take(n);
  const b = take(m);
  const out = take(big);
  const partials = offset;
  return {
    x,
    y,
    u,
    w,
    a,
    b,
    out,
    partial: (t) => new Float64Array(buffer, partials + 8 * m * t, m),
    control: new Int32Array(control, 0, CONTROL_WORDS),
  };
}

export interface HelperInit {
  op: 'init';
  layout: SharedLayout;
  buffer: SharedArrayBuffer;
  control: SharedArrayBuffer;
  geometry: { n: number; m: number; dim: number; cost: OnlineCost; costScale: number };
  /** This thread's partial accumulator (1 ..threads - 1). */
  index: number;
}

export interface HelperCall {
  op: 'fused' | 'rows' | 'cols' | 'cost';
  seq: number;
  eps: number;
  /** Rows (or columns) taken at a time from the shared counter. */
  block: number;
}

export type HelperMessage = HelperInit | HelperCall | { op: 'free' };

/** Resets the counter of a call (the caller, before posting it). */
export function resetBlocks(control: Int32Array): void {
  Atomics.store(control, NEXT, 0);
}

/** Stops every thread at its next block (a call left behind). */
export function cancelBlocks(control: Int32Array): void {
  Atomics.store(control, CANCEL, 1);
}

/**
 * Runs fn(i) for the blocks of [0, count) this thread takes from the shared counter: threads that are faster
 * (or less loaded) take more blocks. Stops early once the call is cancelled.
 */
export function takeBlocks(control: Int32Array, count: number, block: number, fn: (i: number) => void): void {
  for (;;) {
    if (Atomics.load(control, CANCEL)) return;
    const start = Atomics.add(control, NEXT, block);
    if (start >= count) return;
    const end = Math.min(count, start + block);
    for (let i = start; i < end; i++) fn(i);
  }
}

/** One thread's share of a call (index 0: the calling thread); returns its partial sum (costSum) or 0. */
export function runShare(cpu: CpuSoftmin, views: SharedViews, index: number, call: HelperCall): number {
  const { u, w, a, b, out, control } = views;
  const { eps, block } = call;
  switch (call.op) {
    case 'fused': {
      cpu.fusedBegin(u, b);
      takeBlocks(control, cpu.n, block, (i) => cpu.fusedRow(i, u, a[i], b, eps, out));
      if (index > 0) views.partial(index).set(cpu.fusedColumns);
      return 0;
    }
    case 'rows':
    case 'cols': {
      const rows = call.op === 'rows';
      cpu.sweepBegin(rows, u);
      takeBlocks(control, rows ? cpu.n : cpu.m, block, (i) => cpu.sweepRow(rows, i, eps, out));
      return 0;
    }
    case 'cost': {
      cpu.costBegin(w);
      let total = 0;
      takeBlocks(control, cpu.n, block, (i) => {
        total += cpu.costRowSum(i, u[i], eps);
      });
      return total;
    }
  }
}
