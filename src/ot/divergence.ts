/**
 * Losses built on the solvers: the Sinkhorn divergence between two point clouds and the Monge gap of a map.
 */
import { OT_DEFAULTS } from './defaults.js';
import { emd } from './emd.js';
import { type CostKind, costMatrix, type PointCloud } from './geometry.js';
import { checkWeights, uniform } from './marginals.js';
import { sinkhorn } from './sinkhorn.js';
import { OtInputError, type SolveControl } from './types.js';

export interface SinkhornDivergenceOptions extends SolveControl {
  /** Ground cost between points (default 'sqeuclidean'); p for 'minkowski'. */
  cost?: CostKind;
  p?: number;
  /** Per Sinkhorn solve. POT's empirical_sinkhorn_divergence uses numIterMax 10000 and stopThr 1e-9. */
  maxIter?: number;
  tol?: number;
  /** Clamp the result at 0 like POT (default true); `raw` is always reported unclamped. */
  clampAtZero?: boolean;
}

export interface SinkhornDivergenceResult {
  /** max(0, raw) unless clampAtZero is false. */
  value: number;
  /** OT_eps(a, b) - (OT_eps(a, a) + OT_eps(b, b)) / 2. */
  raw: number;
  costXY: number;
  costXX: number;
  costYY: number;
  converged: boolean;
  warnings: string[];
}

/**
 * Sinkhorn divergence S_eps(a, b) = OT_eps(a, b) - (OT_eps(a, a) + OT_eps(b, b)) / 2, as POT's
 * `ot.bregman.empirical_sinkhorn_divergence(X_s, X_t, reg, a, b)`: OT_eps here is POT's `sinkhorn2`, the
 * LINEAR cost <C, P_eps> of the entropic plan (not the regularised objective), and the result is clamped at 0.
 * Uniform weights when a or b are omitted. eps is absolute (in cost units).
 */
export function sinkhornDivergence(
  x: PointCloud,
  y: PointCloud,
  a: ArrayLike<number> | undefined,
  b: ArrayLike<number> | undefined,
  eps: number,
  options: SinkhornDivergenceOptions = {},
): SinkhornDivergenceResult {
  const wa = a ? Float64Array.from(a) : uniform(x.n);
  const wb = b ? Float64Array.from(b) : uniform(y.n);
  checkWeights(wa, 'a', x.n);
  checkWeights(wb, 'b', y.n);
  const costOptions = { cost: options.cost, p: options.p };
  const solveOptions = {
    maxIter: options.maxIter ?? OT_DEFAULTS.sinkhornDivergence.maxIter,
    tol: options.tol ?? OT_DEFAULTS.sinkhornDivergence.tol,
    signal: options.signal,
    returnPlan: false,
  };
  const xy = sinkhorn(wa, wb, costMatrix(x, y, costOptions), eps, solveOptions);
  const xx = sinkhorn(wa, wa, costMatrix(x, x, costOptions), eps, solveOptions);
  const yy = sinkhorn(wb, wb, costMatrix(y, y, costOptions), eps, solveOptions);
  const raw = xy.cost - 0.5 * (xx.cost + yy.cost);
  return {
    value: options.clampAtZero === false ? raw : Math.max(0, raw),
    raw,
    costXY: xy.cost,
    costXX: xx.cost,
    costYY: yy.cost,
    converged: xy.converged && xx.converged && yy.converged,
    warnings: [...xy.warnings, ...xx.warnings, ...yy.warnings],
  };
}

export interface MongeGapOptions extends SolveControl {
  /** Ground cost c (default 'sqeuclidean'); p for 'minkowski'. */
  cost?: CostKind;
  p?: number;
  /** Entropic regularisation (absolute). Default 0.05 * mean cost between x and Tx (OTT-JAX's default rule). */
  eps?: number;
  /** Use exact OT (network simplex) instead of the entropic one. */
  exact?: boolean;
  maxIter?: number;
  tol?: number;
}

export interface MongeGapResult {
  /** displacement - transportCost. */
  gap: number;
  /** (1/n) sum_i c(x_i, T(x_i)). */
  displacement: number;
  /** W_c(rho_n, T#rho_n) (exact) or W_{c,eps} = <C,P> - eps H(P) (entropic, see mongeGap). */
  transportCost: number;
  /** The eps used (0 when exact). */
  eps: number;
  converged: boolean;
  warnings: string[];
}

/**
 * Monge gap of a map T on the empirical measure rho_n = (1/n) sum delta_{x_i} (Uscidda & Cuturi, 2023):
 *   M(T) = (1/n) sum_i c(x_i, T(x_i)) - W_c(rho_n, T#rho_n),
 * given the points x (n x d) and their images Tx (n x d), both uniformly weighted.
 *
 * exact: W_c is the exact OT cost, so M(T) >= 0 and M(T) = 0 exactly when T is an OT map on the sample.
 * entropic (default): W_{c,eps} = min_P <C,P> - eps H(P) with H(P) = -sum P log P, as OTT-JAX's
 * `reg_ot_cost`. Since the coupling diag(1/n) is admissible, W_{c,eps} <= displacement - eps log n: the
 * entropic gap is >= eps log n for ANY map, and an OT map with well separated points gives about eps log n.
 * Subtract eps * log(n) if you want a gap that tends to 0.
 */
export function mongeGap(x: PointCloud, Tx: PointCloud, options: MongeGapOptions = {}): MongeGapResult {
  if (x.n !== Tx.n || x.d !== Tx.d) {
    throw new OtInputError(
      `x is ${x.n} x ${x.d} but Tx is ${Tx.n} x ${Tx.d}: the map must give one image per point`,
    );
  }
  const n = x.n;
  const C = costMatrix(x, Tx, { cost: options.cost, p: options.p });
  let displacement = 0;
  for (let i = 0; i < n; i++) displacement += C.data[i * n + i];
  displacement /= n;
  const w = uniform(n);
  if (options.exact) {
    const r = emd(w, w, C, {
      maxIter: options.maxIter ?? OT_DEFAULTS.mongeGap.exactMaxIter,
      signal: options.signal,
    });
    return {
      gap: displacement - r.cost,
      displacement,
      transportCost: r.cost,
      eps: 0,
      converged: r.converged,
      warnings: r.warnings,
    };
  }
  let eps = options.eps;
  if (eps === undefined) {
    let mean = 0;
    for (let k = 0; k < C.data.length; k++) mean += C.data[k];
    eps = (OT_DEFAULTS.mongeGap.epsFactor * mean) / C.data.length;
    if (!(eps > 0)) eps = 1e-3;
  }
  const r = sinkhorn(w, w, C, eps, {
    maxIter: options.maxIter ?? OT_DEFAULTS.mongeGap.maxIter,
    tol: options.tol ?? OT_DEFAULTS.mongeGap.tol,
    signal: options.signal,
    onProgress: options.onProgress,
  });
  // <C,P> + eps sum P log P, from the plan itself (entries that underflowed to 0 contribute 0).
  const P = r.plan!;
  let negEntropy = 0;
  for (let k = 0; k < P.length; k++) if (P[k] > 0) negEntropy += P[k] * Math.log(P[k]);
  const transportCost = r.cost + eps * negEntropy;
  return {
    gap: displacement - transportCost,
    displacement,
    transportCost,
    eps,
    converged: r.converged,
    warnings: r.warnings,
  };
}
