/**
 * Shutdown state: readiness turns 503 the moment shutdown starts, before in-flight requests drain. While draining,
 * responses carry `Connection: close` and idle keep-alive connections are closed, so clients move to another
 * replica and the server can finish closing as soon as the last in-flight request is done.
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
    let sweeper: NodeJS.Timeout | undefined;
    const state = {
      shuttingDown: false,
      startedAt: Date.now(),
      beginShutdown() {
        if (state.shuttingDown) return;
        state.shuttingDown = true;
        sweeper = setInterval(() => fastify.server.closeIdleConnections?.(), 100);
        sweeper.unref();
      },
    };
    fastify.decorate('lifecycle', state);
    fastify.addHook('onSend', async (_request, reply) => {
      if (state.shuttingDown) reply.header('connection', 'close');
    });
    fastify.addHook('preClose', async () => {
      state.beginShutdown();
    });
    fastify.addHook('onClose', async () => {
      if (sweeper) clearInterval(sweeper);
    });
  },
  { name: 'lifecycle' },
);
