/**
 * Kubernetes probes and Prometheus scraping. None of these touch the compute pool, so they answer in
 * milliseconds while every worker is busy; under-pressure does not refuse them.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { healthReport } from '../src/health.js';

const exempt = { pressureExempt: true };

const routes: FastifyPluginAsyncZod = async (fastify) => {
  fastify.get(
    '/livez',
    {
      config: exempt,
      schema: {
        tags: ['health'],
        summary: 'Liveness: the process and its event loop are alive (no dependency checks)',
        response: { 200: z.object({ status: z.literal('alive'), uptimeSeconds: z.number() }) },
      },
    },
    async () => ({
      status: 'alive' as const,
      uptimeSeconds: (Date.now() - fastify.lifecycle.startedAt) / 1000,
    }),
  );

  fastify.get(
    '/readyz',
    {
      config: exempt,
      schema: {
        tags: ['health'],
        summary:
          'Readiness: 200 when the compute pool is up and every required model is loaded and warmed; 503 otherwise',
      },
    },
    async (_request, reply) => {
      const report = healthReport(fastify);
      if (!report.ready) reply.code(503).header('retry-after', '5');
      return report;
    },
  );

  fastify.get(
    '/metrics',
    { config: exempt, schema: { tags: ['health'], summary: 'Prometheus metrics (text exposition format)' } },
    async (_request, reply) => {
      const text = await fastify.metrics.registry.metrics();
      reply.type(fastify.metrics.registry.contentType);
      return text;
    },
  );
};

export default routes;
