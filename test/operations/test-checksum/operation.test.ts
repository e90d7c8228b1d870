/**
 * The operation spec gives an operation REST, GraphQL and a job from its folder and two registration lines: the
 * test operation `test.checksum` (src/operations/test-checksum) is reached all three ways with the same answer and
 * the same check before anything is queued, and exists only with ENABLE_TEST_TASKS.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobResult, makeApp } from '../../helpers.js';

describe('a fifth operation from its spec alone', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    app = await makeApp();
  });
  afterAll(async () => {
    await app?.close();
  });

  const values = [1.5, 2, -0.25, 40];
  const sum = values.reduce((a, b) => a + b, 0);

  it('answers over REST, GraphQL and as a job with the same sum, computed in a worker', async () => {
    const rest = await app.inject({ method: 'POST', url: '/v1/_test/checksum', payload: { values } });
    expect(rest.statusCode, rest.body).toBe(200);
    expect(rest.json()).toMatchObject({ count: 4, sum });
    // Computed in a worker thread, not on the main thread (whose threadId is 0).
    expect(rest.json().worker).toBeGreaterThan(0);

    const gql = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query: 'query($v: [Float!]!) { testChecksum(input: { values: $v }) { count sum } }',
        variables: { v: values },
      },
    });
    expect(gql.statusCode, gql.body).toBe(200);
    expect(gql.json().data.testChecksum).toEqual({ count: 4, sum });

    // As a job three ways: the async flag, Prefer: respond-async, and POST /v1/jobs with the operation's id.
    const flagged = await app.inject({
      method: 'POST',
      url: '/v1/_test/checksum',
      payload: { values, async: true },
    });
    expect((await jobResult(app, flagged)).json()).toMatchObject({ count: 4, sum });
    const preferred = await app.inject({
      method: 'POST',
      url: '/v1/_test/checksum',
      headers: { prefer: 'respond-async' },
      payload: { values },
    });
    expect(preferred.headers['preference-applied']).toBe('respond-async');
    expect((await jobResult(app, preferred)).json()).toMatchObject({ count: 4, sum });
    const submitted = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      payload: { operation: 'test.checksum', input: { values } },
    });
    expect((await jobResult(app, submitted)).json()).toMatchObject({ count: 4, sum });
    const ops = (await app.inject({ method: 'GET', url: '/v1/jobs/operations' })).json().operations;
    expect(ops).toContain('test.checksum');
  });

  it("runs the spec's check before anything is queued, on every path", async () => {
    const tooMany = Array.from({ length: 1001 }, (_, i) => i);
    const sync = await app.inject({
      method: 'POST',
      url: '/v1/_test/checksum',
      payload: { values: tooMany },
    });
    const asJob = await app.inject({
      method: 'POST',
      url: '/v1/_test/checksum',
      payload: { values: tooMany, async: 'true' },
    });
    const viaJobs = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      payload: { operation: 'test.checksum', input: { values: tooMany } },
    });
    for (const res of [sync, asJob, viaJobs]) {
      expect(res.statusCode, res.body).toBe(413);
      expect(res.json().error.code).toBe('TW_PROBLEM_TOO_LARGE');
    }
    const gql = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query: 'query($v: [Float!]!) { testChecksum(input: { values: $v }) { sum } }',
        variables: { v: tooMany },
      },
    });
    expect(gql.json().errors[0].extensions.code).toBe('TW_PROBLEM_TOO_LARGE');
  });

  it('refuses an async flag that is neither a boolean nor "true"/"false" (400), one rule for every route', async () => {
    const bad = await app.inject({
      method: 'POST',
      url: '/v1/_test/checksum',
      payload: { values, async: 'yes' },
    });
    expect(bad.statusCode, bad.body).toBe(400);
    expect(bad.json().error.code).toBe('TW_VALIDATION');
  });

  it('does not exist without ENABLE_TEST_TASKS (REST, GraphQL, jobs)', async () => {
    const prod = await makeApp({ ENABLE_TEST_TASKS: false });
    try {
      const rest = await prod.inject({ method: 'POST', url: '/v1/_test/checksum', payload: { values } });
      expect(rest.statusCode).toBe(404);
      const gql = await prod.inject({
        method: 'POST',
        url: '/graphql',
        payload: { query: '{ testChecksum(input: { values: [1] }) { sum } }' },
      });
      expect(gql.json().errors[0].message).toMatch(/testChecksum/);
      const job = await prod.inject({
        method: 'POST',
        url: '/v1/jobs',
        payload: { operation: 'test.checksum', input: { values } },
      });
      expect(job.statusCode).toBe(400);
    } finally {
      await prod.close();
    }
  });
});
