/**
 * The compute pool itself: cancellation of queued work, out-of-memory isolation, and no tensor leaks in a worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp, waitFor } from '../helpers.js';

describe('compute pool', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    app = await makeApp({ WORKERS: 1, QUEUE_MAX: 4, WORKER_MAX_HEAP_MB: 96 });
    await app.models.settled;
  }, 120_000);
  afterAll(async () => {
    await app.close();
  });

  it('a queued task whose caller gives up never runs', async () => {
    const pool = app.compute.pool;
    const completedBefore = pool.stats().completed;
    const first = pool.run('test.busy', { ms: 600 });
    const controller = new AbortController();
    const second = pool.run('test.busy', { ms: 5000 }, { signal: controller.signal });
    await waitFor(() => pool.queueDepth === 1, 5000, 5);
    controller.abort();
    await expect(second).rejects.toMatchObject({ code: 'TW_DEADLINE_EXCEEDED' });
    await first;
    // Only the first task ran: the aborted one was removed from the queue, not started and killed.
    expect(pool.stats().completed - completedBefore).toBe(1);
    expect(pool.queueDepth).toBe(0);
  });

  it('a worker that runs out of memory fails only its task; the next one succeeds', async () => {
    const crash = await app.inject({ method: 'POST', url: '/v1/_test/crash', payload: { mode: 'oom' } });
    expect(crash.statusCode).toBe(500);
    expect(crash.json().error.code).toBe('TW_WORKER_CRASHED');
    const ok = await app.inject({ method: 'POST', url: '/v1/_test/busy', payload: { ms: 5 } });
    expect(ok.statusCode).toBe(200);
  });

  it('leaks no tensors over 50 inferences in a worker', async () => {
    const data = new Float32Array(16 * 16);
    data[8 * 16 + 8] = 1;
    const res = await app.compute.pool.run('model.infer', {
      name: 'gaussian-blur',
      data,
      shape: [1, 16, 16, 1],
      repeat: 50,
    });
    expect(res.numTensorsAfter).toBe(res.numTensorsBefore);
    expect(res.shape).toEqual([1, 16, 16, 1]);
    // And the model did real work: the delta became a normalised blob.
    const sum = res.data.reduce((s, v) => s + v, 0);
    expect(sum).toBeCloseTo(1, 4);
    expect(res.data[8 * 16 + 8]).toBeLessThan(0.5);
  });
});

describe('under pressure', () => {
  it('refuses work with 503 + Retry-After when the event loop is saturated, but still answers probes', async () => {
    const app = await makeApp({ PRESSURE_MAX_EVENT_LOOP_UTILIZATION: 0.8, PRESSURE_SAMPLE_INTERVAL_MS: 50 });
    try {
      // Make the event loop lag: spin 60 ms at a time, yielding in between so the delay histogram gets samples,
      // until the sampler has seen it and a request is refused (or give up after 5 s).
      let res = await app.inject({ method: 'GET', url: '/v1/models' });
      const giveUp = Date.now() + 5000;
      while (res.statusCode !== 503 && Date.now() < giveUp) {
        const until = Date.now() + 60;
        while (Date.now() < until) {
          /* spin */
        }
        await new Promise((r) => setTimeout(r, 0));
        res = await app.inject({ method: 'GET', url: '/v1/models' });
      }
      expect(res.statusCode).toBe(503);
      expect(res.json().error.code).toBe('TW_OVERLOADED');
      expect(res.headers['retry-after']).toBeDefined();
      const live = await app.inject({ method: 'GET', url: '/livez' });
      expect(live.statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});
