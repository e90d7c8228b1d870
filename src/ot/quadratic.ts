/**
 * Quadratically regularised ("smooth", L2) optimal transport, as POT's `ot.smooth.smooth_ot_dual` and
 * `smooth_ot_semi_dual` with reg_type='l2' (Blondel, Seguy & Rolet, AISTATS 2018):
 *
 *   min_P <C, P> + (reg / 2) ||P||^2   subject to  P 1 = a,  P^T 1 = b,  P >= 0.
 *
 * Unlike entropic OT the optimal plan is sparse. Both formulations are smooth concave maximisations solved
 * with our L-BFGS (we minimise their negatives):
 *  - dual:      max_{f,g} <f,a> + <g,b> - sum_ij [f_i + g_j - C_ij]_+^2 / (2 reg),
 *               plan P_ij = [f_i + g_j - C_ij]_+ / reg; marginals hold at the optimum only.
 *  - semi-dual: max_f <f,a> - sum_j b_j max_{t in simplex} (<f - c_j, t> - reg b_j ||t||^2 / 2),
 *               plan column j = b_j * (simplex projection of (f - c_j) / (reg b_j)), so P^T 1 = b holds exactly.
 * In both cases the returned potentials satisfy P_ij = [f_i + g_j - C_ij]_+ / reg (for the semi-dual, g_j is
 * read off the projection threshold), which is the convention the sparse solvers share.
 */

import { OT_DEFAULTS } from './defaults.js';
import { minimizeLbfgs } from './lbfgs.js';
import { type CostMatrix, OtInputError, type OtResult, type SolveControl } from './types.js';

export interface QuadraticOtOptions extends SolveControl {
  /** 'dual' (f and g, both marginals approximate) or 'semiDual' (f only; column marginals exact). */
  formulation?: 'dual' | 'semiDual';
  /** L-BFGS iterations. */
  maxIter?: number;
  /** Stop when the largest marginal violation (the gradient) is at most gtol. */
  gtol?: number;
  /** Stop when the objective's relative decrease is at most ftol (0 disables). */
  ftol?: number;
  /** L-BFGS memory. */
  memory?: number;
}

/** Checks shapes, signs and mass balance; shared by the quadratic and sparsity-constrained solvers. */
export function validateBalancedProblem(a: Float64Array, b: Float64Array, C: CostMatrix, reg: number): void {
  if (C.data.length !== C.n * C.m)
    throw new OtInputError(`cost matrix has ${C.data.length} entries, expected n*m`);
  if (a.length !== C.n || b.length !== C.m) {
    throw new OtInputError(`marginals have lengths ${a.length}, ${b.length}; cost is ${C.n} x ${C.m}`);
  }
  if (!(reg > 0) || !Number.isFinite(reg))
    throw new OtInputError(`reg must be a positive number, got ${reg}`);
  let sa = 0;
  let sb = 0;
  for (const v of a) {
    if (!(v >= 0) || !Number.isFinite(v)) throw new OtInputError('a must be finite and non-negative');
    sa += v;
  }
  for (const v of b) {
    if (!(v >= 0) || !Number.isFinite(v)) throw new OtInputError('b must be finite and non-negative');
    sb += v;
  }
  for (const v of C.data) if (!Number.isFinite(v)) throw new OtInputError('cost matrix must be finite');
  if (Math.abs(sa - sb) > 1e-9 * Math.max(sa, sb, 1e-300)) {
    throw new OtInputError(`a sums to ${sa} but b sums to ${sb}`, 'unbalanced', { sumA: sa, sumB: sb });
  }
}

/**
 * Threshold theta with sum_i [v_i - theta]_+ = z over the first len entries of v (Michelot / Held et al.):
 * the Euclidean projection of v onto the simplex of mass z is [v - theta]_+. Sorts `scratch` in place.
 */
export function simplexThreshold(v: Float64Array, len: number, z: number, scratch: Float64Array): number {
  const sorted = scratch.subarray(0, len);
  sorted.set(v.subarray(0, len));
  sorted.sort();
  let cumulative = 0;
  let theta = 0;
  // Walk from the largest value down; theta is fixed by the largest rho with u_rho > (sum_{<=rho} u - z) / rho.
  for (let r = 1; r <= len; r++) {
    const u = sorted[len - r];
    cumulative += u;
    const candidate = (cumulative - z) / r;
    if (u > candidate) theta = candidate;
    else break;
  }
  return theta;
}

/** Plan-level summaries shared by the smooth solvers. */
export function planSummary(
  plan: Float64Array,
  a: Float64Array,
  b: Float64Array,
  C: CostMatrix,
  reg: number,
): { cost: number; objective: number; marginalError: number } {
  const { n, m } = C;
  let cost = 0;
  let squares = 0;
  const colSums = new Float64Array(m);
  let marginalError = 0;
  for (let i = 0; i < n; i++) {
    let rowSum = 0;
    for (let j = 0; j < m; j++) {
      const p = plan[i * m + j];
      cost += p * C.data[i * m + j];
      squares += p * p;
      rowSum += p;
      colSums[j] += p;
    }
    marginalError += Math.abs(rowSum - a[i]);
  }
  for (let j = 0; j < m; j++) marginalError += Math.abs(colSums[j] - b[j]);
  return { cost, objective: cost + 0.5 * reg * squares, marginalError };
}

/** Negative dual objective and gradient: F(f,g) = sum [f_i+g_j-C_ij]_+^2/(2 reg) - <f,a> - <g,b>. */
function negativeDual(a: Float64Array, b: Float64Array, C: CostMatrix, reg: number) {
  const { n, m } = C;
  return (x: Float64Array, grad: Float64Array): number => {
    let value = 0;
    for (let i = 0; i < n; i++) {
      value -= x[i] * a[i];
      grad[i] = -a[i];
    }
    for (let j = 0; j < m; j++) {
      value -= x[n + j] * b[j];
      grad[n + j] = -b[j];
    }
    for (let i = 0; i < n; i++) {
      const fi = x[i];
      const row = i * m;
      let rowSum = 0;
      for (let j = 0; j < m; j++) {
        const s = fi + x[n + j] - C.data[row + j];
        if (s > 0) {
          value += (s * s) / (2 * reg);
          const t = s / reg;
          rowSum += t;
          grad[n + j] += t;
        }
      }
      grad[i] += rowSum;
    }
    return value;
  };
}

/**
 * Column-wise semi-dual machinery: for each column j, the projection of (f - c_j)/(reg b_j) onto the simplex.
 * `columnPlan` writes the plan column (already multiplied by b_j) and returns g_j, the potential with
 * P_ij = [f_i + g_j - C_ij]_+ / reg.
 */
function semiDualColumn(
  f: Float64Array,
  C: CostMatrix,
  j: number,
  bj: number,
  reg: number,
  column: Float64Array,
  scratch: Float64Array,
): number {
  const { n, m } = C;
  const scale = reg * bj;
  for (let i = 0; i < n; i++) column[i] = (f[i] - C.data[i * m + j]) / scale;
  const theta = simplexThreshold(column, n, 1, scratch);
  for (let i = 0; i < n; i++) {
    const t = column[i] - theta;
    column[i] = t > 0 ? t * bj : 0;
  }
  return -theta * scale;
}

/** Negative semi-dual F(f) = sum_j b_j val_j - <f,a>, gradient sum_j P_:j - a. */
function negativeSemiDual(a: Float64Array, b: Float64Array, C: CostMatrix, reg: number) {
  const { n, m } = C;
  const column = new Float64Array(n);
  const scratch = new Float64Array(n);
  return (f: Float64Array, grad: Float64Array): number => {
    let value = 0;
    for (let i = 0; i < n; i++) {
      value -= f[i] * a[i];
      grad[i] = -a[i];
    }
    for (let j = 0; j < m; j++) {
      const bj = b[j];
      if (bj <= 0) continue; // an empty column carries no mass and adds nothing
      semiDualColumn(f, C, j, bj, reg, column, scratch);
      // b_j val_j = <f - c_j, t_j> - reg ||t_j||^2 / 2 with t_j = column (mass b_j).
      for (let i = 0; i < n; i++) {
        const t = column[i];
        if (t > 0) {
          value += (f[i] - C.data[i * m + j]) * t - 0.5 * reg * t * t;
          grad[i] += t;
        }
      }
    }
    return value;
  };
}

/** Solves quadratically regularised OT; see the module comment for the two formulations. */
export function quadraticOt(
  a: Float64Array,
  b: Float64Array,
  C: CostMatrix,
  reg: number,
  options: QuadraticOtOptions = {},
): OtResult {
  validateBalancedProblem(a, b, C, reg);
  const { n, m } = C;
  const formulation = options.formulation ?? OT_DEFAULTS.quadratic.formulation;
  const maxIter = options.maxIter ?? OT_DEFAULTS.quadratic.maxIter;
  const lbfgsOptions = {
    maxIter,
    gtol: options.gtol ?? 1e-10,
    ftol: options.ftol ?? 0,
    memory: options.memory ?? 10,
    signal: options.signal,
  };
  const plan = new Float64Array(n * m);
  let f: Float64Array;
  let g: Float64Array;
  let result: ReturnType<typeof minimizeLbfgs>;
  options.onProgress?.(0, `quadratic OT (${formulation}) started`);
  if (formulation === 'dual') {
    result = minimizeLbfgs(negativeDual(a, b, C, reg), new Float64Array(n + m), lbfgsOptions);
    f = result.x.slice(0, n);
    g = result.x.slice(n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        const s = f[i] + g[j] - C.data[i * m + j];
        plan[i * m + j] = s > 0 ? s / reg : 0;
      }
    }
  } else {
    result = minimizeLbfgs(negativeSemiDual(a, b, C, reg), new Float64Array(n), lbfgsOptions);
    f = result.x;
    g = new Float64Array(m);
    const column = new Float64Array(n);
    const scratch = new Float64Array(n);
    for (let j = 0; j < m; j++) {
      if (b[j] <= 0) {
        g[j] = Number.NEGATIVE_INFINITY;
        continue;
      }
      g[j] = semiDualColumn(f, C, j, b[j], reg, column, scratch);
      for (let i = 0; i < n; i++) plan[i * m + j] = column[i];
    }
  }
  options.onProgress?.(1, `quadratic OT (${formulation}) finished: ${result.message}`);
  const summary = planSummary(plan, a, b, C, reg);
  const warnings: string[] = [];
  if (!result.converged) {
    warnings.push(
      `did not converge in ${result.iterations} L-BFGS iterations (${result.message}): raise maxIter or reg, or loosen gtol`,
    );
  }
  return {
    solver: formulation === 'dual' ? 'quadratic-dual' : 'quadratic-semi-dual',
    plan,
    n,
    m,
    f,
    g,
    cost: summary.cost,
    objective: summary.objective,
    status: result.converged ? 'converged' : 'max_iter_reached',
    converged: result.converged,
    iterations: result.iterations,
    marginalError: summary.marginalError,
    warnings,
  };
}
