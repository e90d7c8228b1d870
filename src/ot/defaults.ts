/**
 * The default parameters of every optimal-transport solver: the one source of truth. The library functions fall
 * back to these, and the request schemas (src/schemas/ot.ts, hence REST, GraphQL, jobs and the OpenAPI document)
 * take their defaults from here, so a request that leaves a parameter out gets exactly what the library does.
 * Where POT has the same parameter the value is POT's (0.8.2).
 */
export const OT_DEFAULTS = {
  /** Network simplex: POT's ot.emd numItermax. */
  emd: { maxIter: 100_000 },
  /** POT's ot.sinkhorn: numItermax 1000, stopThr 1e-9 (L1 marginal error). */
  sinkhorn: {
    method: 'auto',
    maxIter: 1000,
    tol: 1e-9,
    checkEvery: 10,
    epsilonScaling: false,
  },
  /** POT's empirical_sinkhorn_divergence: numIterMax 10000, stopThr 1e-9 (per Sinkhorn solve). */
  sinkhornDivergence: { maxIter: 10_000, tol: 1e-9 },
  /**
   * Monge gap: `maxIter` caps the Sinkhorn iterations (entropic) or the network-simplex pivots (exact); the
   * exact default is large because the simplex needs O(n^2)-ish pivots on n points and a capped simplex gives a
   * wrong (even negative) gap.
   */
  mongeGap: { maxIter: 10_000, exactMaxIter: 10_000_000, tol: 1e-9, epsFactor: 0.05 },
  /** Sinkhorn-Newton-sparse. */
  sns: { sinkhornIterations: 20, maxNewtonIterations: 200, cgTol: 1e-9, tol: 1e-9 },
  /** Sparsity-constrained OT (L-BFGS on the dual or semi-dual). */
  sparse: { side: 'columns', formulation: 'dual', maxIter: 3000 },
  /** Quadratically regularised OT (L-BFGS). */
  quadratic: { formulation: 'dual', maxIter: 2000 },
  /** Unbalanced Sinkhorn: POT's sinkhorn_unbalanced numItermax 1000, stopThr 1e-9. */
  unbalanced: { maxIter: 1000, tol: 1e-9 },
} as const;
