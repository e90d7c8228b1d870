/**
 * Readiness in one place, shared by /readyz, GraphQL `health` and the console.
 */
import type { FastifyInstance } from 'fastify';

export interface HealthReport {
  status: 'ready' | 'not_ready' | 'shutting_down';
  ready: boolean;
  reasons: string[];
  backend: string | null;
  native: boolean;
  compute: { up: boolean; workers: number; queued: number; running: number; queueMax: number };
  jobs: { backend: string; ready: boolean } | null;
  models: { name: string; version: string; state: string; required: boolean; reason?: string }[];
  uptimeSeconds: number;
}

export function healthReport(app: FastifyInstance): HealthReport {
  const reasons: string[] = [];
  const stats = app.compute.pool.stats();
  if (app.lifecycle.shuttingDown) reasons.push('shutting down');
  if (!app.compute.up) {
    reasons.push(app.compute.error ? `compute pool failed: ${app.compute.error}` : 'compute pool starting');
  }
  const req = app.models.requiredReady();
  for (const m of req.waiting) reasons.push(`required model ${m} is loading`);
  for (const m of req.failed) reasons.push(`required model ${m} failed to load`);
  // The redis jobs backend needs Redis: while it is unreachable, job routes refuse (503) and so does readiness.
  const jobs = app.jobs?.backend.readiness();
  if (jobs && !jobs.ready) reasons.push(jobs.reason ?? 'jobs store not ready');
  const ready = reasons.length === 0;
  return {
    status: app.lifecycle.shuttingDown ? 'shutting_down' : ready ? 'ready' : 'not_ready',
    ready,
    reasons,
    backend: app.compute.info?.backend ?? null,
    native: app.compute.info?.native ?? false,
    compute: { up: app.compute.up, ...stats },
    jobs: app.jobs ? { backend: app.jobs.backend.kind, ready: jobs?.ready ?? true } : null,
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
