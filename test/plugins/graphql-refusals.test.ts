/**
 * Refusals sent on /graphql before mercurius runs (API key, rate limit) carry the code where a GraphQL client reads
 * it, `errors[].extensions.code` (with the HTTP status), beside our { error } shape; REST answers keep our shape
 * alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp } from '../helpers.js';

const KEY = 'tw_refusals_0123456789abcdef';
const query = { query: '{ __typename }' };

describe('GraphQL refusals before execution', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    app = await makeApp({ API_KEYS: KEY, RATE_LIMIT_MAX: 3, RATE_LIMIT_WINDOW_MS: 60_000 });
  });
  afterAll(async () => {
    await app.close();
  });

  it('401 without a key: errors[0].extensions.code beside error.code; REST without errors', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: query,
      remoteAddress: '10.1.0.1',
    });
    expect(res.statusCode).toBe(401);
    const body = res.json();
    expect(body.error.code).toBe('TW_UNAUTHORIZED');
    expect(body.errors).toEqual([
      { message: body.error.message, extensions: { code: 'TW_UNAUTHORIZED', statusCode: 401 } },
    ]);
    const problem = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: query,
      headers: { accept: 'application/problem+json' },
      remoteAddress: '10.1.0.2',
    });
    expect(problem.json()).toMatchObject({
      code: 'TW_UNAUTHORIZED',
      errors: [{ extensions: { code: 'TW_UNAUTHORIZED' } }],
    });
    const rest = await app.inject({ method: 'GET', url: '/v1/models', remoteAddress: '10.1.0.3' });
    expect(rest.statusCode).toBe(401);
    expect(rest.json().errors).toBeUndefined();
  });

  it('429 over the rate limit: the code and its details in errors[0].extensions', async () => {
    const auth = { authorization: `Bearer ${KEY}` };
    const send = () => app.inject({ method: 'POST', url: '/graphql', payload: query, headers: auth });
    for (let i = 0; i < 3; i++) expect((await send()).statusCode).toBe(200);
    const res = await send();
    expect(res.statusCode).toBe(429);
    const body = res.json();
    expect(body.error.code).toBe('TW_RATE_LIMITED');
    expect(body.errors[0].extensions).toMatchObject({
      code: 'TW_RATE_LIMITED',
      statusCode: 429,
      details: { limit: 3 },
    });
  });
});
