/**
 * The CPU soft-min backend of online Sinkhorn (see online-kernel.ts): the cost is computed on the fly from the
 * points, memory O((n + m) * dim). Each row (and each column) takes two passes over the other cloud:
 *   1. v_j = h_j - c(x_i, y_j) and M = max_j v_j       (costRow: the cost from the points, no exp)
 *   2. S = sum_j exp((v_j - M) / eps)                   (expSum: the vectorised exp of simd.ts)
 * and out_i = -(M + eps log S): the exact max shift, so it is stable for any eps and S is in [1, m].
 * Both passes are WebAssembly SIMD (f64x2) kernels when the runtime has them (simd.ts), else plain loops.
 * The points are stored dim-major (coordinate k of point j at k * count + j) so that two points load at once.
 *
 * Beyond the interface, this backend also gives the transport cost of the plan (`costSum`), and the entries of
 * one row of the plan (`rowScores`) from which a sparse plan is selected: see online.ts.
 */
import type { OnlineGeometry, SoftminBackend } from './online-kernel.js';
import { simdWorkspace } from './simd.js';
import { OtInputError } from './types.js';

/** What online.ts may use beyond SoftminBackend, when a backend offers it (the CPU one does). */
export interface SoftminCostBackend extends SoftminBackend {
  /**
   * sum_ij exp((hr_i + hc_j - c_ij) / eps) * c_ij, c divided by costScale: with hr = f + eps log a and
   * hc = g + eps log b this is <C, P>. -Infinity entries of hr/hc contribute nothing.
   */
  costSum(hr: Float64Array, hc: Float64Array, eps: number): number | Promise<number>;
  /**
   * A row update fused with the next column accumulation (one exp per pair instead of two, as sinkhorn.ts's
   * log domain): f_i = -eps log sum_j b_j exp((g_j - c_ij)/eps), then
   * colAcc_j = sum_i a_i exp((f_i + g_j - c_ij)/eps), the column marginal of the new plan divided by b_j.
   */
  rowsFused(
    g: Float64Array,
    a: Float64Array,
    b: Float64Array,
    eps: number,
    f: Float64Array,
    colAcc: Float64Array,
  ): void | Promise<void>;
}

export interface CpuSoftminOptions {
  /** Use the WebAssembly SIMD kernels when available (default true; tests turn it off to cover the loops). */
  simd?: boolean;
}

/** Stands for -Infinity where a cost must still be recovered as h - v (-Infinity - -Infinity is NaN). */
const VERY_NEGATIVE = -1e300;
/** A row's shifted sum outside this range is redone exactly (as in sinkhorn.ts). */
const SAFE_LOW = 1e-250;
const SAFE_HIGH = 1e250;

export class CpuSoftmin implements SoftminCostBackend {
  readonly name: string;
  readonly n: number;
  readonly m: number;
  readonly dim: number;
  private readonly euclid: boolean;
  private readonly cs: number;
  /** [x dim-major, y dim-major, h, v, res] in a wasm memory, or plain arrays. */
  private readonly xs: Float64Array;
  private readonly ys: Float64Array;
  private readonly h: Float64Array;
  private readonly v: Float64Array;
  private readonly res: Float64Array;
  private readonly b: Float64Array;
  private readonly colAcc: Float64Array;
  private readonly ws: ReturnType<typeof simdWorkspace>;

  constructor(geometry: OnlineGeometry, options: CpuSoftminOptions = {}) {
    const { n, m, dim, x, y } = geometry;
    if (x.length !== n * dim || y.length !== m * dim)
      throw new OtInputError(
        `online geometry: x has ${x.length} values, y ${y.length}, for n=${n} m=${m} d=${dim}`,
      );
    if (geometry.cost !== 'sqeuclidean' && geometry.cost !== 'euclidean')
      throw new OtInputError(
        `online Sinkhorn supports the sqeuclidean and euclidean costs, not '${geometry.cost}'`,
      );
    if (!(geometry.costScale > 0) || !Number.isFinite(geometry.costScale))
      throw new OtInputError(`costScale must be a finite positive number, got ${geometry.costScale}`);
    this.n = n;
    this.m = m;
    this.dim = dim;
    this.euclid = geometry.cost === 'euclidean';
    this.cs = 1 / geometry.costScale;
    const big = Math.max(n, m);
    // x, y (dim-major), h, v, res, then b and colAcc for the fused row sweep.
    const lengths = [dim * n, dim * m, big, big, 2, m, m];
    this.ws = options.simd === false ? undefined : simdWorkspace(lengths);
    const arrays = this.ws?.arrays ?? lengths.map((len) => new Float64Array(len));
    [this.xs, this.ys, this.h, this.v, this.res, this.b, this.colAcc] = arrays;
    for (let i = 0; i < n; i++) for (let k = 0; k < dim; k++) this.xs[k * n + i] = x[i * dim + k];
    for (let j = 0; j < m; j++) for (let k = 0; k < dim; k++) this.ys[k * m + j] = y[j * dim + k];
    this.name = this.ws ? 'cpu-wasm-simd' : 'cpu-js';
  }

  rows(h: Float64Array, eps: number, out: Float64Array): void {
    this.sweep(true, h, eps, out);
  }

  cols(h: Float64Array, eps: number, out: Float64Array): void {
    this.sweep(false, h, eps, out);
  }

  dispose(): void {}

  costSum(hr: Float64Array, hc: Float64Array, eps: number): number {
    this.costBegin(hc);
    let total = 0;
    for (let i = 0; i < this.n; i++) total += this.costRowSum(i, hr[i], eps);
    return total;
  }

  /** Starts costSum over some rows: hc into the workspace (then costRowSum per row, in any order). */
  costBegin(hc: Float64Array): void {
    const { m, h } = this;
    for (let j = 0; j < m; j++) h[j] = hc[j] === Number.NEGATIVE_INFINITY ? VERY_NEGATIVE : hc[j];
  }

  /** Row i's term of costSum: sum_j exp((hr_i + hc_j - c_ij)/eps) c_ij. */
  costRowSum(i: number, hri: number, eps: number): number {
    if (hri === Number.NEGATIVE_INFINITY) return 0;
    const invEps = 1 / eps;
    const max = this.rowPass(true, i, this.m);
    if (max === Number.NEGATIVE_INFINITY) return 0;
    this.expPass(this.m, max, invEps);
    // sum_j exp((hr_i + v_j)/eps) c_ij = exp((hr_i + M)/eps) * sum_j exp((v_j - M)/eps) c_ij
    return Math.exp((hri + max) * invEps) * this.res[0];
  }

  rowsFused(
    g: Float64Array,
    a: Float64Array,
    b: Float64Array,
    eps: number,
    f: Float64Array,
    colAcc: Float64Array,
  ): void {
    this.fusedBegin(g, b);
    for (let i = 0; i < this.n; i++) this.fusedRow(i, g, a[i], b, eps, f);
    colAcc.set(this.colAcc);
  }

  /**
   * Starts a fused row sweep over some rows (rowsFused is fusedBegin, fusedRow for every row, then the
   * accumulated columns): g and b into the workspace, the column accumulator zeroed.
   */
  fusedBegin(g: Float64Array, b: Float64Array): void {
    const { m, n, dim, cs, euclid } = this;
    this.h.set(g.subarray(0, m));
    this.b.set(b.subarray(0, m));
    this.colAcc.fill(0);
    this.ws?.costExpArgs(1, 0, n, 2, 3, 5, dim, cs, euclid);
  }

  /** The columns accumulated by fusedRow since fusedBegin (sum over those rows of a_i exp((f_i + g_j - c_ij)/eps)). */
  get fusedColumns(): Float64Array {
    return this.colAcc;
  }

  /** One row of rowsFused: the new f_i, and its plan row added to the column accumulator. */
  fusedRow(i: number, g: Float64Array, ai: number, b: Float64Array, eps: number, f: Float64Array): void {
    const { m, h, v, ws, cs } = this;
    const invEps = 1 / eps;
    const even = m & ~1;
    // One pass with the previous f_i as the shift (as sinkhorn.ts): t_j = exp((f_i + g_j - c_ij)/eps),
    // s = sum_j b_j t_j, near 1 once the potentials settle; the exact two-pass row when s is out of range.
    const fi = f[i];
    let s = Number.NaN;
    if (ws && Number.isFinite(fi)) {
      s = ws.costExp(i, m, fi * invEps, invEps);
      for (let j = even; j < m; j++) {
        v[j] = Math.exp((fi + h[j] - cs * this.cost(i, j)) * invEps);
        s += this.b[j] * v[j];
      }
    }
    if (s >= SAFE_LOW && s <= SAFE_HIGH) f[i] = fi - eps * Math.log(s);
    else {
      s = this.twoPassRow(i, eps, f);
      if (!(s >= SAFE_LOW && s <= SAFE_HIGH)) {
        this.exactRow(i, g, b, ai, eps, f);
        return;
      }
    }
    const w = ai / s; // a_i exp((f_i + g_j - c_ij)/eps) = (a_i / s) t_j with the new f_i
    if (w !== 0) {
      if (ws) ws.axpy(w, 3, 0, 6, m);
      else {
        const acc = this.colAcc;
        for (let j = 0; j < m; j++) acc[j] += w * v[j];
      }
    }
  }

  /**
   * Row i in two passes with the exact max shift M = max_j (g_j - c_ij) (h holds g): leaves
   * t_j = exp((g_j - c_ij - M)/eps) in v, sets f_i = -(M + eps log s) and returns s = sum_j b_j t_j.
   */
  private twoPassRow(i: number, eps: number, f: Float64Array): number {
    const { m, v, ws } = this;
    const invEps = 1 / eps;
    const max = this.rowPass(true, i, m);
    let s = 0;
    let start = 0;
    if (ws) {
      s = ws.expStoreDot(3, 5, m, -max * invEps, invEps);
      start = m & ~1;
    }
    for (let j = start; j < m; j++) {
      v[j] = Math.exp((v[j] - max) * invEps);
      s += this.b[j] * v[j];
    }
    f[i] = -(max + eps * Math.log(s));
    return s;
  }

  /**
   * The fused row update without shortcuts, for a row whose shifted sum left the safe range (its largest
   * term sits on a column of zero or tiny weight): the exact max shift over g_j + eps log b_j.
   */
  private exactRow(
    i: number,
    g: Float64Array,
    b: Float64Array,
    ai: number,
    eps: number,
    f: Float64Array,
  ): void {
    const { m, h, v } = this;
    const invEps = 1 / eps;
    for (let j = 0; j < m; j++) h[j] = g[j] + eps * Math.log(b[j]);
    const max = this.rowPass(true, i, m);
    let s = 0;
    for (let j = 0; j < m; j++) s += Math.exp((v[j] - max) * invEps);
    f[i] = -(max + eps * Math.log(s));
    if (ai !== 0) {
      // v_j - eps log b_j = g_j - c_ij (b_j = 0: recompute the cost from the points).
      for (let j = 0; j < m; j++) {
        const gc = b[j] > 0 ? v[j] - eps * Math.log(b[j]) : g[j] - this.cs * this.cost(i, j);
        this.colAcc[j] += ai * Math.exp((f[i] + gc) * invEps);
      }
    }
    h.set(g.subarray(0, m));
  }

  /** c(x_i, y_j) (unscaled). */
  private cost(i: number, j: number): number {
    let s = 0;
    for (let k = 0; k < this.dim; k++) {
      const d = this.xs[k * this.n + i] - this.ys[k * this.m + j];
      s += d * d;
    }
    return this.euclid ? Math.sqrt(s) : s;
  }

  /**
   * Fills `scores` (length m) with v_j = hc_j - c(x_i, y_j) (c divided by costScale) for row i: the plan's
   * row is P_ij = exp((hr_i + v_j) / eps). Returns max_j v_j.
   */
  rowScores(i: number, hc: Float64Array, scores: Float64Array): number {
    this.h.set(hc.subarray(0, this.m));
    const max = this.rowPass(true, i, this.m);
    scores.set(this.v.subarray(0, this.m));
    return max;
  }

  /** out_i = -eps log sum_j exp((h_j - c_ij)/eps) over rows (or the same over columns). */
  private sweep(rows: boolean, hIn: Float64Array, eps: number, out: Float64Array): void {
    this.sweepBegin(rows, hIn);
    const count = rows ? this.n : this.m;
    for (let i = 0; i < count; i++) this.sweepRow(rows, i, eps, out);
  }

  /** Starts a rows (or cols) sweep over some indices: h into the workspace (then sweepRow per index). */
  sweepBegin(rows: boolean, hIn: Float64Array): void {
    this.h.set(hIn.subarray(0, rows ? this.m : this.n));
  }

  /** out[i] of a rows (or cols) sweep. */
  sweepRow(rows: boolean, i: number, eps: number, out: Float64Array): void {
    const other = rows ? this.m : this.n;
    const max = this.rowPass(rows, i, other);
    if (max === Number.NEGATIVE_INFINITY) {
      out[i] = Number.POSITIVE_INFINITY;
      return;
    }
    const s = this.expPass(other, max, 1 / eps);
    out[i] = -(max + eps * Math.log(s));
  }

  /** Pass 1 for row i (or column i): v_j = h_j - cs c(p_i, q_j) for j < other; returns the max. */
  private rowPass(rows: boolean, i: number, other: number): number {
    const { dim, cs, euclid, h, v } = this;
    const P = rows ? this.xs : this.ys;
    const Q = rows ? this.ys : this.xs;
    const count = rows ? this.n : this.m;
    let max = Number.NEGATIVE_INFINITY;
    let start = 0;
    if (this.ws) {
      max = this.ws.costRow(rows ? 1 : 0, rows ? 0 : 1, i, count, 2, 3, other, dim, cs, euclid);
      start = other & ~1;
    }
    for (let j = start; j < other; j++) {
      let s = 0;
      for (let k = 0; k < dim; k++) {
        const d = P[k * count + i] - Q[k * other + j];
        s += d * d;
      }
      const val = h[j] - cs * (euclid ? Math.sqrt(s) : s);
      v[j] = val;
      if (val > max) max = val;
    }
    return max;
  }

  /** Pass 2: sum_j exp((v_j - max)/eps), and res[0] = sum_j exp(...) (h_j - v_j). */
  private expPass(other: number, max: number, invEps: number): number {
    const { h, v, res } = this;
    let s = 0;
    let w = 0;
    let start = 0;
    if (this.ws) {
      s = this.ws.expSum(3, 2, 4, other, -max * invEps, invEps);
      w = res[0];
      start = other & ~1;
    }
    for (let j = start; j < other; j++) {
      const e = Math.exp((v[j] - max) * invEps);
      s += e;
      if (e !== 0) w += e * (h[j] - v[j]);
    }
    res[0] = w;
    return s;
  }
}

/** How cpuSoftmin builds a backend on several threads, once set (setOnlineThreads of online-threads.ts). */
let threadedFactory: ((geometry: OnlineGeometry) => SoftminCostBackend) | undefined;

/** Makes cpuSoftmin use this factory (undefined: one thread). Called by online-threads.ts's setOnlineThreads. */
export function setThreadedFactory(
  factory: ((geometry: OnlineGeometry) => SoftminCostBackend) | undefined,
): void {
  threadedFactory = factory;
}

/**
 * The CPU SoftminFactory (the default of sinkhornOnline): one thread, or as many as setOnlineThreads
 * (OT_ONLINE_THREADS in a compute worker) allows for a problem of this size.
 */
export function cpuSoftmin(geometry: OnlineGeometry): SoftminCostBackend {
  return threadedFactory ? threadedFactory(geometry) : new CpuSoftmin(geometry);
}

/** The plain-loop variant (no WebAssembly), for tests and comparisons. */
export function cpuSoftminPlain(geometry: OnlineGeometry): CpuSoftmin {
  return new CpuSoftmin(geometry, { simd: false });
}
