/**
 * The error contract clients see: RFC 9457 problem details when the Accept header prefers them (our shape
 * otherwise), 405 with Allow for a known path asked with the wrong method, and GraphQL operations that failed as
 * a whole answering the HTTP status of their error (503, 504, 413, 429) as REST does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prefersProblem } from '../../src/plugins/app/errors.js';
import { makeApp, waitFor } from '../helpers.js';

describe('error contract', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    app = await makeApp({ OT_MAX_DIM: 4, JOBS_MAX_PER_KEY: 1, JOBS_QUEUE_MAX: 4 });
    await app.models.settled;
  });
  afterAll(async () => {
    await app.close();
  });

  it.each([
    ['application/problem+json', true],
    ['application/problem+json, application/json', true],
    ['application/json;q=0.9, application/problem+json', true],
    ['application/json, application/problem+json;q=0.5', false],
    ['application/problem+json;q=0', false],
    ['application/json', false],
    ['*/*', false],
    ['', false],
  ])('Accept %j prefers problem details: %s', (accept, expected) => {
    expect(prefersProblem(accept)).toBe(expected);
  });

  it('answers RFC 9457 problem details when Accept prefers them', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/_test/busy?x=1',
      headers: { accept: 'application/problem+json', 'x-request-id': 'req-problem-1' },
      payload: { ms: 'soon' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    const body = res.json();
    expect(body).toMatchObject({
      type: 'urn:tweedie:error:TW_VALIDATION',
      title: 'The request is not valid',
      status: 400,
      instance: '/v1/_test/busy',
      code: 'TW_VALIDATION',
      requestId: 'req-problem-1',
    });
    expect(body.detail).toMatch(/body/);
    expect(body.details.some((d: { path: string }) => d.path.includes('ms'))).toBe(true);
    expect(body.error).toBeUndefined();
  });

  it('problem details for 404 and for a coded 5xx keep the generic message', async () => {
    const notFound = await app.inject({ url: '/nope', headers: { accept: 'application/problem+json' } });
    expect(notFound.statusCode).toBe(404);
    expect(notFound.json()).toMatchObject({ status: 404, code: 'TW_ROUTE_NOT_FOUND', instance: '/nope' });
    const crash = await app.inject({
      method: 'POST',
      url: '/v1/_test/crash',
      headers: { accept: 'application/problem+json' },
      payload: { mode: 'exit' },
    });
    expect(crash.statusCode).toBe(500);
    expect(crash.json()).toMatchObject({ status: 500, code: 'TW_WORKER_CRASHED' });
    expect(crash.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(JSON.stringify(crash.json())).not.toMatch(/at .*\.ts:\d+|stack/i);
  });

  it('keeps the { error } shape for application/json, */* and no Accept', async () => {
    for (const accept of ['application/json', '*/*', undefined]) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/_test/busy',
        headers: accept ? { accept } : {},
        payload: { ms: 'soon' },
      });
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(res.json().error.code).toBe('TW_VALIDATION');
    }
  });

  it('405 with Allow for a known path and a method it does not serve', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/ot/plan' });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe('POST');
    expect(res.json().error).toMatchObject({ code: 'TW_METHOD_NOT_ALLOWED', details: { allow: ['POST'] } });
    const del = await app.inject({ method: 'DELETE', url: '/v1/models' });
    expect(del.statusCode).toBe(405);
    expect(del.headers.allow).toBe('GET, HEAD');
    // A path parameter matches as the router matches it.
    const job = await app.inject({ method: 'PUT', url: '/v1/jobs/00000000-0000-0000-0000-000000000000' });
    expect(job.statusCode).toBe(405);
    expect(job.headers.allow).toContain('DELETE');
    // An unknown path stays 404, whatever the method.
    const unknown = await app.inject({ method: 'DELETE', url: '/v1/nope' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('TW_ROUTE_NOT_FOUND');
  });

  const gql = (query: string, variables?: Record<string, unknown>) =>
    app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } });

  it('GraphQL: a problem over the limits answers 413, as REST does', async () => {
    const points = { x: [[0, 0, 0, 0, 0]], y: [[1, 1, 1, 1, 1]] };
    const rest = await app.inject({
      method: 'POST',
      url: '/v1/ot/plan',
      payload: { ...points, solver: { solver: 'emd' } },
    });
    expect(rest.statusCode).toBe(413);
    const res = await gql('query($i: OtInput!) { otPlan(input: $i) { cost } }', {
      i: { ...points, solver: 'EMD' },
    });
    expect(res.statusCode, res.body).toBe(413);
    expect(res.json().errors[0].extensions.code).toBe(rest.json().error.code);
  });

  it('GraphQL: over the job quota answers 429 with Retry-After', async () => {
    const first = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      payload: { operation: 'test.busy', input: { ms: 3_000 } },
    });
    expect(first.statusCode).toBe(202);
    const res = await gql('mutation { submitJob(operation: "test.busy", input: { ms: 10 }) { id } }');
    expect(res.statusCode, res.body).toBe(429);
    expect(res.json().errors[0].extensions.code).toBe('TW_JOB_QUOTA');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    await app.inject({ method: 'DELETE', url: `/v1/jobs/${first.json().id}` });
    await waitFor(async () => {
      const view = await app.inject({ url: `/v1/jobs/${first.json().id}` });
      return view.json().state === 'cancelled';
    });
  });
});
