/**
 * Jobs as a Fastify decorator (`fastify.jobs`): the memory backend runs jobs on this process's compute pool; the
 * redis backend (BullMQ) only enqueues and reads state, and `npm run worker` processes run the jobs.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../config.js';
import { MemoryJobBackend } from '../../jobs/memory.js';
import '../../jobs/operations/index.js';
import { type JobService, jobService } from '../../jobs/service.js';
import type { JobBackend } from '../../jobs/types.js';

declare module 'fastify' {
  interface FastifyInstance {
    jobs: JobService;
  }
}

export default fp(
  async function jobsPlugin(fastify: FastifyInstance, opts: { config: Config }) {
    const cfg = opts.config;
    let backend: JobBackend;
    if (cfg.JOBS_BACKEND === 'redis') {
      // Loaded only when used: the embedded default never needs a Redis client.
      const { RedisJobBackend } = await import('../../jobs/redis.js');
      backend = new RedisJobBackend(cfg);
    } else {
      backend = new MemoryJobBackend(
        { pool: fastify.compute.pool, config: cfg },
        {
          queueMax: cfg.JOBS_QUEUE_MAX,
          concurrency: cfg.JOBS_CONCURRENCY > 0 ? cfg.JOBS_CONCURRENCY : fastify.compute.pool.workers,
          ttlMs: cfg.JOB_TTL_MS,
          timeoutMs: cfg.JOB_TIMEOUT_MS,
        },
      );
    }
    fastify.decorate('jobs', jobService(backend, cfg));
    fastify.addHook('onClose', async () => backend.close());
  },
  { name: 'jobs', dependencies: ['compute'] },
);
