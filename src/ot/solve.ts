/**
 * Solving an OT problem (src/ot/problem.ts), OTT-JAX's order: geometry (the cost from points, or a matrix, scaled)
 * -> problem (marginals) -> solver (dispatch on `solver`) -> output (plan dense, sparse or none, potentials,
 * diagnostics). Online (matrix-free) Sinkhorn has its own entry, `solvePlanOnline`. Pure library code: the service
 * calls it from a compute worker (src/operations/ot/task.ts), a script or a test can call it directly.
 */
import { emd } from './emd.js';
import { emd1d } from './emd1d.js';
import { costFromMatrix, pointCloud, pointCloudCost, scaleCost } from './geometry.js';
import { checkBalanced, uniform } from './marginals.js';
import { onlineCostScale, onlineSparsePlan, sinkhornOnline } from './online.js';
import { cpuSoftmin } from './online-cpu.js';
import type { OnlineCost, OnlineGeometry, SoftminFactory } from './online-kernel.js';
import type { OtPlanProblem } from './problem.js';
import { quadraticOt } from './quadratic.js';
import { sinkhorn } from './sinkhorn.js';
import { sinkhornNewtonSparse } from './sns.js';
import { sparseOt } from './sparse.js';
import type { CostMatrix, OtResult, ProgressFn, SparsePlan } from './types.js';
import { sinkhornUnbalanced } from './unbalanced.js';

/** The solved problem as the service answers it (typed arrays kept; see src/ot/output.ts for JSON). */
export interface OtPlanOutput {
  solver: string;
  n: number;
  m: number;
  status: string;
  converged: boolean;
  iterations: number;
  stageIterations?: Record<string, number>;
  cost: number;
  objective?: number;
  marginalError?: number;
  costScale: number;
  warnings: string[];
  plan?:
    | { format: 'dense'; data: Float64Array }
    | {
        format: 'sparse';
        rows: Int32Array;
        cols: Int32Array;
        values: Float64Array;
        threshold: number;
        nnz: number;
      };
  f?: Float64Array;
  g?: Float64Array;
  errorHistory?: { iteration: number; error: number }[];
  /** Online Sinkhorn: the soft-min backend that ran it ('cpu-wasm-simd', 'cpu-js' ...). */
  backend?: string;
  timings: { solveMs: number };
}

function geometry(req: OtPlanProblem): { C: CostMatrix; scale: number } {
  if (req.x && req.y) {
    const s = pointCloudCost(pointCloud(req.x), pointCloud(req.y), {
      cost: req.cost,
      p: req.p,
      scaling: req.scaling,
    });
    return { C: s.C, scale: s.scale };
  }
  const C = req.C as number[] | number[][];
  const base = Array.isArray(C[0])
    ? costFromMatrix(C as number[][])
    : costFromMatrix(C as number[], req.n, req.m);
  const s = scaleCost(base, req.scaling);
  return { C: s.C, scale: s.scale };
}

function toSparse(plan: Float64Array, threshold: number): SparsePlan {
  let nnz = 0;
  for (let k = 0; k < plan.length; k++) if (plan[k] > threshold) nnz++;
  return { rows: new Int32Array(nnz), cols: new Int32Array(nnz), values: new Float64Array(nnz) };
}

function shapePlan(res: OtResult, req: OtPlanProblem, n: number, m: number): OtPlanOutput['plan'] {
  const mode = req.output.plan;
  if (mode === 'none') return undefined;
  const threshold = req.output.threshold;
  let sparse = res.sparsePlan;
  const dense = res.plan;
  if (sparse && threshold > 0) {
    const keep: number[] = [];
    for (let k = 0; k < sparse.values.length; k++) if (sparse.values[k] > threshold) keep.push(k);
    sparse = {
      rows: Int32Array.from(keep, (k) => sparse!.rows[k]),
      cols: Int32Array.from(keep, (k) => sparse!.cols[k]),
      values: Float64Array.from(keep, (k) => sparse!.values[k]),
    };
  }
  const nnz = sparse
    ? sparse.values.length
    : dense
      ? dense.reduce((c, v) => c + (v > threshold ? 1 : 0), 0)
      : 0;
  const wantSparse = mode === 'sparse' || (mode === 'auto' && nnz < (n * m) / 4);
  if (wantSparse) {
    if (!sparse && dense) {
      const s = toSparse(dense, threshold);
      let k = 0;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < m; j++) {
          const v = dense[i * m + j];
          if (v > threshold) {
            s.rows[k] = i;
            s.cols[k] = j;
            s.values[k] = v;
            k++;
          }
        }
      }
      sparse = s;
    }
    if (!sparse) return undefined;
    return { format: 'sparse', ...sparse, threshold, nnz: sparse.values.length };
  }
  if (dense) return { format: 'dense', data: dense };
  if (sparse) {
    const d = new Float64Array(n * m);
    for (let k = 0; k < sparse.values.length; k++) d[sparse.rows[k] * m + sparse.cols[k]] = sparse.values[k];
    return { format: 'dense', data: d };
  }
  return undefined;
}

export function solvePlan(
  req: OtPlanProblem,
  withPlan: boolean,
  ctx?: { progress?: ProgressFn },
  signal?: AbortSignal,
): OtPlanOutput {
  const t0 = performance.now();
  const control = { signal, onProgress: ctx?.progress };
  const s = req.solver;

  if (s.solver === 'emd1d') {
    const xa = req.x!.map((r) => r[0]);
    const xb = req.y!.map((r) => r[0]);
    const r = emd1d(xa, xb, req.a, req.b, req.p, { normalize: req.normalize });
    const n = xa.length;
    const m = xb.length;
    const res: OtResult = {
      solver: 'emd1d',
      sparsePlan: r.plan,
      n,
      m,
      cost: r.cost,
      status: 'optimal',
      converged: true,
      iterations: 0,
      warnings: [],
    };
    return finish(res, req, withPlan, 1, t0);
  }

  const { C, scale } = geometry(req);
  const n = C.n;
  const m = C.m;
  const a = req.a ? Float64Array.from(req.a) : uniform(n);
  let b = req.b ? Float64Array.from(req.b) : uniform(m);
  if (s.solver !== 'unbalanced') b = checkBalanced(a, b, { normalize: req.normalize }).b;

  let res: OtResult;
  switch (s.solver) {
    case 'emd':
      res = emd(a, b, C, { maxIter: s.maxIter, ...control });
      break;
    case 'sinkhorn':
      res = sinkhorn(a, b, C, s.reg, {
        method: s.method,
        maxIter: s.maxIter,
        tol: s.tol,
        checkEvery: s.checkEvery,
        epsilonScaling: s.epsilonScaling,
        recordErrors: req.output.errorHistory,
        returnPlan: withPlan && req.output.plan !== 'none',
        ...control,
      });
      break;
    case 'sns':
      res = sinkhornNewtonSparse(a, b, C, s.reg, {
        sinkhornIterations: s.sinkhornIterations,
        maxNewtonIterations: s.maxNewtonIterations,
        sparsity: s.sparsity,
        cgTol: s.cgTol,
        tol: s.tol,
        ...control,
      });
      break;
    case 'sparse':
      res = sparseOt(a, b, C, s.reg, s.k, {
        side: s.side,
        formulation: s.formulation,
        maxIter: s.maxIter,
        ...control,
      });
      break;
    case 'quadratic':
      res = quadraticOt(a, b, C, s.reg, { formulation: s.formulation, maxIter: s.maxIter, ...control });
      break;
    case 'unbalanced':
      res = sinkhornUnbalanced(a, b, C, s.reg, s.regM, {
        maxIter: s.maxIter,
        tol: s.tol,
        recordErrors: req.output.errorHistory,
        returnPlan: withPlan && req.output.plan !== 'none',
        zeroWeightPotentials: 'finite',
        ...control,
      });
      break;
  }
  return finish(res, req, withPlan, scale, t0);
}

function finish(
  res: OtResult,
  req: OtPlanProblem,
  withPlan: boolean,
  scale: number,
  t0: number,
): OtPlanOutput {
  const out: OtPlanOutput = {
    solver: res.solver,
    n: res.n,
    m: res.m,
    status: res.status,
    converged: res.converged,
    iterations: res.iterations,
    cost: res.cost,
    costScale: scale,
    warnings: res.warnings,
    timings: { solveMs: 0 },
  };
  if (res.stageIterations) out.stageIterations = res.stageIterations;
  if (res.objective !== undefined) out.objective = res.objective;
  if (res.marginalError !== undefined) out.marginalError = res.marginalError;
  if (withPlan) {
    const plan = shapePlan(res, req, res.n, res.m);
    if (plan) out.plan = plan;
  }
  if (req.output.potentials && res.f && res.g) {
    out.f = res.f;
    out.g = res.g;
  }
  if (req.output.errorHistory && res.errorHistory) out.errorHistory = res.errorHistory;
  out.timings.solveMs = performance.now() - t0;
  return out;
}

/**
 * Online (matrix-free) Sinkhorn on the request's point clouds (the service set `solver.online`): no n x m
 * matrix; a plan, when asked for, is sparse (top-k per row and/or above the threshold).
 */
/** Below this many pairs `auto` stays on the CPU: loading Dawn and a dispatch per half-step would cost more. */
export const ONLINE_GPU_MIN_PAIRS = 4_000_000;

/**
 * The marginal error the float32 WebGPU soft-min can reach (its potentials carry a few 1e-7 of the value scale;
 * measured on lavapipe, the error levels off near 1e-6): `auto` keeps a request that asks for less on the CPU.
 */
export const ONLINE_GPU_MIN_TOL = 1e-6;

/**
 * The soft-min of online Sinkhorn the worker is configured for (OT_ONLINE_BACKEND): `cpu`; `webgpu` (any adapter,
 * software included; a coded 422 when there is none); `auto`: a hardware WebGPU adapter for problems of at least
 * ONLINE_GPU_MIN_PAIRS pairs when one exists, else the CPU.
 */
export async function onlineSoftminFor(
  geometry: Pick<OnlineGeometry, 'n' | 'm'>,
  choice: 'auto' | 'cpu' | 'webgpu' = 'auto',
  tol = ONLINE_GPU_MIN_TOL,
): Promise<SoftminFactory> {
  const small = geometry.n * geometry.m < ONLINE_GPU_MIN_PAIRS;
  if (choice === 'cpu' || (choice === 'auto' && (small || tol < ONLINE_GPU_MIN_TOL))) return cpuSoftmin;
  const { webgpuSoftmin } = await import('./online-webgpu.js');
  if (choice === 'webgpu') return webgpuSoftmin(undefined, { allowSoftware: true });
  const { getWebGpu } = await import('../gpu/device.js');
  const gpu = await getWebGpu();
  return gpu.ok ? webgpuSoftmin(gpu.device) : cpuSoftmin;
}

export async function solvePlanOnline(
  req: OtPlanProblem,
  withPlan: boolean,
  ctx?: {
    progress?: ProgressFn;
    /** The soft-min backend (OT_ONLINE_BACKEND) and the most entries a sparse plan may hold (OT_MAX_ENTRIES). */
    options?: { otOnlineBackend?: 'auto' | 'cpu' | 'webgpu'; otMaxEntries?: number };
  },
  signal?: AbortSignal,
): Promise<OtPlanOutput> {
  const t0 = performance.now();
  const s = req.solver;
  if (s.solver !== 'sinkhorn' || !req.x || !req.y)
    throw new Error('solvePlanOnline needs a point-cloud sinkhorn request');
  const x = pointCloud(req.x);
  const y = pointCloud(req.y);
  const base = { x: x.data, n: x.n, y: y.data, m: y.n, dim: x.d, cost: req.cost as OnlineCost };
  const scale = onlineCostScale(base, req.scaling);
  const geometry = { ...base, costScale: scale };
  const a = req.a ? Float64Array.from(req.a) : uniform(x.n);
  const b = checkBalanced(a, req.b ? Float64Array.from(req.b) : uniform(y.n), { normalize: req.normalize }).b;
  const factory = await onlineSoftminFor(geometry, ctx?.options?.otOnlineBackend, s.tol);
  const res = await sinkhornOnline(
    geometry,
    a,
    b,
    {
      reg: s.reg,
      maxIter: s.maxIter,
      tol: s.tol,
      checkEvery: s.checkEvery,
      epsilonScaling: s.epsilonScaling,
      recordErrors: req.output.errorHistory,
      signal,
      onProgress: ctx?.progress,
    },
    factory,
  );
  const out = finish(res, req, false, scale, t0);
  out.backend = res.backend;
  if (res.backend === 'webgpu' && s.tol < ONLINE_GPU_MIN_TOL)
    out.warnings.push(
      `the WebGPU backend computes in float32: its marginal error levels off near ${ONLINE_GPU_MIN_TOL}, above tol ${s.tol}`,
    );
  const { topK, threshold, plan: mode } = req.output;
  if (withPlan && mode !== 'none') {
    if (topK !== undefined || threshold > 0) {
      const sparse = onlineSparsePlan(geometry, a, b, res.f, res.g, res.eps, {
        topK,
        threshold,
        maxEntries: ctx?.options?.otMaxEntries,
      });
      out.plan = { format: 'sparse', ...sparse, threshold, nnz: sparse.values.length };
    } else {
      out.warnings.push(
        'no plan: online Sinkhorn returns a sparse plan when output.topK or output.threshold is given',
      );
    }
  }
  out.timings.solveMs = performance.now() - t0;
  return out;
}

/**
 * Solve `problem` with its solver: online (matrix-free) Sinkhorn when `solver.online` says so, else on the dense
 * cost. `withPlan: false` answers cost and potentials only.
 */
export async function solve(
  problem: OtPlanProblem,
  opts: {
    withPlan?: boolean;
    progress?: ProgressFn;
    signal?: AbortSignal;
    options?: { otOnlineBackend?: 'auto' | 'cpu' | 'webgpu'; otMaxEntries?: number };
  } = {},
): Promise<OtPlanOutput> {
  const withPlan = opts.withPlan ?? true;
  const s = problem.solver;
  return s.solver === 'sinkhorn' && s.online
    ? solvePlanOnline(problem, withPlan, opts, opts.signal)
    : solvePlan(problem, withPlan, opts, opts.signal);
}
