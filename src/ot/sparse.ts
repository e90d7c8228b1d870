/**
 * Sparsity-constrained optimal transport (Liu, Puigcerver & Blondel, ICLR 2023, "Sparsity-Constrained
 * Optimal Transport"): quadratically regularised OT where every column of the plan (or every row) has at
 * most k nonzeros,
 *
 *   min_P <C, P> + (reg / 2) ||P||^2   s.t.  P 1 = a,  P^T 1 = b,  P >= 0,  ||P_:j||_0 <= k for all j.
 *
 * The primal is non-convex, but its Lagrangian relaxations are concave and solved with our L-BFGS:
 *  - dual:      max_{f,g} <f,a> + <g,b> - sum_j delta_k(f + g_j - c_j), where the conjugate of the
 *               k-sparse squared norm is delta_k(s) = sum of the k largest [s_i]_+^2 / (2 reg), with gradient
 *               [s]_+ / reg restricted to those k entries (the plan column);
 *  - semi-dual: max_f <f,a> - sum_j max_{t in b_j simplex, ||t||_0 <= k} (<f - c_j, t> - reg ||t||^2 / 2),
 *               whose maximiser is the k-sparse simplex projection (keep the k largest entries of
 *               (f - c_j)/(reg b_j), project those onto the simplex; Kyrillidis et al. 2013). Columns then
 *               meet b exactly.
 * With k >= n both reduce to quadratic OT (`quadraticOt`). Potentials follow the same convention:
 * P_ij = [f_i + g_j - C_ij]_+ / reg on the kept support, 0 elsewhere.
 */

import { OT_DEFAULTS } from './defaults.js';
import { minimizeLbfgs } from './lbfgs.js';
import { planSummary, simplexThreshold, validateBalancedProblem } from './quadratic.js';
import { type CostMatrix, OtInputError, type OtResult, type SolveControl, type SparsePlan } from './types.js';

export interface SparseOtOptions extends SolveControl {
  /** Which side carries the cardinality constraint: every column (default) or every row has <= k nonzeros. */
  side?: 'columns' | 'rows';
  formulation?: 'dual' | 'semiDual';
  maxIter?: number;
  /** Stop when the largest marginal violation (the gradient) is at most gtol. */
  gtol?: number;
  /**
   * Stop when the objective's relative decrease is at most ftol. On by default because with k < n the
   * relaxed objective is not differentiable where the k-th and (k+1)-th entries tie, so the gradient
   * test alone may never be met there.
   */
  ftol?: number;
  memory?: number;
}

/**
 * Writes into `selected` the indices of the k largest of values[0..len) that are above `floor`
 * (ties broken by index) and returns how many there are (<= k). Uses quickselect on `order`.
 */
export function topKIndices(
  values: Float64Array,
  len: number,
  k: number,
  floor: number,
  selected: Int32Array,
  order: Int32Array,
): number {
  let count = 0;
  for (let i = 0; i < len; i++) if (values[i] > floor) order[count++] = i;
  if (count <= k) {
    selected.set(order.subarray(0, count));
    return count;
  }
  // Quickselect so that order[0..k) holds the k largest (by value, then by smaller index).
  const greater = (p: number, q: number): boolean =>
    values[p] > values[q] || (values[p] === values[q] && p < q);
  let lo = 0;
  let hi = count - 1;
  while (lo < hi) {
    const pivot = order[(lo + hi) >> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (greater(order[i], pivot)) i++;
      while (greater(pivot, order[j])) j--;
      if (i <= j) {
        const t = order[i];
        order[i] = order[j];
        order[j] = t;
        i++;
        j--;
      }
    }
    if (k - 1 <= j) hi = j;
    else if (k - 1 >= i) lo = i;
    else break;
  }
  selected.set(order.subarray(0, k));
  return k;
}

interface ColumnWorkspace {
  column: Float64Array;
  kept: Float64Array;
  scratch: Float64Array;
  selected: Int32Array;
  order: Int32Array;
}

function workspace(n: number): ColumnWorkspace {
  return {
    column: new Float64Array(n),
    kept: new Float64Array(n),
    scratch: new Float64Array(n),
    selected: new Int32Array(n),
    order: new Int32Array(n),
  };
}

/** Negative relaxed dual and its gradient, on the column-constrained problem. */
function negativeSparseDual(a: Float64Array, b: Float64Array, C: CostMatrix, reg: number, k: number) {
  const { n, m } = C;
  const ws = workspace(n);
  return (x: Float64Array, grad: Float64Array): number => {
    let value = 0;
    for (let i = 0; i < n; i++) {
      value -= x[i] * a[i];
      grad[i] = -a[i];
    }
    for (let j = 0; j < m; j++) {
      const gj = x[n + j];
      value -= gj * b[j];
      let colGrad = -b[j];
      for (let i = 0; i < n; i++) ws.column[i] = x[i] + gj - C.data[i * m + j];
      const count = topKIndices(ws.column, n, k, 0, ws.selected, ws.order);
      for (let r = 0; r < count; r++) {
        const i = ws.selected[r];
        const s = ws.column[i];
        value += (s * s) / (2 * reg);
        grad[i] += s / reg;
        colGrad += s / reg;
      }
      grad[n + j] = colGrad;
    }
    return value;
  };
}

/**
 * k-sparse simplex projection for column j of the semi-dual: writes the plan column (mass b_j, at most k
 * nonzeros) into ws.column and returns g_j.
 */
function sparseSemiDualColumn(
  f: Float64Array,
  C: CostMatrix,
  j: number,
  bj: number,
  reg: number,
  k: number,
  ws: ColumnWorkspace,
): number {
  const { n, m } = C;
  const scale = reg * bj;
  for (let i = 0; i < n; i++) ws.column[i] = (f[i] - C.data[i * m + j]) / scale;
  const count = topKIndices(ws.column, n, k, Number.NEGATIVE_INFINITY, ws.selected, ws.order);
  for (let r = 0; r < count; r++) ws.kept[r] = ws.column[ws.selected[r]];
  const theta = simplexThreshold(ws.kept, count, 1, ws.scratch);
  ws.column.fill(0);
  for (let r = 0; r < count; r++) {
    const t = ws.kept[r] - theta;
    if (t > 0) ws.column[ws.selected[r]] = t * bj;
  }
  return -theta * scale;
}

function negativeSparseSemiDual(a: Float64Array, b: Float64Array, C: CostMatrix, reg: number, k: number) {
  const { n, m } = C;
  const ws = workspace(n);
  return (f: Float64Array, grad: Float64Array): number => {
    let value = 0;
    for (let i = 0; i < n; i++) {
      value -= f[i] * a[i];
      grad[i] = -a[i];
    }
    for (let j = 0; j < m; j++) {
      if (b[j] <= 0) continue;
      sparseSemiDualColumn(f, C, j, b[j], reg, k, ws);
      for (let i = 0; i < n; i++) {
        const t = ws.column[i];
        if (t > 0) {
          value += (f[i] - C.data[i * m + j]) * t - 0.5 * reg * t * t;
          grad[i] += t;
        }
      }
    }
    return value;
  };
}

function transposed(C: CostMatrix): CostMatrix {
  const data = new Float64Array(C.n * C.m);
  for (let i = 0; i < C.n; i++) for (let j = 0; j < C.m; j++) data[j * C.n + i] = C.data[i * C.m + j];
  return { n: C.m, m: C.n, data };
}

function toCoo(plan: Float64Array, n: number, m: number): SparsePlan {
  let nnz = 0;
  for (const p of plan) if (p !== 0) nnz++;
  const rows = new Int32Array(nnz);
  const cols = new Int32Array(nnz);
  const values = new Float64Array(nnz);
  let r = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      const p = plan[i * m + j];
      if (p !== 0) {
        rows[r] = i;
        cols[r] = j;
        values[r++] = p;
      }
    }
  }
  return { rows, cols, values };
}

/** Solves sparsity-constrained OT with at most k nonzeros per column (or per row). */
export function sparseOt(
  a: Float64Array,
  b: Float64Array,
  C: CostMatrix,
  reg: number,
  k: number,
  options: SparseOtOptions = {},
): OtResult {
  validateBalancedProblem(a, b, C, reg);
  const side = options.side ?? OT_DEFAULTS.sparse.side;
  const formulation = options.formulation ?? OT_DEFAULTS.sparse.formulation;
  if (!Number.isInteger(k) || k < 1) throw new OtInputError(`k must be a positive integer, got ${k}`);
  // Work on the column-constrained problem; a row constraint is the same problem transposed.
  const cost = side === 'columns' ? C : transposed(C);
  const [mu, nu] = side === 'columns' ? [a, b] : [b, a];
  const { n, m } = cost;
  if (k * m < n) {
    throw new OtInputError(
      `k=${k} nonzeros per ${side === 'columns' ? 'column' : 'row'} cannot cover all ${n} ${side === 'columns' ? 'rows' : 'columns'}: need k >= ${Math.ceil(n / m)}`,
    );
  }
  const kEff = Math.min(k, n);
  const lbfgsOptions = {
    maxIter: options.maxIter ?? OT_DEFAULTS.sparse.maxIter,
    gtol: options.gtol ?? 1e-10,
    // With k >= n the objective is smooth and the gradient test alone is the right stop (as quadraticOt).
    ftol: options.ftol ?? (kEff === n ? 0 : 1e-15),
    memory: options.memory ?? 10,
    signal: options.signal,
  };
  options.onProgress?.(0, `sparse OT (${formulation}, k=${k} per ${side}) started`);

  const work = new Float64Array(n * m);
  let f: Float64Array;
  let g: Float64Array;
  let result: ReturnType<typeof minimizeLbfgs>;
  const ws = workspace(n);
  if (formulation === 'dual') {
    result = minimizeLbfgs(
      negativeSparseDual(mu, nu, cost, reg, kEff),
      new Float64Array(n + m),
      lbfgsOptions,
    );
    f = result.x.slice(0, n);
    g = result.x.slice(n);
    for (let j = 0; j < m; j++) {
      for (let i = 0; i < n; i++) ws.column[i] = f[i] + g[j] - cost.data[i * m + j];
      const count = topKIndices(ws.column, n, kEff, 0, ws.selected, ws.order);
      for (let r = 0; r < count; r++) {
        const i = ws.selected[r];
        work[i * m + j] = ws.column[i] / reg;
      }
    }
  } else {
    result = minimizeLbfgs(
      negativeSparseSemiDual(mu, nu, cost, reg, kEff),
      new Float64Array(n),
      lbfgsOptions,
    );
    f = result.x;
    g = new Float64Array(m);
    for (let j = 0; j < m; j++) {
      if (nu[j] <= 0) {
        g[j] = Number.NEGATIVE_INFINITY;
        continue;
      }
      g[j] = sparseSemiDualColumn(f, cost, j, nu[j], reg, kEff, ws);
      for (let i = 0; i < n; i++) work[i * m + j] = ws.column[i];
    }
  }
  options.onProgress?.(1, `sparse OT finished: ${result.message}`);

  const plan = side === 'columns' ? work : transposed({ n, m, data: work }).data;
  const [fOut, gOut] = side === 'columns' ? [f, g] : [g, f];
  const summary = planSummary(plan, a, b, C, reg);
  const warnings: string[] = [];
  if (!result.converged) {
    warnings.push(
      `did not converge in ${result.iterations} L-BFGS iterations (${result.message}): raise maxIter or reg, or loosen gtol`,
    );
  }
  if (summary.marginalError > 1e-6) {
    // Not a solver failure: the cardinality constraint is non-convex, and the plan read off the relaxed
    // (semi-)dual optimum is one subgradient, which misses the marginals by the tie mass at the kinks.
    warnings.push(
      `marginal error ${summary.marginalError.toExponential(2)}: the k-sparse problem is non-convex and the plan comes from its relaxation; raise k to shrink the gap${formulation === 'semiDual' ? '' : ', or use the semi-dual to meet the constrained side exactly'}`,
    );
  }
  return {
    solver: `sparse-${formulation === 'dual' ? 'dual' : 'semi-dual'}`,
    plan,
    sparsePlan: toCoo(plan, C.n, C.m),
    n: C.n,
    m: C.m,
    f: fOut,
    g: gOut,
    cost: summary.cost,
    objective: summary.objective,
    status: result.converged ? 'converged' : 'max_iter_reached',
    converged: result.converged,
    iterations: result.iterations,
    marginalError: summary.marginalError,
    warnings,
  };
}
