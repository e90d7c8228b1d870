/**
 * Prometheus metrics: requests by route and status, compute queue and task durations, workers, model states,
 * and the default process metrics (event loop lag included). One registry per app instance, so tests can build
 * many apps in one process.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { TaskEvent } from '../../compute/pool.js';
import { saturation } from '../../health.js';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: { registry: Registry };
  }
  interface FastifyRequest {
    startedAt?: bigint;
  }
}

export default fp(
  async function metricsPlugin(fastify: FastifyInstance) {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });

    const httpRequests = new Counter({
      name: 'tweedie_http_requests_total',
      help: 'HTTP requests by method, route and status code',
      labelNames: ['method', 'route', 'status_code'],
      registers: [registry],
    });
    const httpDuration = new Histogram({
      name: 'tweedie_http_request_duration_seconds',
      help: 'HTTP request duration by method, route and status code',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    });
    const taskDuration = new Histogram({
      name: 'tweedie_compute_task_duration_seconds',
      help: 'Compute task duration (queue wait included) by task kind and outcome',
      labelNames: ['kind', 'outcome'],
      buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    });
    const pool = fastify.compute.pool;
    new Gauge({
      name: 'tweedie_compute_queue_depth',
      help: 'Compute tasks waiting for a worker',
      registers: [registry],
      collect() {
        this.set(pool.queueDepth);
      },
    });
    new Gauge({
      name: 'tweedie_compute_running_tasks',
      help: 'Compute tasks running now',
      registers: [registry],
      collect() {
        this.set(pool.stats().running);
      },
    });
    new Gauge({
      name: 'tweedie_compute_workers',
      help: 'Compute worker threads alive',
      registers: [registry],
      collect() {
        this.set(pool.stats().workers);
      },
    });
    new Gauge({
      name: 'tweedie_compute_job_tasks',
      help: 'Compute tasks of jobs: holding a job-lane slot (on a worker or queued), or waiting for one',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const s = pool.stats();
        this.set({ state: 'holding' }, s.jobTasks);
        this.set({ state: 'waiting' }, s.jobTasksWaiting);
      },
    });
    new Gauge({
      name: 'tweedie_compute_reserved_workers',
      help: 'Compute workers kept for synchronous requests (job tasks never hold them)',
      registers: [registry],
      collect() {
        this.set(pool.reservedWorkers);
      },
    });
    new Gauge({
      name: 'tweedie_jobs',
      help: 'Jobs by state: queued (waiting to start) or running',
      labelNames: ['state'],
      registers: [registry],
      async collect() {
        // The redis backend asks Redis; while it is unreachable the gauge keeps its last values.
        const counts = await fastify.jobs?.backend.counts().catch(() => undefined);
        if (!counts) return;
        this.set({ state: 'queued' }, counts.queued);
        this.set({ state: 'running' }, counts.running);
      },
    });
    new Gauge({
      name: 'tweedie_saturated',
      help: '1 when at capacity (the /readyz `saturated` flag): every compute worker busy or tasks waiting, or every job slot taken and jobs waiting',
      labelNames: ['part'],
      registers: [registry],
      collect() {
        const load = saturation(fastify);
        this.set({ part: 'compute' }, load.compute ? 1 : 0);
        this.set({ part: 'jobs' }, load.jobs ? 1 : 0);
        this.set({ part: 'any' }, load.saturated ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tweedie_compute_backend_info',
      help: 'Always 1: the TF.js backend of the compute workers and the WebGPU adapter (empty labels when none)',
      labelNames: [
        'backend',
        'adapter_vendor',
        'adapter_architecture',
        'adapter_description',
        'adapter_software',
      ],
      registers: [registry],
      collect() {
        this.reset();
        const info = fastify.compute.info;
        if (!info) return;
        const a = info.adapter;
        this.set(
          {
            backend: info.backend,
            adapter_vendor: a?.vendor ?? '',
            adapter_architecture: a?.architecture ?? '',
            adapter_description: a?.description ?? '',
            adapter_software: a ? String(a.software) : '',
          },
          1,
        );
      },
    });
    new Gauge({
      name: 'tweedie_model_ready',
      help: '1 when the model is loaded and warmed, 0 otherwise; state label gives loading|ready|failed|invalid',
      labelNames: ['name', 'version', 'state'],
      registers: [registry],
      collect() {
        this.reset();
        for (const m of fastify.models?.list() ?? []) {
          this.set({ name: m.name, version: m.version, state: m.state }, m.state === 'ready' ? 1 : 0);
        }
      },
    });

    pool.on('task', (e: TaskEvent) =>
      taskDuration.observe({ kind: e.kind, outcome: e.outcome }, e.ms / 1000),
    );

    fastify.decorate('metrics', { registry });

    fastify.addHook('onRequest', async (request) => {
      request.startedAt = process.hrtime.bigint();
    });
    fastify.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched';
      const labels = { method: request.method, route, status_code: String(reply.statusCode) };
      httpRequests.inc(labels);
      if (request.startedAt) {
        httpDuration.observe(labels, Number(process.hrtime.bigint() - request.startedAt) / 1e9);
      }
    });
  },
  { name: 'metrics', dependencies: ['compute'] },
);
