/**
 * @fastify/under-pressure: refuse work with 503 + Retry-After when the event loop lags or memory is over the
 * configured thresholds. Health, readiness and metrics routes opt out (route config `pressureExempt`), so
 * Kubernetes does not restart a pod for being busy.
 */
import underPressure from '@fastify/under-pressure';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../config.js';
import { fail } from '../../errors.js';

export default fp(
  async function pressurePlugin(fastify: FastifyInstance, opts: { config: Config }) {
    const cfg = opts.config;
    await fastify.register(underPressure, {
      maxEventLoopDelay: cfg.PRESSURE_MAX_EVENT_LOOP_DELAY_MS,
      sampleInterval: cfg.PRESSURE_SAMPLE_INTERVAL_MS,
      maxEventLoopUtilization: cfg.PRESSURE_MAX_EVENT_LOOP_UTILIZATION,
      maxHeapUsedBytes: cfg.PRESSURE_MAX_HEAP_BYTES,
      maxRssBytes: cfg.PRESSURE_MAX_RSS_BYTES,
      retryAfter: 5,
      exposeStatusRoute: false,
      pressureHandler: (request, _reply, type, value) => {
        if ((request.routeOptions.config as { pressureExempt?: boolean } | undefined)?.pressureExempt) return;
        // under-pressure reports an event-loop delay of Infinity when its histogram got no sample in the interval
        // (a loaded machine): that is "no measurement", not a measured overload, so it does not refuse work.
        if (type === 'eventLoopDelay' && !Number.isFinite(Number(value))) return;
        // Thrown as a coded error: the error handler writes the body and Retry-After.
        throw fail(
          'OVERLOADED',
          `The service is under pressure (${type}: ${Math.round(Number(value ?? 0))}); retry later`,
          {
            retryAfter: 5,
          },
        );
      },
    });
  },
  { name: 'pressure' },
);
