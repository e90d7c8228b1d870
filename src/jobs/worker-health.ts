/**
 * Probes and metrics of a job worker process (`npm run worker`), on its own small port (WORKER_HEALTH_PORT):
 * - GET /livez: 200 while the process is healthy; 503 when its event loop was blocked longer than
 *   WORKER_LIVENESS_MAX_LAG_MS since the last probe (a loop stuck for good does not answer at all, which fails the
 *   probe too), or when it is wedged: a job has been running past its deadline (JOB_TIMEOUT_MS) plus a margin,
 *   which the compute pool's deadline should have made impossible.
 * - GET /readyz: 200 when Redis is connected, the compute pool is up and every required model (MODELS_REQUIRED,
 *   default versions) is loaded and warmed; 503 with the reasons otherwise, and from SIGTERM on (draining).
 * - GET /metrics: Prometheus text: jobs completed, failed, stalled (taken back from a dead worker by this one),
 *   active, a duration histogram by operation and outcome, and the default process metrics.
 * Plain node:http: the worker has no HTTP server otherwise, and these answer without touching the compute pool.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Job, Worker } from 'bullmq';
import type { Logger } from 'pino';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { ComputePool } from '../compute/pool.js';
import { type Config, resolvedModelsDir } from '../config.js';
import { backendModelTier } from '../nn/backend.js';
import { requiredModelNames } from '../nn/default-models.js';
import type { ModelTier } from '../nn/manifest.js';
import { resolveModel, scanModelRepository } from '../nn/repository.js';

/** How far past JOB_TIMEOUT_MS a running job makes the worker wedged (the deadline's own clean-up included). */
export const WEDGED_MARGIN_MS = 60_000;
/** Period of the event-loop heartbeat. */
const HEARTBEAT_MS = 100;

export interface WorkerHealthSources {
  /** The BullMQ worker whose events are counted (attach before it runs, so that no job is missed). */
  worker: Pick<Worker, 'on'>;
  pool: Pick<ComputePool, 'run' | 'workers'>;
  redisReady(): boolean;
}

type ModelState = { state: 'loading' | 'ready' | 'failed' | 'missing'; reason?: string };

export class WorkerHealth {
  readonly registry = new Registry();
  /** Jobs running in this process: id -> operation and start time. */
  readonly running = new Map<string, { operation: string; startedAt: number }>();
  readonly models = new Map<string, ModelState>();
  poolUp = false;
  poolError: string | undefined;
  draining = false;
  private server: Server | undefined;
  /** Longest event-loop stall seen by the heartbeat since the last liveness probe (ms). */
  private maxLagMs = 0;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly cfg: Config,
    private readonly sources: WorkerHealthSources,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });
    const labelNames = ['operation'] as const;
    const completed = new Counter({
      name: 'tweedie_worker_jobs_completed_total',
      help: 'Jobs this worker ran to success, by operation',
      labelNames,
      registers: [this.registry],
    });
    const failed = new Counter({
      name: 'tweedie_worker_jobs_failed_total',
      help: 'Jobs this worker ended in failure (cancelled ones included), by operation',
      labelNames,
      registers: [this.registry],
    });
    const stalled = new Counter({
      name: 'tweedie_worker_jobs_stalled_total',
      help: "Jobs this worker's stalled-job check took back from a worker that stopped renewing its lock",
      registers: [this.registry],
    });
    const running = this.running;
    new Gauge({
      name: 'tweedie_worker_jobs_active',
      help: 'Jobs running in this worker now',
      registers: [this.registry],
      collect() {
        this.set(running.size);
      },
    });
    const duration = new Histogram({
      name: 'tweedie_worker_job_duration_seconds',
      help: 'Run time of the jobs this worker ended, by operation and outcome (completed, failed)',
      labelNames: ['operation', 'outcome'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
      registers: [this.registry],
    });
    const draining = () => this.draining;
    new Gauge({
      name: 'tweedie_worker_draining',
      help: '1 from SIGTERM on: the worker takes no new jobs and finishes (or re-queues) the running ones',
      registers: [this.registry],
      collect() {
        this.set(draining() ? 1 : 0);
      },
    });

    const ended = (job: Job | undefined, outcome: 'completed' | 'failed') => {
      if (!job?.id) return;
      const run = this.running.get(job.id);
      this.running.delete(job.id);
      const operation = String((job.data as { operation?: unknown })?.operation ?? 'unknown');
      (outcome === 'completed' ? completed : failed).inc({ operation });
      if (run) duration.observe({ operation, outcome }, (this.now() - run.startedAt) / 1000);
    };
    sources.worker.on('active', (job: Job) => {
      if (!job.id) return;
      const operation = String((job.data as { operation?: unknown })?.operation ?? 'unknown');
      this.running.set(job.id, { operation, startedAt: this.now() });
    });
    sources.worker.on('completed', (job: Job) => ended(job, 'completed'));
    sources.worker.on('failed', (job: Job | undefined) => ended(job, 'failed'));
    sources.worker.on('stalled', () => stalled.inc());
    // A timer that fires late tells how long the loop was blocked (a probe only gets in once it is free again).
    let last = performance.now();
    this.heartbeat = setInterval(() => {
      const t = performance.now();
      this.maxLagMs = Math.max(this.maxLagMs, t - last - HEARTBEAT_MS);
      last = t;
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Asks one compute worker for its backend (the pool is up), then warms the required models in every worker. */
  async start(): Promise<void> {
    // Every required model counts as loading from the start: /readyz must not say ready in the moment between the
    // pool coming up and the repository scan (a race CI caught: ready with no model listed).
    const names = requiredModelNames(this.cfg.MODELS_REQUIRED);
    for (const name of names) this.models.set(name, { state: 'loading' });
    let tier: ModelTier = 'cpu';
    try {
      tier = backendModelTier(await this.sources.pool.run('system.info', {}, { timeoutMs: 120_000 }));
      this.poolUp = true;
    } catch (err) {
      this.poolError = err instanceof Error ? err.message : String(err);
      this.log.error({ err }, 'compute pool failed to start');
      return;
    }
    const entries = names.length > 0 ? await scanModelRepository(resolvedModelsDir(this.cfg)) : [];
    for (const name of names) {
      const entry = resolveModel(entries, name, undefined, tier);
      this.models.set(
        name,
        entry?.manifest ? { state: 'loading' } : { state: 'missing', reason: 'no valid version' },
      );
    }
    for (const name of names) {
      const entry = resolveModel(entries, name, undefined, tier);
      if (!entry?.manifest) continue;
      try {
        await Promise.all(
          Array.from({ length: this.sources.pool.workers }, () =>
            this.sources.pool.run('model.warmup', { name, version: entry.version }, { timeoutMs: 300_000 }),
          ),
        );
        this.models.set(name, { state: 'ready' });
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        this.models.set(name, { state: 'failed', reason });
        this.log.error({ model: name, reason }, 'required model failed to load');
      }
    }
  }

  liveness(): { ok: boolean; reasons: string[]; eventLoopDelayMaxMs: number; running: number } {
    const reasons: string[] = [];
    const maxLagMs = this.maxLagMs;
    this.maxLagMs = 0;
    if (maxLagMs > this.cfg.WORKER_LIVENESS_MAX_LAG_MS) {
      reasons.push(`event loop blocked for ${Math.round(maxLagMs)} ms`);
    }
    const limit = this.cfg.JOB_TIMEOUT_MS + WEDGED_MARGIN_MS;
    for (const [id, run] of this.running) {
      const ms = this.now() - run.startedAt;
      if (ms > limit) reasons.push(`job ${id} (${run.operation}) running for ${ms} ms, past its deadline`);
    }
    return {
      ok: reasons.length === 0,
      reasons,
      eventLoopDelayMaxMs: Math.round(maxLagMs),
      running: this.running.size,
    };
  }

  readiness(): { ok: boolean; status: string; reasons: string[]; models: Record<string, ModelState> } {
    const reasons: string[] = [];
    if (this.draining) reasons.push('draining (SIGTERM): taking no new jobs');
    if (!this.sources.redisReady()) reasons.push('Redis is not connected');
    if (!this.poolUp) {
      reasons.push(this.poolError ? `compute pool failed: ${this.poolError}` : 'compute pool starting');
    }
    for (const [name, m] of this.models) {
      if (m.state !== 'ready') reasons.push(`required model ${name} is ${m.state}`);
    }
    const ok = reasons.length === 0;
    return {
      ok,
      status: this.draining ? 'draining' : ok ? 'ready' : 'not_ready',
      reasons,
      models: Object.fromEntries(this.models),
    };
  }

  /** Listens on `port` (0: any free port); resolves with the port. */
  listen(port: number, host = '0.0.0.0'): Promise<number> {
    const server = createServer((req, res) => {
      const send = (code: number, body: unknown, type = 'application/json; charset=utf-8') => {
        res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
        res.end(typeof body === 'string' ? body : JSON.stringify(body));
      };
      const url = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET') return send(405, { error: 'only GET' });
      if (url === '/livez') {
        const l = this.liveness();
        return send(l.ok ? 200 : 503, { status: l.ok ? 'alive' : 'wedged', ...l });
      }
      if (url === '/readyz') {
        const r = this.readiness();
        return send(r.ok ? 200 : 503, { ready: r.ok, ...r });
      }
      if (url === '/metrics') {
        this.registry.metrics().then(
          (text) => send(200, text, this.registry.contentType),
          (err: unknown) => send(500, { error: String(err) }),
        );
        return;
      }
      send(404, { error: 'not found' });
    });
    server.keepAliveTimeout = 5000;
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
