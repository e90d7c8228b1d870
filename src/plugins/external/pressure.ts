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

/** The sampled values under-pressure keeps (its `memoryUsage()` decorator). */
export interface PressureSample {
  eventLoopDelay: number;
  heapUsed: number;
  rssBytes: number;
  eventLoopUtilized: number;
}

/**
 * Why a request is refused, or null to let it through. under-pressure calls its handler for the first threshold
 * that is over, and only that one: an event-loop delay of Infinity (no histogram sample in the interval, which
 * happens on a loaded machine) is "no measurement", not an overload, so it does not refuse, but the heap, RSS and
 * utilisation limits behind it must still be checked here, or a loaded process would let everything through.
 */
export function pressureVerdict(
  type: string,
  value: unknown,
  sample: PressureSample,
  cfg: Pick<
    Config,
    'PRESSURE_MAX_HEAP_BYTES' | 'PRESSURE_MAX_RSS_BYTES' | 'PRESSURE_MAX_EVENT_LOOP_UTILIZATION'
  >,
): { type: string; value: number } | null {
  if (type !== 'eventLoopDelay' || Number.isFinite(Number(value))) return { type, value: Number(value ?? 0) };
  if (cfg.PRESSURE_MAX_HEAP_BYTES > 0 && sample.heapUsed > cfg.PRESSURE_MAX_HEAP_BYTES)
    return { type: 'heapUsedBytes', value: sample.heapUsed };
  if (cfg.PRESSURE_MAX_RSS_BYTES > 0 && sample.rssBytes > cfg.PRESSURE_MAX_RSS_BYTES)
    return { type: 'rssBytes', value: sample.rssBytes };
  if (
    cfg.PRESSURE_MAX_EVENT_LOOP_UTILIZATION > 0 &&
    sample.eventLoopUtilized > cfg.PRESSURE_MAX_EVENT_LOOP_UTILIZATION
  )
    return { type: 'eventLoopUtilization', value: sample.eventLoopUtilized };
  return null;
}

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
        const verdict = pressureVerdict(
          type,
          value,
          (fastify as unknown as { memoryUsage(): PressureSample }).memoryUsage(),
          cfg,
        );
        if (!verdict) return;
        // Thrown as a coded error: the error handler writes the body and Retry-After.
        throw fail(
          'OVERLOADED',
          `The service is under pressure (${verdict.type}: ${Math.round(verdict.value)}); retry later`,
          { retryAfter: 5 },
        );
      },
    });
  },
  { name: 'pressure' },
);
