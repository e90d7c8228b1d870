/**
 * Sinkhorn-Newton-Sparse (Tang, Shavlovsky, Rahmanian, Tardini, Thekumparampil, Xiao & Ying, ICLR 2024,
 * "Accelerating Sinkhorn Algorithm with Sparse Newton Iterations") for entropic OT at regularisation eps.
 *
 * Stage 1 runs N1 Sinkhorn iterations (our solver in src/ot/sinkhorn.ts, which works in the log domain
 * whenever the kernel could underflow) to enter the basin where Newton converges fast.
 * Stage 2 takes Newton steps on the concave Lyapunov potential of Sinkhorn,
 *
 *   L(f, g) = <a, f> + <b, g> - eps * sum_ij P_ij,   P_ij = exp((f_i + g_j - C_ij) / eps),
 *
 * whose gradient is (a - P 1, b - P^T 1) and whose Hessian is -(1/eps) [[diag(P 1), P], [P^T, diag(P^T 1)]].
 * The off-diagonal block P is sparsified to its ~lambda*n*m largest entries (the diagonal blocks stay exact,
 * which keeps the matrix diagonally dominant, hence positive semi-definite), the Newton system is solved by
 * Jacobi-preconditioned conjugate gradient, and a backtracking line search on L keeps every step an ascent.
 *
 * Internally P_ij = exp((f_i + g_j - C_ij) / eps). The paper writes the same potential with eta = 1/eps and
 * variables (x, y), P_ij = exp(eta (-C_ij + x_i + y_j) - 1); they relate by x = f + eps, y = g.
 * Returned potentials use the convention of our log-domain Sinkhorn (src/ot/sinkhorn.ts),
 *   P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps),
 * i.e. f_out = f - eps log a, g_out = g - eps log b; like every pair of OT potentials they are defined up to
 * (f + t, g - t).
 *
 * The exact Hessian has the null vector (1, -1) (shifting f up and g down leaves P unchanged). We remove it by
 * fixing the last g component of every Newton direction at zero: the reduced matrix is positive definite and
 * the plan does not depend on which representative of the shift is taken. The system is solved through its
 * Schur complement on g (see solveNewtonSystem for why).
 */

import { OT_DEFAULTS } from './defaults.js';
import { validateBalancedProblem } from './quadratic.js';
import { sinkhorn } from './sinkhorn.js';
import { type CostMatrix, type OtResult, type SolveControl, throwIfAborted } from './types.js';

export interface SnsOptions extends SolveControl {
  /** N1: log-domain Sinkhorn iterations before switching to Newton (stage 1 stops early if tol is met). */
  sinkhornIterations?: number;
  /** N2: maximum Newton steps. */
  maxNewtonIterations?: number;
  /** lambda: fraction of the n*m entries of P kept in the sparsified Hessian (default 2/n, i.e. ~2m entries). */
  sparsity?: number;
  /**
   * Double the kept fraction when a Newton step cuts the marginal error by less than 1.25x, or a full step that
   * moves the potentials by less than eps/2 fails to halve it (default true). The Hessian of a far-from-converged or large-eps plan is not sparse, and a too-sparse model of it
   * degrades Newton to a Jacobi-like linear rate; growing the budget restores fast convergence.
   */
  adaptiveSparsity?: boolean;
  /**
   * Upper bound of the kept fraction under adaptive growth. Default max(1/8, 64 (n + m) / (n m)): a CG sweep
   * then costs a fraction of one dense pass over P, small problems may go dense, and 2-D clouds at
   * eta = 1200, n = 1000 (whose plans are not that sparse) get what they need.
   */
  maxSparsity?: number;
  /** Floor of the relative residual at which conjugate gradient stops (the forcing term tightens to it). */
  cgTol?: number;
  /** Conjugate-gradient iterations allowed per Newton step. */
  maxCgIterations?: number;
  /** Stop when the L1 marginal error sum|P1 - a| + sum|P^T1 - b| is at most tol. */
  tol?: number;
  /** Sinkhorn iterations run (and counted) when a Newton step fails its line search. */
  fallbackSinkhornIterations?: number;
}

/** Dense evaluation of P at (f, g): fills plan, row and column sums; returns L(f, g) and the marginal error. */
function evaluate(
  f: Float64Array,
  g: Float64Array,
  a: Float64Array,
  b: Float64Array,
  C: CostMatrix,
  eps: number,
  plan: Float64Array,
  rowSums: Float64Array,
  colSums: Float64Array,
): { lyapunov: number; error: number; magnitude: number } {
  const { n, m, data } = C;
  const inv = 1 / eps;
  colSums.fill(0);
  let total = 0;
  let error = 0;
  let linear = 0;
  let magnitude = 0;
  for (let i = 0; i < n; i++) {
    const row = i * m;
    const fi = f[i];
    let rowSum = 0;
    for (let j = 0; j < m; j++) {
      const p = Math.exp((fi + g[j] - data[row + j]) * inv);
      plan[row + j] = p;
      rowSum += p;
      colSums[j] += p;
    }
    rowSums[i] = rowSum;
    total += rowSum;
    error += Math.abs(rowSum - a[i]);
    linear += a[i] * fi;
    magnitude += Math.abs(a[i] * fi);
  }
  for (let j = 0; j < m; j++) {
    error += Math.abs(colSums[j] - b[j]);
    linear += b[j] * g[j];
    magnitude += Math.abs(b[j] * g[j]);
  }
  magnitude += eps * total;
  return { lyapunov: linear - eps * total, error, magnitude };
}

/** Value of the k-th largest entry of values (1-based k), by quickselect on a scratch copy. */
function kthLargest(values: Float64Array, k: number, scratch: Float64Array): number {
  scratch.set(values);
  let lo = 0;
  let hi = scratch.length - 1;
  const target = k - 1;
  while (lo < hi) {
    const pivot = scratch[(lo + hi) >> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (scratch[i] > pivot) i++;
      while (scratch[j] < pivot) j--;
      if (i <= j) {
        const t = scratch[i];
        scratch[i] = scratch[j];
        scratch[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  return scratch[target];
}

/** The kept entries of P in coordinate form. */
interface SparseHessian {
  /** Number of columns of P (the g block starts after the n rows). */
  m: number;
  rows: Int32Array;
  cols: Int32Array;
  values: Float64Array;
  nnz: number;
}

/**
 * Keeps the entries of P at or above a threshold chosen so that about `keep` remain. The threshold is the
 * matching quantile of a strided sample of P (an exact selection over all n*m entries would cost as much as
 * the rest of the Newton step); if the sample misjudges it badly, the exact k-th largest is used instead.
 */
function sparsify(
  plan: Float64Array,
  keep: number,
  sample: Float64Array,
  scratch: Float64Array,
  out: SparseHessian,
): void {
  const total = plan.length;
  const m = out.m;
  const capacity = out.values.length;
  let threshold: number;
  if (total <= 4 * sample.length) {
    threshold = kthLargest(plan, keep, scratch);
  } else {
    // A stride coprime-ish to m so the sample visits every column pattern.
    const stride = Math.floor(total / sample.length) | 1;
    let count = 0;
    for (let k = stride >> 1; k < total && count < sample.length; k += stride) sample[count++] = plan[k];
    const rank = Math.max(1, Math.round((keep * count) / total));
    threshold = kthLargest(sample.subarray(0, count), rank, scratch.subarray(0, count));
    let above = 0;
    for (let k = 0; k < total; k++) if (plan[k] >= threshold) above++;
    if (above > capacity || above < keep / 2) threshold = kthLargest(plan, keep, scratch);
  }
  let nnz = 0;
  for (let k = 0; k < total && nnz < capacity; k++) {
    const p = plan[k];
    if (p >= threshold && p > 0) {
      out.rows[nnz] = (k / m) | 0;
      out.cols[nnz] = k - out.rows[nnz] * m;
      out.values[nnz++] = p;
    }
  }
  out.nnz = nnz;
}

interface NewtonWorkspace {
  /** Schur-complement right-hand side and CG vectors, all of length m. */
  rhs: Float64Array;
  v: Float64Array;
  r: Float64Array;
  z: Float64Array;
  p: Float64Array;
  q: Float64Array;
  invDiag: Float64Array;
  /** Length n scratch for S v. */
  rowTmp: Float64Array;
}

function newtonWorkspace(n: number, m: number): NewtonWorkspace {
  return {
    rhs: new Float64Array(m),
    v: new Float64Array(m),
    r: new Float64Array(m),
    z: new Float64Array(m),
    p: new Float64Array(m),
    q: new Float64Array(m),
    invDiag: new Float64Array(m),
    rowTmp: new Float64Array(n),
  };
}

/**
 * Solves the sparsified Newton system [[diag(r), S], [S^T, diag(c)]] [u; v] = [p; q] through its Schur
 * complement K = diag(c) - S^T diag(r)^{-1} S on the column block, by Jacobi-preconditioned CG, then
 * u = diag(r)^{-1} (p - S v). Why the Schur complement: near convergence P is close to a (fractional)
 * matching, and each matched pair (i, j) gives the full system a 2x2 block with eigenvalues ~ (2a, a delta)
 * (delta: the pair's share of mass outside the match), an ill-conditioning Jacobi cannot see; eliminating f
 * folds each pair into one unknown whose diagonal is exactly that small delta, so Jacobi rescales it away.
 * K has the null vector 1 (from the shift f + t, g - t); v[m-1] is fixed at 0 to remove it.
 * Writes the direction into `direction` (f part then g part) and returns the CG iterations used.
 */
function solveNewtonSystem(
  H: SparseHessian,
  rowSums: Float64Array,
  colSums: Float64Array,
  gradF: Float64Array,
  gradG: Float64Array,
  direction: Float64Array,
  tol: number,
  maxIter: number,
  ws: NewtonWorkspace,
): number {
  const n = rowSums.length;
  const m = colSums.length;
  const fixed = m - 1;
  const { rows, cols, values, nnz } = H;
  const { rhs, v, r, z, p, q, invDiag, rowTmp } = ws;

  // Diagonal of K: c_j - sum_i S_ij^2 / r_i, clamped against cancellation to a tiny positive floor.
  invDiag.set(colSums);
  for (let e = 0; e < nnz; e++) invDiag[cols[e]] -= (values[e] * values[e]) / rowSums[rows[e]];
  for (let j = 0; j < m; j++) {
    const d = Math.max(invDiag[j], 1e-14 * colSums[j]);
    invDiag[j] = d > 0 ? 1 / d : 0;
  }
  invDiag[fixed] = 0;

  // rhs = q - S^T diag(r)^{-1} p.
  rhs.set(gradG);
  for (let e = 0; e < nnz; e++) rhs[cols[e]] -= (values[e] * gradF[rows[e]]) / rowSums[rows[e]];
  rhs[fixed] = 0;

  const multiplyK = (x: Float64Array, out: Float64Array) => {
    rowTmp.fill(0);
    for (let e = 0; e < nnz; e++) rowTmp[rows[e]] += values[e] * x[cols[e]];
    for (let i = 0; i < n; i++) rowTmp[i] /= rowSums[i];
    for (let j = 0; j < m; j++) out[j] = colSums[j] * x[j];
    for (let e = 0; e < nnz; e++) out[cols[e]] -= values[e] * rowTmp[rows[e]];
    out[fixed] = 0;
  };

  v.fill(0);
  r.set(rhs);
  let rhsNorm = 0;
  for (let j = 0; j < m; j++) rhsNorm += r[j] * r[j];
  rhsNorm = Math.sqrt(rhsNorm);
  let iterations = 0;
  if (rhsNorm > 0) {
    const stop = tol * rhsNorm;
    let rz = 0;
    for (let j = 0; j < m; j++) {
      z[j] = r[j] * invDiag[j];
      p[j] = z[j];
      rz += r[j] * z[j];
    }
    while (iterations < maxIter) {
      multiplyK(p, q);
      let pq = 0;
      for (let j = 0; j < m; j++) pq += p[j] * q[j];
      if (!(pq > 0)) break;
      const alpha = rz / pq;
      let residual = 0;
      let rzNew = 0;
      for (let j = 0; j < m; j++) {
        v[j] += alpha * p[j];
        const rj = r[j] - alpha * q[j];
        r[j] = rj;
        residual += rj * rj;
        const zj = rj * invDiag[j];
        z[j] = zj;
        rzNew += rj * zj;
      }
      iterations++;
      if (Math.sqrt(residual) <= stop) break;
      const beta = rzNew / rz;
      rz = rzNew;
      for (let j = 0; j < m; j++) p[j] = z[j] + beta * p[j];
    }
  }

  // Back-substitute u = diag(r)^{-1} (p - S v).
  rowTmp.set(gradF);
  for (let e = 0; e < nnz; e++) rowTmp[rows[e]] -= values[e] * v[cols[e]];
  for (let i = 0; i < n; i++) direction[i] = rowTmp[i] / rowSums[i];
  direction.set(v, n);
  return iterations;
}

/** Entropic OT by Sinkhorn-Newton-Sparse (POT-style signature: a, b, cost, reg = eps). Empty bins are allowed. */
export function sinkhornNewtonSparse(
  a: Float64Array,
  b: Float64Array,
  C: CostMatrix,
  eps: number,
  options: SnsOptions = {},
): OtResult {
  validateBalancedProblem(a, b, C, eps);
  // Empty bins carry no mass and would put log(0) in the potentials: solve on the support, then scatter back.
  const rowsKept = Array.from(a.keys()).filter((i) => a[i] > 0);
  const colsKept = Array.from(b.keys()).filter((j) => b[j] > 0);
  if (rowsKept.length === C.n && colsKept.length === C.m) return solveSns(a, b, C, eps, options);
  const sub = new Float64Array(rowsKept.length * colsKept.length);
  rowsKept.forEach((i, r) => {
    colsKept.forEach((j, c) => {
      sub[r * colsKept.length + c] = C.data[i * C.m + j];
    });
  });
  const inner = solveSns(
    Float64Array.from(rowsKept, (i) => a[i]),
    Float64Array.from(colsKept, (j) => b[j]),
    { n: rowsKept.length, m: colsKept.length, data: sub },
    eps,
    options,
  );
  const plan = new Float64Array(C.n * C.m);
  // With P_ij = a_i b_j exp(...), an empty bin's row or column is zero whatever its potential: report 0.
  const f = new Float64Array(C.n);
  const g = new Float64Array(C.m);
  rowsKept.forEach((i, r) => {
    f[i] = inner.f![r];
    colsKept.forEach((j, c) => {
      plan[i * C.m + j] = inner.plan![r * colsKept.length + c];
    });
  });
  colsKept.forEach((j, c) => {
    g[j] = inner.g![c];
  });
  return { ...inner, plan, f, g, n: C.n, m: C.m };
}

function solveSns(
  a: Float64Array,
  b: Float64Array,
  C: CostMatrix,
  eps: number,
  options: SnsOptions,
): OtResult {
  const { n, m } = C;
  const N1 = options.sinkhornIterations ?? OT_DEFAULTS.sns.sinkhornIterations;
  const N2 = options.maxNewtonIterations ?? OT_DEFAULTS.sns.maxNewtonIterations;
  const sparsity = options.sparsity ?? 2 / n;
  const cgTol = options.cgTol ?? OT_DEFAULTS.sns.cgTol;
  const maxCg = options.maxCgIterations ?? Math.max(1000, 10 * (n + m));
  const tol = options.tol ?? OT_DEFAULTS.sns.tol;
  const fallback = options.fallbackSinkhornIterations ?? 10;
  const armijo = 1e-4;
  const adaptive = options.adaptiveSparsity ?? true;
  let keep = Math.min(n * m, Math.max(Math.ceil(sparsity * n * m), Math.max(n, m)));
  // Adaptive growth stops at maxSparsity: past it a CG sweep would cost about as much as a dense pass over P.
  const maxKeep = Math.max(
    keep,
    Math.min(n * m, Math.ceil((options.maxSparsity ?? Math.max(0.125, (64 * (n + m)) / (n * m))) * n * m)),
  );

  const f = new Float64Array(n);
  const g = new Float64Array(m);
  const logA = Float64Array.from(a, Math.log);
  const logB = Float64Array.from(b, Math.log);
  const errorHistory: { iteration: number; error: number }[] = [];
  let sinkhornIterations = 0;
  let newtonIterations = 0;
  let cgIterations = 0;
  let error = Number.POSITIVE_INFINITY;
  const report = (stage: string) => {
    if (!options.onProgress) return;
    const initial = errorHistory.length > 0 ? errorHistory[0].error : error;
    const fraction =
      error <= tol ? 1 : Math.max(0, Math.min(1, Math.log(initial / error) / Math.log(initial / tol)));
    options.onProgress(
      Number.isFinite(fraction) ? fraction : 0,
      `${stage}: marginal error ${error.toExponential(2)}`,
    );
  };
  // Sinkhorn steps (stage 1 and fallbacks) run in our Sinkhorn solver, warm-started from (f, g). It uses the
  // convention P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps), hence the eps log a, eps log b shifts.
  const sinkhornSteps = (count: number, stopAt: number): void => {
    const run = sinkhorn(a, b, C, eps, {
      maxIter: count,
      tol: stopAt,
      returnPlan: false,
      recordErrors: true,
      signal: options.signal,
      init: {
        f: Float64Array.from(f, (fi, i) => fi - eps * logA[i]),
        g: Float64Array.from(g, (gj, j) => gj - eps * logB[j]),
      },
    });
    for (let i = 0; i < n; i++) f[i] = run.f[i] + eps * logA[i];
    for (let j = 0; j < m; j++) g[j] = run.g[j] + eps * logB[j];
    for (const h of run.errorHistory ?? []) {
      errorHistory.push({ iteration: sinkhornIterations + newtonIterations + h.iteration, error: h.error });
    }
    sinkhornIterations += run.iterations;
    error = run.marginalError;
  };

  // Stage 1.
  if (N1 > 0) {
    sinkhornSteps(N1, tol);
    report('sinkhorn');
  }

  // Stage 2.
  const plan = new Float64Array(n * m);
  const rowSums = new Float64Array(n);
  const colSums = new Float64Array(m);
  const trialF = new Float64Array(n);
  const trialG = new Float64Array(m);
  const dim = n + m;
  const gradF = new Float64Array(n);
  const gradG = new Float64Array(m);
  const direction = new Float64Array(dim);
  const newtonWork = newtonWorkspace(n, m);
  const allocateHessian = (): SparseHessian => {
    const capacity = Math.min(n * m, 2 * keep + n + m);
    return {
      m,
      rows: new Int32Array(capacity),
      cols: new Int32Array(capacity),
      values: new Float64Array(capacity),
      nnz: 0,
    };
  };
  let hessian = allocateHessian();
  const selectScratch = new Float64Array(n * m);
  const sample = new Float64Array(Math.min(n * m, 16384));
  const warnings: string[] = [];
  let lineSearchFailures = 0;

  let state = evaluate(f, g, a, b, C, eps, plan, rowSums, colSums);
  error = state.error;
  errorHistory.push({ iteration: sinkhornIterations + newtonIterations, error });
  while (error > tol && newtonIterations < N2) {
    throwIfAborted(options.signal);
    sparsify(plan, keep, sample, selectScratch, hessian);
    for (let i = 0; i < n; i++) gradF[i] = eps * (a[i] - rowSums[i]);
    for (let j = 0; j < m; j++) gradG[j] = eps * (b[j] - colSums[j]);
    // Inexact Newton (Eisenstat-Walker style forcing term): solve only as accurately as the current
    // marginal error warrants, which keeps early CG runs short without losing fast local convergence.
    const forcing = Math.max(cgTol, Math.min(0.1, error));
    cgIterations += solveNewtonSystem(
      hessian,
      rowSums,
      colSums,
      gradF,
      gradG,
      direction,
      forcing,
      maxCg,
      newtonWork,
    );
    newtonIterations++;

    // Ascent slope of L along the direction: grad . d, with grad = (gradF, gradG) / eps.
    let slope = 0;
    for (let i = 0; i < n; i++) slope += gradF[i] * direction[i];
    for (let j = 0; j < m; j++) slope += gradG[j] * direction[n + j];
    slope /= eps;
    // Largest potential change of a full step. Steps of about eps or more are in the regime where L is
    // exponential along the step and Newton gains a constant factor per step whatever the Hessian model;
    // only below it is a slow rate the sparsified Hessian's fault.
    let stride = 0;
    for (let k = 0; k < dim; k++) stride = Math.max(stride, Math.abs(direction[k]));
    let step = 1;
    let accepted = false;
    const previous = state;
    if (slope > 0) {
      while (step >= 1e-6) {
        for (let i = 0; i < n; i++) trialF[i] = f[i] + step * direction[i];
        for (let j = 0; j < m; j++) trialG[j] = g[j] + step * direction[n + j];
        const trial = evaluate(trialF, trialG, a, b, C, eps, plan, rowSums, colSums);
        const gain = trial.lyapunov - previous.lyapunov;
        // Near the solution the gain falls below the rounding of L itself; there the marginal error
        // (which Newton drives down quadratically) is the reliable witness of progress.
        const inNoise = Math.abs(gain) <= 1e-13 * previous.magnitude;
        if (
          Number.isFinite(trial.lyapunov) &&
          (gain >= armijo * step * slope || (inNoise && trial.error < previous.error))
        ) {
          const ratio = trial.error / previous.error;
          const slow = ratio > 0.8 || (step === 1 && ratio > 0.5 && stride < 0.5 * eps);
          if (adaptive && keep < maxKeep && slow) {
            keep = Math.min(maxKeep, 2 * keep);
            hessian = allocateHessian();
          }
          f.set(trialF);
          g.set(trialG);
          state = trial;
          accepted = true;
          break;
        }
        step *= 0.5;
      }
    }
    if (!accepted) {
      // The sparse Hessian misled us (typically far from the solution at large eps): take Sinkhorn steps,
      // which always make progress, then resume Newton.
      lineSearchFailures++;
      sinkhornSteps(fallback, 0);
      state = evaluate(f, g, a, b, C, eps, plan, rowSums, colSums);
    }
    error = state.error;
    errorHistory.push({ iteration: sinkhornIterations + newtonIterations, error });
    report('newton');
  }

  if (lineSearchFailures > 0) {
    warnings.push(
      `${lineSearchFailures} Newton step(s) failed the line search and fell back to Sinkhorn: raise sparsity or sinkhornIterations`,
    );
  }
  const converged = error <= tol;
  if (!converged) {
    warnings.push(
      `did not converge in ${newtonIterations} Newton steps (marginal error ${error.toExponential(2)} > tol ${tol}): raise maxNewtonIterations or eps`,
    );
  }
  // The plan buffer holds P at the accepted (f, g) (the last evaluate call was the accepted one).
  let cost = 0;
  let entropyTerm = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      const p = plan[i * m + j];
      cost += p * C.data[i * m + j];
      if (p > 0) entropyTerm += p * Math.log(p / (a[i] * b[j])) - p + a[i] * b[j];
    }
  }
  report('done');
  return {
    solver: 'sinkhorn-newton-sparse',
    plan,
    n,
    m,
    f: Float64Array.from(f, (fi, i) => fi - eps * logA[i]),
    g: Float64Array.from(g, (gj, j) => gj - eps * logB[j]),
    cost,
    // <C, P> + eps KL(P | a b^T), the objective the entropic solvers share.
    objective: cost + eps * entropyTerm,
    status: converged ? 'converged' : 'max_iter_reached',
    converged,
    iterations: sinkhornIterations + newtonIterations,
    stageIterations: { sinkhorn: sinkhornIterations, newton: newtonIterations, cg: cgIterations },
    marginalError: error,
    errorHistory,
    warnings,
  };
}
