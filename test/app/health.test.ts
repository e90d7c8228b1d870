import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp, waitFor } from '../helpers.js';

describe('health and readiness', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    app = await makeApp();
  });
  afterAll(async () => {
    await app.close();
  });

  it('is alive at once and not ready while the pool starts and the required model loads', async () => {
    const live = await app.inject({ method: 'GET', url: '/livez' });
    expect(live.statusCode).toBe(200);
    expect(live.json().status).toBe('alive');
    expect(live.headers['x-request-id']).toBeTruthy();

    // Right after start the required tiny model is still loading: readiness must say so.
    const early = await app.inject({ method: 'GET', url: '/readyz' });
    if (early.statusCode === 503) {
      expect(early.headers['retry-after']).toBeDefined();
      expect(early.json().ready).toBe(false);
      expect(early.json().reasons.length).toBeGreaterThan(0);
    }
    await waitFor(
      async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200,
      60_000,
      100,
    );
    const ready = (await app.inject({ method: 'GET', url: '/readyz' })).json();
    expect(ready.ready).toBe(true);
    expect(ready.backend).toBe('wasm');
    expect(ready.compute.workers).toBe(1);
    const blur = ready.models.find((m: { name: string }) => m.name === 'gaussian-blur');
    expect(blur).toMatchObject({ state: 'ready', required: true });
  });

  it('echoes a sane x-request-id and replaces an unsafe one', async () => {
    const ok = await app.inject({ method: 'GET', url: '/livez', headers: { 'x-request-id': 'abc-123' } });
    expect(ok.headers['x-request-id']).toBe('abc-123');
    const bad = await app.inject({ method: 'GET', url: '/livez', headers: { 'x-request-id': 'a b\u0000c' } });
    expect(bad.headers['x-request-id']).not.toBe('a b\u0000c');
  });

  it('lists models with their state and backend', async () => {
    await app.models.settled;
    const res = await app.inject({ method: 'GET', url: '/v1/models' });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.backend).toBe('wasm');
    expect(
      body.models.some(
        (m: { name: string; state: string }) => m.name === 'gaussian-blur' && m.state === 'ready',
      ),
    ).toBe(true);
    const one = await app.inject({ method: 'GET', url: '/v1/models/gaussian-blur' });
    expect(one.statusCode).toBe(200);
    expect(one.json().manifest.required).toBe(true);
    const missing = await app.inject({ method: 'GET', url: '/v1/models/no-such-model' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('TW_MODEL_NOT_FOUND');
    const traversal = await app.inject({ method: 'GET', url: '/v1/models/..%2F..%2Fetc' });
    expect(traversal.statusCode).toBe(400);
    expect(traversal.json().error.code).toBe('TW_VALIDATION');
  });

  it('turns not ready as soon as shutdown starts', async () => {
    await waitFor(
      async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200,
      60_000,
      100,
    );
    app.lifecycle.beginShutdown();
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json().status).toBe('shutting_down');
    // Liveness is unaffected: the process is still alive while it drains.
    expect((await app.inject({ method: 'GET', url: '/livez' })).statusCode).toBe(200);
  });
});
