/**
 * Readiness in one place, shared by /readyz, GraphQL `health` and the console.
 */
import type { FastifyInstance } from 'fastify';
import type { PoolStats } from './compute/pool.js';
import type { WorkerInfo } from './compute/task-types.js';

export interface HealthReport {
  /** `degraded`: ready (synchronous routes work) but some part is down, named in `degraded`. */
  status: 'ready' | 'degraded' | 'not_ready' | 'shutting_down';
  ready: boolean;
  reasons: string[];
  /**
   * What is down without making the service unready: the redis jobs store (job routes answer 503 TW_NOT_READY
   * meanwhile; synchronous routes go on).
   */
  degraded: string[];
  backend: string | null;
  native: boolean;
  /** The WebGPU adapter the workers found (in use when backend is 'webgpu'); null when none was looked for or found. */
  adapter: WorkerInfo['adapter'] | null;
  /** The backends the workers tried before the one in use, with the reason each was skipped. */
  backendTried: WorkerInfo['tried'];
  /** The last GPU device a compute worker lost (the worker was replaced); null when none was. */
  gpuDeviceLost: { reason: string; at: string } | null;
  compute: PoolStats & { up: boolean; saturated: boolean };
  /** Counts are present where the backend holds them (memory); a redis backend's are in /metrics. */
  jobs: {
    backend: string;
    ready: boolean;
    queued?: number;
    running?: number;
    concurrency?: number;
    saturated?: boolean;
  } | null;
  /**
   * At capacity (readiness is not changed by it): every compute worker is busy or tasks wait for one (a new
   * request would queue), or every job slot is taken and jobs wait.
   */
  saturated: boolean;
  models: { name: string; version: string; state: string; required: boolean; reason?: string }[];
  uptimeSeconds: number;
}

/** Whether the compute pool and the jobs backend are at capacity (see HealthReport.saturated). */
export function saturation(app: FastifyInstance) {
  const stats = app.compute.pool.stats();
  const compute = stats.running >= stats.workers || stats.queued > 0;
  const counts = app.jobs?.backend.countsNow?.();
  const jobs = counts ? counts.running >= counts.concurrency && counts.queued > 0 : false;
  return { stats, counts, compute, jobs, saturated: compute || jobs };
}

export function healthReport(app: FastifyInstance): HealthReport {
  const reasons: string[] = [];
  const load = saturation(app);
  const stats = load.stats;
  if (app.lifecycle.shuttingDown) reasons.push('shutting down');
  if (!app.compute.up) {
    reasons.push(app.compute.error ? `compute pool failed: ${app.compute.error}` : 'compute pool starting');
  }
  const req = app.models.requiredReady();
  for (const m of req.waiting) reasons.push(`required model ${m} is loading`);
  for (const m of req.failed) reasons.push(`required model ${m} failed to load`);
  for (const m of req.missing) reasons.push(`required model ${m} has no valid version in the repository`);
  // The redis jobs backend needs Redis: while it is unreachable, job routes refuse (503 TW_NOT_READY) but the pod
  // stays ready: synchronous routes do not need Redis, and an outage must not empty the whole service.
  const degraded: string[] = [];
  const jobs = app.jobs?.backend.readiness();
  if (jobs && !jobs.ready) degraded.push(jobs.reason ?? 'jobs store not ready');
  const ready = reasons.length === 0;
  return {
    status: app.lifecycle.shuttingDown
      ? 'shutting_down'
      : !ready
        ? 'not_ready'
        : degraded.length > 0
          ? 'degraded'
          : 'ready',
    ready,
    reasons,
    degraded,
    backend: app.compute.info?.backend ?? null,
    native: app.compute.info?.native ?? false,
    adapter: app.compute.info?.adapter ?? null,
    backendTried: app.compute.info?.tried ?? [],
    gpuDeviceLost: app.compute.gpuDeviceLost
      ? { reason: app.compute.gpuDeviceLost.reason, at: app.compute.gpuDeviceLost.at }
      : null,
    compute: { up: app.compute.up, ...stats, saturated: load.compute },
    jobs: app.jobs
      ? {
          backend: app.jobs.backend.kind,
          ready: jobs?.ready ?? true,
          ...(load.counts ? { ...load.counts, saturated: load.jobs } : {}),
        }
      : null,
    saturated: load.saturated,
    models: app.models.list().map((m) => ({
      name: m.name,
      version: m.version,
      state: m.state,
      required: m.required,
      ...(m.reason ? { reason: m.reason } : {}),
    })),
    uptimeSeconds: (Date.now() - app.lifecycle.startedAt) / 1000,
  };
}
