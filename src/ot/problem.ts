/**
 * An optimal-transport problem as the library reads it, OTT-JAX's split in one object: the geometry (points and a
 * cost, or a cost matrix, and its scaling), the problem (marginals), the solver with its parameters (POT-like,
 * `reg` everywhere), and what the output should hold. The service's request schema
 * (src/operations/ot/schema.ts) parses into this shape; a script or a test can build one by hand.
 */
import type { CostKind, CostScaling } from './geometry.js';

/** The solver and its parameters (see each solver's module for their meaning and defaults). */
export type OtSolverSpec =
  | { solver: 'emd'; maxIter: number }
  | { solver: 'emd1d' }
  | {
      solver: 'sinkhorn';
      reg: number;
      method: 'auto' | 'log' | 'kernel';
      maxIter: number;
      tol: number;
      checkEvery: number;
      epsilonScaling: boolean;
      /** Matrix-free (online) Sinkhorn on the points; the service decides it when not given. */
      online?: boolean;
    }
  | {
      solver: 'sns';
      reg: number;
      sinkhornIterations: number;
      maxNewtonIterations: number;
      sparsity?: number;
      cgTol: number;
      tol: number;
    }
  | {
      solver: 'sparse';
      reg: number;
      k: number;
      side: 'columns' | 'rows';
      formulation: 'dual' | 'semiDual';
      maxIter: number;
    }
  | { solver: 'quadratic'; reg: number; formulation: 'dual' | 'semiDual'; maxIter: number }
  | { solver: 'unbalanced'; reg: number; regM: number; maxIter: number; tol: number };

/** What the output holds: the plan (dense, sparse, by size, or none), the potentials, the error history. */
export interface OtOutputSpec {
  plan: 'auto' | 'dense' | 'sparse' | 'none';
  /** Sparse plans drop entries <= threshold. */
  threshold: number;
  /** Online Sinkhorn: the k largest entries of each row. */
  topK?: number;
  potentials: boolean;
  errorHistory: boolean;
}

export interface OtPlanProblem {
  /** Geometry: points (n x d, m x d) with a cost, or a cost matrix (nested rows, or flat with n and m). */
  x?: number[][];
  y?: number[][];
  C?: number[] | number[][];
  n?: number;
  m?: number;
  cost: CostKind;
  /** Exponent of the minkowski cost (and of emd1d). */
  p: number;
  scaling: CostScaling;
  /** Problem: the marginals (uniform when absent); `normalize` rescales b to a's mass. */
  a?: number[];
  b?: number[];
  normalize: boolean;
  solver: OtSolverSpec;
  output: OtOutputSpec;
}
