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

/** Numbers converted between two yields of plainYielding (about a millisecond of the main thread). */
export const PLAIN_SLICE = 32_768;

/**
 * `plain`, yielding to the event loop after every PLAIN_SLICE numbers of a typed array: a job's or a GraphQL
 * answer's dense plan of millions of numbers is converted on the main thread (a worker's plain arrays would cost it
 * more: deserialising 1M numbers as an array takes about 130 ms, converting them about 28 ms), so it is converted
 * in slices that let requests in between (a 2000 x 2000 plan held it for about 300 ms at once).
 */
export async function plainYielding(value: unknown): Promise<unknown> {
  if (ArrayBuffer.isView(value)) {
    const typed = value as unknown as ArrayLike<number>;
    const out = new Array<number>(typed.length);
    for (let start = 0; start < typed.length; start += PLAIN_SLICE) {
      if (start > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const end = Math.min(typed.length, start + PLAIN_SLICE);
      for (let i = start; i < end; i++) out[i] = typed[i];
    }
    return out;
  }
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const v of value) out.push(await plainYielding(v));
    return out;
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = await plainYielding(v);
    return out;
  }
  return value;
}

/** planToJson, converted in slices (plainYielding). */
export async function planToJsonYielding(out: OtPlanOutput): Promise<ReturnType<typeof planView>> {
  return (await plainYielding(planView(out))) as ReturnType<typeof planView>;
}
