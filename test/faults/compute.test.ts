/**
 * Fault drills on the compute pool, through real requests.
 *
 * A worker dying in the middle of a request: compute workers are threads of the service process, and a thread
 * cannot be sent SIGKILL on its own (a signal to the process would kill the service). The closest simulation is
 * the test task `test.crash` with mode `exit` (process.exit inside the worker thread: the thread stops at once,
 * mid-task, without unwinding; Node reports it to the pool as an exit) and `oom` (the worker exceeds its heap cap
 * and V8 kills the thread). The request on that worker gets 500 TW_WORKER_CRASHED, a request running on another
 * worker at the same moment is unaffected, the pool is back to full size, and every worker serves again.
 *
 * Queue exhaustion: with every worker busy and QUEUE_MAX tasks waiting, further requests get 503 TW_QUEUE_FULL
 * with Retry-After at once; the accepted ones all finish; nothing hangs.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp, waitFor } from '../helpers.js';

const WORKERS = 2;
const QUEUE_MAX = 3;

describe('compute faults', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await makeApp({
      WORKERS,
      QUEUE_MAX,
      WORKER_MAX_HEAP_MB: 96,
      RATE_LIMIT_MAX: 0,
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
    });
    await app.models.settled;
  }, 60_000);
  afterAll(async () => {
    await app?.close();
  });

  const busy = (ms: number) => app.inject({ method: 'POST', url: '/v1/_test/busy', payload: { ms } });

  for (const mode of ['exit', 'oom'] as const) {
    it(`a worker dying mid-task (${mode}) fails only its request; the pool is restored and serves on every worker`, async () => {
      const neighbour = busy(1500);
      // The neighbour holds one worker; the crash lands on the other.
      await waitFor(() => app.compute.pool.stats().running >= 1, 5000, 5);
      const crash = await app.inject({ method: 'POST', url: '/v1/_test/crash', payload: { mode } });
      expect(crash.statusCode).toBe(500);
      expect(crash.json().error).toMatchObject({ code: 'TW_WORKER_CRASHED' });
      // 5xx bodies carry no internals.
      expect(crash.body).not.toMatch(/stack|at .*\.ts:\d+/);
      const survived = await neighbour;
      expect(survived.statusCode, survived.body).toBe(200);

      const crashedAt = performance.now();
      await waitFor(() => app.compute.pool.stats().workers === WORKERS, 30_000, 20);
      const restoredMs = Math.round(performance.now() - crashedAt);
      // Enough concurrent tasks to need both workers: each answers, from two distinct threads.
      const after = await Promise.all(Array.from({ length: 2 * WORKERS }, () => busy(300)));
      for (const r of after) expect(r.statusCode, r.body).toBe(200);
      expect(new Set(after.map((r) => r.json().threadId)).size).toBe(WORKERS);
      const ready = await app.inject({ method: 'GET', url: '/readyz' });
      expect(ready.statusCode).toBe(200);
      console.log(
        `worker crash (${mode}): 500 ${crash.json().error.code}, neighbour ${survived.statusCode}, pool back to ${WORKERS} workers ${restoredMs} ms after the answer, then ${after.length} x 200 on ${WORKERS} threads`,
      );
    }, 60_000);
  }

  it('a full queue answers 503 + Retry-After at once; the accepted tasks all finish', async () => {
    const accepted = Array.from({ length: WORKERS + QUEUE_MAX }, () => busy(800));
    await waitFor(() => app.compute.pool.queueDepth === QUEUE_MAX, 5000, 5);
    const t0 = performance.now();
    const refused = await Promise.all(Array.from({ length: 5 }, () => busy(10)));
    const refusedMs = Math.round(performance.now() - t0);
    // Refused without waiting for a slot: the accepted tasks hold the workers for several seconds; the bound
    // is loose so that a slow CI machine does not trip it.
    expect(refusedMs).toBeLessThan(4000);
    for (const r of refused) {
      expect(r.statusCode).toBe(503);
      expect(r.json().error.code).toBe('TW_QUEUE_FULL');
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    }
    // Probes answer while the queue is full.
    expect((await app.inject({ method: 'GET', url: '/livez' })).statusCode).toBe(200);
    const done = await Promise.all(accepted);
    for (const r of done) expect(r.statusCode, r.body).toBe(200);
    expect(app.compute.pool.queueDepth).toBe(0);
    console.log(
      `queue full: ${refused.length} refused (503 TW_QUEUE_FULL, Retry-After ${refused[0].headers['retry-after']} s) within ${refusedMs} ms; ${done.length} accepted, all 200`,
    );
  }, 30_000);
});
