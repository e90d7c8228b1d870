/**
 * Every route folder, registered with its prefix. One explicit list (rather than directory autoloading) so the
 * same code runs compiled, under tsx and under vitest, and a newcomer sees every URL prefix in one place.
 * Add a folder here when you add a resource; an operation's routes come from its spec (src/operations).
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../src/config.js';
import { operationRoutes } from '../src/operations/http.js';
import { OPERATIONS } from '../src/operations/index.js';
import consoleRoutes from './console.js';
import health from './health.js';
import jobs from './v1/jobs/index.js';
import models from './v1/models/index.js';
import v2 from './v2.js';

export default async function routes(fastify: FastifyInstance, opts: { config: Config }) {
  const config = opts.config;
  await fastify.register(health);
  await fastify.register(models, { prefix: '/v1/models' });
  await fastify.register(v2);
  // Every operation's routes (ot, denoise, restore, detect ...), derived from src/operations/index.ts.
  await fastify.register(operationRoutes(OPERATIONS), { config });
  await fastify.register(jobs, { prefix: '/v1/jobs', config });
  await fastify.register(consoleRoutes, { config });
}
