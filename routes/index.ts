/**
 * Every route folder, registered with its prefix. One explicit list (rather than directory autoloading) so the
 * same code runs compiled, under tsx and under vitest, and a newcomer sees every URL prefix in one place.
 * Add a folder here when you add a resource.
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../src/config.js';
import consoleRoutes from './console.js';
import health from './health.js';
import denoise from './v1/denoise/index.js';
import detect from './v1/detect.js';
import jobs from './v1/jobs/index.js';
import models from './v1/models/index.js';
import ot from './v1/ot/index.js';
import restore from './v1/restore/index.js';
import v2 from './v2.js';

export default async function routes(fastify: FastifyInstance, opts: { config: Config }) {
  const config = opts.config;
  await fastify.register(health);
  await fastify.register(models, { prefix: '/v1/models' });
  await fastify.register(v2);
  await fastify.register(ot, { prefix: '/v1/ot', config });
  await fastify.register(denoise, { prefix: '/v1/denoise', config });
  await fastify.register(restore, { prefix: '/v1/restore', config });
  await fastify.register(restore, { prefix: '/v1/inpaint', config, task: 'inpaint' });
  await fastify.register(jobs, { prefix: '/v1/jobs', config });
  await fastify.register(detect, { prefix: '/v1/detect', config });
  await fastify.register(consoleRoutes, { config });
}
