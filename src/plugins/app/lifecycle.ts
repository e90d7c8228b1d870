/**
 * Shutdown state: readiness turns 503 the moment shutdown starts, before in-flight requests drain.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyInstance {
    lifecycle: { shuttingDown: boolean; startedAt: number; beginShutdown(): void };
  }
}

export default fp(
  async function lifecyclePlugin(fastify: FastifyInstance) {
    const state = {
      shuttingDown: false,
      startedAt: Date.now(),
      beginShutdown() {
        state.shuttingDown = true;
      },
    };
    fastify.decorate('lifecycle', state);
    fastify.addHook('preClose', async () => {
      state.shuttingDown = true;
    });
  },
  { name: 'lifecycle' },
);
