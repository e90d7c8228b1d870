/**
 * Job worker processes (`npm run worker`): /livez, /readyz and /metrics on WORKER_HEALTH_PORT, and the drain on
 * SIGTERM (no new jobs, running ones finish within WORKER_DRAIN_MS, exit 0). The liveness rules are checked
 * in-process with a stub worker and a fake clock; the rest with a real Redis and a worker child process.
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../../src/config.js';
import { WEDGED_MARGIN_MS, WorkerHealth } from '../../src/jobs/worker-health.js';
import { type Child, freePort, hasRedisServer, startJobWorker, startRedis } from '../faults/helpers.js';
import { makeApp, tinyModelsDir, waitFor } from '../helpers.js';

describe('worker liveness and readiness rules', () => {
  it('is wedged when a job runs past its deadline, and not ready while Redis is down or draining', async () => {
    let now = 1_000_000;
    let redisUp = true;
    const worker = new EventEmitter();
    const cfg = testConfig({ JOB_TIMEOUT_MS: 5000, MODELS_REQUIRED: 'none' });
    const health = new WorkerHealth(
      cfg,
      {
        worker: worker as never,
        pool: { workers: 1, run: (async () => ({})) as never },
        redisReady: () => redisUp,
      },
      pino({ level: 'silent' }),
      () => now,
    );
    expect(health.readiness().reasons).toEqual(['compute pool starting']);
    await health.start();
    expect(health.readiness()).toMatchObject({ ok: true, status: 'ready' });
    worker.emit('active', { id: '7', data: { operation: 'test.busy' } });
    now += cfg.JOB_TIMEOUT_MS;
    expect(health.liveness()).toMatchObject({ ok: true, running: 1 });
    now += WEDGED_MARGIN_MS + 1;
    const wedged = health.liveness();
    expect(wedged.ok).toBe(false);
    expect(wedged.reasons).toEqual([
      `job 7 (test.busy) running for ${cfg.JOB_TIMEOUT_MS + WEDGED_MARGIN_MS + 1} ms, past its deadline`,
    ]);
    worker.emit('completed', { id: '7', data: { operation: 'test.busy' } });
    expect(health.liveness().ok).toBe(true);
    const metrics = await health.registry.metrics();
    expect(metrics).toContain('tweedie_worker_jobs_completed_total{operation="test.busy"} 1');
    expect(metrics).toContain(
      'tweedie_worker_job_duration_seconds_count{operation="test.busy",outcome="completed"} 1',
    );

    redisUp = false;
    expect(health.readiness()).toMatchObject({ ok: false, reasons: ['Redis is not connected'] });
    redisUp = true;
    health.draining = true;
    expect(health.readiness()).toMatchObject({ ok: false, status: 'draining' });
    await health.close();
  });

  it('fails liveness once after the event loop was blocked longer than WORKER_LIVENESS_MAX_LAG_MS', async () => {
    const health = new WorkerHealth(
      testConfig({ WORKER_LIVENESS_MAX_LAG_MS: 100 }),
      {
        worker: new EventEmitter() as never,
        pool: { workers: 1, run: (async () => ({})) as never },
        redisReady: () => true,
      },
      pino({ level: 'silent' }),
    );
    await new Promise((r) => setTimeout(r, 50));
    expect(health.liveness().ok).toBe(true);
    const end = Date.now() + 300;
    while (Date.now() < end) {} // a blocked event loop: BullMQ could not renew its locks meanwhile
    await new Promise((r) => setTimeout(r, 50));
    const blocked = health.liveness();
    expect(blocked.ok).toBe(false);
    expect(blocked.reasons[0]).toMatch(/^event loop blocked for \d+ ms$/);
    expect(blocked.eventLoopDelayMaxMs).toBeGreaterThanOrEqual(250);
    expect(health.liveness().ok).toBe(true); // measured since the previous probe
    await health.close();
  });
});

describe.skipIf(!hasRedisServer)('worker process: probes, metrics and drain (real Redis)', () => {
  let redis: Child | undefined;
  let worker: Child | undefined;
  let app: Awaited<ReturnType<typeof makeApp>>;
  let base: string;
  let dir: string;
  const queueName = `worker-health-${process.pid}-${Date.now()}`;

  beforeAll(async () => {
    const port = await freePort();
    dir = mkdtempSync(path.join(os.tmpdir(), 'tweedie-redis-'));
    redis = await startRedis(port, dir);
    const redisUrl = `redis://127.0.0.1:${port}`;
    app = await makeApp({ JOBS_BACKEND: 'redis', REDIS_URL: redisUrl, JOBS_QUEUE_NAME: queueName });
    const healthPort = await freePort();
    base = `http://127.0.0.1:${healthPort}`;
    worker = await startJobWorker({
      REDIS_URL: redisUrl,
      JOBS_QUEUE_NAME: queueName,
      ENABLE_TEST_TASKS: 'true',
      MODELS_DIR: tinyModelsDir(),
      MODELS_REQUIRED: 'gaussian-blur',
      WORKER_HEALTH_PORT: String(healthPort),
      // Room for a 1.2 s job to start and finish on a loaded machine (1.5 s failed under CI-like load).
      JOB_TIMEOUT_MS: '4000',
      // The drain is WORKER_DRAIN_MS, not the API's SHUTDOWN_GRACE_MS.
      WORKER_DRAIN_MS: '10000',
      SHUTDOWN_GRACE_MS: '300',
    });
  }, 90_000);

  afterAll(async () => {
    worker?.child.kill('SIGKILL');
    await app?.close();
    redis?.child.kill('SIGKILL');
    await redis?.exited;
    rmSync(dir, { recursive: true, force: true });
  });

  const get = async (url: string) => {
    const res = await fetch(`${base}${url}`);
    return { status: res.status, text: await res.text() };
  };
  const submit = async (input: unknown) => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      payload: { operation: 'test.busy', input },
    });
    expect(r.statusCode, r.body).toBe(202);
    return r.json().id as string;
  };
  const state = async (id: string) =>
    (await app.inject({ method: 'GET', url: `/v1/jobs/${id}` })).json().state;

  it('answers /livez, and /readyz once Redis, the pool and the required model are ready', async () => {
    expect((await get('/livez')).status).toBe(200);
    await waitFor(async () => (await get('/readyz')).status === 200, 60_000, 100);
    const ready = JSON.parse((await get('/readyz')).text);
    expect(ready).toMatchObject({
      ready: true,
      status: 'ready',
      models: { 'gaussian-blur': { state: 'ready' } },
    });
  }, 70_000);

  it('counts completed and failed jobs, with durations, in /metrics', async () => {
    const ok = await submit({ ms: 20 });
    const late = await submit({ ms: 9000 }); // past the worker's 4 s deadline: failed
    await waitFor(
      async () => (await state(ok)) === 'succeeded' && (await state(late)) === 'failed',
      20_000,
      50,
    );
    const text = (await get('/metrics')).text;
    expect(text).toContain('tweedie_worker_jobs_completed_total{operation="test.busy"} 1');
    expect(text).toContain('tweedie_worker_jobs_failed_total{operation="test.busy"} 1');
    expect(text).toMatch(
      /tweedie_worker_job_duration_seconds_count\{operation="test.busy",outcome="failed"\} 1/,
    );
    expect(text).toContain('tweedie_worker_jobs_stalled_total 0');
    expect(text).toContain('tweedie_worker_jobs_active 0');
  }, 30_000);

  it('on SIGTERM: not ready (draining), still alive, lets the running job finish, exits 0', async () => {
    const id = await submit({ ms: 1200 });
    await waitFor(async () => (await state(id)) === 'running', 10_000, 20);
    expect((await get('/metrics')).text).toContain('tweedie_worker_jobs_active 1');
    worker!.child.kill('SIGTERM');
    await waitFor(async () => (await get('/readyz')).status === 503, 5000, 20);
    expect(JSON.parse((await get('/readyz')).text).status).toBe('draining');
    expect((await get('/livez')).status).toBe(200);
    expect(await worker!.exited).toBe(0);
    expect(await state(id)).toBe('succeeded');
  }, 30_000);
});

describe.skipIf(!hasRedisServer)('worker process whose Redis is not up yet', () => {
  let redis: Child | undefined;
  let worker: Child | undefined;
  let dir: string;

  afterAll(async () => {
    worker?.child.kill('SIGKILL');
    redis?.child.kill('SIGKILL');
    await redis?.exited;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers /livez at once and /readyz 503 "Redis is not connected", then ready once Redis is up', async () => {
    const redisPort = await freePort();
    const healthPort = await freePort();
    const base = `http://127.0.0.1:${healthPort}`;
    worker = await startJobWorker(
      {
        REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        JOBS_QUEUE_NAME: `worker-no-redis-${process.pid}`,
        WORKER_HEALTH_PORT: String(healthPort),
      },
      'worker health listening',
    );
    expect((await fetch(`${base}/livez`)).status).toBe(200);
    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.text()).toContain('Redis is not connected');
    dir = mkdtempSync(path.join(os.tmpdir(), 'tweedie-redis-'));
    redis = await startRedis(redisPort, dir);
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, 30_000, 100);
    await waitFor(() => worker!.output().includes('job worker ready'), 10_000, 50);
  }, 90_000);
});
