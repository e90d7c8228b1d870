/**
 * The optimal-transport operations: plan (any solver), distance (cost only), Sinkhorn divergence, Monge gap. Their
 * checks (size limits, 413; online Sinkhorn's rules, 422), the compute task (src/operations/ot/task.ts) and the
 * answer: a REST plan is serialised in the worker within MAX_RESPONSE_BYTES; GraphQL gets the object, a job plain
 * JSON (never capped: a job is the way out for answers too large for a request).
 */
import type { FastifyReply } from 'fastify';
import type { Config } from '../../config.js';
import { fail } from '../../errors.js';
import { jsonStream } from '../../util/json-chunks.js';
import { defineOperation, readJsonBody as readJson, withAsync } from '../spec.js';
import { checkDensePlanFits, type OtPlanJson, plain, type planToJson, planToJsonYielding } from './output.js';
import {
  type MongeGapRequest,
  mongeGapRequest,
  type OtPlanRequest,
  otPlanRequest,
  problemSize,
  type SinkhornDivergenceRequest,
  sinkhornDivergenceRequest,
} from './schema.js';
import type { OtPlanOutput } from './task.js';

export function checkLimits(cfg: Config, n: number, m: number, d: number) {
  if (n * m > cfg.OT_MAX_ENTRIES) {
    throw fail(
      'PROBLEM_TOO_LARGE',
      `n*m = ${n}*${m} = ${n * m} exceeds the limit OT_MAX_ENTRIES = ${cfg.OT_MAX_ENTRIES}`,
      {
        details: { n, m, limit: cfg.OT_MAX_ENTRIES },
      },
    );
  }
  if (d > cfg.OT_MAX_DIM) {
    throw fail(
      'PROBLEM_TOO_LARGE',
      `point dimension d = ${d} exceeds the limit OT_MAX_DIM = ${cfg.OT_MAX_DIM}`,
      {
        details: { d, limit: cfg.OT_MAX_DIM },
      },
    );
  }
}

/** The costs online (matrix-free) Sinkhorn computes from the points. */
const ONLINE_COSTS = new Set(['sqeuclidean', 'euclidean']);

/**
 * Decides whether a plan/distance request runs as online (matrix-free) Sinkhorn and checks its limits: the
 * request's `solver.online`, or by default a point-cloud Sinkhorn problem whose n*m exceeds OT_MAX_ENTRIES.
 * Online problems are bounded by OT_ONLINE_MAX_POINTS per cloud instead of n*m. What online cannot do (a
 * given C, another cost, median scaling, a dense plan) is a 422 TW_ONLINE_UNSUPPORTED when online was asked
 * for, and keeps the dense limits (413 above OT_MAX_ENTRIES) when it was not. Returns the request
 * with `solver.online` set when it runs online (the compute task reads it), else the request unchanged.
 */
export function resolvePlanRequest(cfg: Config, body: OtPlanRequest, withPlan: boolean): OtPlanRequest {
  const { n, m, d } = problemSize(body);
  const s = body.solver;
  if (s.solver !== 'sinkhorn' || s.online === false) {
    checkLimits(cfg, n, m, d);
    return body;
  }
  const sparseAsked = body.output.topK !== undefined || body.output.threshold > 0;
  const obstacle: [string, string] | undefined =
    body.C !== undefined || !body.x
      ? ['dense-cost', 'online Sinkhorn computes the cost from points: give x and y instead of C']
      : !ONLINE_COSTS.has(body.cost)
        ? ['cost', `online Sinkhorn supports the sqeuclidean and euclidean costs, not '${body.cost}'`]
        : body.scaling === 'median'
          ? [
              'scaling',
              "online Sinkhorn cannot scale by the median of n*m costs: use 'max', 'mean' or 'none'",
            ]
          : withPlan && (body.output.plan === 'dense' || (body.output.plan === 'sparse' && !sparseAsked))
            ? [
                'plan',
                'online Sinkhorn never builds a dense plan: ask for output.plan "sparse" with output.topK or a positive output.threshold',
              ]
            : undefined;
  if (s.online === undefined) {
    // Automatic: online only for what it can do, above the dense limit; anything else keeps the dense rules.
    if (obstacle || n * m <= cfg.OT_MAX_ENTRIES) {
      checkLimits(cfg, n, m, d);
      return body;
    }
  } else if (obstacle) {
    throw fail('ONLINE_UNSUPPORTED', obstacle[1], { details: { reason: obstacle[0] } });
  }
  const most = Math.max(n, m);
  if (most > cfg.OT_ONLINE_MAX_POINTS) {
    throw fail(
      'PROBLEM_TOO_LARGE',
      `online Sinkhorn: ${most} points exceed the limit OT_ONLINE_MAX_POINTS = ${cfg.OT_ONLINE_MAX_POINTS}`,
      { details: { n, m, limit: cfg.OT_ONLINE_MAX_POINTS } },
    );
  }
  const topK = withPlan && body.output.plan !== 'none' ? body.output.topK : undefined;
  if (topK !== undefined && n * Math.min(topK, m) > cfg.OT_MAX_ENTRIES) {
    throw fail(
      'PROBLEM_TOO_LARGE',
      `a sparse plan of n*topK = ${n}*${topK} entries exceeds the limit OT_MAX_ENTRIES = ${cfg.OT_MAX_ENTRIES}`,
      { details: { n, topK, limit: cfg.OT_MAX_ENTRIES } },
    );
  }
  checkLimits(cfg, 1, 1, d);
  return { ...body, solver: { ...s, online: true } };
}

type Gql = Record<string, unknown>;
const lower = (v: unknown) => (typeof v === 'string' ? v.toLowerCase() : v);
/** Drop GraphQL nulls so zod defaults apply. */
function defined(o: Gql): Gql {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined));
}

/** The GraphQL OtPlanInput in the REST request shape (validated afterwards by the same zod schema). */
export function otPlanInputToRequest(input: Gql): Gql {
  const { solver, params, plan, threshold, topK, potentials, errorHistory, cost, scaling, ...rest } = input;
  return defined({
    ...rest,
    cost: lower(cost),
    scaling: lower(scaling),
    solver: { ...((params as Gql | null) ?? {}), solver: lower(solver) },
    output: defined({ plan: lower(plan), threshold, topK, potentials, errorHistory }),
  });
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** A plan answer: JSON bytes serialised in the worker (REST), or the object (GraphQL, jobs). */
export type OtPlanAnswer = Buffer | ReturnType<typeof planToJson>;

function planOperation(id: 'ot.plan' | 'ot.distance', withPlan: boolean, summary: string, field: string) {
  return defineOperation<OtPlanRequest, OtPlanAnswer>({
    id,
    tag: 'ot',
    input: otPlanRequest,
    check: (ctx, input) => {
      const request = resolvePlanRequest(ctx.config, input, withPlan);
      // A synchronous answer must fit MAX_RESPONSE_BYTES; a job's result is streamed.
      if (ctx.mode === 'request') checkDensePlanFits(ctx.config, request, withPlan);
      return undefined;
    },
    timeoutMs: (input) => input.timeoutMs,
    run: async (rt, input) => {
      const t0 = performance.now();
      const request = resolvePlanRequest(rt.config, input, withPlan);
      if (rt.answer === 'rest') {
        // Serialised in the worker within MAX_RESPONSE_BYTES, so that the main thread neither converts millions of
        // numbers nor stringifies them; it only appends the timings and writes the bytes.
        const out = (await rt.pool.run(
          'ot.solve',
          { op: 'plan', request, withPlan, json: { maxBytes: rt.config.MAX_RESPONSE_BYTES, as: 'bytes' } },
          rt.run,
        )) as OtPlanJson;
        const timings = JSON.stringify({ solveMs: out.solveMs, totalMs: performance.now() - t0 });
        // The worker's text without its closing brace, then the timings and the brace.
        const head = Buffer.from(out.json.buffer, out.json.byteOffset, out.json.byteLength - 1);
        const tail = Buffer.from(`${head.length > 1 ? ',' : ''}"timings":${timings}}`);
        return Buffer.concat([head, tail]);
      }
      const json =
        rt.answer === 'graphql'
          ? { maxBytes: rt.config.MAX_RESPONSE_BYTES, as: 'object' as const }
          : undefined;
      const out = (await rt.pool.run(
        'ot.solve',
        { op: 'plan', request, withPlan, ...(json ? { json } : {}) },
        rt.run,
      )) as OtPlanOutput;
      // Converted for JSON here, in slices that leave the event loop free between them (plainYielding).
      const view = await planToJsonYielding(out);
      return { ...view, timings: { ...view.timings, totalMs: performance.now() - t0 } };
    },
    reply: (result: OtPlanAnswer, reply: FastifyReply) =>
      Buffer.isBuffer(result)
        ? reply.type(JSON_TYPE).send(result)
        : // A job's result is streamed, a slice of numbers at a time (a dense plan of millions of numbers).
          reply.type(JSON_TYPE).send(jsonStream(result)),
    http: {
      routes: [{ url: `/v1/ot/${withPlan ? 'plan' : 'distance'}`, summary }],
      schema: { body: withAsync(otPlanRequest) },
      read: readJson,
    },
    graphql: { field, toInput: (args) => ({ input: otPlanInputToRequest(args), async: false }) },
  });
}

export const otPlan = planOperation(
  'ot.plan',
  true,
  'Transport plan with any solver (emd, emd1d, sinkhorn, sns, sparse, quadratic, unbalanced)',
  'otPlan',
);
export const otDistance = planOperation(
  'ot.distance',
  false,
  'Transport cost and potentials only (no plan)',
  'otDistance',
);

export const otSinkhornDivergence = defineOperation({
  id: 'ot.sinkhorn-divergence',
  tag: 'ot',
  input: sinkhornDivergenceRequest,
  check: (ctx, input: SinkhornDivergenceRequest) => {
    const size = Math.max(input.x.length, input.y.length);
    checkLimits(ctx.config, size, size, input.x[0].length);
    return undefined;
  },
  timeoutMs: (input) => input.timeoutMs,
  run: async (rt, input) =>
    plain(await rt.pool.run('ot.solve', { op: 'sinkhorn-divergence', request: input }, rt.run)),
  http: {
    routes: [
      { url: '/v1/ot/sinkhorn-divergence', summary: 'Debiased Sinkhorn divergence between two point clouds' },
    ],
    schema: { body: withAsync(sinkhornDivergenceRequest) },
    read: readJson,
  },
  graphql: {
    field: 'sinkhornDivergence',
    toInput: (args) => ({ input: defined({ ...args, cost: lower(args.cost) }), async: false }),
  },
});

export const otMongeGap = defineOperation({
  id: 'ot.monge-gap',
  tag: 'ot',
  input: mongeGapRequest,
  check: (ctx, input: MongeGapRequest) => {
    checkLimits(ctx.config, input.x.length, input.x.length, input.x[0].length);
    return undefined;
  },
  timeoutMs: (input) => input.timeoutMs,
  run: async (rt, input) => plain(await rt.pool.run('ot.solve', { op: 'monge-gap', request: input }, rt.run)),
  http: {
    routes: [
      { url: '/v1/ot/monge-gap', summary: 'Monge gap of a map given reference points and their images' },
    ],
    schema: { body: withAsync(mongeGapRequest) },
    read: readJson,
  },
  graphql: {
    field: 'mongeGap',
    toInput: (args) => ({ input: defined({ ...args, cost: lower(args.cost) }), async: false }),
  },
});
