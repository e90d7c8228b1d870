/**
 * The optimal-transport operations as the HTTP and GraphQL adapters use them: size limits (413), the compute
 * pool call, and the conversion of typed arrays to JSON. One place, so REST and GraphQL answer alike.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { OtPlanOutput } from './compute/handlers/ot.js';
import type { Config } from './config.js';
import { fail } from './errors.js';
import {
  type MongeGapRequest,
  type OtPlanRequest,
  problemSize,
  type SinkhornDivergenceRequest,
} from './schemas/ot.js';
import { boundedJson, JsonTooLargeError, jsonLength } from './util/json-chunks.js';

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

/**
 * Bytes a number of a plan or a potential can take in JSON, at most: 17 significant digits, a point, an exponent of
 * up to `e-324` and a comma. A dense plan of n*m entries can be refused before it is computed on this bound.
 */
export const MAX_JSON_NUMBER_BYTES = 25;

/** Room kept under the limit for what the main thread appends to the worker's text (the timings). */
const TIMINGS_RESERVE_BYTES = 256;

/**
 * A synchronous answer must fit MAX_RESPONSE_BYTES. A dense plan has exactly n*m numbers: when they could pass the
 * limit, refuse before solving (413) and name the ways out.
 */
export function checkDensePlanFits(cfg: Config, body: OtPlanRequest, withPlan: boolean) {
  if (!withPlan || body.output.plan !== 'dense') return;
  const { n, m } = problemSize(body);
  const estimatedBytes = n * m * MAX_JSON_NUMBER_BYTES;
  if (estimatedBytes <= cfg.MAX_RESPONSE_BYTES - TIMINGS_RESERVE_BYTES) return;
  throw responseTooLarge(
    cfg.MAX_RESPONSE_BYTES,
    `a dense plan of n*m = ${n}*${m} numbers can take up to ${estimatedBytes} bytes`,
    { estimatedBytes },
  );
}

export function responseTooLarge(limit: number, what: string, details: Record<string, unknown> = {}) {
  return fail(
    'RESPONSE_TOO_LARGE',
    `The answer is too large to send (${what}; limit MAX_RESPONSE_BYTES = ${limit}): ask for ` +
      'output.plan "sparse" (with a threshold) or "none", or run it as a job ("async": true) and download its result',
    { details: { ...details, limit, alternatives: ['sparse', 'none', 'async'] } },
  );
}

/** What the OT task answers when asked for JSON: the text of all but the timings, which the caller appends. */
export interface OtPlanJson {
  /** The whole buffer (so that it is moved to the main thread, not copied), `{...}` without the timings. */
  json: Uint8Array;
  solveMs: number;
}

/** In the worker: the answer's JSON text as bytes (all but the timings), or 413 as soon as it passes `maxBytes`. */
export function planJsonBytes(out: OtPlanOutput, maxBytes: number): OtPlanJson {
  const { timings, ...rest } = planView(out);
  const bytes = withinLimit(maxBytes, () => boundedJson(rest, maxBytes - TIMINGS_RESERVE_BYTES));
  return { json: bytes, solveMs: timings.solveMs };
}

/**
 * In the worker, for an answer that the main thread serialises itself (GraphQL): the output as it is, or 413 when
 * its JSON text would pass `maxBytes` (measured here, so the main thread never converts a plan it cannot send).
 */
export function planWithinLimit(out: OtPlanOutput, maxBytes: number): OtPlanOutput {
  withinLimit(maxBytes, () => jsonLength(planView(out), maxBytes - TIMINGS_RESERVE_BYTES));
  return out;
}

function withinLimit<T>(maxBytes: number, write: () => T): T {
  try {
    return write();
  } catch (err) {
    if (!(err instanceof JsonTooLargeError)) throw err;
    throw responseTooLarge(maxBytes, `the answer passed ${err.limit} bytes`);
  }
}

function plain(value: unknown): unknown {
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>);
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

export function otService(fastify: FastifyInstance, cfg: Config) {
  /** Checks the request, then solves it in a worker that shapes the answer `as` asked, within MAX_RESPONSE_BYTES. */
  const solvePlanTask = async (
    reply: FastifyReply,
    body: OtPlanRequest,
    withPlan: boolean,
    as: 'object' | 'bytes',
  ) => {
    const request = resolvePlanRequest(cfg, body, withPlan);
    checkDensePlanFits(cfg, request, withPlan);
    return fastify.compute.runFor(
      reply,
      'ot.solve',
      { op: 'plan', request, withPlan, json: { maxBytes: cfg.MAX_RESPONSE_BYTES, as } },
      { timeoutMs: body.timeoutMs },
    );
  };
  return {
    /** The answer as an object (GraphQL). */
    async plan(reply: FastifyReply, body: OtPlanRequest, withPlan: boolean) {
      const t0 = performance.now();
      const json = planToJson((await solvePlanTask(reply, body, withPlan, 'object')) as OtPlanOutput);
      return { ...json, timings: { ...json.timings, totalMs: performance.now() - t0 } };
    },
    /**
     * The answer as JSON bytes (REST): serialised in the worker within MAX_RESPONSE_BYTES, so that the main thread
     * neither converts millions of numbers nor stringifies them; it only appends the timings and writes the bytes.
     */
    async planJson(reply: FastifyReply, body: OtPlanRequest, withPlan: boolean): Promise<Buffer> {
      const t0 = performance.now();
      const out = (await solvePlanTask(reply, body, withPlan, 'bytes')) as OtPlanJson;
      const timings = JSON.stringify({ solveMs: out.solveMs, totalMs: performance.now() - t0 });
      // The worker's text without its closing brace, then the timings and the brace.
      const head = Buffer.from(out.json.buffer, out.json.byteOffset, out.json.byteLength - 1);
      const tail = Buffer.from(`${head.length > 1 ? ',' : ''}"timings":${timings}}`);
      reply.type('application/json; charset=utf-8');
      return Buffer.concat([head, tail]);
    },
    async divergence(reply: FastifyReply, body: SinkhornDivergenceRequest) {
      checkLimits(
        cfg,
        Math.max(body.x.length, body.y.length),
        Math.max(body.x.length, body.y.length),
        body.x[0].length,
      );
      return plain(
        await fastify.compute.runFor(
          reply,
          'ot.solve',
          { op: 'sinkhorn-divergence', request: body },
          { timeoutMs: body.timeoutMs },
        ),
      );
    },
    async mongeGap(reply: FastifyReply, body: MongeGapRequest) {
      checkLimits(cfg, body.x.length, body.x.length, body.x[0].length);
      return plain(
        await fastify.compute.runFor(
          reply,
          'ot.solve',
          { op: 'monge-gap', request: body },
          { timeoutMs: body.timeoutMs },
        ),
      );
    },
  };
}
