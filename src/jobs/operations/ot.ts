/**
 * The optimal-transport operations as jobs: same input schemas, size limits and JSON output as the synchronous
 * routes in routes/v1/ot, run on the compute pool with the job's signal and progress.
 */
import type { OtPlanOutput } from '../../compute/handlers/ot.js';
import { checkLimits, planToJson, resolvePlanRequest } from '../../ot-service.js';
import {
  mongeGapRequest,
  type OtPlanRequest,
  otPlanRequest,
  sinkhornDivergenceRequest,
} from '../../schemas/ot.js';
import { type JobRunContext, registerJobOperation } from '../registry.js';

/** Typed arrays to plain arrays, so the result is JSON. */
function plain(value: unknown): unknown {
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>);
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

const poolOptions = (ctx: JobRunContext) => ({
  signal: ctx.signal,
  onProgress: ctx.onProgress,
  timeoutMs: ctx.timeoutMs,
});

function planOperation(name: string, withPlan: boolean) {
  return registerJobOperation({
    name,
    inputSchema: otPlanRequest,
    check: (config, input: OtPlanRequest) => {
      resolvePlanRequest(config, input, withPlan);
    },
    run: async (rt, input, ctx) => {
      const t0 = performance.now();
      const request = resolvePlanRequest(rt.config, input, withPlan);
      const out = (await rt.pool.run(
        'ot.solve',
        { op: 'plan', request, withPlan },
        poolOptions(ctx),
      )) as OtPlanOutput;
      const json = planToJson(out);
      return { ...json, timings: { ...json.timings, totalMs: performance.now() - t0 } };
    },
  });
}

export const otPlanJob = planOperation('ot.plan', true);
export const otDistanceJob = planOperation('ot.distance', false);

export const otSinkhornDivergenceJob = registerJobOperation({
  name: 'ot.sinkhorn-divergence',
  inputSchema: sinkhornDivergenceRequest,
  check: (config, input) => {
    const size = Math.max(input.x.length, input.y.length);
    checkLimits(config, size, size, input.x[0].length);
  },
  run: async (rt, input, ctx) =>
    plain(await rt.pool.run('ot.solve', { op: 'sinkhorn-divergence', request: input }, poolOptions(ctx))),
});

export const otMongeGapJob = registerJobOperation({
  name: 'ot.monge-gap',
  inputSchema: mongeGapRequest,
  check: (config, input) => checkLimits(config, input.x.length, input.x.length, input.x[0].length),
  run: async (rt, input, ctx) =>
    plain(await rt.pool.run('ot.solve', { op: 'monge-gap', request: input }, poolOptions(ctx))),
});
