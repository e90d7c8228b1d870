/**
 * Optimal transport over REST: plan (any solver), distance (cost only), Sinkhorn divergence, Monge gap.
 * Validation is the zod schema family in src/schemas/ot.ts; numerics run in the compute pool.
 * Each route also runs as a job with `"async": true` or `Prefer: respond-async` (202 + Location /v1/jobs/<id>).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Config } from '../../../src/config.js';
import { replyWithJob, wantsAsync, withAsyncFlag, withoutAsyncFlag } from '../../../src/jobs/http.js';
import { otService } from '../../../src/ot-service.js';
import { mongeGapRequest, otPlanRequest, sinkhornDivergenceRequest } from '../../../src/schemas/ot.js';

const routes: FastifyPluginAsyncZod<{ config: Config }> = async (fastify, opts) => {
  const ot = otService(fastify, opts.config);

  fastify.post(
    '/plan',
    {
      schema: {
        tags: ['ot'],
        summary: 'Transport plan with any solver (emd, emd1d, sinkhorn, sns, sparse, quadratic, unbalanced)',
        body: withAsyncFlag(otPlanRequest),
      },
    },
    async (request, reply) => {
      const input = withoutAsyncFlag(request.body);
      if (wantsAsync(request)) return replyWithJob(fastify, request, reply, 'ot.plan', input);
      return ot.planJson(reply, input, true);
    },
  );

  fastify.post(
    '/distance',
    {
      schema: {
        tags: ['ot'],
        summary: 'Transport cost and potentials only (no plan)',
        body: withAsyncFlag(otPlanRequest),
      },
    },
    async (request, reply) => {
      const input = withoutAsyncFlag(request.body);
      if (wantsAsync(request)) return replyWithJob(fastify, request, reply, 'ot.distance', input);
      return ot.planJson(reply, input, false);
    },
  );

  fastify.post(
    '/sinkhorn-divergence',
    {
      schema: {
        tags: ['ot'],
        summary: 'Debiased Sinkhorn divergence between two point clouds',
        body: withAsyncFlag(sinkhornDivergenceRequest),
      },
    },
    async (request, reply) => {
      const input = withoutAsyncFlag(request.body);
      if (wantsAsync(request)) return replyWithJob(fastify, request, reply, 'ot.sinkhorn-divergence', input);
      return ot.divergence(reply, input);
    },
  );

  fastify.post(
    '/monge-gap',
    {
      schema: {
        tags: ['ot'],
        summary: 'Monge gap of a map given reference points and their images',
        body: withAsyncFlag(mongeGapRequest),
      },
    },
    async (request, reply) => {
      const input = withoutAsyncFlag(request.body);
      if (wantsAsync(request)) return replyWithJob(fastify, request, reply, 'ot.monge-gap', input);
      return ot.mongeGap(reply, input);
    },
  );
};

export default routes;
