/**
 * Jobs may not starve synchronous requests, one client may not hold every job slot, finished jobs may not pile up
 * in the heap, a request may not turn itself into hours of job, and /readyz and /metrics show saturation.
 */
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../../src/config.js';
import { estimateBytes, MemoryJobBackend } from '../../src/jobs/memory.js';
import '../../src/operations/index.js';
import { makeApp, waitFor } from '../helpers.js';

type App = Awaited<ReturnType<typeof makeApp>>;

describe('jobs share the service fairly (memory backend, 2 workers)', () => {
  let app: App;
  beforeAll(async () => {
    app = await makeApp({ WORKERS: 2, JOBS_MAX_PER_KEY: 2, JOBS_AUTO_MAX_COST_MS: 10_000 });
    await app.models.settled;
    // Both workers started (a worker's first task pays for its start), so deadlines below measure queueing only.
    await waitFor(() => app.compute.up, 60_000);
    await Promise.all([0, 1].map(() => app.compute.pool.run('test.busy', { ms: 200 })));
  }, 120_000);
  afterAll(async () => {
    await app.close();
  });

  const submitBusy = (address: string, ms: number) =>
    app.inject({
      method: 'POST',
      url: '/v1/jobs',
      remoteAddress: address,
      payload: { operation: 'test.busy', input: { ms } },
    });
  const cancel = (id: string) => app.inject({ method: 'DELETE', url: `/v1/jobs/${id}` });

  it('keeps a worker for synchronous requests while jobs fill the rest, and /readyz and /metrics say so', async () => {
    const jobs = [await submitBusy('10.0.0.1', 5000), await submitBusy('10.0.0.1', 5000)];
    for (const j of jobs) expect(j.statusCode, j.body).toBe(202);
    await waitFor(() => app.compute.pool.stats().running >= 1, 10_000, 10);

    // Another client's small synchronous request answers within its 1.5 s deadline, not after the jobs (504).
    const t0 = performance.now();
    const sync = await app.inject({
      method: 'POST',
      url: '/v1/_test/busy',
      remoteAddress: '10.0.0.2',
      payload: { ms: 50, timeoutMs: 1500 },
    });
    expect(sync.statusCode, sync.body).toBe(200);
    expect(performance.now() - t0).toBeLessThan(1500);

    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200); // saturation is reported, readiness is not withdrawn for it
    const report = ready.json();
    expect(report.compute).toMatchObject({ workers: 2, reservedWorkers: 1, jobTasks: 1, jobTasksWaiting: 0 });
    expect(report.jobs).toMatchObject({
      backend: 'memory',
      running: 1,
      queued: 1,
      concurrency: 1,
      saturated: true,
    });
    expect(report.saturated).toBe(true);
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^tweedie_jobs\{state="queued"\} 1$/m);
    expect(metrics).toMatch(/^tweedie_jobs\{state="running"\} 1$/m);
    expect(metrics).toMatch(/^tweedie_compute_job_tasks\{state="holding"\} 1$/m);
    expect(metrics).toMatch(/^tweedie_compute_reserved_workers 1$/m);
    expect(metrics).toMatch(/^tweedie_saturated\{part="jobs"\} 1$/m);

    for (const j of jobs) await cancel(j.json().id);
    await waitFor(() => app.compute.pool.stats().jobTasks === 0, 10_000, 10);
    expect((await app.inject({ method: 'GET', url: '/readyz' })).json().saturated).toBe(false);
  });

  it('job tasks beyond the lane wait for a slot, wherever they are started from', async () => {
    const { runAsJob } = await import('../../src/compute/pool.js');
    const pool = app.compute.pool;
    const done: string[] = [];
    const job = (name: string) =>
      runAsJob(() => pool.run('test.busy', { ms: 1500 })).then(() => done.push(name));
    const all = [job('a'), job('b')];
    await waitFor(() => pool.stats().jobTasksWaiting === 1, 5000, 5);
    expect(pool.stats()).toMatchObject({ jobTasks: 1, running: 1 });
    // A plain task takes the reserved worker at once, while a job task waits.
    await pool.run('test.busy', { ms: 10 });
    expect(done).toEqual([]);
    await Promise.all(all);
    expect(done).toEqual(['a', 'b']);
    expect(pool.stats()).toMatchObject({ jobTasks: 0, jobTasksWaiting: 0 });
  });

  it('refuses a client beyond JOBS_MAX_PER_KEY active jobs with 429 TW_JOB_QUOTA; other clients are not affected', async () => {
    const mine = [await submitBusy('10.0.1.1', 5000), await submitBusy('10.0.1.1', 5000)];
    for (const j of mine) expect(j.statusCode, j.body).toBe(202);
    const third = await submitBusy('10.0.1.1', 10);
    expect(third.statusCode, third.body).toBe(429);
    expect(third.json().error).toMatchObject({ code: 'TW_JOB_QUOTA', details: { active: 2, max: 2 } });
    expect(third.headers['retry-after']).toBe('5');
    // Also through the `async` flag of an operation route.
    const viaRoute = await app.inject({
      method: 'POST',
      url: '/v1/ot/plan',
      remoteAddress: '10.0.1.1',
      payload: { x: [[0]], y: [[1]], solver: { solver: 'emd' }, async: true },
    });
    expect(viaRoute.statusCode, viaRoute.body).toBe(429);

    const other = await submitBusy('10.0.1.2', 10);
    expect(other.statusCode, other.body).toBe(202);
    // A finished (here: cancelled) job frees its place.
    await cancel(mine[0].json().id);
    const again = await submitBusy('10.0.1.1', 10);
    expect(again.statusCode, again.body).toBe(202);
    for (const j of [mine[1], other, again]) await cancel(j.json().id);
  });

  it('refuses a request that would turn itself into a job costlier than JOBS_AUTO_MAX_COST_MS (413)', async () => {
    const png = await sharp(Buffer.alloc(64 * 64, 128), { raw: { width: 64, height: 64, channels: 1 } })
      .png()
      .toBuffer();
    // 1000 steps on 64x64 is estimated at ~82 s: beyond the 1 s deadline, and beyond the 10 s cap.
    const r = await app.inject({
      method: 'POST',
      url: '/v1/restore?task=denoise&steps=1000&timeoutMs=1000',
      headers: { 'content-type': 'image/png' },
      payload: png,
    });
    expect(r.statusCode, r.body).toBe(413);
    expect(r.json().error).toMatchObject({
      code: 'TW_PROBLEM_TOO_LARGE',
      details: { deadlineMs: 1000, maxMs: 10_000 },
    });
    expect(r.json().error.details.estimatedMs).toBeGreaterThan(10_000);
    expect(r.json().error.message).toMatch(/async=true/);
  });
});

describe('finished jobs are bounded per client (memory backend, unit)', () => {
  const runtime = { pool: null as never, config: testConfig({ ENABLE_TEST_TASKS: true }) };
  const finished = async (backend: MemoryJobBackend, owner: string, bytes: number) => {
    const { view } = await backend.submit(
      'test.bytes',
      { bytes: Buffer.alloc(bytes, 1), label: 'x' },
      { owner },
    );
    await waitFor(async () => (await backend.get(view.id))?.state === 'succeeded', 5_000, 2);
    return view.id;
  };

  it('keeps at most JOBS_MAX_FINISHED_PER_KEY finished jobs per client, forgetting the oldest', async () => {
    const backend = new MemoryJobBackend(runtime, {
      queueMax: 8,
      concurrency: 1,
      ttlMs: 60_000,
      timeoutMs: 5_000,
      maxFinishedPerKey: 3,
    });
    const other = await finished(backend, 'other', 10);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await finished(backend, 'me', 10));
    const kept = await Promise.all(ids.map(async (id) => (await backend.get(id)) !== null));
    expect(kept).toEqual([false, false, true, true, true]);
    expect(await backend.result(ids[0])).toBeNull();
    expect(await backend.get(other)).not.toBeNull(); // another client's jobs are not touched
    await backend.close();
  });

  it('keeps at most JOBS_MAX_RESULT_BYTES_PER_KEY of results per client (the newest always)', async () => {
    const backend = new MemoryJobBackend(runtime, {
      queueMax: 8,
      concurrency: 1,
      ttlMs: 60_000,
      timeoutMs: 5_000,
      maxResultBytesPerKey: 100_000,
    });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await finished(backend, 'me', 40_000));
    const kept = await Promise.all(ids.map(async (id) => (await backend.get(id)) !== null));
    expect(kept).toEqual([false, true, true]);
    // One result above the whole budget is still kept (alone) until the next one finishes.
    const big = await finished(backend, 'me', 150_000);
    expect(await backend.get(ids[2])).toBeNull();
    expect(await backend.get(big)).not.toBeNull();
    await backend.close();
  });

  it('estimates result bytes from what a result holds', () => {
    expect(estimateBytes(Buffer.alloc(1000))).toBe(1000);
    expect(estimateBytes(new Float64Array(100))).toBe(800);
    const plan = Array.from({ length: 100 }, () => Array.from({ length: 100 }, () => 0.5));
    expect(estimateBytes({ plan })).toBeGreaterThanOrEqual(80_000);
  });
});
