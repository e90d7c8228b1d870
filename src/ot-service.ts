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

/** Typed arrays to plain arrays, for JSON. */
export function planToJson(out: OtPlanOutput) {
  const { plan, f, g, ...rest } = out;
  return {
    ...rest,
    ...(plan
      ? {
          plan:
            plan.format === 'dense'
              ? { format: 'dense' as const, n: out.n, m: out.m, data: Array.from(plan.data) }
              : {
                  format: 'sparse' as const,
                  n: out.n,
                  m: out.m,
                  rows: Array.from(plan.rows),
                  cols: Array.from(plan.cols),
                  values: Array.from(plan.values),
                  threshold: plan.threshold,
                  nnz: plan.nnz,
                },
        }
      : {}),
    ...(f ? { f: Array.from(f) } : {}),
    ...(g ? { g: Array.from(g) } : {}),
  };
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
  return {
    async plan(reply: FastifyReply, body: OtPlanRequest, withPlan: boolean) {
      const { n, m, d } = problemSize(body);
      checkLimits(cfg, n, m, d);
      const t0 = performance.now();
      const out = (await fastify.compute.runFor(
        reply,
        'ot.solve',
        { op: 'plan', request: body, withPlan },
        { timeoutMs: body.timeoutMs },
      )) as OtPlanOutput;
      const json = planToJson(out);
      return { ...json, timings: { ...json.timings, totalMs: performance.now() - t0 } };
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
