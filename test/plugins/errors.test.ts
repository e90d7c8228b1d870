import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp } from '../helpers.js';

describe('error responses', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    app = await makeApp({ BODY_LIMIT_BYTES: 2048, QUEUE_MAX: 1, REQUEST_TIMEOUT_MS: 5000 });
    // Model warm-ups go through the same pool: let them finish so the queue holds only this test's tasks.
    await app.models.settled;
  });
  afterAll(async () => {
    await app.close();
  });

  function expectShape(body: any, code: string) {
    expect(body.error.code).toBe(code);
    expect(typeof body.error.message).toBe('string');
    expect(typeof body.error.requestId).toBe('string');
  }

  it('404 for an unknown route', async () => {
    const res = await app.inject({ method: 'GET', url: '/nope' });
    expect(res.statusCode).toBe(404);
    expectShape(res.json(), 'TW_ROUTE_NOT_FOUND');
  });

  it('400 for bad JSON', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/_test/busy',
      headers: { 'content-type': 'application/json' },
      payload: '{"ms": 1,',
    });
    expect(res.statusCode).toBe(400);
    expectShape(res.json(), 'TW_BAD_JSON');
  });

  it('400 for a schema violation, with the zod issue path', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/_test/busy', payload: { ms: 'soon' } });
    expect(res.statusCode).toBe(400);
    const body = res.json();
    expectShape(body, 'TW_VALIDATION');
    expect(body.error.details.some((d: { path: string }) => d.path.includes('ms'))).toBe(true);
  });

  it('413 for a body over the limit', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/_test/busy',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ ms: 1, pad: 'x'.repeat(4096) }),
    });
    expect(res.statusCode).toBe(413);
    expectShape(res.json(), 'TW_BODY_TOO_LARGE');
  });

  it('415 for a content type nobody parses', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/_test/busy',
      headers: { 'content-type': 'application/x-unknown' },
      payload: 'hello',
    });
    expect(res.statusCode).toBe(415);
    expectShape(res.json(), 'TW_UNSUPPORTED_MEDIA_TYPE');
  });

  it('coded errors thrown in a worker keep their code and status', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/_test/fail',
      payload: { code: 'TW_UNPROCESSABLE', message: 'nothing to do' },
    });
    expect(res.statusCode).toBe(422);
    expectShape(res.json(), 'TW_UNPROCESSABLE');
    expect(res.json().error.message).toBe('nothing to do');
  });

  it('504 when the deadline passes, and the worker is freed', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/_test/busy',
      payload: { ms: 5000, timeoutMs: 300 },
    });
    expect(res.statusCode).toBe(504);
    expectShape(res.json(), 'TW_DEADLINE_EXCEEDED');
    const after = await app.inject({ method: 'POST', url: '/v1/_test/busy', payload: { ms: 10 } });
    expect(after.statusCode).toBe(200);
  });

  it('500 with a coded error when a worker crashes; the pool replaces it and keeps serving', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/_test/crash', payload: { mode: 'exit' } });
    expect(res.statusCode).toBe(500);
    const body = res.json();
    expectShape(body, 'TW_WORKER_CRASHED');
    expect(JSON.stringify(body)).not.toMatch(/at .*\.ts:\d+|stack/i);
    const after = await app.inject({ method: 'POST', url: '/v1/_test/busy', payload: { ms: 10 } });
    expect(after.statusCode).toBe(200);
    expect(app.compute.pool.stats().workers).toBe(1);
  });

  it('503 + Retry-After when the queue is full; nothing hangs', async () => {
    // One worker busy, one task queued (QUEUE_MAX = 1): the third is refused at once.
    const first = app.inject({ method: 'POST', url: '/v1/_test/busy', payload: { ms: 800 } });
    await new Promise((r) => setTimeout(r, 100));
    const second = app.inject({ method: 'POST', url: '/v1/_test/busy', payload: { ms: 10 } });
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    const third = await app.inject({ method: 'POST', url: '/v1/_test/busy', payload: { ms: 10 } });
    expect(Date.now() - t0).toBeLessThan(500);
    expect(third.statusCode).toBe(503);
    expect(third.headers['retry-after']).toBe('1');
    expectShape(third.json(), 'TW_QUEUE_FULL');
    expect((await first).statusCode).toBe(200);
    expect((await second).statusCode).toBe(200);
  });
});
