/**
 * GraphQL documents and operations are bounded before they cost anything: the body, the document's bytes and the
 * parser's tokens, what an operation may ask for (compute fields, bulk fields, aliases and fragments expanded), no
 * retained documents, the same checks over WebSocket (and bounded messages), and capacity failures (503, 504)
 * answered as HTTP statuses with the rest cancelled.
 */

import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { FastifyInstance } from 'fastify';
import { buildSchema, type DocumentNode } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { operationComputeFields } from '../../src/operations/graphql.js';
import { OPERATIONS } from '../../src/operations/index.js';
import {
  HEAVY_FIELDS,
  JOB_COMPUTE_FIELDS,
  limitsOf,
  schemaPath,
  selectionCosts,
} from '../../src/plugins/external/graphql.js';
import { makeApp, waitFor, waitForJob } from '../helpers.js';

const WebSocket = createRequire(import.meta.url)('ws');

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const aliases = (n: number, field: string) =>
  Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join(' ');
const planBody = { x: [[0], [1]], y: [[0.5], [1.5]], solver: { solver: 'emd' } };

type Res = { statusCode: number; body: string; json: () => any };
function expectTooComplex(res: Res, limit: string) {
  expect(res.statusCode, res.body).toBe(400);
  const err = res.json().errors[0];
  expect(err.extensions.code).toBe('TW_GRAPHQL_TOO_COMPLEX');
  expect(err.extensions.limit).toBe(limit);
  expect(err.message).toContain(limit);
}

describe('selectionCosts', () => {
  it('counts compute and bulk fields through aliases and fragments, for operations and fragments', async () => {
    const doc = (await import('graphql')).parse(`
      query Q { ...Two o: otPlan(input: $i) { plan { data rows } } }
      fragment Two on Query { a: otPlan(input: $i) { cost } b: job(id: "x") { result } }`);
    const compute = new Set(['otPlan']);
    expect(selectionCosts(doc, compute).get('Q')).toEqual({ selections: 8, compute: 2, heavy: 3 });
    expect(selectionCosts(doc, compute).get('fragment Two')).toEqual({
      selections: 4,
      compute: 1,
      heavy: 1,
    });
  });

  it('names only fields the schema has, on the types they are documented for', () => {
    const { readFileSync } = createRequire(import.meta.url)('node:fs');
    const schema = buildSchema(readFileSync(schemaPath(), 'utf8'));
    const owners = (field: string) =>
      Object.values(schema.getTypeMap())
        .filter((t) => !t.name.startsWith('__') && 'getFields' in t && field in (t as any).getFields())
        .map((t) => t.name)
        .sort();
    // The operations' fields come from their specs (test operations bring their own SDL, and are off here).
    const { computeFields } = limitsOf(
      loadConfig({}),
      operationComputeFields(OPERATIONS, loadConfig({ ENABLE_TEST_TASKS: 'false' })),
    );
    expect([...computeFields].sort()).toEqual(
      ['otPlan', 'otDistance', 'sinkhornDivergence', 'mongeGap', 'denoise', 'restore', 'detectAdversarial']
        .concat(JOB_COMPUTE_FIELDS)
        .sort(),
    );
    for (const f of computeFields) expect(owners(f), f).toEqual([f === 'submitJob' ? 'Mutation' : 'Query']);
    const heavy = Object.fromEntries([...HEAVY_FIELDS].map((f) => [f, owners(f)]));
    expect(heavy).toEqual({
      result: ['Job'],
      data: ['OtPlan'],
      rows: ['OtPlan'],
      cols: ['OtPlan'],
      values: ['OtPlan'],
      image: ['DenoiseInput', 'DenoiseResult', 'RestoreInput', 'RestoreResult'],
      trace: ['RestoreInput', 'RestoreResult'],
    });
  });
});

describe('GraphQL document and operation limits', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await makeApp({
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
      RATE_LIMIT_MAX: 0,
      GRAPHQL_MAX_TOKENS: 1000,
      GRAPHQL_BODY_LIMIT_BYTES: 64 * 1024,
      GRAPHQL_MAX_SELECTIONS: 50,
      GRAPHQL_WS_MAX_MESSAGE_BYTES: 8 * 1024,
      GRAPHQL_MAX_DOCUMENT_BYTES: 16 * 1024,
    });
  }, 60_000);
  afterAll(async () => app?.close());

  const post = (query: string, variables?: Record<string, unknown>) =>
    app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } });

  it('stops parsing at GRAPHQL_MAX_TOKENS with a coded 400', async () => {
    // 400 aliases = 1202 tokens: refused by the parser, whatever the rest of the document holds.
    expectTooComplex(await post(`{ ${aliases(400, '__typename')} }`), 'GRAPHQL_MAX_TOKENS');
    const within = await post(`{ ${aliases(40, '__typename')} }`);
    expect(within.statusCode, within.body).toBe(200);
  });

  it('bounds the /graphql body by GRAPHQL_BODY_LIMIT_BYTES (413), apart from REST bodies', async () => {
    const big = await post('query($pad: String!) { model(name: $pad) { name } }', {
      pad: 'x'.repeat(100_000),
    });
    expect(big.statusCode, big.body).toBe(413);
    expect(big.json().errors[0].extensions.code).toBe('TW_BODY_TOO_LARGE');
    // A REST body of the same size is still read (and refused for what it is, not for its size).
    const rest = await app.inject({
      method: 'POST',
      url: '/v1/ot/plan',
      payload: { ...planBody, pad: 'x'.repeat(100_000) },
    });
    expect(rest.statusCode).not.toBe(413);
  });

  it('bounds the document by GRAPHQL_MAX_DOCUMENT_BYTES (413) before the lexer reads it, not its variables', async () => {
    const name = 'x'.repeat(20_000);
    const inline = await post(`{ model(name: "${name}") { name } }`);
    expect(inline.statusCode, inline.body).toBe(413);
    expect(inline.json().errors[0].extensions.code).toBe('TW_BODY_TOO_LARGE');
    expect(inline.json().errors[0].message).toMatch(/GRAPHQL_MAX_DOCUMENT_BYTES/);
    const asVariable = await post('query($n: String!) { model(name: $n) { name } }', { n: name });
    expect(asVariable.statusCode, asVariable.body).toBe(200);
    expect(asVariable.json().data.model).toBeNull();
  });

  it('keeps no parsed document once the request is answered, valid or not', async () => {
    const seen: WeakRef<DocumentNode>[] = [];
    app.graphql.addHook('preValidation', async (_schema, document) => {
      seen.push(new WeakRef(document));
    });
    expect((await post(`{ ${aliases(20, 'health { ready }')} }`)).statusCode).toBe(200);
    expect((await post(`{ ${aliases(30, 'nope')} }`)).statusCode).toBe(400);
    expect(seen).toHaveLength(2);
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
    expect(seen.map((ref) => ref.deref() === undefined)).toEqual([true, true]);
  });

  it('refuses more than GRAPHQL_MAX_COMPUTE_FIELDS compute fields before any task runs', async () => {
    const completed = app.compute.pool.stats().completed;
    const ot = 'otPlan(input: { C: [[0, 1], [1, 0]], solver: EMD }) { cost }';
    expectTooComplex(await post(`{ ${aliases(5, ot)} }`), 'GRAPHQL_MAX_COMPUTE_FIELDS');
    // Fragments and mutations count too.
    const viaFragment = await post(`{ ...F ...F o: ${ot} } fragment F on Query { a: ${ot} b: ${ot} }`);
    expectTooComplex(viaFragment, 'GRAPHQL_MAX_COMPUTE_FIELDS');
    const jobs = await post(
      `mutation($i: JSON!) { ${aliases(5, 'submitJob(operation: "ot.plan", input: $i) { id }')} }`,
      {
        i: planBody,
      },
    );
    expectTooComplex(jobs, 'GRAPHQL_MAX_COMPUTE_FIELDS');
    // Every operation served over GraphQL counts, derived from its spec: the test operation too.
    const checksum = await post(`{ ${aliases(5, 'testChecksum(input: { values: [1, 2] }) { sum }')} }`);
    expectTooComplex(checksum, 'GRAPHQL_MAX_COMPUTE_FIELDS');
    expect(checksum.json().errors[0].message).toContain('testChecksum');
    expect(app.compute.pool.stats().completed).toBe(completed);
    const four = await post(`{ ${aliases(4, ot)} }`);
    expect(four.statusCode, four.body).toBe(200);
    expect(four.json().data.a3.cost).toBe(0);
  });

  it('refuses more than GRAPHQL_MAX_HEAVY_FIELDS bulk fields: twelve aliases of one job result', async () => {
    const submitted = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      payload: { operation: 'ot.plan', input: planBody },
    });
    const id = submitted.json().id as string;
    expect((await waitForJob(app, `/v1/jobs/${id}`)).state).toBe('succeeded');
    const results = (n: number) => `{ job(id: "${id}") { ${aliases(n, 'result')} } }`;
    expectTooComplex(await post(results(12)), 'GRAPHQL_MAX_HEAVY_FIELDS');
    // Spread over aliases of the parent, or of a plan's arrays, they count the same.
    expectTooComplex(
      await post(`{ ${aliases(9, `job(id: "${id}") { result }`)} }`),
      'GRAPHQL_MAX_HEAVY_FIELDS',
    );
    const eight = await post(results(8));
    expect(eight.statusCode, eight.body).toBe(200);
    expect(eight.json().data.job.a7).toEqual(eight.json().data.job.a0);
  });

  it('validates submitJob idempotency keys as REST does', async () => {
    const submit = (key: string) =>
      post(
        'mutation($i: JSON!, $k: String) { submitJob(operation: "ot.plan", input: $i, idempotencyKey: $k) { id } }',
        {
          i: planBody,
          k: key,
        },
      );
    for (const key of ['k'.repeat(256), 'a\u0000b', '', 'with space']) {
      const res = await submit(key);
      const err = res.json().errors?.[0];
      expect(err?.extensions.code, `${key.slice(0, 20)}: ${res.body.slice(0, 200)}`).toBe('TW_VALIDATION');
      expect(err.message).toMatch(/Idempotency-Key/);
    }
    const first = await submit('retry-1');
    const again = await submit('retry-1');
    expect(first.json().data.submitJob.id).toBe(again.json().data.submitJob.id);
  });

  it('applies the same checks and validation rules to subscriptions over WebSocket', async () => {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws');
    const replies = new Map<string, { type: string; payload?: any }>();
    const subscriptions: Record<string, string> = {
      heavy: `subscription { jobProgress(id: "x") { ${aliases(12, 'result')} } }`,
      selections: `subscription { jobProgress(id: "x") { ${aliases(60, 'id')} } }`,
      tokens: `subscription { jobProgress(id: "x") { ${aliases(400, 'id')} } }`,
      unknown: 'subscription { jobProgress(id: "x") { nope } }',
      twoRoots: 'subscription { a: jobProgress(id: "x") { id } b: jobProgress(id: "y") { id } }',
      fine: 'subscription { jobProgress(id: "x") { id } }',
    };
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(String(data));
      if (msg.type === 'connection_ack') {
        for (const [id, query] of Object.entries(subscriptions))
          ws.send(JSON.stringify({ id, type: 'subscribe', payload: { query } }));
      } else if (msg.id) replies.set(msg.id, msg);
    });
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'connection_init' }));
    await waitFor(() => replies.size === Object.keys(subscriptions).length, 10_000);
    ws.close();
    const codes = Object.fromEntries(
      [...replies].map(([id, m]) => [
        id,
        `${m.type} ${m.payload?.[0]?.extensions?.code} ${m.payload?.[0]?.extensions?.limit ?? ''}`.trim(),
      ]),
    );
    expect(codes).toEqual({
      heavy: 'error TW_GRAPHQL_TOO_COMPLEX GRAPHQL_MAX_HEAVY_FIELDS',
      selections: 'error TW_GRAPHQL_TOO_COMPLEX GRAPHQL_MAX_SELECTIONS',
      tokens: 'error TW_GRAPHQL_TOO_COMPLEX GRAPHQL_MAX_TOKENS',
      unknown: 'error TW_GRAPHQL_VALIDATION',
      twoRoots: 'error TW_GRAPHQL_VALIDATION',
      // Valid, and runs: the job does not exist.
      fine: 'error undefined',
    });
    expect(replies.get('fine')?.payload?.[0]?.message).toMatch(/No job 'x'/);
  });
  it('closes a WebSocket whose message is over GRAPHQL_WS_MAX_MESSAGE_BYTES (1009) before parsing it', async () => {
    if (!app.server.listening) await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws');
    let answered = (_outcome: number | string) => {};
    const outcome = new Promise<number | string>((resolve) => {
      answered = resolve;
    });
    ws.on('close', (code: number) => answered(code));
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(String(data));
      if (msg.id === '1') answered(`answered with ${msg.type}`);
      if (msg.type !== 'connection_ack') return;
      // 1200 aliases in 10 KB: mercurius would parse all of it (no token limit there) before any check.
      const query = `subscription { jobProgress(id: "x") { ${aliases(1200, 'id')} } }`;
      ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query } }));
    });
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'connection_init' }));
    expect(await outcome).toBe(1009);
    expect((await post('{ health { ready } }')).statusCode).toBe(200);
  });
});

describe('GraphQL operations that fail for lack of capacity', () => {
  let app: FastifyInstance;
  let url: string;
  beforeAll(async () => {
    // One worker and no queue: a second task is refused with 503 while the first runs.
    app = await makeApp({ PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0, RATE_LIMIT_MAX: 0, QUEUE_MAX: 0 });
    await waitFor(() => app.compute.up, 30_000);
    // Over a real socket: a response that was sent closes differently from one whose client went away.
    await app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/graphql`;
  }, 60_000);
  afterAll(async () => app?.close());

  // Log-domain Sinkhorn on 300 x 300 points that never converges: runs until cancelled or out of time.
  const points = (shift: number) =>
    Array.from({ length: 300 }, (_, i) => [i / 300 + shift, ((i * 7) % 300) / 300]);
  const slow = (timeoutMs: number) => ({
    x: points(0),
    y: points(0.5),
    solver: 'SINKHORN',
    params: { reg: 1e-4, method: 'log', maxIter: 10_000_000, tol: 1e-300, checkEvery: 10_000 },
    plan: 'NONE',
    timeoutMs,
  });
  const post = async (query: string, variables: Record<string, unknown>) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query, variables }),
    });
    return { status: res.status, headers: res.headers, body: (await res.json()) as any };
  };

  it('answers 503 with Retry-After when the queue is full, and cancels the sibling still running', async () => {
    const res = await post(
      'query($a: OtInput!) { a: otPlan(input: $a) { cost } b: otPlan(input: $a) { cost } }',
      { a: slow(30_000) },
    );
    expect(res.status, JSON.stringify(res.body)).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(res.body.data).toBeNull();
    expect(res.body.errors[0].extensions.code).toBe('TW_QUEUE_FULL');
    // The sibling that got the worker is not left running until its 30 s deadline.
    await waitFor(() => app.compute.pool.stats().running === 0, 5_000);
  });

  it('answers 504 when the operation ran out of time', async () => {
    const res = await post('query($a: OtInput!) { otPlan(input: $a) { cost } }', { a: slow(300) });
    expect(res.status, JSON.stringify(res.body)).toBe(504);
    expect(res.body.errors[0].extensions.code).toBe('TW_DEADLINE_EXCEEDED');
  });
});
