/**
 * The output of a solved OT problem as an answer: the plan dense ({n, m, data}) or sparse ({rows, cols, values,
 * threshold, nnz}), the potentials, the diagnostics; typed arrays kept (a worker serialises them as they are) or
 * turned into plain arrays for JSON.
 */
import type { OtPlanOutput } from './solve.js';

/** The answer's shape, typed arrays kept (the worker serialises it as it is: see planJsonBytes). */
export function planView(out: OtPlanOutput) {
  const { plan, f, g, ...rest } = out;
  return {
    ...rest,
    ...(plan
      ? {
          plan:
            plan.format === 'dense'
              ? { format: 'dense' as const, n: out.n, m: out.m, data: plan.data }
              : {
                  format: 'sparse' as const,
                  n: out.n,
                  m: out.m,
                  rows: plan.rows,
                  cols: plan.cols,
                  values: plan.values,
                  threshold: plan.threshold,
                  nnz: plan.nnz,
                },
        }
      : {}),
    ...(f ? { f } : {}),
    ...(g ? { g } : {}),
  };
}

/** Typed arrays to plain arrays, for JSON. */
export function planToJson(out: OtPlanOutput) {
  return plain(planView(out)) as ReturnType<typeof planView>;
}

export function plain(value: unknown): unknown {
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>);
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}
