/**
 * The optimal-transport library: geometry -> problem (marginals) -> solver -> output (types).
 * Pure numerics on Float64Array; no HTTP, no tfjs.
 *
 * Exact and entropic solvers: divergence, emd, emd1d, geometry, marginals, online (matrix-free Sinkhorn: online,
 * online-cpu, online-kernel), sinkhorn, types, unbalanced
 * (simd.ts, the WebAssembly kernels, stays internal).
 * Smooth / sparse solvers (another helper's): lbfgs, quadratic, sns, sparse — add new modules of that family
 * to the list below too (one sorted list, as biome wants; watch for name clashes).
 */
export * from './defaults.js';
export * from './divergence.js';
export * from './emd.js';
export * from './emd1d.js';
export * from './geometry.js';
export * from './lbfgs.js';
export * from './marginals.js';
export * from './online.js';
export * from './online-cpu.js';
export * from './online-kernel.js';
export * from './quadratic.js';
export * from './sinkhorn.js';
export * from './sns.js';
export * from './sparse.js';
export * from './types.js';
export * from './unbalanced.js';
