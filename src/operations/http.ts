/**
 * The REST routes of every operation, derived from its spec: one POST per `http.routes` URL, with the spec's
 * schemas (validation and OpenAPI), its tag and its id as operationId. Each request is read into the operation's
 * input, then either queued as a job (asked for with the async flag or `Prefer: respond-async`, or on its own when
 * the estimated cost exceeds the deadline: 202 + Location), or checked and run now and answered by the spec.
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import { replyWithJob } from '../jobs/http.js';
import type { AnyOperation } from './index.js';
import { AUTOMATIC_JOB_REASON, jobDecision, runForRequest } from './run.js';

export function operationRoutes(specs: readonly AnyOperation[]) {
  return async function routes(fastify: FastifyInstance, opts: { config: Config }) {
    const cfg = opts.config;
    for (const spec of specs) {
      const http = spec.http;
      if (!http || (spec.testOnly && !cfg.ENABLE_TEST_TASKS)) continue;
      http.routes.forEach((route, i) => {
        fastify.post(
          route.url,
          {
            config: {
              // The operation (logs, metrics) is the spec's id on every route; OpenAPI's operationId must be unique,
              // so a second URL of one operation (restore's /v1/inpaint) gets one derived from its path; OpenAPI's is
              // the id in camelCase (`ot.plan` -> `otPlan`).
              operation: spec.id,
              ...(i === 0 ? { operationId: openapiOperationId(spec.id) } : {}),
              ...(http.imageUpload ? { imageUpload: http.imageUpload } : {}),
            },
            schema: {
              tags: [spec.tag],
              summary: route.summary,
              ...(route.description ? { description: route.description } : {}),
              ...http.schema,
              ...(spec.testOnly ? { hide: true } : {}),
            },
          },
          async (request, reply) => {
            const raw = await http.read(request, cfg, route);
            const input = spec.input.parse(raw.input);
            // A job when asked, or of its own accord when the estimated cost exceeds the deadline.
            const decision = await jobDecision(fastify, cfg, spec, input, raw.async);
            request.log.debug({ operation: spec.id, async: decision.job }, 'operation');
            if (decision.job) {
              if (decision.automatic) reply.header('x-async-reason', AUTOMATIC_JOB_REASON);
              // The spec's checks run at submission (jobs service), before anything is queued.
              return replyWithJob(fastify, request, reply, spec.id, input);
            }
            const result = await runForRequest(fastify, cfg, spec, input, reply, 'rest');
            return spec.reply ? spec.reply(result, reply) : result;
          },
        );
      });
    }
  };
}

/** An operation id as an OpenAPI operationId: `ot.sinkhorn-divergence` -> `otSinkhornDivergence`. */
export function openapiOperationId(id: string): string {
  return id.replace(/[.\-_]+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
}
