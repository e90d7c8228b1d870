/**
 * The compute pool as a Fastify decorator. Routes call `fastify.compute.runFor(reply, kind, input)`, which wires
 * the request's deadline (config default, or the client's `timeoutMs` within the configured max) and cancels the
 * task when the client goes away.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import fp from 'fastify-plugin';
import { ComputePool, type DeviceLostEvent, type RunOptions } from '../../compute/pool.js';
import { admitLending, computePoolOptions } from '../../compute/pool-options.js';
import type { TaskInput, TaskKind, TaskResult, WorkerInfo } from '../../compute/task-types.js';
import { type Config, resolvedReservedWorkers } from '../../config.js';
import { fail } from '../../errors.js';

export interface ComputeService {
  pool: ComputePool;
  /** Backend reported by the first worker (filled when the pool is up). */
  info: WorkerInfo | null;
  up: boolean;
  error: string | null;
  /** Settles when the start-up check is done (info set, or error). */
  started: Promise<void>;
  /**
   * The last GPU device a worker lost (its reason, when, and how many tasks it failed with 503 TW_GPU_DEVICE_LOST);
   * null when none was. `info` is then asked again of the workers (the replacement's backend, or its fallback).
   */
  gpuDeviceLost: { reason: string; threadId: number; tasksFailed: number; at: string } | null;
  runFor<K extends TaskKind>(
    reply: FastifyReply,
    kind: K,
    input: TaskInput<K>,
    opts?: Omit<RunOptions, 'signal'> & { timeoutMs?: number },
  ): Promise<TaskResult<K>>;
  /** Deadline for a request: the client's wish within [100 ms, max], else the default. */
  deadlineFor(requested?: number): number;
  /**
   * Run `work` with the request's deadline (counted from the request's arrival, `reply.elapsedTime`) and a signal
   * that aborts when the response closes: the client went away, or the response was sent without this work's
   * result (GraphQL siblings of a failed field); or when the shutdown grace period ends. Pipelines that make
   * several pool calls, or decode/encode around one, use it.
   */
  withRequest<T>(
    reply: FastifyReply,
    requestedTimeoutMs: number | undefined,
    work: (run: RunOptions) => Promise<T>,
  ): Promise<T>;
}

declare module 'fastify' {
  interface FastifyInstance {
    compute: ComputeService;
  }
}

export default fp(
  async function computePlugin(fastify: FastifyInstance, opts: { config: Config }) {
    const cfg = opts.config;
    const pool = new ComputePool({
      ...computePoolOptions(cfg),
      defaultTimeoutMs: cfg.REQUEST_TIMEOUT_MS,
      reservedWorkers: resolvedReservedWorkers(cfg),
    });
    admitLending(pool, cfg);
    pool.on('workerError', (err) => fastify.log.error({ err }, 'compute worker error'));
    // A worker whose GPU device is lost answers its tasks 503 and ends; piscina starts a replacement, whose backend
    // (a new device, or the fallback with its reason in `tried`) is reported in place of the old one.
    pool.on('deviceLost', (event: DeviceLostEvent) => {
      service.gpuDeviceLost = { ...event, at: new Date().toISOString() };
      fastify.log.error(event, 'compute worker lost its GPU device; replacing it');
      // Asked until a worker other than the lost one answers (the lost one refuses tasks until it has ended).
      const replaced = async () => {
        for (let attempt = 0; ; attempt++) {
          const info = await pool.run('system.info', {}, { timeoutMs: 120_000 }).catch((err) => {
            if (attempt >= 50 || (err as { code?: string }).code === 'TW_SHUTTING_DOWN') throw err;
            return null;
          });
          if (info && (info.threadId !== event.threadId || attempt >= 50)) return info;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      };
      void replaced()
        .then((info) => {
          service.info = info;
          fastify.log.info(
            { backend: info.backend, tried: info.tried, adapter: info.adapter },
            'compute worker replaced after a lost GPU device',
          );
        })
        .catch((err) => {
          if ((err as { code?: string }).code !== 'TW_SHUTTING_DOWN')
            fastify.log.error({ err }, 'compute worker not replaced after a lost GPU device');
        });
    });

    const deadlineFor = (requested?: number) =>
      requested === undefined
        ? cfg.REQUEST_TIMEOUT_MS
        : Math.max(100, Math.min(requested, cfg.REQUEST_TIMEOUT_MAX_MS));

    const service: ComputeService = {
      pool,
      info: null,
      up: false,
      error: null,
      started: Promise.resolve(),
      gpuDeviceLost: null,
      deadlineFor,
      async withRequest(reply, requestedTimeoutMs, work) {
        const controller = new AbortController();
        // Once the response is closed nobody waits for this work: the client went away, or the response was sent
        // without it (a GraphQL operation that failed as a whole while sibling fields still ran). Cancel it.
        const onClose = () => controller.abort();
        // The deadline runs from the request's arrival: reading the body and screening the image count too.
        const elapsed = Number.isFinite(reply.elapsedTime) ? reply.elapsedTime : 0;
        const timeoutMs = deadlineFor(requestedTimeoutMs) - elapsed;
        if (timeoutMs <= 0)
          throw fail('DEADLINE_EXCEEDED', 'The request used up its deadline before its task could start');
        reply.raw.once('close', onClose);
        if (reply.raw.writableEnded || reply.raw.destroyed) controller.abort();
        // The shutdown grace period ending cancels the work too; the pool then throws the reason (503 TW_SHUTTING_DOWN).
        const graceEnded = fastify.lifecycle.graceEnded;
        const onGraceEnd = () => controller.abort(graceEnded.reason);
        if (graceEnded.aborted) onGraceEnd();
        else graceEnded.addEventListener('abort', onGraceEnd, { once: true });
        try {
          return await work({ timeoutMs, signal: controller.signal });
        } finally {
          reply.raw.off('close', onClose);
          graceEnded.removeEventListener('abort', onGraceEnd);
        }
      },
      runFor(reply, kind, input, runOpts = {}) {
        return service.withRequest(reply, runOpts.timeoutMs, (run) =>
          pool.run(kind, input, { ...runOpts, ...run }),
        );
      },
    };
    fastify.decorate('compute', service);

    // Start-up check in the background: never block listen. Ask one worker what backend it runs.
    const startup = pool
      .run('system.info', {}, { timeoutMs: 120_000 })
      .then((info) => {
        service.info = info;
        service.up = true;
        fastify.log.info(
          {
            backend: info.backend,
            tried: info.tried,
            adapter: info.adapter,
            workers: pool.workers,
            heapCapMb: pool.maxOldGenerationSizeMb,
          },
          'compute pool up',
        );
      })
      .catch((err) => {
        service.error = err instanceof Error ? err.message : String(err);
        fastify.log.error({ err }, 'compute pool failed to start');
      });
    service.started = startup;

    fastify.addHook('onClose', async () => {
      await startup;
      // Past the grace period, tasks still running are answered for already (503): stop them now.
      // What is left of the one grace period (model warm-ups or unloads may still run): never a second full one,
      // which would outlast close-with-grace's limit (grace + 5 s) and end the process with exit 1.
      const { graceEnded, shutdownStartedAt } = fastify.lifecycle;
      const spent = shutdownStartedAt === undefined ? 0 : Date.now() - shutdownStartedAt;
      await pool.close(graceEnded.aborted ? 0 : Math.max(0, cfg.SHUTDOWN_GRACE_MS - spent));
    });
  },
  { name: 'compute', dependencies: ['lifecycle'] },
);
