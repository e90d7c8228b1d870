/**
 * With the redis jobs backend and Redis unreachable, the service stays ready for synchronous work: /readyz is 200
 * with status `degraded` naming Redis (GraphQL `health` too), job routes answer 503 TW_NOT_READY, a synchronous
 * route answers 200. (test/faults/redis-restart.test.ts drills a real outage and recovery.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../faults/helpers.js';
import { makeApp } from '../helpers.js';

describe('Redis unreachable: degraded, not unready', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    // A port nobody listens on.
    app = await makeApp({ JOBS_BACKEND: 'redis', REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    await app.models.settled;
  });
  afterAll(async () => {
    await app.close();
  });

  it('answers /readyz 200 with status degraded and the cause', async () => {
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ status: 'degraded', ready: true, reasons: [] });
    expect(body.degraded.join(' ')).toMatch(/Redis/);
    expect(body.jobs).toMatchObject({ backend: 'redis', ready: false });
    const gql = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: { query: '{ health { status ready degraded } }' },
    });
    expect(gql.json().data.health).toMatchObject({ status: 'degraded', ready: true });
    expect(gql.json().data.health.degraded.join(' ')).toMatch(/Redis/);
  });

  it('refuses job routes with 503 TW_NOT_READY and serves synchronous routes', async () => {
    const C = [
      [0, 1],
      [1, 0],
    ];
    const job = await app.inject({
      method: 'POST',
      url: '/v1/ot/plan',
      payload: { C, solver: { solver: 'emd' }, async: true },
    });
    expect(job.statusCode, job.body).toBe(503);
    expect(job.json().error.code).toBe('TW_NOT_READY');
    expect(job.headers['retry-after']).toBeDefined();
    const sync = await app.inject({
      method: 'POST',
      url: '/v1/ot/plan',
      payload: { C, solver: { solver: 'emd' } },
    });
    expect(sync.statusCode, sync.body).toBe(200);
  });
});
