/**
 * One task on several workers (src/compute/pool.ts `lend`, src/compute/shared-work.ts): a running task borrows only
 * idle workers, its helpers give way as soon as another task waits, a job's helpers keep to the job lane, helpers
 * die with their parent (cancelled or past its deadline), a helper's coded error fails the parent with its code,
 * their memory is admitted by the image memory budget, and none is lent while the host is loaded (SPLIT_MAX_LOAD;
 * off in the other tests, whose machine may be busy); helpers are traced under their parent's span.
 */
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAsJob } from '../../src/compute/pool.js';
import { initTracing, shutdownTracing } from '../../src/telemetry/tracing.js';
import { makeApp, waitFor } from '../helpers.js';

describe('borrowing idle workers', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    // Three workers, one of them reserved for synchronous requests (the default with 2 or more).
    app = await makeApp({ WORKERS: 3, QUEUE_MAX: 8, SPLIT_MAX_LOAD: 0 });
  }, 120_000);
  afterAll(async () => {
    await app.close();
  });
  const pool = () => app.compute.pool;
  const settle = () => waitFor(() => pool().stats().running === 0, 10_000, 10);

  it('borrows every idle worker, and the items are spread over them', async () => {
    await settle();
    const lentBefore = pool().stats().lent;
    const res = await pool().run('test.share', { items: 12, ms: 80, helpers: 4 });
    expect(res.helpers).toBe(2);
    expect(pool().stats().lent - lentBefore).toBe(2);
    expect(res.threads.every((t) => t > 0)).toBe(true);
    expect(new Set(res.threads).size).toBeGreaterThanOrEqual(2);
    expect(res.local).toBeLessThan(12);
  });

  it('borrows only idle workers: none of a busy one', async () => {
    await settle();
    const busy = pool().run('test.busy', { ms: 1500 });
    await waitFor(() => pool().stats().running === 1, 5000, 5);
    const res = await pool().run('test.share', { items: 4, ms: 20, helpers: 4 });
    expect(res.helpers).toBe(1);
    await busy;
  });

  it('a helper gives way to a task that comes to wait (it waits at most one item)', async () => {
    await settle();
    const share = pool().run('test.share', { items: 60, ms: 50, helpers: 2 });
    await waitFor(() => pool().stats().running === 3, 5000, 5);
    // Every worker is taken (the parent and two helpers): this task waits, and a helper stops for it.
    const t0 = Date.now();
    await pool().run('test.busy', { ms: 10 });
    const waited = Date.now() - t0;
    const res = await share;
    expect(res.helpers).toBe(2);
    // Without giving way it would wait for a helper to finish its share (about 1 s).
    expect(waited).toBeLessThan(500);
    expect(res.threads.every((t) => t > 0)).toBe(true);
  });

  it("a job's helpers keep to the job lane (the reserved worker is not lent)", async () => {
    await settle();
    const res = await runAsJob(() => pool().run('test.share', { items: 6, ms: 20, helpers: 4 }));
    expect(res.helpers).toBe(1);
  });

  it("a helper's coded error fails its parent with that code", async () => {
    await settle();
    await expect(
      pool().run('test.share', { items: 20, ms: 40, helpers: 2, helperFails: 'TW_MODEL_NOT_FOUND' }),
    ).rejects.toMatchObject({ code: 'TW_MODEL_NOT_FOUND' });
    await settle();
  });

  it('helpers stop with their parent: cancelled, or past its deadline', async () => {
    for (const how of ['cancel', 'deadline'] as const) {
      await settle();
      const controller = new AbortController();
      const run = pool().run(
        'test.share',
        { items: 100, ms: 100, helpers: 2 },
        how === 'cancel' ? { signal: controller.signal } : { timeoutMs: 3000 },
      );
      const failed = run.catch((err: unknown) => err);
      await waitFor(() => pool().stats().running === 3, 5000, 5);
      if (how === 'cancel') controller.abort();
      await expect(failed).resolves.toMatchObject({ code: 'TW_DEADLINE_EXCEEDED' });
      // The helpers had seconds of items left: they were stopped, not left to run them.
      const t0 = Date.now();
      await settle();
      expect(Date.now() - t0).toBeLessThan(800);
    }
  });
});

describe('borrowing and the image memory budget', () => {
  it('lends only the helpers whose memory the budget admits', async () => {
    const app = await makeApp({ WORKERS: 3, IMAGE_MEMORY_BUDGET_BYTES: 10_000, SPLIT_MAX_LOAD: 0 });
    try {
      const pool = app.compute.pool;
      await waitFor(() => pool.stats().running === 0, 10_000, 10);
      const one = await pool.run('test.share', { items: 4, ms: 10, helpers: 2, bytesEach: 4000 });
      expect(one.helpers).toBe(2);
      const some = await pool.run('test.share', { items: 4, ms: 10, helpers: 2, bytesEach: 6000 });
      expect(some.helpers).toBe(1);
      const none = await pool.run('test.share', { items: 4, ms: 10, helpers: 2, bytesEach: 20_000 });
      expect(none.helpers).toBe(0);
      expect(none.local).toBe(4);
    } finally {
      await app.close();
    }
  });
});

describe('borrowing and the host load (SPLIT_MAX_LOAD)', () => {
  it('lends no worker while the load per core is at or above SPLIT_MAX_LOAD', async () => {
    const app = await makeApp({ WORKERS: 2, SPLIT_MAX_LOAD: 1 });
    try {
      const pool = app.compute.pool;
      await waitFor(() => pool.stats().running === 0, 10_000, 10);
      pool.hostLoadPerCore = () => 1.5;
      const loaded = await pool.run('test.share', { items: 4, ms: 10, helpers: 1 });
      expect(loaded.helpers).toBe(0);
      pool.hostLoadPerCore = () => 0.5;
      const idle = await pool.run('test.share', { items: 4, ms: 10, helpers: 1 });
      expect(idle.helpers).toBe(1);
    } finally {
      await app.close();
    }
  });
});

describe('borrowing and tracing', () => {
  const exporter = new InMemorySpanExporter();
  beforeAll(async () => {
    expect(await initTracing({ spanProcessors: [new SimpleSpanProcessor(exporter)] })).toBe(true);
  });
  afterAll(async () => {
    await shutdownTracing();
  });

  it("traces each helper under its parent's compute span", async () => {
    const app = await makeApp({ WORKERS: 3, SPLIT_MAX_LOAD: 0 });
    try {
      await waitFor(() => app.compute.pool.stats().running === 0, 10_000, 10);
      exporter.reset();
      const res = await app.compute.pool.run('test.share', { items: 6, ms: 30, helpers: 2 });
      expect(res.helpers).toBe(2);
      const spans = exporter.getFinishedSpans();
      const parent = spans.filter((s) => s.name === 'compute test.share');
      const helpers = spans.filter((s) => s.name === 'compute test.share-part');
      expect(parent).toHaveLength(1);
      expect(helpers).toHaveLength(2);
      for (const h of helpers) {
        expect(h.spanContext().traceId).toBe(parent[0].spanContext().traceId);
        expect(h.parentSpanContext?.spanId).toBe(parent[0].spanContext().spanId);
      }
    } finally {
      await app.close();
    }
  });
});
