import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp } from '../helpers.js';

describe('graphql', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    app = await makeApp({ GRAPHQL_DEPTH_LIMIT: 3 });
    await app.models.settled;
  });
  afterAll(async () => {
    await app.close();
  });

  const gql = (query: string, variables?: object) =>
    app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } });

  it('answers health, models and model(name)', async () => {
    const res = await gql(
      '{ health { ready backend workers } models { name state required } model(name: "gaussian-blur") { name version task manifest } }',
    );
    expect(res.statusCode).toBe(200);
    const data = res.json().data;
    expect(data.health.workers).toBe(1);
    expect(data.models.find((m: { name: string }) => m.name === 'gaussian-blur').state).toBe('ready');
    expect(data.model.name).toBe('gaussian-blur');
    expect(data.model.manifest.required).toBe(true);
  });

  it('returns null for an unknown model', async () => {
    const res = await gql('query($n: String!) { model(name: $n) { name } }', { n: 'nope' });
    expect(res.json().data.model).toBeNull();
  });

  it('refuses a query deeper than the limit, with a code', async () => {
    const res = await gql('{ health { ready } a: models { name } b: model(name: "x") { name } }');
    expect(res.statusCode).toBe(200);
    // Depth is fine above; now a query that nests through a fragment on itself is impossible in this schema,
    // so use the introspection types, which nest deeply.
    const deep = await gql('{ __schema { types { fields { type { ofType { name } } } } } }');
    expect(deep.statusCode).toBe(400);
    const body = deep.json();
    expect(body.errors[0].extensions.code).toBe('TW_GRAPHQL_VALIDATION');
    expect(body.errors[0].message).toMatch(/depth/i);
  });

  it('reports unknown fields as validation errors with a code', async () => {
    const res = await gql('{ nope }');
    expect(res.statusCode).toBe(400);
    expect(res.json().errors[0].extensions.code).toBe('TW_GRAPHQL_VALIDATION');
  });
});

describe('metrics and docs', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    app = await makeApp();
  });
  afterAll(async () => {
    await app.close();
  });

  it('exposes Prometheus text that counts requests', async () => {
    await app.inject({ method: 'GET', url: '/livez' });
    await app.inject({ method: 'GET', url: '/livez' });
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/plain/);
    const lines = res.body.split('\n').filter((l) => l && !l.startsWith('#'));
    // Every sample line is `name{labels} value`.
    for (const l of lines)
      expect(l).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? (-?[0-9.e+-]+|NaN|Nan|[+-]Inf)$/);
    const livez = lines.find(
      (l) => l.startsWith('tweedie_http_requests_total{') && l.includes('route="/livez"'),
    );
    expect(livez).toBeDefined();
    expect(Number(livez!.split(' ').pop())).toBeGreaterThanOrEqual(2);
    for (const name of [
      'tweedie_compute_queue_depth',
      'tweedie_compute_workers',
      'tweedie_model_ready',
      'nodejs_eventloop_lag_seconds',
      'tweedie_http_request_duration_seconds_bucket',
    ]) {
      expect(res.body).toContain(name);
    }
  });

  it('serves the OpenAPI document and Swagger UI', async () => {
    const doc = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(doc.statusCode).toBe(200);
    const spec = doc.json();
    expect(spec.openapi).toMatch(/^3\./);
    expect(spec.paths['/livez']).toBeDefined();
    expect(spec.paths['/v1/models/{name}']).toBeDefined();
    const ui = await app.inject({ method: 'GET', url: '/docs/' });
    expect(ui.statusCode).toBe(200);
    expect(ui.body).toMatch(/swagger/i);
  });
});
