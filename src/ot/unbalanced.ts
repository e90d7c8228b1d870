/**
 * Unbalanced entropic OT with KL-relaxed marginals, POT's `ot.sinkhorn_unbalanced(a, b, M, reg, reg_m)`
 * (method 'sinkhorn', scalar reg_m):
 *
 *   min_{P >= 0} <C, P> + eps * sum_ij (P_ij log P_ij - P_ij) + regM * KL(P 1 | a) + regM * KL(P^T 1 | b)
 *
 * with the generalised KL(p | q) = sum p log(p/q) - p + q. The minimiser is P_ij = exp((f_i + g_j - C_ij)/eps).
 * NOTE the convention differs from the balanced solver: here f = eps log u and g = eps log v are POT's
 * scalings (P = diag(u) K diag(v)), because the entropy term has no reference measure a b^T. A zero weight a_i
 * gives f_i = -Infinity (an empty row), as log(0) in POT.
 *
 * Iteration (log domain, POT's damped update with fi = regM / (regM + eps)):
 *   f_i = fi * (eps log a_i - eps LSE_j((g_j - C_ij)/eps)),  then  g_j likewise with the new f.
 * regM = Infinity gives fi = 1, i.e. balanced Sinkhorn (POT's sinkhorn_log iteration).
 * Stopping: the largest change of the log-scalings, max(|df|, |dg|) / eps, below tol; for small changes this
 * is POT's relative change of u and v.
 */
import { OT_DEFAULTS } from './defaults.js';
import { checkWeights } from './marginals.js';
import { type CostMatrix, OtInputError, type OtResult, type SolveControl, throwIfAborted } from './types.js';

export interface UnbalancedOptions extends SolveControl {
  /** Default 1000 (POT's numItermax). */
  maxIter?: number;
  /** Default 1e-9 (POT's stopThr). */
  tol?: number;
  /** Check convergence, abort and progress every this many iterations. Default 10. */
  checkEvery?: number;
  recordErrors?: boolean;
  returnPlan?: boolean;
  /**
   * Potentials of zero-weight points: 'infinite' (default, POT's log u = -Infinity) or 'finite': the value the
   * update gives with the log-weight term left out, f_i = -fi eps LSE_j((g_j - C_ij)/eps) (likewise g_j), i.e.
   * the potential such a point has at vanishing weight. The plan is 0 on those rows/columns either way. For
   * answers that must stay finite (JSON has no -Infinity).
   */
  zeroWeightPotentials?: 'infinite' | 'finite';
}

export interface UnbalancedResult extends OtResult {
  f: Float64Array;
  g: Float64Array;
  objective: number;
  /** Mass of the plan (not sum a or sum b in general). */
  mass: number;
}

const SAFE_LOW = 1e-250;
const SAFE_HIGH = 1e250;

export function sinkhornUnbalanced(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  C: CostMatrix,
  reg: number,
  regM: number,
  options: UnbalancedOptions = {},
): UnbalancedResult {
  const n = C.n;
  const m = C.m;
  if (a.length !== n || b.length !== m) {
    throw new OtInputError(`dimension mismatch: a has ${a.length}, b has ${b.length}, cost is ${n} x ${m}`);
  }
  if (!(reg > 0) || !Number.isFinite(reg))
    throw new OtInputError(`reg (epsilon) must be a finite positive number, got ${reg}`);
  if (!(regM > 0))
    throw new OtInputError(`regM must be positive (Infinity for balanced marginals), got ${regM}`);
  checkWeights(a, 'a', n);
  checkWeights(b, 'b', m);
  const eps = reg;
  const invEps = 1 / eps;
  const fi = Number.isFinite(regM) ? regM / (regM + eps) : 1;
  const maxIter = options.maxIter ?? OT_DEFAULTS.unbalanced.maxIter;
  const tol = options.tol ?? OT_DEFAULTS.unbalanced.tol;
  const checkEvery = Math.max(1, Math.floor(options.checkEvery ?? 10));
  const Cd = C.data;
  const logA = Float64Array.from(a, Math.log);
  const logB = Float64Array.from(b, Math.log);
  // POT starts from u = 1/n, v = 1/m.
  const f = new Float64Array(n).fill(eps * Math.log(1 / n));
  const g = new Float64Array(m).fill(eps * Math.log(1 / m));
  for (let i = 0; i < n; i++) if (a[i] === 0) f[i] = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < m; j++) if (b[j] === 0) g[j] = Number.NEGATIVE_INFINITY;
  // lseRow_i = LSE_j((g_j - C_ij)/eps) from the previous sweep, reused as the shift of the next one.
  const lseRow = new Float64Array(n);
  const lseCol = new Float64Array(m);
  const gs = new Float64Array(m);
  const fs = new Float64Array(n);
  const colSum = new Float64Array(m);
  const errorHistory = options.recordErrors ? ([] as { iteration: number; error: number }[]) : undefined;

  let iterations = 0;
  let converged = false;
  let lastChange = Number.POSITIVE_INFINITY;
  let firstSweep = true;
  while (iterations < maxIter) {
    iterations++;
    let change = 0;
    // Row update.
    for (let j = 0; j < m; j++) gs[j] = g[j] * invEps;
    for (let i = 0; i < n; i++) {
      if (a[i] === 0) continue;
      const base = i * m;
      let l: number;
      if (firstSweep) l = logSumExp(Cd, base, 1, m, gs, invEps);
      else {
        const shift = lseRow[i];
        let s = 0;
        for (let j = 0; j < m; j++) s += Math.exp(gs[j] - Cd[base + j] * invEps - shift);
        l = s >= SAFE_LOW && s <= SAFE_HIGH ? shift + Math.log(s) : logSumExp(Cd, base, 1, m, gs, invEps);
      }
      lseRow[i] = l;
      const next = fi * (eps * logA[i] - eps * l);
      const d = Math.abs(next - f[i]);
      if (d > change) change = d;
      f[i] = next;
    }
    // Column update: accumulate row-major, shifted by the previous column LSE.
    for (let i = 0; i < n; i++) fs[i] = f[i] * invEps;
    if (firstSweep) {
      for (let j = 0; j < m; j++) lseCol[j] = logSumExpStrided(Cd, j, m, n, fs, invEps);
    }
    colSum.fill(0);
    for (let i = 0; i < n; i++) {
      if (a[i] === 0) continue;
      const base = i * m;
      const h = fs[i];
      for (let j = 0; j < m; j++) colSum[j] += Math.exp(h - Cd[base + j] * invEps - lseCol[j]);
    }
    for (let j = 0; j < m; j++) {
      if (b[j] === 0) continue;
      const s = colSum[j];
      const l =
        s >= SAFE_LOW && s <= SAFE_HIGH ? lseCol[j] + Math.log(s) : logSumExpStrided(Cd, j, m, n, fs, invEps);
      lseCol[j] = l;
      const next = fi * (eps * logB[j] - eps * l);
      const d = Math.abs(next - g[j]);
      if (d > change) change = d;
      g[j] = next;
    }
    firstSweep = false;
    lastChange = change * invEps;
    if (iterations % checkEvery === 0 || lastChange < tol) {
      errorHistory?.push({ iteration: iterations, error: lastChange });
      throwIfAborted(options.signal);
      options.onProgress?.(
        Math.min(1, iterations / maxIter),
        `unbalanced sinkhorn change=${lastChange.toExponential(2)}`,
      );
      if (lastChange < tol) {
        converged = true;
        break;
      }
    }
  }

  const plan = options.returnPlan === false ? undefined : new Float64Array(n * m);
  let cost = 0;
  let entropy = 0;
  let mass = 0;
  const rows = new Float64Array(n);
  const cols = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    if (a[i] === 0) continue;
    const base = i * m;
    for (let j = 0; j < m; j++) {
      if (b[j] === 0) continue;
      const logP = (f[i] + g[j] - Cd[base + j]) * invEps;
      const p = Math.exp(logP);
      if (plan) plan[base + j] = p;
      cost += p * Cd[base + j];
      if (p > 0) entropy += p * logP - p;
      rows[i] += p;
      cols[j] += p;
      mass += p;
    }
  }
  const penalty = Number.isFinite(regM) ? regM * (kl(rows, a) + kl(cols, b)) : 0;
  const warnings: string[] = [];
  if (options.zeroWeightPotentials === 'finite') {
    // After the plan (which used the exact zeros), from the potentials of the weighted points only.
    for (let i = 0; i < n; i++) fs[i] = f[i] * invEps;
    for (let j = 0; j < m; j++) gs[j] = g[j] * invEps;
    for (let i = 0; i < n; i++) if (a[i] === 0) f[i] = -fi * eps * logSumExp(Cd, i * m, 1, m, gs, invEps);
    for (let j = 0; j < m; j++) if (b[j] === 0) g[j] = -fi * eps * logSumExpStrided(Cd, j, m, n, fs, invEps);
  }
  if (!converged) {
    warnings.push(
      `did not converge in ${iterations} iterations (scaling change ${lastChange.toExponential(2)} > tol ${tol.toExponential(2)}): ` +
        'raise maxIter or reg',
    );
  }
  let marginalError = 0;
  for (let i = 0; i < n; i++) marginalError += Math.abs(rows[i] - a[i]);
  for (let j = 0; j < m; j++) marginalError += Math.abs(cols[j] - b[j]);
  return {
    solver: 'sinkhornUnbalanced',
    plan,
    n,
    m,
    f,
    g,
    cost,
    objective: cost + eps * entropy + penalty,
    status: converged ? 'converged' : 'max_iter_reached',
    converged,
    iterations,
    marginalError,
    errorHistory,
    warnings,
    mass,
  };
}

/** Generalised KL(p | q) = sum p log(p/q) - p + q. */
function kl(p: Float64Array, q: ArrayLike<number>): number {
  let s = 0;
  for (let k = 0; k < p.length; k++) {
    if (p[k] > 0) s += p[k] * Math.log(p[k] / q[k]);
    s += q[k] - p[k];
  }
  return s;
}

/** LSE_j(h_j - C_ij/eps) over a row, exact max shift. */
function logSumExp(
  C: Float64Array,
  base: number,
  stride: number,
  len: number,
  h: Float64Array,
  invEps: number,
): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < len; k++) {
    const v = h[k] - C[base + k * stride] * invEps;
    if (v > max) max = v;
  }
  if (max === Number.NEGATIVE_INFINITY) return max;
  let s = 0;
  for (let k = 0; k < len; k++) s += Math.exp(h[k] - C[base + k * stride] * invEps - max);
  return max + Math.log(s);
}

/** LSE_i(h_i - C_ij/eps) down column j. */
function logSumExpStrided(
  C: Float64Array,
  j: number,
  m: number,
  n: number,
  h: Float64Array,
  invEps: number,
): number {
  return logSumExp(C, j, m, n, h, invEps);
}
