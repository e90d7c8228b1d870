/**
 * Jobs on the embedded (memory) backend, through the real app and compute pool: submission (POST /v1/jobs and
 * `async: true` / `Prefer: respond-async` on the OT routes), states, progress, results, cancellation of queued and
 * running tasks, the bounded queue, idempotency keys, TTL expiry, and GraphQL (queries, mutations, subscription).
 */
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../../src/config.js';
import { MemoryJobBackend } from '../../src/jobs/memory.js';
import '../../src/operations/index.js';
import { makeApp, waitFor } from '../helpers.js';

type App = Awaited<ReturnType<typeof makeApp>>;
// `ws` ships without types (and mercurius already depends on it): a plain client is all this test needs.
const WebSocket = createRequire(import.meta.url)('ws');

const smallPlan = {
  x: [[0], [1], [2], [5]],
  y: [[0.5], [1.5], [2.5], [4]],
  solver: { solver: 'emd' },
};

async function jobState(app: App, id: string) {
  const r = await app.inject({ method: 'GET', url: `/v1/jobs/${id}` });
  return r.json();
}

async function waitForState(app: App, id: string, states: string[], timeoutMs = 20_000) {
  let last: { state: string } | undefined;
  await waitFor(async () => states.includes((last = await jobState(app, id)).state), timeoutMs, 20);
  return last as Record<string, any>;
}

describe('jobs, memory backend', () => {
  let app: App;
  beforeAll(async () => {
    app = await makeApp({ WORKERS: 1, JOBS_QUEUE_MAX: 2, JOB_TTL_MS: 1500, OT_MAX_ENTRIES: 10_000 });
  });
  afterAll(async () => {
    await app.close();
  });

  it('runs an OT plan as a job and returns the same result as the synchronous route', async () => {
    const submitted = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      payload: { operation: 'ot.plan', input: smallPlan },
    });
    expect(submitted.statusCode).toBe(202);
    const job = submitted.json();
    expect(submitted.headers.location).toBe(`/v1/jobs/${job.id}`);
    expect(job).toMatchObject({ operation: 'ot.plan', progress: { fraction: 0 } });
    expect(['queued', 'running']).toContain(job.state);
    expect(Date.parse(job.createdAt)).not.toBeNaN();

    const done = await waitForState(app, job.id, ['succeeded', 'failed']);
    expect(done.state).toBe('succeeded');
    expect(done.progress.fraction).toBe(1);
    expect(Date.parse(done.startedAt)).toBeGreaterThanOrEqual(Date.parse(done.createdAt));
    expect(Date.parse(done.finishedAt)).toBeGreaterThanOrEqual(Date.parse(done.startedAt));

    const result = await app.inject({ method: 'GET', url: `/v1/jobs/${job.id}/result` });
    const sync = await app.inject({ method: 'POST', url: '/v1/ot/plan', payload: smallPlan });
    expect(result.statusCode).toBe(200);
    expect(sync.statusCode).toBe(200);
    expect(result.json().cost).toBeCloseTo(sync.json().cost, 12);
    expect(result.json().plan).toEqual(sync.json().plan);
  });

  it('accepts "async": true and Prefer: respond-async on the operation routes, validating first', async () => {
    const viaFlag = await app.inject({
      method: 'POST',
      url: '/v1/ot/distance',
      payload: { ...smallPlan, async: true },
    });
    expect(viaFlag.statusCode).toBe(202);
    expect(viaFlag.json().operation).toBe('ot.distance');
    const distance = await waitForState(app, viaFlag.json().id, ['succeeded', 'failed']);
    expect(distance.state).toBe('succeeded');
    const distanceResult = (
      await app.inject({ method: 'GET', url: `${viaFlag.headers.location}/result` })
    ).json();
    expect(distanceResult.plan).toBeUndefined();
    expect(distanceResult.cost).toBeGreaterThan(0);

    const viaHeader = await app.inject({
      method: 'POST',
      url: '/v1/ot/sinkhorn-divergence',
      headers: { prefer: 'respond-async, wait=10' },
      payload: { x: smallPlan.x, y: smallPlan.y, reg: 0.5 },
    });
    expect(viaHeader.statusCode).toBe(202);
    expect(viaHeader.headers['preference-applied']).toBe('respond-async');
    expect(viaHeader.json().operation).toBe('ot.sinkhorn-divergence');
    expect((await waitForState(app, viaHeader.json().id, ['succeeded', 'failed'])).state).toBe('succeeded');

    // Invalid or too large inputs are refused at submission, with the synchronous route's codes.
    const invalid = await app.inject({
      method: 'POST',
      url: '/v1/ot/plan',
      payload: { x: smallPlan.x, solver: { solver: 'emd' }, async: true },
    });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json().error.code).toBe('TW_VALIDATION');
    const big = Array.from({ length: 101 }, (_, i) => [i]);
    const tooLarge = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      payload: { operation: 'ot.plan', input: { x: big, y: big, solver: { solver: 'emd' } } },
    });
    expect(tooLarge.statusCode).toBe(413);
    const unknown = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      payload: { operation: 'ot.nope', input: {} },
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error.details.known).toContain('ot.monge-gap');
  });

  it('reports progress, and DELETE aborts a running task at once and frees its worker', async () => {
    const running = (
      await app.inject({
        method: 'POST',
        url: '/v1/jobs',
        payload: { operation: 'test.busy', input: { ms: 20_000 } },
      })
    ).json();
    const midway = await waitFor(
      async () => {
        const s = await jobState(app, running.id);
        return s.state === 'running' && s.progress.fraction > 0 && s.progress.message === 'busy';
      },
      10_000,
      20,
    ).then(() => jobState(app, running.id));
    expect(midway.progress.fraction).toBeLessThan(0.5);

    const cancelAt = Date.now();
    const cancel = await app.inject({ method: 'DELETE', url: `/v1/jobs/${running.id}` });
    expect(cancel.statusCode).toBe(200);
    const cancelled = await waitForState(app, running.id, ['cancelled', 'succeeded', 'failed'], 5_000);
    expect(cancelled.state).toBe('cancelled');
    expect(Date.now() - cancelAt).toBeLessThan(2_000);
    const result = await app.inject({ method: 'GET', url: `/v1/jobs/${running.id}/result` });
    expect(result.statusCode).toBe(409);
    expect(result.json().error.code).toBe('TW_JOB_CANCELLED');

    // The single worker is free again: a short job finishes long before the cancelled one would have.
    const next = (
      await app.inject({
        method: 'POST',
        url: '/v1/jobs',
        payload: { operation: 'test.busy', input: { ms: 50 } },
      })
    ).json();
    const nextDone = await waitForState(app, next.id, ['succeeded', 'failed'], 10_000);
    expect(nextDone.state).toBe('succeeded');
    expect(Date.now() - cancelAt).toBeLessThan(10_000);
  });

  it('bounds the queue (503 + Retry-After) and cancels queued jobs without running them', async () => {
    const submit = (ms: number) =>
      app.inject({ method: 'POST', url: '/v1/jobs', payload: { operation: 'test.busy', input: { ms } } });
    const first = (await submit(20_000)).json();
    await waitForState(app, first.id, ['running']);
    const queued = [(await submit(10)).json(), (await submit(10)).json()];
    expect(queued.map((j) => j.state)).toEqual(['queued', 'queued']);
    const refused = await submit(10);
    expect(refused.statusCode).toBe(503);
    expect(refused.json().error.code).toBe('TW_QUEUE_FULL');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);

    const notYet = await app.inject({ method: 'GET', url: `/v1/jobs/${queued[0].id}/result` });
    expect(notYet.statusCode).toBe(409);
    expect(notYet.json().error.details.state).toBe('queued');

    const c0 = (await app.inject({ method: 'DELETE', url: `/v1/jobs/${queued[0].id}` })).json();
    expect(c0.state).toBe('cancelled');
    expect(c0.startedAt).toBeNull();
    // A place in the queue is free again.
    expect((await submit(10)).statusCode).toBe(202);
    await app.inject({ method: 'DELETE', url: `/v1/jobs/${first.id}` });
    const second = await waitForState(app, queued[1].id, ['succeeded', 'failed']);
    expect(second.state).toBe('succeeded');
  });

  it('returns the same job for a repeated Idempotency-Key and refuses the key with another body', async () => {
    const send = (key: string | undefined, input: unknown) =>
      app.inject({
        method: 'POST',
        url: '/v1/ot/plan',
        headers: key ? { 'idempotency-key': key } : {},
        payload: { ...(input as object), async: true },
      });
    const a = await send('order-42', smallPlan);
    // Same body with keys in another order: still the same request.
    const reordered = { solver: smallPlan.solver, y: smallPlan.y, x: smallPlan.x };
    const b = await send('order-42', reordered);
    expect(a.statusCode).toBe(202);
    expect(b.statusCode).toBe(202);
    expect(b.json().id).toBe(a.json().id);
    expect(b.headers['idempotent-replayed']).toBe('true');
    const other = await send('order-42', { ...smallPlan, solver: { solver: 'sinkhorn', reg: 1 } });
    expect(other.statusCode).toBe(409);
    expect(other.json().error.code).toBe('TW_CONFLICT');
    const noKey = await send(undefined, smallPlan);
    expect(noKey.statusCode).toBe(202);
    expect(noKey.json().id).not.toBe(a.json().id);
    // Leave the queue empty for the next test.
    for (const id of [a.json().id, noKey.json().id]) await waitForState(app, id, ['succeeded', 'failed']);
  });

  it('records failures with their code, and forgets finished jobs after the TTL (404 TW_JOB_NOT_FOUND)', async () => {
    const failing = (
      await app.inject({
        method: 'POST',
        url: '/v1/jobs',
        payload: { operation: 'ot.plan', input: { ...smallPlan, a: [1, 1, 1, 1], b: [2, 2, 2, 2] } },
      })
    ).json();
    const failed = await waitForState(app, failing.id, ['failed', 'succeeded']);
    expect(failed.state).toBe('failed');
    expect(failed.error.code).toBe('TW_UNBALANCED_MARGINALS');
    const result = await app.inject({ method: 'GET', url: `/v1/jobs/${failing.id}/result` });
    expect(result.statusCode).toBe(422);
    expect(result.json().error.code).toBe('TW_UNBALANCED_MARGINALS');

    expect(Date.parse(failed.expiresAt) - Date.parse(failed.finishedAt)).toBe(1500);
    await new Promise((r) => setTimeout(r, Date.parse(failed.expiresAt) - Date.now() + 50));
    for (const url of [`/v1/jobs/${failing.id}`, `/v1/jobs/${failing.id}/result`, '/v1/jobs/no-such-job']) {
      const gone = await app.inject({ method: 'GET', url });
      expect(gone.statusCode).toBe(404);
      expect(gone.json().error.code).toBe('TW_JOB_NOT_FOUND');
    }
    expect((await app.inject({ method: 'DELETE', url: `/v1/jobs/${failing.id}` })).statusCode).toBe(404);
  });

  it('has GraphQL submitJob, job, cancelJob and a jobProgress subscription', async () => {
    const gql = async (query: string, variables: Record<string, unknown> = {}) =>
      (await app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } })).json();
    const submitted = await gql(
      'mutation($input: JSON!) { submitJob(operation: "ot.plan", input: $input, idempotencyKey: "g-1") { id state operation } }',
      { input: smallPlan },
    );
    const id = submitted.data.submitJob.id;
    expect(submitted.data.submitJob.operation).toBe('ot.plan');
    await waitForState(app, id, ['succeeded']);
    const read = await gql('query($id: ID!) { job(id: $id) { state progress { fraction } result } }', { id });
    expect(read.data.job.state).toBe('SUCCEEDED');
    expect(read.data.job.result.cost).toBeGreaterThan(0);
    expect((await gql('{ job(id: "nope") { id } }')).data.job).toBeNull();
    const bad = await gql('mutation { submitJob(operation: "ot.plan", input: {x: 1}) { id } }');
    expect(bad.errors[0].extensions.code).toBe('TW_VALIDATION');
    const missing = await gql('mutation { cancelJob(id: "nope") { id } }');
    expect(missing.errors[0].extensions.code).toBe('TW_JOB_NOT_FOUND');

    // The subscription, over a real WebSocket: progress updates while running, then the cancelled state.
    const busy = (
      await app.inject({
        method: 'POST',
        url: '/v1/jobs',
        payload: { operation: 'test.busy', input: { ms: 20_000 } },
      })
    ).json();
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws');
    const events: { state: string; progress: { fraction: number } }[] = [];
    let completed = false;
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(String(data));
      if (msg.type === 'connection_ack') {
        ws.send(
          JSON.stringify({
            id: '1',
            type: 'subscribe',
            payload: {
              query:
                'subscription($id: ID!) { jobProgress(id: $id) { state progress { fraction message } } }',
              variables: { id: busy.id },
            },
          }),
        );
      } else if (msg.type === 'next') events.push(msg.payload.data.jobProgress);
      else if (msg.type === 'complete') completed = true;
    });
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'connection_init' }));
    await waitFor(
      () => events.filter((e) => e.state === 'RUNNING' && e.progress.fraction > 0).length >= 2,
      10_000,
    );
    const cancelled = await gql('mutation($id: ID!) { cancelJob(id: $id) { id } }', { id: busy.id });
    expect(cancelled.data.cancelJob.id).toBe(busy.id);
    await waitFor(() => completed, 10_000);
    ws.close();
    expect(events.at(-1)?.state).toBe('CANCELLED');
    const fractions = events.filter((e) => e.state === 'RUNNING').map((e) => e.progress.fraction);
    expect(fractions.length).toBeGreaterThan(1);
    expect([...fractions].sort((a, b) => a - b)).toEqual(fractions);
  });
});

describe('memory backend, unit', () => {
  const runtime = { pool: null as never, config: testConfig({ ENABLE_TEST_TASKS: true }) };

  it('keeps bytes as bytes and serves a result in the operation’s own format', async () => {
    const backend = new MemoryJobBackend(runtime, {
      queueMax: 4,
      concurrency: 1,
      ttlMs: 60_000,
      timeoutMs: 5_000,
    });
    const { view } = await backend.submit('test.bytes', { bytes: Buffer.from([1, 2, 3, 250]), label: 'raw' });
    await waitFor(async () => (await backend.get(view.id))?.state === 'succeeded', 5_000, 5);
    const { result } = (await backend.result(view.id)) as { result: { reversed: Buffer; label: string } };
    expect(Buffer.isBuffer(result.reversed)).toBe(true);
    expect([...result.reversed]).toEqual([250, 3, 2, 1]);
    await backend.close();
  });

  it('expires finished jobs by its clock, and frees their idempotency keys', async () => {
    let now = 1_000_000;
    const backend = new MemoryJobBackend(runtime, {
      queueMax: 4,
      concurrency: 1,
      ttlMs: 10_000,
      timeoutMs: 5_000,
      now: () => now,
    });
    const input = { bytes: Buffer.from([7]), label: 'k' };
    const first = await backend.submit('test.bytes', input, { idempotencyKey: 'k1' });
    await waitFor(async () => (await backend.get(first.view.id))?.state === 'succeeded', 5_000, 5);
    now += 9_999;
    const again = await backend.submit('test.bytes', input, { idempotencyKey: 'k1' });
    expect(again).toMatchObject({ replayed: true, view: { id: first.view.id } });
    now += 1;
    expect(await backend.get(first.view.id)).toBeNull();
    const fresh = await backend.submit('test.bytes', input, { idempotencyKey: 'k1' });
    expect(fresh.replayed).toBe(false);
    expect(fresh.view.id).not.toBe(first.view.id);
    await backend.close();
  });

  describe('transient failures', () => {
    const make = (retryDelayMs = 5) =>
      new MemoryJobBackend(runtime, {
        queueMax: 4,
        concurrency: 1,
        ttlMs: 60_000,
        timeoutMs: 5_000,
        transientRetries: 2,
        retryDelayMs,
      });
    const settled = async (backend: MemoryJobBackend, id: string) => {
      await waitFor(
        async () => ['succeeded', 'failed'].includes((await backend.get(id))?.state ?? ''),
        5_000,
        5,
      );
      return backend.result(id);
    };

    it('runs a job again after TW_GPU_MEMORY_BUSY or TW_GPU_DEVICE_LOST, up to JOBS_TRANSIENT_RETRIES times', async () => {
      const backend = make();
      const busy = await backend.submit('test.flaky', {
        key: 'mem-busy',
        failures: 2,
        code: 'GPU_MEMORY_BUSY',
      });
      const done = await settled(backend, busy.view.id);
      expect(done?.view).toMatchObject({ state: 'succeeded', attempts: 3 });
      expect(done?.result).toMatchObject({ calls: 3 });
      const lost = await backend.submit('test.flaky', {
        key: 'mem-lost',
        failures: 3,
        code: 'GPU_DEVICE_LOST',
      });
      const given = await settled(backend, lost.view.id);
      expect(given?.view).toMatchObject({
        state: 'failed',
        attempts: 3,
        error: { code: 'TW_GPU_DEVICE_LOST' },
      });
      await backend.close();
    });

    it('does not run a job again after any other failure', async () => {
      const backend = make();
      const { view } = await backend.submit('test.flaky', {
        key: 'mem-bad',
        failures: 1,
        code: 'VALIDATION',
      });
      const done = await settled(backend, view.id);
      expect(done?.view).toMatchObject({ state: 'failed', attempts: 1, error: { code: 'TW_VALIDATION' } });
      await backend.close();
    });

    it('shows a job waiting to be retried as queued, and cancels it there', async () => {
      const backend = make(60_000);
      const { view } = await backend.submit('test.flaky', {
        key: 'mem-wait',
        failures: 1,
        code: 'MODEL_NOT_READY',
      });
      await waitFor(
        async () => (await backend.get(view.id))?.progress.message.startsWith('retrying') ?? false,
        5_000,
        5,
      );
      expect(await backend.get(view.id)).toMatchObject({ state: 'queued', attempts: 1 });
      expect(backend.countsNow().queued).toBe(1);
      expect(await backend.cancel(view.id)).toMatchObject({ state: 'cancelled' });
      expect(backend.countsNow().queued).toBe(0);
      expect((await backend.close()).lost).toEqual([]);
    });

    it('counts a job waiting to be retried against the queue bound', async () => {
      const backend = new MemoryJobBackend(runtime, {
        queueMax: 1,
        concurrency: 1,
        ttlMs: 60_000,
        timeoutMs: 5_000,
        transientRetries: 2,
        retryDelayMs: 60_000,
      });
      const { view } = await backend.submit('test.flaky', {
        key: 'mem-bound',
        failures: 1,
        code: 'GPU_MEMORY_BUSY',
      });
      await waitFor(
        async () => (await backend.get(view.id))?.progress.message.startsWith('retrying') ?? false,
        5_000,
        5,
      );
      await expect(
        backend.submit('test.flaky', { key: 'mem-bound-2', failures: 0, code: 'GPU_MEMORY_BUSY' }),
      ).rejects.toMatchObject({ code: 'TW_QUEUE_FULL' });
      await backend.close();
    });

    it('counts a job waiting to be retried as lost when the backend closes', async () => {
      const backend = make(60_000);
      const { view } = await backend.submit('test.flaky', {
        key: 'mem-close',
        failures: 1,
        code: 'GPU_MEMORY_BUSY',
      });
      await waitFor(
        async () => (await backend.get(view.id))?.progress.message.startsWith('retrying') ?? false,
        5_000,
        5,
      );
      expect((await backend.close()).lost).toEqual([view.id]);
      expect(await backend.get(view.id)).toMatchObject({
        state: 'cancelled',
        error: { code: 'TW_SHUTTING_DOWN' },
      });
    });
  });
});
