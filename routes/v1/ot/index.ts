/**
 * Optimal transport over REST: plan (any solver), distance (cost only), Sinkhorn divergence, Monge gap.
 * Validation is the zod schema family in src/schemas/ot.ts; numerics run in the compute pool.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Config } from '../../../src/config.js';
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
        body: otPlanRequest,
      },
    },
    async (request, reply) => ot.plan(reply, request.body, true),
  );

  fastify.post(
    '/distance',
    {
      schema: {
        tags: ['ot'],
        summary: 'Transport cost and potentials only (no plan)',
        body: otPlanRequest,
      },
    },
    async (request, reply) => ot.plan(reply, request.body, false),
  );

  fastify.post(
    '/sinkhorn-divergence',
    {
      schema: {
        tags: ['ot'],
        summary: 'Debiased Sinkhorn divergence between two point clouds',
        body: sinkhornDivergenceRequest,
      },
    },
    async (request, reply) => ot.divergence(reply, request.body),
  );

  fastify.post(
    '/monge-gap',
    {
      schema: {
        tags: ['ot'],
        summary: 'Monge gap of a map given reference points and their images',
        body: mongeGapRequest,
      },
    },
    async (request, reply) => ot.mongeGap(reply, request.body),
  );
};

export default routes;
