/**
 * Entropic optimal transport (Sinkhorn), POT's `ot.sinkhorn` / `sinkhorn_log` / `sinkhorn2`.
 *
 * Problem: min_P <C, P> + eps * KL(P | a b^T) over couplings of a and b. The minimiser has the form
 *   P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps),
 * and (f, g) are the potentials we return ("our convention"). Because KL(P | a b^T) and POT's negative
 * entropy sum P log P differ by a term that is constant on the couplings, the plan is exactly POT's.
 * POT's `sinkhorn_log` log-scalings are log_u = log a + f / eps and log_v = log b + g / eps.
 *
 * Two inner loops, the same iteration in exact arithmetic:
 * - log domain (always safe): f_i = -eps * log sum_j b_j exp((g_j - C_ij) / eps), and symmetrically for g.
 *   Each row's sum is taken with the previous f_i as the shift (one pass, one exp per entry); only a row whose
 *   shifted sum leaves [1e-250, 1e250] is redone with the exact max shift, so it is stable for any eps.
 * - kernel domain (fast path): K = exp(-(C - min C) / eps) once, then u = 1 / K(b v), v = 1 / K^T(a u) are
 *   two matrix-vector products per iteration and no exp at all. Used only when safe, by this rule:
 *   (max C - min C) / eps <= KERNEL_MAX_RANGE = 250, so every K_ij >= exp(-250) ~ 1e-109 is a normal double
 *   with ~200 orders of magnitude of headroom for the scalings. If a scaling still becomes 0, non-finite or
 *   leaves [1e-200, 1e200], the solver switches to the log domain from the current potentials.
 *
 * Stopping: the L1 marginal error sum_j |(P^T 1)_j - b_j| of the plan after a row update (rows exact), the
 * quantity POT checks (POT uses its L2 norm), computed for free inside the next column update and tested
 * every `checkEvery` iterations. One iteration = one column update + one row update.
 */

import { OT_DEFAULTS } from './defaults.js';
import { accurateSum, checkBalanced } from './marginals.js';
import { powerOfTwoScale, scaleInPlace } from './range.js';
import { simdWorkspace } from './simd.js';
import { type CostMatrix, OtInputError, type OtResult, type SolveControl, throwIfAborted } from './types.js';

export const KERNEL_MAX_RANGE = 250;
/**
 * Largest max|C| / reg solved: beyond it (f_i + g_j - C_ij) / reg overflows double precision, and the entropic
 * plan is the exact one anyway (use emd).
 */
export const MAX_COST_OVER_REG = 1e300;
const SAFE_LOW = 1e-250;
const SAFE_HIGH = 1e250;
const SCALING_LOW = 1e-200;
const SCALING_HIGH = 1e200;

export type SinkhornMethod = 'auto' | 'log' | 'kernel';

export interface EpsilonScalingOptions {
  /** First epsilon of the schedule. Default: max C - min C (at least eps). */
  initial?: number;
  /** Ratio between consecutive epsilons, in (0, 1). Default 0.5. */
  factor?: number;
  /** Marginal error at which an intermediate stage hands over to the next epsilon. Default max(tol, 1e-3). */
  stageTol?: number;
  /**
   * How a stage starts from the previous ones (see StageWarmStart): 'extrapolate' (default) along the line through
   * the last two stages' potentials, or 'carry' the last potentials unchanged.
   */
  warmStart?: 'extrapolate' | 'carry';
}

export interface SinkhornOptions extends SolveControl {
  /** Total iteration budget over all stages (POT's numItermax). Default 1000. */
  maxIter?: number;
  /** Stop when the L1 marginal error is below tol (POT's stopThr). Default 1e-9. */
  tol?: number;
  /** Test the error, the abort signal and report progress every this many iterations. Default 10. */
  checkEvery?: number;
  /** 'auto' (default): kernel domain when the rule above allows it, else log domain. */
  method?: SinkhornMethod;
  /** Geometric schedule from a large epsilon down to eps, warm-starting the potentials. Default off. */
  epsilonScaling?: boolean | EpsilonScalingOptions;
  /** Record the marginal error at every check. */
  recordErrors?: boolean;
  /** Rescale b to the mass of a when they differ (else unbalanced marginals throw). */
  normalize?: boolean;
  /** Warm start (our convention). */
  init?: { f?: ArrayLike<number>; g?: ArrayLike<number> };
  /** Use WebAssembly SIMD for the kernel-domain sweep when the runtime supports it (default true). */
  simd?: boolean;
  /** Build the dense plan (default true). Off saves n*m memory when only cost/potentials are needed. */
  returnPlan?: boolean;
}

export interface SinkhornResult extends OtResult {
  f: Float64Array;
  g: Float64Array;
  /** Entropic objective <C, P> + eps * KL(P | a b^T). */
  objective: number;
  marginalError: number;
  /** Which inner loop produced the final potentials. */
  method: 'log' | 'kernel';
  eps: number;
}

/** Mutable state shared by the stages. */
interface State {
  n: number;
  m: number;
  C: Float64Array;
  a: Float64Array;
  b: Float64Array;
  logA: Float64Array;
  logB: Float64Array;
  f: Float64Array;
  g: Float64Array;
  minC: number;
  range: number;
  iterations: number;
  errorHistory: { iteration: number; error: number }[] | undefined;
  lastError: number;
  /** Use the WebAssembly SIMD kernels when available (tests turn it off to cover the plain loops). */
  allowSimd: boolean;
  /** Set by a kernel stage that finished cleanly: P_ij = au_i K_ij bv_j at that stage's eps. */
  kernel?: { K: Float64Array; au: Float64Array; bv: Float64Array; eps: number };
  /** Log-domain row operations (SIMD or plain), built on first use. */
  rowKernels?: LogRowKernels;
}

/**
 * Solves entropic OT. `reg` is eps in the cost's units (POT's reg). Returns the dense plan, potentials (our
 * convention, see the module comment), <C, P>, the entropic objective and diagnostics.
 */
export function sinkhorn(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  C: CostMatrix,
  reg: number,
  options: SinkhornOptions = {},
): SinkhornResult {
  const n = C.n;
  const m = C.m;
  if (a.length !== n || b.length !== m) {
    throw new OtInputError(`dimension mismatch: a has ${a.length}, b has ${b.length}, cost is ${n} x ${m}`);
  }
  if (!(reg > 0) || !Number.isFinite(reg))
    throw new OtInputError(`reg (epsilon) must be a finite positive number, got ${reg}`);
  const { a: wa, b: wb } = checkBalanced(a, b, { normalize: options.normalize });
  const [minC, maxC] = costRange(C.data);
  // Costs near the double limit: solve C / 2^k with reg / 2^k (the same plan, exactly), multiply back.
  const costScale = powerOfTwoScale(Math.max(Math.abs(minC), Math.abs(maxC)));
  const ratio = Math.max(Math.abs(minC), Math.abs(maxC)) / costScale / (reg / costScale);
  if (!(ratio <= MAX_COST_OVER_REG)) {
    throw new OtInputError(
      `reg = ${reg} is too small for costs up to ${fmt(Math.max(Math.abs(minC), Math.abs(maxC)))} ` +
        `(max|C| / reg = ${fmt(ratio)} > ${fmt(MAX_COST_OVER_REG)}): exp(-C/reg) is not representable in double ` +
        `precision; raise reg to at least ${fmt(Math.max(Math.abs(minC), Math.abs(maxC)) / MAX_COST_OVER_REG)} ` +
        'or use the exact solver (emd)',
      'range',
      { reg, maxAbsCost: Math.max(Math.abs(minC), Math.abs(maxC)) },
    );
  }
  if (costScale !== 1) return rescaled(wa, wb, C, reg, costScale, options);
  const maxIter = options.maxIter ?? OT_DEFAULTS.sinkhorn.maxIter;
  const tol = options.tol ?? OT_DEFAULTS.sinkhorn.tol;
  const checkEvery = Math.max(1, Math.floor(options.checkEvery ?? OT_DEFAULTS.sinkhorn.checkEvery));
  const method = options.method ?? OT_DEFAULTS.sinkhorn.method;

  const state: State = {
    n,
    m,
    C: C.data,
    a: wa,
    b: wb,
    logA: wa.map(Math.log),
    logB: wb.map(Math.log),
    f: new Float64Array(n),
    g: new Float64Array(m),
    minC,
    range: maxC - minC,
    iterations: 0,
    errorHistory: options.recordErrors ? [] : undefined,
    lastError: Number.POSITIVE_INFINITY,
    allowSimd: options.simd ?? true,
  };
  if (options.init?.f) state.f.set(options.init.f);
  if (options.init?.g) state.g.set(options.init.g);

  const schedule = epsilonSchedule(
    reg,
    state.range,
    options.epsilonScaling ?? OT_DEFAULTS.sinkhorn.epsilonScaling,
    tol,
  );
  let usedMethod: 'log' | 'kernel' = 'log';
  let converged = false;
  let switchedToLog = false;
  const scalingOptions = options.epsilonScaling ?? OT_DEFAULTS.sinkhorn.epsilonScaling;
  const warm = new StageWarmStart(typeof scalingOptions === 'object' ? scalingOptions.warmStart : undefined);
  for (let s = 0; s < schedule.length; s++) {
    const { eps, stageTol } = schedule[s];
    const final = s === schedule.length - 1;
    warm.begin(state.f, state.g, eps);
    const useKernel = method === 'kernel' || (method === 'auto' && state.range / eps <= KERNEL_MAX_RANGE);
    let done: StageOutcome = 'budget';
    state.kernel = undefined;
    if (useKernel) {
      done = kernelStage(state, eps, stageTol, maxIter, checkEvery, options);
      usedMethod = 'kernel';
    }
    if (!useKernel || done === 'unsafe') {
      if (useKernel) switchedToLog = true;
      done = logStage(state, eps, stageTol, maxIter, checkEvery, options);
      usedMethod = 'log';
    }
    if (final) converged = done === 'converged';
    if (done === 'budget') break;
    warm.end(state.f, state.g, eps);
  }

  const summary = summarise(state, reg, options.returnPlan ?? true);
  const warnings: string[] = [];
  if (method === 'kernel' && state.range / reg > KERNEL_MAX_RANGE) {
    warnings.push(
      `kernel domain forced with (max C - min C)/eps = ${fmt(state.range / reg)} > ${KERNEL_MAX_RANGE}: ` +
        "entries of K underflow and the result may be inaccurate; use method 'auto' or 'log'",
    );
  }
  if (switchedToLog) warnings.push('kernel-domain scalings degenerated: switched to the log domain');
  // The verdict and the warning use the exact final error of the answer (the loop's last check may predate a
  // stage switch or have been computed from non-finite scalings).
  if (!(summary.marginalError <= tol)) converged = false;
  if (!converged)
    warnings.push(notConverged(state.iterations, summary.marginalError, tol, schedule.length > 1));
  if (!Number.isFinite(summary.cost))
    warnings.push('non-finite result: the problem is numerically degenerate at this reg');
  return {
    solver: 'sinkhorn',
    plan: summary.plan,
    n,
    m,
    f: state.f,
    g: state.g,
    cost: summary.cost,
    objective: summary.objective,
    status: converged ? 'converged' : 'max_iter_reached',
    converged,
    iterations: state.iterations,
    marginalError: summary.marginalError,
    errorHistory: state.errorHistory,
    warnings,
    method: usedMethod,
    eps: reg,
  };
}

/**
 * Sinkhorn on C / s with reg / s (s a power of two, so exact): the plan exp((f + g - C) / reg) is the same, the
 * potentials, cost and objective scale by s.
 */
function rescaled(
  a: Float64Array,
  b: Float64Array,
  C: CostMatrix,
  reg: number,
  s: number,
  options: SinkhornOptions,
): SinkhornResult {
  const down = (v: ArrayLike<number> | undefined) => (v ? Float64Array.from(v, (x) => x / s) : undefined);
  const scaling = options.epsilonScaling;
  const r = sinkhorn(a, b, { n: C.n, m: C.m, data: C.data.map((v) => v / s) }, reg / s, {
    ...options,
    normalize: false,
    init: options.init && { f: down(options.init.f), g: down(options.init.g) },
    epsilonScaling:
      typeof scaling === 'object' && scaling.initial !== undefined
        ? { ...scaling, initial: scaling.initial / s }
        : scaling,
  });
  scaleInPlace(r.f, s);
  scaleInPlace(r.g, s);
  return { ...r, cost: r.cost * s, objective: r.objective * s, eps: reg };
}

/** <C, P> of the entropic plan (POT's sinkhorn2 returns this linear part, not the regularised objective). */
export function sinkhorn2(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  C: CostMatrix,
  reg: number,
  options: SinkhornOptions = {},
): number {
  return sinkhorn(a, b, C, reg, { ...options, returnPlan: false }).cost;
}

/** The stages' epsilons: just [eps], or a geometric ladder from `initial` down to eps (also online.ts's). */
export function epsilonSchedule(
  eps: number,
  range: number,
  scaling: boolean | EpsilonScalingOptions | undefined,
  tol: number,
): { eps: number; stageTol: number }[] {
  if (!scaling) return [{ eps, stageTol: tol }];
  const opts = scaling === true ? {} : scaling;
  const factor = opts.factor ?? 0.5;
  if (!(factor > 0 && factor < 1))
    throw new OtInputError(`epsilonScaling.factor must be in (0, 1), got ${factor}`);
  const stageTol = Math.max(tol, opts.stageTol ?? 1e-3);
  const stages: { eps: number; stageTol: number }[] = [];
  for (let e = Math.max(opts.initial ?? range, eps); e > eps; e *= factor) stages.push({ eps: e, stageTol });
  stages.push({ eps, stageTol: tol });
  return stages;
}

/**
 * The warm start of epsilon scaling's next stage. The potentials of a converged stage are carried to the next
 * epsilon, moved along the line through the last two converged stages: to first order the entropic potentials are
 * affine in epsilon (f_eps = f_0 + eps f_1 + ...), and carrying them unchanged is not neutral. The first sweep at
 * the new epsilon rebalances each group of rows and columns that exchange almost all of their mass among
 * themselves, and shifts its potentials against the other groups by about (eps_new - eps_old) log(mass ratio); the
 * plan entries that link the groups carry a marginal error of their own size, and Sinkhorn undoes such a shift at
 * a rate of about their mass per iteration: never, when they are 1e-10 of the mass. README's
 * `C = [[0,1,4],[1,0,1],[4,1,0]]`, reg 0.05 with epsilon scaling stalled at a marginal error of 2.1e-8 after 1000
 * iterations (1e-9 asked); with the extrapolated start it converges in 120. Not uniformly better (the slow mode
 * still limits Sinkhorn): over bench/ot/warm-start.ts's 47 problems both converge 30, extrapolating with 10% fewer
 * iterations and lower final errors on most of the rest, but one problem that converged carried no longer does
 * (bench/RESULTS.md). `epsilonScaling: { warmStart: 'carry' }` keeps the old start.
 */
export class StageWarmStart {
  private older?: { f: Float64Array; g: Float64Array; eps: number };
  private last?: { f: Float64Array; g: Float64Array; eps: number };

  constructor(private readonly mode: 'extrapolate' | 'carry' = 'extrapolate') {}

  /** A stage at `eps` converged (its stage tolerance) with these potentials. */
  end(f: Float64Array, g: Float64Array, eps: number): void {
    this.older = this.last;
    this.last = { f: Float64Array.from(f), g: Float64Array.from(g), eps };
  }

  /** A stage at `eps` starts: move f and g (in place) to the extrapolated potentials. */
  begin(f: Float64Array, g: Float64Array, eps: number): void {
    const { older, last } = this;
    if (this.mode === 'carry' || !older || !last || older.eps === last.eps) return;
    // Adding c to f and -c to g (the potentials' gauge) leaves every f_i + g_j, hence the plan, as it is.
    const t = (eps - last.eps) / (last.eps - older.eps);
    for (let i = 0; i < f.length; i++) f[i] = last.f[i] + t * (last.f[i] - older.f[i]);
    for (let j = 0; j < g.length; j++) g[j] = last.g[j] + t * (last.g[j] - older.g[j]);
  }
}

/** The warning of an unconverged solve; it suggests epsilon scaling only where it is off. */
export function notConverged(iterations: number, error: number, tol: number, scaling: boolean): string {
  return (
    `did not converge in ${iterations} iterations (marginal error ${fmt(error)} > tol ${fmt(tol)}): ` +
    (scaling ? 'raise maxIter or reg' : 'raise maxIter or reg, or enable epsilon scaling')
  );
}

type StageOutcome = 'converged' | 'budget' | 'unsafe';

function recordCheck(state: State, error: number, maxIter: number, control: SolveControl, eps: number): void {
  state.lastError = error;
  state.errorHistory?.push({ iteration: state.iterations, error });
  throwIfAborted(control.signal);
  control.onProgress?.(
    Math.min(1, state.iterations / maxIter),
    `sinkhorn eps=${fmt(eps)} error=${fmt(error)}`,
  );
}

/**
 * Log-domain iterations at one epsilon until the error is below stageTol or the budget is spent.
 *
 * Each iteration reads C once: colAcc_j = sum_i a_i exp((f_i + g_j - C_ij)/eps), the column marginal of the
 * current plan divided by b_j, is accumulated during the row sweep of the previous iteration. The row sweep
 * computes t_ij = exp((f_i + g_j - C_ij)/eps) once, uses sum_j b_j t_ij for the new f_i, and since
 * exp((f_i_new - f_i)/eps) = 1/s_i it adds (a_i/s_i) t_ij to colAcc_j: one exp per entry per iteration.
 */
function logStage(
  state: State,
  eps: number,
  stageTol: number,
  maxIter: number,
  checkEvery: number,
  control: SolveControl,
): StageOutcome {
  const { n, m, C, a, b, logA, logB, f, g } = state;
  const invEps = 1 / eps;
  const rows = logRowKernels(state);
  const { gs, t, colAcc } = rows;
  for (let j = 0; j < m; j++) gs[j] = g[j] * invEps;
  logColumnAccumulate(state, invEps, rows);
  let sinceCheck = 0;
  while (state.iterations < maxIter) {
    state.iterations++;
    sinceCheck++;
    const check = sinceCheck >= checkEvery;
    let error = 0;
    for (let j = 0; j < m; j++) {
      const s = colAcc[j];
      if (check) error += Math.abs(b[j] * s - b[j]);
      if (s >= SAFE_LOW && s <= SAFE_HIGH) g[j] -= eps * Math.log(s);
      else g[j] = -eps * logSumExpColumn(C, n, m, j, logA, f, invEps);
    }
    if (check) {
      sinceCheck = 0;
      recordCheck(state, error, maxIter, control, eps);
    }
    // Row sweep (new f from the new g) fused with the next column accumulation.
    for (let j = 0; j < m; j++) gs[j] = g[j] * invEps;
    colAcc.fill(0);
    for (let i = 0; i < n; i++) {
      rows.expRow(i, f[i] * invEps, invEps); // t_j = exp((f_i + g_j - C_ij)/eps)
      const s = rows.dotTB();
      let w: number;
      if (s >= SAFE_LOW && s <= SAFE_HIGH) {
        f[i] -= eps * Math.log(s);
        w = a[i] / s;
      } else {
        // Shifted sum out of range: redo this row with the exact max shift.
        const base = i * m;
        for (let j = 0; j < m; j++) t[j] = logB[j] + gs[j];
        f[i] = -eps * logSumExpRow(C, base, m, t, invEps);
        rows.expRow(i, f[i] * invEps, invEps);
        w = a[i];
      }
      if (w !== 0) rows.axpyT(w);
    }
    if (check && state.lastError < stageTol) return 'converged';
  }
  return 'budget';
}

/**
 * The three row operations of a log-domain sweep over scratch vectors gs (g/eps), t and colAcc, either as
 * WebAssembly SIMD calls on a copy of C (see simd.ts) or as plain loops. Built once per solve and reused by
 * every stage and by summarise().
 */
interface LogRowKernels {
  gs: Float64Array;
  t: Float64Array;
  colAcc: Float64Array;
  /** t_j = exp(shift + gs_j - C_ij * scale). */
  expRow(i: number, shift: number, scale: number): void;
  /** sum_j b_j t_j. */
  dotTB(): number;
  /** colAcc += w t. */
  axpyT(w: number): void;
}

function logRowKernels(state: State): LogRowKernels {
  if (state.rowKernels) return state.rowKernels;
  const { n, m, C, b } = state;
  const ws = state.allowSimd ? simdWorkspace([n * m, m, m, m, m]) : undefined;
  let kernels: LogRowKernels;
  if (ws) {
    const [Cw, gs, bw, t, colAcc] = ws.arrays;
    Cw.set(C);
    bw.set(b);
    kernels = {
      gs,
      t,
      colAcc,
      expRow: (i, shift, scale) => ws.expRow(3, 0, 0, i * m, 1, m, shift, scale),
      dotTB: () => ws.dot(3, 0, 2, m),
      axpyT: (w) => ws.axpy(w, 3, 0, 4, m),
    };
  } else {
    const gs = new Float64Array(m);
    const t = new Float64Array(m);
    const colAcc = new Float64Array(m);
    kernels = {
      gs,
      t,
      colAcc,
      expRow: (i, shift, scale) => {
        const base = i * m;
        for (let j = 0; j < m; j++) t[j] = Math.exp(shift + gs[j] - C[base + j] * scale);
      },
      dotTB: () => {
        let s = 0;
        for (let j = 0; j < m; j++) s += b[j] * t[j];
        return s;
      },
      axpyT: (w) => {
        for (let j = 0; j < m; j++) colAcc[j] += w * t[j];
      },
    };
  }
  state.rowKernels = kernels;
  return kernels;
}

/** colAcc_j = sum_i a_i exp((f_i + g_j - C_ij)/eps) (needs rows.gs = g/eps), with a max-shift fallback per column. */
function logColumnAccumulate(state: State, invEps: number, rows: LogRowKernels): void {
  const { n, m, C, a, logA, f, g } = state;
  const { colAcc, gs } = rows;
  colAcc.fill(0);
  for (let i = 0; i < n; i++) {
    if (a[i] === 0) continue;
    rows.expRow(i, logA[i] + f[i] * invEps, invEps);
    rows.axpyT(1);
  }
  for (let j = 0; j < m; j++) {
    const s = colAcc[j];
    if (!(s >= SAFE_LOW && s <= SAFE_HIGH)) {
      // Re-express through the exact log-sum-exp: colAcc_j = exp(g_j/eps + LSE_i(log a_i + (f_i - C_ij)/eps)).
      const l = g[j] * invEps + logSumExpColumn(C, n, m, j, logA, f, invEps);
      colAcc[j] = Math.exp(l);
      if (!(colAcc[j] >= SAFE_LOW && colAcc[j] <= SAFE_HIGH)) {
        // Still out of range: move g_j so that the column is balanced at its current scale.
        g[j] -= l / invEps;
        gs[j] = g[j] * invEps;
        colAcc[j] = 1;
      }
    }
  }
}

/** log sum_j exp(h_j - C_ij/eps) with the exact max shift (fallback for rows whose shifted sum is unsafe). */
function logSumExpRow(C: Float64Array, base: number, m: number, h: Float64Array, invEps: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < m; j++) {
    const v = h[j] - C[base + j] * invEps;
    if (v > max) max = v;
  }
  if (max === Number.NEGATIVE_INFINITY) return max;
  let s = 0;
  for (let j = 0; j < m; j++) s += Math.exp(h[j] - C[base + j] * invEps - max);
  return max + Math.log(s);
}

/** log sum_i a_i exp((f_i - C_ij)/eps) with the exact max shift. */
function logSumExpColumn(
  C: Float64Array,
  n: number,
  m: number,
  j: number,
  logA: Float64Array,
  f: Float64Array,
  invEps: number,
): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const v = logA[i] + (f[i] - C[i * m + j]) * invEps;
    if (v > max) max = v;
  }
  if (max === Number.NEGATIVE_INFINITY) return max;
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(logA[i] + (f[i] - C[i * m + j]) * invEps - max);
  return max + Math.log(s);
}

/**
 * Kernel-domain iterations: P_ij = a_i u_i K_ij v_j b_j with K_ij = exp(-(C_ij - minC)/eps), so
 * f = eps log u + minC and g = eps log v. As in the log domain, each iteration reads K once: the row sweep
 * computes u_i = 1 / (K_i . (b v)) and, while the row is in cache, adds a_i u_i K_i to the next column sums.
 * Returns 'unsafe' (potentials rolled back to the last check) when a scaling degenerates, so the caller can
 * continue in the log domain.
 */
function kernelStage(
  state: State,
  eps: number,
  stageTol: number,
  maxIter: number,
  checkEvery: number,
  control: SolveControl,
): StageOutcome {
  const { n, m, C, a, b, f, g, minC } = state;
  const invEps = 1 / eps;
  // K, b v, the column sums, u and a live in a WebAssembly memory when SIMD is available (see simd.ts).
  const simd = state.allowSimd ? simdWorkspace([n * m, m, m, n, n]) : undefined;
  const K = simd ? simd.arrays[0] : new Float64Array(n * m);
  const bv = simd ? simd.arrays[1] : new Float64Array(m);
  const colAcc = simd ? simd.arrays[2] : new Float64Array(m); // sum_i a_i u_i K_ij
  const u = simd ? simd.arrays[3] : new Float64Array(n);
  if (simd) simd.arrays[4].set(a);
  const v = new Float64Array(m);
  for (let i = 0; i < n; i++) u[i] = Math.exp((f[i] - minC) * invEps);
  for (let j = 0; j < m; j++) v[j] = Math.exp(g[j] * invEps);
  if (!scalingsSafe(u) || !scalingsSafe(v)) return 'unsafe';
  if (simd) {
    // K = exp((minC - C)/eps) computed in place over a copy of C; arrays[1] (b v) is still zero here and
    // serves as the zero offset vector.
    K.set(C);
    for (let i = 0; i < n; i++) {
      simd.expRow(0, i * m, 0, i * m, 1, m, minC * invEps, invEps);
      const w = a[i] * u[i];
      if (w !== 0) simd.axpy(w, 0, i * m, 2, m);
    }
  } else {
    for (let i = 0; i < n; i++) {
      const base = i * m;
      const w = a[i] * u[i];
      for (let j = 0; j < m; j++) {
        const k = Math.exp((minC - C[base + j]) * invEps);
        K[base + j] = k;
        colAcc[j] += w * k;
      }
    }
  }
  const saveF = Float64Array.from(f);
  const saveG = Float64Array.from(g);
  let sinceCheck = 0;
  let outcome: StageOutcome = 'budget';
  while (state.iterations < maxIter) {
    state.iterations++;
    sinceCheck++;
    const check = sinceCheck >= checkEvery;
    let error = 0;
    let bad = false;
    for (let j = 0; j < m; j++) {
      const s = colAcc[j];
      if (check) error += Math.abs(b[j] * (v[j] * s - 1));
      const vj = 1 / s;
      if (!(vj >= SCALING_LOW && vj <= SCALING_HIGH)) bad = true;
      v[j] = vj;
      bv[j] = b[j] * vj;
    }
    if (bad) {
      outcome = 'unsafe';
      break;
    }
    if (check) {
      sinceCheck = 0;
      // Keep the potentials current at every check, so an abort, an unsafe switch or the end sees them.
      for (let i = 0; i < n; i++) saveF[i] = eps * Math.log(u[i]) + minC;
      for (let j = 0; j < m; j++) saveG[j] = eps * Math.log(v[j]);
      f.set(saveF);
      g.set(saveG);
      recordCheck(state, error, maxIter, control, eps);
    }
    colAcc.fill(0);
    if (simd) {
      // The whole sweep in one call (no per-row JS -> wasm transitions), then check the scalings.
      simd.kernelSweep(0, 1, 4, 3, 2, n, m);
      if (!scalingsSafe(u)) bad = true;
    } else {
      for (let i = 0; i < n; i++) {
        const base = i * m;
        // Four accumulators hide the add latency of the dot product.
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        let j = 0;
        for (; j + 3 < m; j += 4) {
          s0 += K[base + j] * bv[j];
          s1 += K[base + j + 1] * bv[j + 1];
          s2 += K[base + j + 2] * bv[j + 2];
          s3 += K[base + j + 3] * bv[j + 3];
        }
        for (; j < m; j++) s0 += K[base + j] * bv[j];
        const ui = 1 / (s0 + s1 + (s2 + s3));
        if (!(ui >= SCALING_LOW && ui <= SCALING_HIGH)) bad = true;
        u[i] = ui;
        const w = a[i] * ui;
        if (w !== 0) for (let jj = 0; jj < m; jj++) colAcc[jj] += w * K[base + jj];
      }
    }
    if (bad) {
      outcome = 'unsafe';
      break;
    }
    if (check && state.lastError < stageTol) {
      outcome = 'converged';
      break;
    }
  }
  if (outcome !== 'unsafe') {
    for (let i = 0; i < n; i++) f[i] = eps * Math.log(u[i]) + minC;
    for (let j = 0; j < m; j++) g[j] = eps * Math.log(v[j]);
    // Hand K and the scalings to summarise(), which then needs no exp at all.
    for (let j = 0; j < m; j++) bv[j] = b[j] * v[j];
    const au = new Float64Array(n);
    for (let i = 0; i < n; i++) au[i] = a[i] * u[i];
    state.kernel = { K, au, bv, eps };
  } else {
    // Roll back to the last checked (finite) potentials; the log domain continues from there.
    f.set(saveF);
    g.set(saveG);
  }
  return outcome;
}

function scalingsSafe(x: Float64Array): boolean {
  for (let k = 0; k < x.length; k++) if (!(x[k] >= SCALING_LOW && x[k] <= SCALING_HIGH)) return false;
  return true;
}

/** One pass over the final potentials: plan, <C,P>, objective and the exact L1 marginal error. */
function summarise(
  state: State,
  eps: number,
  returnPlan: boolean,
): { plan?: Float64Array; cost: number; objective: number; marginalError: number } {
  const { n, m, C, a, b, logA, logB, f, g } = state;
  const invEps = 1 / eps;
  const plan = returnPlan ? new Float64Array(n * m) : undefined;
  const rows = new Float64Array(n);
  const cols = new Float64Array(m);
  const kernel = state.kernel && state.kernel.eps === eps ? state.kernel : undefined;
  // Row i of the plan goes through `row` (a view into the plan, or scratch when no plan is returned).
  const scratch = new Float64Array(m);
  const sums = new Float64Array(1);
  let cost = 0;
  if (kernel) {
    // P_ij = (a_i u_i) K_ij (b_j v_j): no exp needed.
    const { K, au, bv } = kernel;
    for (let i = 0; i < n; i++) {
      const base = i * m;
      const w = au[i];
      const row = plan ? plan.subarray(base, base + m) : scratch;
      scaledKernelRow(row, K, base, w, bv);
      rows[i] = accumulateRow(row, C, base, cols, sums);
      cost += sums[0];
    }
  } else {
    const kernels = logRowKernels(state);
    const { gs, t } = kernels;
    for (let j = 0; j < m; j++) gs[j] = logB[j] + g[j] * invEps;
    for (let i = 0; i < n; i++) {
      if (a[i] === 0) continue;
      const base = i * m;
      kernels.expRow(i, logA[i] + f[i] * invEps, invEps);
      const row = plan ? plan.subarray(base, base + m) : scratch;
      row.set(t);
      rows[i] = accumulateRow(row, C, base, cols, sums);
      cost += sums[0];
    }
  }
  // sum_ij P_ij (f_i + g_j) from the marginals; zero-weight rows/columns carry no mass.
  let potentialTerm = 0;
  let mass = 0;
  let error = 0;
  for (let i = 0; i < n; i++) {
    if (rows[i] !== 0) potentialTerm += rows[i] * f[i];
    mass += rows[i];
    error += Math.abs(rows[i] - a[i]);
  }
  for (let j = 0; j < m; j++) {
    if (cols[j] !== 0) potentialTerm += cols[j] * g[j];
    error += Math.abs(cols[j] - b[j]);
  }
  const objective = potentialTerm - eps * (mass - accurateSum(a) * accurateSum(b));
  return { plan, cost, objective, marginalError: error };
}

/** [min, max] of the costs. Math.min/max rather than branches: 2-4x faster on large matrices here. */
function costRange(data: Float64Array): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < data.length; k++) {
    const c = data[k];
    lo = Math.min(lo, c);
    hi = Math.max(hi, c);
  }
  return [lo, hi];
}

/** row_j = w K_ij bv_j: one row of the kernel-domain plan. */
function scaledKernelRow(
  row: Float64Array,
  K: Float64Array,
  base: number,
  w: number,
  bv: Float64Array,
): void {
  for (let j = 0; j < row.length; j++) row[j] = w * K[base + j] * bv[j];
}

/**
 * Adds a plan row to the column sums; returns the row sum and puts the row's cost in out[0]. A small
 * function on purpose: called once per row, it is optimised after a few rows, whereas a loop nest inside
 * summarise() (called once per solve) would run unoptimised until on-stack replacement kicks in.
 */
function accumulateRow(
  row: Float64Array,
  C: Float64Array,
  base: number,
  cols: Float64Array,
  out: Float64Array,
): number {
  let sum = 0;
  let cost = 0;
  for (let j = 0; j < row.length; j++) {
    const p = row[j];
    sum += p;
    cost += p * C[base + j];
    cols[j] += p;
  }
  out[0] = cost;
  return sum;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toExponential(2) : String(x);
}
