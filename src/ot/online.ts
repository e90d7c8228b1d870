/**
 * Online (matrix-free) log-domain Sinkhorn for point clouds: the same iteration as sinkhorn.ts's log domain,
 * but the cost is never stored. Each half-step is one soft-min (online-kernel.ts) computed by a backend from
 * the points, so memory is O((n + m) * dim) and 100,000 x 100,000 problems need no 80 GB matrix:
 *   g = cols(f + eps log a, eps),   f = rows(g + eps log b, eps)
 * with P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) (sinkhorn.ts's convention). One iteration = a column update
 * then a row update, as in sinkhorn.ts, so from the same start both produce the same potentials (to rounding).
 *
 * Stopping: the L1 column-marginal error of the plan after a row update (rows exact), which the column update
 * gives for free: (P^T 1)_j = b_j exp((g_j - g_new_j) / eps). Tested every `checkEvery` iterations, with the
 * same epsilon-scaling schedule as sinkhorn.ts. Any SoftminFactory works (CPU here, WebGPU elsewhere): each
 * call is awaited. The CPU one splits each sweep over threads when set to (online-threads.ts, OT_ONLINE_THREADS). The transport cost <C, P> needs one more pass, which a backend may offer (`costSum`: the CPU
 * and WebGPU ones do); when it does not, the CPU backend computes it once at the end. A sparse plan (top-k per
 * row, or entries above a threshold) is selected from the potentials on request; a dense plan is never built.
 */
import { checkBalanced } from './marginals.js';
import { CpuSoftmin, cpuSoftmin, type SoftminCostBackend } from './online-cpu.js';
import type { OnlineGeometry, SoftminBackend, SoftminFactory } from './online-kernel.js';
import { SAFE_COST_MAGNITUDE } from './range.js';
import { type EpsilonScalingOptions, epsilonSchedule, notConverged, StageWarmStart } from './sinkhorn.js';
import { OtInputError, type OtResult, type SolveControl, type SparsePlan, throwIfAborted } from './types.js';

/** Column sums outside this range are recomputed exactly (as in sinkhorn.ts). */
const SAFE_LOW = 1e-250;
const SAFE_HIGH = 1e250;

export interface OnlineSinkhornOptions extends SolveControl {
  /** Entropic regularisation eps, in the units of the (scaled) cost. */
  reg: number;
  /** Total iteration budget over all stages. Default 1000. */
  maxIter?: number;
  /** Stop when the L1 marginal error is below tol. Default 1e-9. */
  tol?: number;
  /** Test the error, the abort signal and report progress every this many iterations. Default 10. */
  checkEvery?: number;
  /**
   * Geometric schedule from a large epsilon down to eps. The default first epsilon is an upper bound of the
   * cost range from the clouds' bounding box (the exact range would cost a pass over all n*m pairs).
   */
  epsilonScaling?: boolean | EpsilonScalingOptions;
  recordErrors?: boolean;
  /** Rescale b to the mass of a when they differ (else unbalanced marginals throw). */
  normalize?: boolean;
  /** Warm start (sinkhorn.ts's convention). */
  init?: { f?: ArrayLike<number>; g?: ArrayLike<number> };
}

export interface OnlineSinkhornResult extends OtResult {
  f: Float64Array;
  g: Float64Array;
  /** Entropic objective <C, P> + eps * KL(P | a b^T). */
  objective: number;
  marginalError: number;
  method: 'online';
  /** The soft-min backend's name ('cpu-wasm-simd', 'cpu-js', 'webgpu' ...). */
  backend: string;
  eps: number;
}

/** Solves entropic OT between two point clouds without forming the cost matrix. */
export async function sinkhornOnline(
  geometry: OnlineGeometry,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  options: OnlineSinkhornOptions,
  factory: SoftminFactory = cpuSoftmin,
): Promise<OnlineSinkhornResult> {
  const { n, m } = geometry;
  if (a.length !== n || b.length !== m)
    throw new OtInputError(
      `dimension mismatch: a has ${a.length}, b has ${b.length}, clouds are ${n} and ${m}`,
    );
  const reg = options.reg;
  if (!(reg > 0) || !Number.isFinite(reg))
    throw new OtInputError(`reg (epsilon) must be a finite positive number, got ${reg}`);
  const { a: wa, b: wb } = checkBalanced(a, b, { normalize: options.normalize });
  checkOnlineCostRange(geometry);
  const maxIter = options.maxIter ?? 1000;
  const tol = options.tol ?? 1e-9;
  const checkEvery = Math.max(1, Math.floor(options.checkEvery ?? 10));
  const logA = wa.map(Math.log);
  const logB = wb.map(Math.log);
  const f = new Float64Array(n);
  const g = new Float64Array(m);
  if (options.init?.f) f.set(options.init.f);
  if (options.init?.g) g.set(options.init.g);
  const schedule = epsilonSchedule(
    reg,
    options.epsilonScaling ? costRangeBound(geometry) : 0,
    options.epsilonScaling,
    tol,
  );

  const backend = await factory(geometry);
  try {
    const ha = new Float64Array(n);
    const hb = new Float64Array(m);
    const gNew = new Float64Array(m);
    const errorHistory: { iteration: number; error: number }[] | undefined = options.recordErrors
      ? []
      : undefined;
    let iterations = 0;
    let lastError = Number.POSITIVE_INFINITY;
    let converged = false;
    // Backends with a fused row sweep (the CPU one) need one exp per pair per iteration instead of two.
    const fused = hasRowsFused(backend) ? backend : undefined;
    const colAcc = new Float64Array(m);
    const warm = new StageWarmStart(
      typeof options.epsilonScaling === 'object' ? options.epsilonScaling.warmStart : undefined,
    );
    // The epsilon colAcc was last computed at (fused backends): at reg, it is the final column marginal.
    let colAccEps = Number.NaN;
    for (let s = 0; s < schedule.length; s++) {
      const { eps, stageTol } = schedule[s];
      // No iteration left for this stage: keep the last stage's (row-exact) potentials for the summary.
      if (iterations >= maxIter) break;
      warm.begin(f, g, eps);
      if (fused) {
        colAccEps = eps;
        // colAcc_j = b_j-normalised column marginal of the plan at this eps: exp((g_j - cols(f + eps log a)_j)/eps).
        for (let i = 0; i < n; i++) ha[i] = f[i] + eps * logA[i];
        await backend.cols(ha, eps, gNew);
        for (let j = 0; j < m; j++) {
          colAcc[j] = Math.exp((g[j] - gNew[j]) / eps);
          if (!(colAcc[j] >= SAFE_LOW && colAcc[j] <= SAFE_HIGH)) {
            g[j] = gNew[j];
            colAcc[j] = 1;
          }
        }
      }
      let sinceCheck = 0;
      let done = false;
      while (iterations < maxIter) {
        iterations++;
        sinceCheck++;
        const check = sinceCheck >= checkEvery;
        let error = 0;
        if (fused) {
          let unsafe = false;
          for (let j = 0; j < m; j++) {
            const c = colAcc[j];
            if (check) error += Math.abs(wb[j] * c - wb[j]);
            if (!(c >= SAFE_LOW && c <= SAFE_HIGH)) unsafe = true;
          }
          if (unsafe) {
            for (let i = 0; i < n; i++) ha[i] = f[i] + eps * logA[i];
            await backend.cols(ha, eps, gNew);
          }
          for (let j = 0; j < m; j++) {
            const c = colAcc[j];
            g[j] = c >= SAFE_LOW && c <= SAFE_HIGH ? g[j] - eps * Math.log(c) : gNew[j];
          }
        } else {
          for (let i = 0; i < n; i++) ha[i] = f[i] + eps * logA[i];
          await backend.cols(ha, eps, gNew);
          // Column marginal of the current plan: b_j exp((g_j - g_new_j)/eps).
          if (check)
            for (let j = 0; j < m; j++) error += Math.abs(wb[j] * Math.exp((g[j] - gNew[j]) / eps) - wb[j]);
          g.set(gNew);
        }
        if (check) {
          lastError = error;
          errorHistory?.push({ iteration: iterations, error });
          throwIfAborted(options.signal);
          options.onProgress?.(
            Math.min(1, iterations / maxIter),
            `sinkhorn online eps=${fmt(eps)} error=${fmt(error)}`,
          );
        }
        if (fused) await fused.rowsFused(g, wa, wb, eps, f, colAcc);
        else {
          for (let j = 0; j < m; j++) hb[j] = g[j] + eps * logB[j];
          await backend.rows(hb, eps, f);
        }
        if (check) {
          sinceCheck = 0;
          if (lastError < stageTol) {
            done = true;
            break;
          }
        }
      }
      if (s === schedule.length - 1) converged = done;
      if (!done) break;
      warm.end(f, g, eps);
    }

    // Summary at eps = reg (rows are exact after the row update): the column sums are those the last fused row
    // sweep accumulated (colAcc_j = exp((g_j - cols(f + reg log a)_j) / reg)), else one more soft-min.
    for (let i = 0; i < n; i++) ha[i] = f[i] + reg * logA[i];
    const colsFromAcc =
      fused !== undefined && colAccEps === reg && colAcc.every((c) => c >= SAFE_LOW && c <= SAFE_HIGH);
    if (!colsFromAcc) await backend.cols(ha, reg, gNew);
    let potentialTerm = 0;
    let mass = 0;
    let massA = 0;
    let massB = 0;
    let error = 0;
    for (let i = 0; i < n; i++) {
      if (wa[i] !== 0) potentialTerm += wa[i] * f[i];
      mass += wa[i];
      massA += wa[i];
    }
    for (let j = 0; j < m; j++) {
      const col = colsFromAcc ? wb[j] * colAcc[j] : wb[j] * Math.exp((g[j] - gNew[j]) / reg);
      if (col !== 0) potentialTerm += col * g[j];
      error += Math.abs(col - wb[j]);
      massB += wb[j];
    }
    const objective = potentialTerm - reg * (mass - massA * massB);
    for (let j = 0; j < m; j++) hb[j] = g[j] + reg * logB[j];
    const cost = await transportCost(backend, geometry, ha, hb, reg);

    // The verdict must hold for the error the answer reports (as sinkhorn.ts), not only the last one checked.
    if (!(error <= tol)) converged = false;
    const warnings: string[] = [];
    if (!converged) warnings.push(notConverged(iterations, error, tol, schedule.length > 1));
    if (!Number.isFinite(cost) || !Number.isFinite(objective))
      warnings.push('non-finite result: the problem is numerically degenerate at this reg');
    return {
      solver: 'sinkhorn',
      n,
      m,
      f,
      g,
      cost,
      objective,
      status: converged ? 'converged' : 'max_iter_reached',
      converged,
      iterations,
      marginalError: error,
      errorHistory,
      warnings,
      method: 'online',
      backend: backend.name,
      eps: reg,
    };
  } finally {
    backend.dispose();
  }
}

function hasRowsFused(backend: SoftminBackend): backend is SoftminCostBackend {
  return typeof (backend as Partial<SoftminCostBackend>).rowsFused === 'function';
}

function hasCostSum(backend: SoftminBackend): backend is SoftminCostBackend {
  return typeof (backend as Partial<SoftminCostBackend>).costSum === 'function';
}

/** <C, P> (scaled cost) from the backend when it can, else one pass of the CPU backend. */
async function transportCost(
  backend: SoftminBackend,
  geometry: OnlineGeometry,
  hr: Float64Array,
  hc: Float64Array,
  eps: number,
): Promise<number> {
  if (hasCostSum(backend)) return backend.costSum(hr, hc, eps);
  const cpu = new CpuSoftmin(geometry);
  try {
    return cpu.costSum(hr, hc, eps);
  } finally {
    cpu.dispose();
  }
}

/**
 * Refuses, before solving, a cost the solver cannot represent (OtInputError 'range', naming the pair as
 * costMatrix does for a dense problem): one that overflows double precision, or one above SAFE_COST_MAGNITUDE
 * once divided by costScale (the potentials and g_j - c_ij would overflow on the way). The bounding box of both
 * clouds bounds every cost in O((n + m) dim); only when that bound is out of range are the pairs themselves
 * computed (one pass without exp), so ordinary clouds pay nothing.
 */
export function checkOnlineCostRange(geometry: OnlineGeometry): void {
  const { x, y, n, m, dim, costScale } = geometry;
  const euclid = geometry.cost === 'euclidean';
  const bound = boundingBoxCostBound(geometry);
  if (bound / costScale <= SAFE_COST_MAGNITUDE) return; // false for NaN and Infinity
  const kind = geometry.cost;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let k = 0; k < dim; k++) {
        const d = x[i * dim + k] - y[j * dim + k];
        s += d * d;
      }
      const c = euclid ? Math.sqrt(s) : s;
      if (!Number.isFinite(c))
        throw new OtInputError(
          `the ${kind} cost between x[${i}] and y[${j}] overflows double precision: ` +
            'divide the coordinates of x and y by a common factor (e.g. their largest magnitude)',
          'range',
          { i, j },
        );
      if (c / costScale > SAFE_COST_MAGNITUDE)
        throw new OtInputError(
          `the ${kind} cost between x[${i}] and y[${j}] (${c.toExponential(3)}) is too large for online Sinkhorn ` +
            `(above 2^960 after dividing by the cost scale ${costScale}): use scaling "max" or divide the coordinates ` +
            'of x and y by a common factor',
          'range',
          { i, j },
        );
    }
  }
}

/**
 * An upper bound of max C - min C (scaled) from the bounding box of both clouds: the first epsilon of the
 * default schedule. O((n + m) dim).
 */
export function costRangeBound(geometry: OnlineGeometry): number {
  const bound = boundingBoxCostBound(geometry) / geometry.costScale;
  return bound > 0 && Number.isFinite(bound) ? bound : 1;
}

/** max C - min C <= this (unscaled): the cost of the diagonal of both clouds' bounding box. O((n + m) dim). */
function boundingBoxCostBound(geometry: OnlineGeometry): number {
  const { x, y, n, m, dim } = geometry;
  if (n + m === 0) return 0;
  let sq = 0;
  for (let k = 0; k < dim; k++) {
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      lo = Math.min(lo, x[i * dim + k]);
      hi = Math.max(hi, x[i * dim + k]);
    }
    for (let j = 0; j < m; j++) {
      lo = Math.min(lo, y[j * dim + k]);
      hi = Math.max(hi, y[j * dim + k]);
    }
    sq += (hi - lo) * (hi - lo);
  }
  return geometry.cost === 'euclidean' ? Math.sqrt(sq) : sq;
}

/**
 * The factor a point-cloud cost is divided by under `scaling`, without a matrix: 'max' and 'mean' take one
 * pass over the n*m pairs (no exp; 'mean' of the squared Euclidean cost is closed-form), 'median' would
 * need the n*m values and is refused. 1 for 'none' or a zero cost.
 */
export function onlineCostScale(
  geometry: Omit<OnlineGeometry, 'costScale'>,
  scaling: 'none' | 'max' | 'mean' | 'median',
): number {
  const { x, y, n, m, dim } = geometry;
  const euclid = geometry.cost === 'euclidean';
  let s: number;
  if (scaling === 'none') return 1;
  if (scaling === 'median')
    throw new OtInputError(
      "online Sinkhorn cannot scale the cost by its median (it would need all n*m costs): use 'max' or 'mean'",
    );
  if (scaling === 'mean' && !euclid) {
    // mean |x - y|^2 = mean |x|^2 + mean |y|^2 - 2 mean(x) . mean(y), per coordinate (centred for accuracy).
    s = 0;
    for (let k = 0; k < dim; k++) {
      let mx = 0;
      let my = 0;
      for (let i = 0; i < n; i++) mx += x[i * dim + k];
      for (let j = 0; j < m; j++) my += y[j * dim + k];
      mx /= n;
      my /= m;
      let vx = 0;
      let vy = 0;
      for (let i = 0; i < n; i++) vx += (x[i * dim + k] - mx) ** 2;
      for (let j = 0; j < m; j++) vy += (y[j * dim + k] - my) ** 2;
      s += vx / n + vy / m + (mx - my) ** 2;
    }
  } else {
    const max = scaling === 'max';
    s = 0;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const xo = i * dim;
      let rowTotal = 0;
      for (let j = 0; j < m; j++) {
        const yo = j * dim;
        let d2 = 0;
        for (let k = 0; k < dim; k++) {
          const t = x[xo + k] - y[yo + k];
          d2 += t * t;
        }
        const c = euclid ? Math.sqrt(d2) : d2;
        if (max) s = Math.max(s, c);
        else rowTotal += c;
      }
      total += rowTotal;
    }
    if (!max) s = total / (n * m);
  }
  return s > 0 && Number.isFinite(s) ? s : 1;
}

export interface OnlinePlanOptions {
  /** Keep the k largest entries of each row. */
  topK?: number;
  /** Keep only entries above this value. */
  threshold?: number;
  /** Refuse (OtInputError) a plan with more entries than this. Default 25,000,000. */
  maxEntries?: number;
}

/**
 * A sparse plan from the potentials: P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps), the top-k entries of each
 * row and/or those above a threshold, sorted by row then column. One pass over the pairs (the exp only for the
 * entries kept): entries are ranked by v_j = g_j + eps log b_j - C_ij, P_ij = a_i exp((f_i + v_j) / eps).
 */
export function onlineSparsePlan(
  geometry: OnlineGeometry,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  f: Float64Array,
  g: Float64Array,
  eps: number,
  options: OnlinePlanOptions,
): SparsePlan {
  const { n, m } = geometry;
  const topK = options.topK;
  const threshold = options.threshold ?? 0;
  const maxEntries = options.maxEntries ?? 25_000_000;
  if (topK === undefined && !(threshold > 0))
    throw new OtInputError(
      'a sparse online plan needs topK or a positive threshold (a dense plan is n*m values)',
    );
  const cpu = new CpuSoftmin(geometry);
  const hc = new Float64Array(m);
  for (let j = 0; j < m; j++) hc[j] = g[j] + eps * Math.log(b[j]);
  const scores = new Float64Array(m);
  const rows: number[] = [];
  const cols: number[] = [];
  const values: number[] = [];
  const k = topK === undefined ? m : Math.min(m, Math.max(0, Math.floor(topK)));
  const kept: number[] = [];
  for (let i = 0; i < n; i++) {
    if (!(a[i] > 0) || k === 0) continue;
    const hr = f[i] + eps * Math.log(a[i]);
    cpu.rowScores(i, hc, scores);
    // P_ij > threshold  <=>  v_j > eps log(threshold) - hr
    const cut = threshold > 0 ? eps * Math.log(threshold) - hr : Number.NEGATIVE_INFINITY;
    kept.length = 0;
    if (k >= m) {
      for (let j = 0; j < m; j++) if (scores[j] > cut) kept.push(j);
    } else topIndices(scores, k, cut, kept);
    kept.sort((p, q) => p - q);
    for (const j of kept) {
      const value = Math.exp((hr + scores[j]) / eps);
      if (!(value > threshold)) continue;
      rows.push(i);
      cols.push(j);
      values.push(value);
    }
    if (values.length > maxEntries)
      throw new OtInputError(
        `the sparse plan would have more than ${maxEntries} entries (OT_MAX_ENTRIES): lower topK or raise the threshold`,
        'too-large',
        { limit: maxEntries },
      );
  }
  cpu.dispose();
  return { rows: Int32Array.from(rows), cols: Int32Array.from(cols), values: Float64Array.from(values) };
}

/**
 * The (at most) k indices of the largest scores above cut, into out (unordered): a min-heap of size k, so a
 * row costs O(m) comparisons and O(k log k) heap moves in the typical case. Ties keep the lower index.
 */
function topIndices(scores: Float64Array, k: number, cut: number, out: number[]): void {
  const heap = out; // heap[0] is the smallest kept score (ties: the larger index)
  const less = (p: number, q: number) => scores[p] < scores[q] || (scores[p] === scores[q] && p > q);
  const down = (start: number) => {
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let s = i;
      if (l < heap.length && less(heap[l], heap[s])) s = l;
      if (r < heap.length && less(heap[r], heap[s])) s = r;
      if (s === i) return;
      [heap[i], heap[s]] = [heap[s], heap[i]];
      i = s;
    }
  };
  for (let j = 0; j < scores.length; j++) {
    if (!(scores[j] > cut)) continue;
    if (heap.length < k) {
      heap.push(j);
      let i = heap.length - 1;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!less(heap[i], heap[parent])) break;
        [heap[i], heap[parent]] = [heap[parent], heap[i]];
        i = parent;
      }
    } else if (scores[j] > scores[heap[0]]) {
      heap[0] = j;
      down(0);
    }
  }
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toExponential(2) : String(x);
}
