/**
 * The optimal-transport operations, one zod schema family shared by REST (validation + OpenAPI), GraphQL
 * (the resolver parses its input with the same schema) and the compute task. Shape, as in OTT-JAX:
 * geometry (C, or x/y with a cost) -> problem (a, b) -> solver (name + params) -> output options.
 */
import { z } from 'zod';
import { OT_DEFAULTS } from '../../ot/defaults.js';
import {
  checkRectangular,
  finite,
  matrix,
  nonNegative,
  positive,
  timeoutMs,
  whenShapeValid,
} from '../common-schema.js';

export const costKind = z
  .enum(['sqeuclidean', 'euclidean', 'cityblock', 'minkowski', 'cosine'])
  .default('sqeuclidean')
  .describe('Ground cost between points');
export const costScaling = z
  .enum(['none', 'max', 'mean', 'median'])
  .default('none')
  .describe('Divide the cost matrix by its max/mean/median before solving (POT users normalise by max)');

const points = z.array(z.array(finite).min(1)).min(1);

export const geometryFields = {
  C: matrix.optional().describe('Cost matrix n x m: nested rows, or flat row-major with n and m given'),
  n: z.number().int().min(1).optional().describe('Rows of a flat C'),
  m: z.number().int().min(1).optional().describe('Columns of a flat C'),
  x: points.optional().describe('Source points, n x d'),
  y: points.optional().describe('Target points, m x d'),
  cost: costKind,
  p: finite.min(1).default(2).describe('Exponent of the minkowski cost (and of emd1d)'),
  scaling: costScaling,
};

export const marginalFields = {
  a: z.array(nonNegative).min(1).optional().describe('Source weights (default uniform)'),
  b: z.array(nonNegative).min(1).optional().describe('Target weights (default uniform)'),
  normalize: z
    .boolean()
    .default(false)
    .describe('Rescale b to the mass of a instead of refusing unequal masses (balanced solvers)'),
};

const maxIterNumber = z.number().int().min(1).max(10_000_000);
/** Defaults come from the library (src/ot/defaults.ts), so REST, GraphQL and jobs solve what the library solves. */
const maxIter = (def: number) => maxIterNumber.default(def);

export const solverSchema = z.discriminatedUnion('solver', [
  z.object({
    solver: z.literal('emd'),
    maxIter: maxIter(OT_DEFAULTS.emd.maxIter).describe('Maximum network-simplex pivots'),
  }),
  z.object({
    solver: z.literal('emd1d'),
  }),
  z.object({
    solver: z.literal('sinkhorn'),
    reg: positive.describe('Entropic regularisation eps (in cost units, after scaling)'),
    method: z.enum(['auto', 'log', 'kernel']).default(OT_DEFAULTS.sinkhorn.method),
    maxIter: maxIter(OT_DEFAULTS.sinkhorn.maxIter),
    tol: positive.default(OT_DEFAULTS.sinkhorn.tol).describe('Stop when the L1 marginal error is below tol'),
    checkEvery: z.number().int().min(1).max(10_000).default(OT_DEFAULTS.sinkhorn.checkEvery),
    epsilonScaling: z.boolean().default(OT_DEFAULTS.sinkhorn.epsilonScaling),
    online: z
      .boolean()
      .optional()
      .describe(
        'Online (matrix-free) Sinkhorn on x and y: the cost is computed on the fly, memory O(n + m). ' +
          'Default: on when n*m exceeds OT_MAX_ENTRIES (point clouds only)',
      ),
  }),
  z.object({
    solver: z.literal('sns'),
    reg: positive.describe('Entropic regularisation eps = 1/eta'),
    sinkhornIterations: z
      .number()
      .int()
      .min(0)
      .max(1_000_000)
      .default(OT_DEFAULTS.sns.sinkhornIterations)
      .describe('N1: Sinkhorn steps first'),
    maxNewtonIterations: z
      .number()
      .int()
      .min(0)
      .max(100_000)
      .default(OT_DEFAULTS.sns.maxNewtonIterations)
      .describe('N2: maximum Newton steps'),
    sparsity: z
      .number()
      .gt(0)
      .max(1)
      .optional()
      .describe('Fraction of entries kept in the Hessian (default 2/n)'),
    cgTol: positive.default(OT_DEFAULTS.sns.cgTol),
    tol: positive.default(OT_DEFAULTS.sns.tol),
  }),
  z.object({
    solver: z.literal('sparse'),
    reg: positive.describe('Quadratic regularisation gamma'),
    k: z.number().int().min(1).describe('At most k nonzeros per column (or row)'),
    side: z.enum(['columns', 'rows']).default(OT_DEFAULTS.sparse.side),
    formulation: z.enum(['dual', 'semiDual']).default(OT_DEFAULTS.sparse.formulation),
    maxIter: maxIter(OT_DEFAULTS.sparse.maxIter),
  }),
  z.object({
    solver: z.literal('quadratic'),
    reg: positive.describe('L2 regularisation'),
    formulation: z.enum(['dual', 'semiDual']).default(OT_DEFAULTS.quadratic.formulation),
    maxIter: maxIter(OT_DEFAULTS.quadratic.maxIter),
  }),
  z.object({
    solver: z.literal('unbalanced'),
    reg: positive.describe('Entropic regularisation eps'),
    regM: z.number().gt(0).describe('Marginal relaxation (KL weight, POT reg_m); large = nearly balanced'),
    maxIter: maxIter(OT_DEFAULTS.unbalanced.maxIter),
    tol: positive.default(OT_DEFAULTS.unbalanced.tol),
  }),
]);

export const outputSchema = z
  .object({
    plan: z
      .enum(['auto', 'dense', 'sparse', 'none'])
      .default('auto')
      .describe('auto: sparse when nnz < n*m/4, else dense'),
    threshold: nonNegative.default(0).describe('Sparse plans drop entries <= threshold'),
    topK: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe(
        'Online Sinkhorn: the sparse plan keeps the k largest entries of each row (and those > threshold)',
      ),
    potentials: z.boolean().default(true),
    errorHistory: z.boolean().default(false),
  })
  .prefault({});

function geometryRefine(
  v: { C?: unknown; x?: number[][]; y?: number[][]; n?: number; m?: number },
  ctx: z.RefinementCtx,
) {
  const hasC = v.C !== undefined;
  const hasXY = v.x !== undefined || v.y !== undefined;
  if (hasC === hasXY) {
    ctx.addIssue({ code: 'custom', path: ['C'], message: 'give either C, or both x and y' });
    return;
  }
  if (hasXY) {
    if (!v.x || !v.y) {
      ctx.addIssue({ code: 'custom', path: [v.x ? 'y' : 'x'], message: 'x and y go together' });
      return;
    }
    checkRectangular(v.x, ctx, ['x']);
    checkRectangular(v.y, ctx, ['y']);
    if (v.x[0].length !== v.y[0].length) {
      ctx.addIssue({
        code: 'custom',
        path: ['y', 0],
        message: `dimension mismatch: x has d=${v.x[0].length}, y has d=${v.y[0].length}`,
      });
    }
    return;
  }
  const C = v.C as number[] | number[][];
  if (C.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['C'], message: 'C is empty' });
    return;
  }
  if (Array.isArray(C[0])) {
    checkRectangular(C as number[][], ctx, ['C']);
    if ((C as number[][])[0].length === 0)
      ctx.addIssue({ code: 'custom', path: ['C', 0], message: 'C has empty rows' });
  } else if (v.n === undefined || v.m === undefined || v.n * v.m !== C.length) {
    ctx.addIssue({ code: 'custom', path: ['n'], message: `a flat C needs n and m with n*m = ${C.length}` });
  }
}

export const otPlanBase = z.object({
  ...geometryFields,
  ...marginalFields,
  solver: solverSchema,
  output: outputSchema,
  timeoutMs,
});

export const otPlanRequest = otPlanBase.superRefine((v, ctx) => {
  geometryRefine(v, ctx);
  const { n, m } = problemSize(v);
  if (v.a && n > 0 && v.a.length !== n)
    ctx.addIssue({ code: 'custom', path: ['a'], message: `a has ${v.a.length} entries, expected n=${n}` });
  if (v.b && m > 0 && v.b.length !== m)
    ctx.addIssue({ code: 'custom', path: ['b'], message: `b has ${v.b.length} entries, expected m=${m}` });
  if (v.solver.solver === 'emd1d' && v.x?.[0].length !== 1) {
    ctx.addIssue({ code: 'custom', path: ['solver'], message: 'emd1d needs 1-D points x and y (d = 1)' });
  }
}, whenShapeValid);
export type OtPlanRequest = z.output<typeof otPlanRequest>;

export const sinkhornDivergenceRequest = z
  .object({
    x: points,
    y: points,
    a: marginalFields.a,
    b: marginalFields.b,
    cost: costKind,
    p: geometryFields.p,
    reg: positive.describe('Entropic regularisation eps'),
    maxIter: maxIter(OT_DEFAULTS.sinkhornDivergence.maxIter).describe(
      'Maximum iterations of each Sinkhorn solve',
    ),
    tol: positive.default(OT_DEFAULTS.sinkhornDivergence.tol),
    timeoutMs,
  })
  .superRefine((v, ctx) => {
    checkRectangular(v.x, ctx, ['x']);
    checkRectangular(v.y, ctx, ['y']);
    if (v.x[0].length !== v.y[0].length)
      ctx.addIssue({ code: 'custom', path: ['y', 0], message: 'x and y must have the same dimension' });
    if (v.a && v.a.length !== v.x.length)
      ctx.addIssue({
        code: 'custom',
        path: ['a'],
        message: `a has ${v.a.length} entries, x has ${v.x.length} points`,
      });
    if (v.b && v.b.length !== v.y.length)
      ctx.addIssue({
        code: 'custom',
        path: ['b'],
        message: `b has ${v.b.length} entries, y has ${v.y.length} points`,
      });
  }, whenShapeValid);
export type SinkhornDivergenceRequest = z.output<typeof sinkhornDivergenceRequest>;

export const mongeGapRequest = z
  .object({
    x: points.describe('Reference points x_i'),
    Tx: points.describe('Their images T(x_i), same shape as x'),
    cost: costKind,
    p: geometryFields.p,
    reg: positive
      .optional()
      .describe(
        `Entropic eps (absolute; default ${OT_DEFAULTS.mongeGap.epsFactor} x mean cost between x and Tx; ignored when exact)`,
      ),
    exact: z.boolean().default(false).describe('Use the exact (emd) transport cost: a true OT map gives 0'),
    maxIter: maxIterNumber
      .optional()
      .describe(
        `Maximum Sinkhorn iterations (default ${OT_DEFAULTS.mongeGap.maxIter}), or network-simplex pivots when exact (default ${OT_DEFAULTS.mongeGap.exactMaxIter})`,
      ),
    tol: positive.default(OT_DEFAULTS.mongeGap.tol),
    timeoutMs,
  })
  .superRefine((v, ctx) => {
    checkRectangular(v.x, ctx, ['x']);
    checkRectangular(v.Tx, ctx, ['Tx']);
    if (v.x.length !== v.Tx.length || v.x[0].length !== v.Tx[0].length) {
      ctx.addIssue({ code: 'custom', path: ['Tx'], message: 'Tx must have the same shape as x' });
    }
  }, whenShapeValid);
export type MongeGapRequest = z.output<typeof mongeGapRequest>;

/** n, m, d of a request (0 when unknown). */
export function problemSize(v: { C?: unknown; x?: number[][]; y?: number[][]; n?: number; m?: number }) {
  if (v.x && v.y) return { n: v.x.length, m: v.y.length, d: v.x[0]?.length ?? 0 };
  const C = v.C as number[] | number[][] | undefined;
  if (!C || C.length === 0) return { n: 0, m: 0, d: 0 };
  if (Array.isArray(C[0])) return { n: C.length, m: (C[0] as number[]).length, d: 0 };
  return { n: v.n ?? 0, m: v.m ?? 0, d: 0 };
}
