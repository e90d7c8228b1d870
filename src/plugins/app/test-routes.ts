/**
 * Routes for fault drills, registered only when ENABLE_TEST_TASKS=true (tests, soak runs): they put test tasks
 * (busy, crash, fail) through exactly the same path as real work, so queue-full, deadline and worker-crash
 * behaviour is tested with real requests.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';

const testRoutes: FastifyPluginAsyncZod = async (fastify) => {
  fastify.post(
    '/v1/_test/busy',
    {
      schema: {
        hide: true,
        body: z.object({
          ms: z.number().int().min(0).max(600_000),
          // Wait without holding the worker (as a GPU read-back does) instead of spinning.
          sleep: z.boolean().optional(),
          timeoutMs: z.number().int().optional(),
        }),
      },
    },
    async (request, reply) =>
      fastify.compute.runFor(
        reply,
        'test.busy',
        { ms: request.body.ms, sleep: request.body.sleep },
        { timeoutMs: request.body.timeoutMs },
      ),
  );
  fastify.post(
    '/v1/_test/crash',
    { schema: { hide: true, body: z.object({ mode: z.enum(['exit', 'oom']).default('exit') }) } },
    async (request, reply) => fastify.compute.runFor(reply, 'test.crash', { mode: request.body.mode }),
  );
  fastify.post(
    '/v1/_test/fail',
    { schema: { hide: true, body: z.object({ code: z.string(), message: z.string() }) } },
    async (request, reply) => fastify.compute.runFor(reply, 'test.fail', request.body),
  );
  // Tensor and backend bookkeeping of every worker (bench:soak samples it): one system.info task per worker slot
  // at once, twice over, so that idle workers each take one; answers the distinct threads seen.
  fastify.get('/v1/_test/workers', { schema: { hide: true } }, async () => {
    const pool = fastify.compute.pool;
    const infos = await Promise.all(
      Array.from({ length: pool.workers * 2 }, () => pool.run('system.info', {}, { timeoutMs: 30_000 })),
    );
    const byThread = new Map(infos.map((i) => [i.threadId, i]));
    const workers = [...byThread.values()].map(({ threadId, backend, numTensors }) => ({
      threadId,
      backend,
      numTensors,
    }));
    return { workers, numTensors: workers.reduce((s, w) => s + w.numTensors, 0) };
  });
};

export default testRoutes;
