/**
 * GraphQL guards: the selection limit (aliases and fragments expanded) refuses before anything runs, the depth
 * limit still holds, introspection follows its switch, and CSRF prevention refuses simple cross-site requests.
 */
import type { FastifyInstance } from 'fastify';
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countSelections } from '../../src/plugins/external/graphql.js';
import { makeApp } from '../helpers.js';

const aliases = (n: number, field = '__typename') =>
  Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join(' ');

describe('countSelections', () => {
  it('counts fields, aliases, nested fields and inline fragments', () => {
    expect(countSelections(parse('{ health { ready workers } }')).get('')).toBe(3);
    expect(countSelections(parse(`query Q { ${aliases(7)} }`)).get('Q')).toBe(7);
    expect(countSelections(parse('{ ... on Query { models { name } } }')).get('')).toBe(2);
  });

  it('expands fragment spreads wherever they are spread, so doubling chains cannot hide', () => {
    // F0 has 2 fields; each Fk spreads F(k-1) twice: F10 stands for 2 * 2^10 fields in 11 short lines.
    const defs = ['fragment F0 on Query { a: __typename b: __typename }'];
    for (let k = 1; k <= 10; k++) defs.push(`fragment F${k} on Query { ...F${k - 1} ...F${k - 1} }`);
    const doc = parse(`query Bomb { ...F10 } ${defs.join(' ')}`);
    expect(countSelections(doc).get('Bomb')).toBe(2 * 2 ** 10);
  });

  it('survives fragment cycles (graphql-js reports them separately)', () => {
    const doc = parse(
      'query C { ...A } fragment A on Query { x: __typename ...B } fragment B on Query { ...A }',
    );
    expect(countSelections(doc).get('C')).toBe(1);
  });
});

describe('GraphQL limits in the app', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await makeApp({
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
      RATE_LIMIT_MAX: 0,
      GRAPHQL_MAX_SELECTIONS: 10,
      GRAPHQL_INTROSPECTION: false,
    });
  }, 60_000);
  afterAll(async () => app?.close());

  const post = (query: string, variables?: Record<string, unknown>) =>
    app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } });

  it('runs a query within the limit', async () => {
    const res = await post(`{ ${aliases(10)} }`);
    expect(res.statusCode).toBe(200);
    expect(res.json().data.a9).toBe('Query');
  });

  it('refuses a query selecting too many fields with 400 and extensions.code, before any resolver runs', async () => {
    const res = await post(`{ ${aliases(11)} }`);
    expect(res.statusCode).toBe(400);
    const err = res.json().errors[0];
    expect(err.extensions.code).toBe('TW_GRAPHQL_TOO_COMPLEX');
    expect(err.message).toMatch(/11 fields; at most 10/);

    // Mutations that would queue jobs: refused as a whole, so none was queued.
    const input = { x: [[0]], y: [[1]], solver: { solver: 'emd' } };
    const submits = Array.from(
      { length: 3 },
      (_, i) => `s${i}: submitJob(operation: "ot.plan", input: $input) { id state operation attempts }`,
    ).join(' ');
    const before = await app.jobs.backend.counts();
    const refused = await post(`mutation($input: JSON!) { ${submits} }`, { input });
    expect(refused.statusCode, refused.body).toBe(400);
    expect(refused.json().errors[0].extensions.code).toBe('TW_GRAPHQL_TOO_COMPLEX');
    const after = await app.jobs.backend.counts();
    expect(after.queued + after.running).toBe(before.queued + before.running);
    // The same mutations within the limit do run (so the refusal above was the guard, not a bad query).
    const one = await post(
      `mutation($input: JSON!) { s: submitJob(operation: "ot.plan", input: $input) { id } }`,
      {
        input,
      },
    );
    expect(one.statusCode, one.body).toBe(200);
    expect(typeof one.json().data.s.id).toBe('string');
  });

  it('refuses a fragment bomb', async () => {
    const defs = ['fragment F0 on Query { a: __typename b: __typename }'];
    for (let k = 1; k <= 12; k++) defs.push(`fragment F${k} on Query { ...F${k - 1} ...F${k - 1} }`);
    const res = await post(`query Bomb { ...F12 } ${defs.join(' ')}`);
    expect(res.statusCode).toBe(400);
    expect(res.json().errors.map((e: { extensions: { code: string } }) => e.extensions.code)).toContain(
      'TW_GRAPHQL_TOO_COMPLEX',
    );
  });

  it('refuses introspection when GRAPHQL_INTROSPECTION=false', async () => {
    const res = await post('{ __type(name: "Health") { name } }');
    expect(res.statusCode).toBe(400);
    expect(res.json().errors[0].message).toMatch(/introspection/i);
    expect(res.json().errors[0].extensions.code).toBe('TW_GRAPHQL_VALIDATION');
  });

  it('refuses simple (CSRF-able) GET requests, and serves them with a preflight-forcing header', async () => {
    const url = `/graphql?query=${encodeURIComponent('{ health { ready } }')}`;
    const simple = await app.inject({ method: 'GET', url });
    expect(simple.statusCode).toBe(400);
    expect(JSON.stringify(simple.json())).toMatch(/Cross-Site Request Forgery/);
    const withHeader = await app.inject({
      method: 'GET',
      url,
      headers: { 'mercurius-require-preflight': '1' },
    });
    expect(withHeader.statusCode).toBe(200);
    expect(typeof withHeader.json().data.health.ready).toBe('boolean');
  });
});

describe('GraphQL defaults', () => {
  it('allows introspection and keeps the depth limit', async () => {
    const app = await makeApp({
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
      RATE_LIMIT_MAX: 0,
      GRAPHQL_DEPTH_LIMIT: 2,
    });
    try {
      const intro = await app.inject({
        method: 'POST',
        url: '/graphql',
        payload: { query: '{ __type(name: "Health") { name } }' },
      });
      expect(intro.statusCode, intro.body).toBe(200);
      expect(intro.json().data.__type.name).toBe('Health');
      const shallow = await app.inject({
        method: 'POST',
        url: '/graphql',
        payload: { query: '{ health { ready } }' },
      });
      expect(shallow.statusCode).toBe(200);
      const deep = await app.inject({
        method: 'POST',
        url: '/graphql',
        payload: { query: '{ otPlan(input: { C: [[0]], solver: EMD }) { plan { data } } }' },
      });
      expect(deep.statusCode).toBe(400);
      expect(deep.json().errors[0].extensions.code).toBe('TW_GRAPHQL_VALIDATION');
      expect(deep.json().errors[0].message).toMatch(/depth/i);
    } finally {
      await app.close();
    }
  }, 30_000);
});
