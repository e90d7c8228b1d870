/**
 * Jobs as a Fastify decorator (`fastify.jobs`): the memory backend runs jobs on this process's compute pool; the
 * redis backend (BullMQ) only enqueues and reads state, and `npm run worker` processes run the jobs.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../config.js';
import { MemoryJobBackend } from '../../jobs/memory.js';
import '../../operations/index.js';
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
          // By default as many jobs run as the job lane lets onto workers (the reserved ones are left to requests).
          concurrency: cfg.JOBS_CONCURRENCY > 0 ? cfg.JOBS_CONCURRENCY : fastify.compute.pool.jobSlots,
          ttlMs: cfg.JOB_TTL_MS,
          timeoutMs: cfg.JOB_TIMEOUT_MS,
          maxActivePerKey: cfg.JOBS_MAX_PER_KEY,
          maxFinishedPerKey: cfg.JOBS_MAX_FINISHED_PER_KEY,
          maxResultBytesPerKey: cfg.JOBS_MAX_RESULT_BYTES_PER_KEY,
          transientRetries: cfg.JOBS_TRANSIENT_RETRIES,
          retryDelayMs: cfg.JOBS_RETRY_DELAY_MS,
        },
      );
    }
    // Submissions are checked against the model registry (a model of the wrong kind is refused before queueing).
    fastify.decorate('jobs', jobService(backend, cfg, { models: fastify.models }));
    const close = async () => {
      const outcome = await backend.close();
      if (outcome && outcome.lost.length > 0) {
        fastify.log.warn(
          { lostJobs: outcome.lost, count: outcome.lost.length },
          'shutdown: in-memory jobs queued or running were lost',
        );
      }
    };
    // In-memory jobs die with the process, and while it drains nobody can fetch a result (new requests get 503):
    // stop them when shutdown starts, so their workers go to the requests in flight. Redis jobs outlive us.
    if (backend.kind === 'memory') fastify.addHook('preClose', close);
    else fastify.addHook('onClose', close);
  },
  { name: 'jobs', dependencies: ['compute', 'models'] },
);
