/**
 * Shutdown state: readiness turns 503 the moment shutdown starts, before in-flight requests drain. While draining,
 * new requests get 503 TW_SHUTTING_DOWN (probes excepted), responses carry `Connection: close` and idle keep-alive
 * connections are closed, so clients move to another replica and the server can finish closing as soon as the
 * last in-flight request is done.
 *
 * The drain lasts at most SHUTDOWN_GRACE_MS. When it ends, `graceEnded` aborts (its reason a TW_SHUTTING_DOWN
 * error): compute tasks of requests are cancelled with it, and a moment later every request still unanswered gets
 * 503 TW_SHUTTING_DOWN and every connection left is closed, so that closing finishes (and the process exits 0)
 * instead of waiting on work nobody will get the answer of.
 */
import { setMaxListeners } from 'node:events';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../config.js';
import { fail } from '../../errors.js';
import { sendError } from './errors.js';

declare module 'fastify' {
  interface FastifyInstance {
    lifecycle: {
      shuttingDown: boolean;
      startedAt: number;
      /** When beginShutdown() was first called (ms since the epoch), or undefined before. */
      shutdownStartedAt?: number;
      beginShutdown(): void;
      /** Aborted when the grace period after beginShutdown() ends; its reason is a TW_SHUTTING_DOWN error. */
      graceEnded: AbortSignal;
    };
  }
}

/** After the grace period: time for cancelled handlers to answer 503 themselves before the rest are answered. */
const SETTLE_MS = 150;
/** Then time for those 503s to be written before the remaining connections are closed. */
const FLUSH_MS = 100;

export default fp(
  async function lifecyclePlugin(
    fastify: FastifyInstance,
    opts: { config: Pick<Config, 'SHUTDOWN_GRACE_MS'> },
  ) {
    let sweeper: NodeJS.Timeout | undefined;
    const timers: NodeJS.Timeout[] = [];
    const grace = new AbortController();
    // Every request in flight listens to it (compute.withRequest): more than Node's default of 10 is normal.
    setMaxListeners(0, grace.signal);
    const inflight = new Map<FastifyRequest, FastifyReply>();

    const endGrace = () => {
      const reason = fail('SHUTTING_DOWN', 'The service shut down before the request finished');
      grace.abort(reason);
      const answer = setTimeout(() => {
        for (const [request, reply] of inflight) {
          if (reply.sent || reply.raw.headersSent) continue;
          request.log.warn({ code: reason.code }, 'grace period over: answering 503');
          sendError(request, reply, reason);
        }
        const close = setTimeout(() => fastify.server.closeAllConnections?.(), FLUSH_MS);
        close.unref();
        timers.push(close);
      }, SETTLE_MS);
      answer.unref();
      timers.push(answer);
    };

    const state = {
      shuttingDown: false,
      startedAt: Date.now(),
      shutdownStartedAt: undefined as number | undefined,
      graceEnded: grace.signal,
      beginShutdown() {
        if (state.shuttingDown) return;
        state.shuttingDown = true;
        state.shutdownStartedAt = Date.now();
        sweeper = setInterval(() => fastify.server.closeIdleConnections?.(), 100);
        sweeper.unref();
        const timer = setTimeout(endGrace, opts.config.SHUTDOWN_GRACE_MS);
        timer.unref();
        timers.push(timer);
      },
    };
    fastify.decorate('lifecycle', state);
    fastify.addHook('onRequest', async (request, reply) => {
      // While draining, new work is refused at once (probes still answer: /readyz says shutting_down).
      if (
        state.shuttingDown &&
        !(request.routeOptions.config as { pressureExempt?: boolean }).pressureExempt
      ) {
        return sendError(request, reply, fail('SHUTTING_DOWN', undefined, { retryAfter: 1 }));
      }
      inflight.set(request, reply);
      reply.raw.once('close', () => inflight.delete(request));
    });
    fastify.addHook('onResponse', async (request) => {
      inflight.delete(request);
    });
    fastify.addHook('onSend', async (_request, reply) => {
      if (state.shuttingDown) reply.header('connection', 'close');
    });
    fastify.addHook('preClose', async () => {
      state.beginShutdown();
    });
    fastify.addHook('onClose', async () => {
      if (sweeper) clearInterval(sweeper);
      for (const t of timers) clearTimeout(t);
    });
  },
  { name: 'lifecycle' },
);
