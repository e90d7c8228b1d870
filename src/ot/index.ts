/**
 * The optimal-transport library: geometry -> problem (marginals) -> solver -> output (types).
 * Pure numerics on Float64Array; no HTTP, no tfjs.
 */
export * from './divergence.js';
export * from './emd.js';
export * from './emd1d.js';
export * from './geometry.js';
export * from './marginals.js';
export * from './sinkhorn.js';
export * from './types.js';
export * from './unbalanced.js';

// --- Smooth / sparse solvers (lbfgs.ts, quadratic.ts, sparse.ts, sns.ts), written by another helper. ---
// Add new modules of that family here (watch for name clashes with the exports above).
export * from './lbfgs.js';
export * from './quadratic.js';
export * from './sns.js';
export * from './sparse.js';
