/**
 * Shared shapes of the optimal-transport library, in the OTT-JAX spirit:
 * geometry (how cost is computed) -> problem (marginals) -> solver (algorithm + parameters) -> output.
 * Everything is float64 and row-major; no tfjs, no fastify.
 */

import { isCancelled } from '../util/cancellation.js';

/** A dense n x m cost matrix, row-major: C[i * m + j]. */
export interface CostMatrix {
  n: number;
  m: number;
  data: Float64Array;
}

/** A balanced or unbalanced OT problem on a dense cost. */
export interface OtProblem {
  a: Float64Array; // length n, non-negative
  b: Float64Array; // length m, non-negative
  C: CostMatrix;
}

/** A plan in coordinate format (COO), sorted by row then column. */
export interface SparsePlan {
  rows: Int32Array;
  cols: Int32Array;
  values: Float64Array;
}

export type SolverStatus = 'optimal' | 'converged' | 'max_iter_reached' | 'infeasible' | 'unbounded';

/** What every solver returns. Fields that a solver cannot produce are omitted. */
export interface OtResult {
  solver: string;
  /** Dense plan, row-major n x m (solvers that work densely). */
  plan?: Float64Array;
  /** Sparse plan (exact solver; sparse solvers). */
  sparsePlan?: SparsePlan;
  n: number;
  m: number;
  /** Dual potentials / log-scalings: f (length n), g (length m). */
  f?: Float64Array;
  g?: Float64Array;
  /** <C, P>. */
  cost: number;
  /** Objective of the regularised problem (e.g. <C,P> + eps KL(P | ab^T)), when different from cost. */
  objective?: number;
  status: SolverStatus;
  converged: boolean;
  iterations: number;
  /** Iterations per stage for multi-stage solvers (e.g. SNS: { sinkhorn, newton }). */
  stageIterations?: Record<string, number>;
  /** L1 marginal error sum|P1 - a| + sum|P^T1 - b| at the end. */
  marginalError?: number;
  /** Marginal error history, one value each time it was checked, with the iteration it was checked at. */
  errorHistory?: { iteration: number; error: number }[];
  /** Human-readable advice, e.g. "did not converge in 1000 iterations: raise maxIter or reg". */
  warnings: string[];
}

/** Progress callback: fraction in [0,1] and a short message. Solvers call it now and then. */
export type ProgressFn = (fraction: number, message: string) => void;

/** Optional controls that every iterative solver accepts. */
export interface SolveControl {
  /** Checked between iterations: when aborted the solver throws an AbortError. */
  signal?: AbortSignal;
  onProgress?: ProgressFn;
}

export class OtInputError extends Error {
  constructor(
    message: string,
    /**
     * 'unbalanced' for mass mismatch, 'range' for numbers that overflow double precision (a cost, a total mass
     * or an answer), 'invalid' for malformed input; all HTTP 422.
     */
    public readonly kind: 'unbalanced' | 'invalid' | 'range' | 'too-large' = 'invalid',
    public readonly details?: unknown,
  ) {
    super(message);
    this.name = 'OtInputError';
  }
}

/**
 * Stops a solver whose caller aborted (`signal`) or whose compute task was cancelled (src/util/cancellation.ts):
 * every iterative solver calls it between iterations.
 */
export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted || isCancelled()) {
    const err = new Error('aborted');
    err.name = 'AbortError';
    throw err;
  }
}
