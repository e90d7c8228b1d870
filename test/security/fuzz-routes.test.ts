/**
 * Property-based fuzzing of every route the OpenAPI document lists (so a route added later is fuzzed without a
 * new generator): JSON bodies (valid-shaped from the route's schema, hand-written valid seeds, and both with one
 * part broken), path parameters, query strings of the image routes (with a small valid PNG), and GraphQL
 * documents. For every request: no 5xx, every 4xx carries a coded error (validation errors with a path for each
 * problem), and no answer later than the deadline. The counts of requests and outcomes per route are printed;
 * FUZZ_RUNS (default 40 per route and family) and FUZZ_SEED change the size and seed of the run, and FUZZ_REPORT
 * names a JSON file to write the counts to.
 */
import { cpSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp, repoRoot, tinyModelsDir } from '../helpers.js';
import {
  hostileScalar,
  type JsonSchema,
  mutate,
  mutation,
  nest,
  toJsonText,
  validShaped,
} from './arbitraries.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 40);
const SEED = Number(process.env.FUZZ_SEED ?? 20261128);
const DEADLINE_MS = 10_000;
/** Test timeouts grow with the run (a FUZZ_RUNS=500 run takes minutes). */
const budget = (ms: number) => Math.max(ms, RUNS * 3000);
/** Slack over the deadline for the answer to come back (queueing behind other fuzz requests, a loaded machine). */
const SLACK_MS = 5000;

interface Operation {
  method: string;
  url: string;
  requestBody?: { content?: Record<string, { schema: JsonSchema }> };
  parameters?: { in: string; name: string; schema: JsonSchema; required?: boolean }[];
}

/**
 * An image route: its body is an image (raw image/* or multipart, documented with an `image/*` requestBody) and
 * its parameters are in the query string. Its JSON body, where it takes one, is fuzzed by the image-route tests.
 */
const isImageOp = (o: Operation) =>
  o.method === 'POST' &&
  (!o.requestBody || o.requestBody.content?.['image/*'] !== undefined) &&
  o.parameters?.some((p) => p.in === 'query') === true;

/** Valid bodies written by hand (the README's), so that mutations start from requests that succeed. */
const SEEDS: Record<string, unknown[]> = {
  '/v1/ot/plan': [
    {
      x: [
        [0, 0],
        [1, 0],
        [0, 1],
      ],
      y: [
        [1, 1],
        [2, 1],
        [1, 2],
      ],
      solver: { solver: 'emd' },
      output: { plan: 'sparse' },
    },
    {
      C: [
        [0, 1, 4],
        [1, 0, 1],
        [4, 1, 0],
      ],
      a: [0.5, 0.25, 0.25],
      b: [0.25, 0.25, 0.5],
      solver: { solver: 'sinkhorn', reg: 0.05, method: 'log', epsilonScaling: true },
      output: { errorHistory: true },
    },
    {
      C: [
        [0, 2],
        [2, 0],
        [1, 1],
      ],
      a: [0.4, 0.4, 0.2],
      b: [0.5, 0.5],
      solver: { solver: 'sparse', reg: 1, k: 2 },
    },
    { C: [0, 1, 1, 0], n: 2, m: 2, solver: { solver: 'unbalanced', reg: 0.1, regM: 1 } },
  ],
  '/v1/ot/distance': [
    {
      x: [[0], [1], [2], [3]],
      y: [[0.5], [1.5], [2.5], [3.5]],
      scaling: 'max',
      solver: { solver: 'sns', reg: 0.01 },
    },
    { x: [[0], [1]], y: [[2], [3]], solver: { solver: 'emd1d' } },
    {
      C: [
        [0, 1],
        [1, 0],
      ],
      solver: { solver: 'quadratic', reg: 0.5 },
    },
  ],
  '/v1/ot/sinkhorn-divergence': [
    {
      x: [
        [0, 0],
        [1, 1],
      ],
      y: [
        [0, 1],
        [1, 0],
      ],
      reg: 0.1,
    },
  ],
  '/v1/ot/monge-gap': [
    {
      x: [
        [0, 0],
        [1, 0],
        [0, 1],
      ],
      Tx: [
        [1, 0],
        [2, 0],
        [1, 1],
      ],
      exact: true,
    },
  ],
};

/** Query parameters whose valid values the schema leaves open (a free string) or too wide for a fast run. */
const QUERY_HINTS: Record<string, fc.Arbitrary<unknown>> = {
  format: fc.constantFrom('png', 'png16', 'jpeg', 'webp', 'tiff'),
  model: fc.constant(undefined),
  version: fc.constant(undefined),
  timeoutMs: fc.integer({ min: 5000, max: 20_000 }),
  steps: fc.integer({ min: 2, max: 6 }),
  masks: fc.integer({ min: 1, max: 3 }),
};

/** Valid query strings of the image routes (a restoration needs exactly one way to make its mask). */
const QUERY_SEEDS: Record<string, Record<string, unknown>[]> = {
  '/v1/inpaint': [
    { maskRatio: 0.5, steps: 3 },
    { box: '2,2,8,8', steps: 2, output: 'json' },
  ],
  '/v1/restore': [
    { task: 'super-resolution', factor: 2, steps: 3 },
    { task: 'deblur', steps: 2 },
    { task: 'inpaint', maskRatio: 0.3, steps: 2, simulate: true },
  ],
};

const GRAPHQL_SEEDS = [
  '{ health { ready backend workers } models { name version state } }',
  '{ otPlan(input: { C: [[0,1],[1,0]], solver: SINKHORN, params: { reg: 0.1 }, plan: DENSE }) { cost converged plan { data } } }',
  'query Q($id: ID!) { job(id: $id) { id state } }',
  'mutation { cancelJob(id: "nope") { id state } }',
];

/** Request/outcome bookkeeping: route -> "status code" -> count. */
const outcomes = new Map<string, Map<string, number>>();
let requests = 0;
let slowest = 0;

interface Injected {
  statusCode: number;
  body: string;
  headers: Record<string, unknown>;
}

function record(route: string, key: string) {
  const m = outcomes.get(route) ?? new Map<string, number>();
  m.set(key, (m.get(key) ?? 0) + 1);
  outcomes.set(route, m);
}

/** The checks every answer must pass. */
async function check(route: string, label: string, send: () => PromiseLike<Injected>) {
  const t0 = performance.now();
  const res = await send();
  const ms = performance.now() - t0;
  requests++;
  slowest = Math.max(slowest, ms);
  const where = `${route} <- ${label.slice(0, 400)} -> ${res.statusCode} ${res.body.slice(0, 400)}`;
  expect(ms, `no answer within the deadline: ${where}`).toBeLessThan(DEADLINE_MS + SLACK_MS);
  let code = '';
  if (res.statusCode >= 400 && route === 'POST /graphql' && !JSON.parse(res.body).error) {
    // GraphQL answers refusals in its own shape: every error coded in extensions.code.
    const errors = JSON.parse(res.body).errors;
    expect(Array.isArray(errors) && errors.length > 0, where).toBe(true);
    for (const e of errors) expect(e.extensions?.code, where).toMatch(/^TW_[A-Z_]+$/);
    code = errors[0].extensions.code;
  } else if (res.statusCode >= 400) {
    const body = JSON.parse(res.body);
    code = body?.error?.code;
    expect(code, where).toMatch(/^TW_[A-Z_]+$/);
    expect(typeof body.error.message, where).toBe('string');
    expect(typeof body.error.requestId, where).toBe('string');
    if (code === 'TW_VALIDATION' && Array.isArray(body.error.details)) {
      // Each problem names where it is (a dotted path; the empty path means the whole body).
      for (const d of body.error.details) expect(typeof d.path, where).toBe('string');
    }
  }
  const key = `${res.statusCode}${code ? ` ${code}` : ''}`;
  if (process.env.FUZZ_VERBOSE && !outcomes.get(route)?.has(key)) console.log(`first ${key}: ${where}`);
  record(route, key);
  expect(res.statusCode, where).toBeLessThan(500);
  return res;
}

describe('fuzzing every route', () => {
  let app: FastifyInstance;
  const ops: Operation[] = [];
  let png: Buffer;

  beforeAll(async () => {
    // The tiny repository plus the Gaussian denoiser, so that valid denoise requests run a real model.
    const models = tinyModelsDir();
    for (const name of ['noise2score-gaussian', 'ddpm-fashion-mnist']) {
      cpSync(path.join(repoRoot, 'models', name), path.join(models, name), { recursive: true });
    }
    app = await makeApp({
      MODELS_DIR: models,
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
      RATE_LIMIT_MAX: 0,
      REQUEST_TIMEOUT_MS: DEADLINE_MS,
      QUEUE_MAX: 1000,
      JOBS_QUEUE_MAX: 100_000,
    });
    await app.models.settled;
    // The first task of a kind loads its module in the worker (compiled on the fly under tsx: seconds on a busy
    // machine); pay that here, not inside a generated request's deadline.
    const warm = await app.inject({
      method: 'POST',
      url: '/v1/ot/plan',
      payload: SEEDS['/v1/ot/plan'][0] as object,
    });
    expect(warm.statusCode).toBe(200);
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    for (const [url, byMethod] of Object.entries<Record<string, Operation>>(doc.paths)) {
      for (const [method, op] of Object.entries(byMethod))
        ops.push({ ...op, method: method.toUpperCase(), url });
    }
    const pixels = Buffer.alloc(16 * 16, 0).map((_, i) => (i * 37) % 256);
    png = await sharp(pixels, { raw: { width: 16, height: 16, channels: 1 } })
      .png()
      .toBuffer();
  }, budget(120_000));

  afterAll(async () => {
    const table = Object.fromEntries(
      [...outcomes.entries()].map(([route, m]) => [route, Object.fromEntries([...m.entries()].sort())]),
    );
    console.log(
      `fuzz: ${requests} requests, slowest answer ${Math.round(slowest)} ms`,
      JSON.stringify(table, null, 1),
    );
    if (process.env.FUZZ_REPORT) {
      writeFileSync(
        process.env.FUZZ_REPORT,
        JSON.stringify({ runs: RUNS, seed: SEED, requests, slowestMs: slowest, outcomes: table }, null, 1),
      );
    }
    await app?.close();
  });

  const jsonOps = () =>
    ops.filter(
      (o) =>
        o.url !== '/graphql' &&
        !isImageOp(o) &&
        o.requestBody?.content?.['application/json']?.schema !== undefined,
    );

  it('finds the routes it must fuzz in the OpenAPI document', () => {
    const listed = jsonOps().map((o) => `${o.method} ${o.url}`);
    for (const r of [
      'POST /v1/ot/plan',
      'POST /v1/ot/distance',
      'POST /v1/ot/sinkhorn-divergence',
      'POST /v1/ot/monge-gap',
      'POST /v1/jobs',
    ])
      expect(listed).toContain(r);
    expect(ops.some((o) => o.url === '/graphql')).toBe(true);
    expect(ops.some((o) => o.url === '/v1/denoise')).toBe(true);
  });

  it(
    'JSON routes: valid-shaped bodies and their mutations never get a 5xx; 4xx are coded',
    async () => {
      const operationNames: string[] = (
        await app.inject({ method: 'GET', url: '/v1/jobs/operations' })
      ).json().operations;
      for (const op of jsonOps()) {
        const schema = op.requestBody?.content?.['application/json']?.schema as JsonSchema;
        let body: fc.Arbitrary<unknown> = validShaped(schema);
        if (op.url === '/v1/jobs') {
          // A job's input is the operation's own body: take it from that route's schema, or its seeds.
          const inputFor = (name: string) => {
            const route = ops.find((o) => o.url === `/v1/${name.replace('.', '/')}` && o.method === 'POST');
            const s = route?.requestBody?.content?.['application/json']?.schema;
            const seeds = SEEDS[route?.url ?? ''] ?? [];
            return fc.oneof(
              s ? validShaped(s) : fc.jsonValue({ maxDepth: 2 }),
              ...(seeds.length ? [fc.constantFrom(...seeds)] : []),
            );
          };
          body = fc
            .oneof(fc.constantFrom(...operationNames), fc.string({ maxLength: 12 }))
            .chain((operation) => inputFor(operation).map((input) => ({ operation, input })));
        }
        const seeds = SEEDS[op.url] ?? [];
        const candidates = fc.oneof(
          { weight: 2, arbitrary: body },
          ...(seeds.length ? [{ weight: 2, arbitrary: fc.constantFrom(...seeds) }] : []),
          {
            weight: 4,
            arbitrary: fc
              .tuple(seeds.length ? fc.oneof(body, fc.constantFrom(...seeds)) : body, mutation)
              .map(([v, m]) => mutate(v, m)),
          },
        );
        const label = `${op.method} ${op.url}`;
        await fc.assert(
          fc.asyncProperty(candidates, async (value) => {
            const text = toJsonText(value);
            await check(label, text, () =>
              app.inject({
                method: op.method as 'POST',
                url: op.url,
                payload: text,
                headers: { 'content-type': 'application/json' },
              }),
            );
          }),
          { numRuns: RUNS * 2, seed: SEED, endOnFailure: true },
        );
        if (seeds.length) {
          // The run reached the solvers, not only the validator.
          expect(outcomes.get(label)?.get('200') ?? 0, label).toBeGreaterThan(0);
        }
      }
      expect(outcomes.get('POST /v1/jobs')?.get('202') ?? 0).toBeGreaterThan(0);
    },
    budget(120_000),
  );

  it(
    'arrays: NaN/Infinity as strings, 1e308, deep nesting, n beyond the limit, mismatched lengths are 4xx with paths',
    async () => {
      const cases: [string, unknown, number, string?][] = [
        [
          'NaN as a string',
          {
            C: [
              [0, 'NaN'],
              [1, 0],
            ],
            solver: { solver: 'emd' },
          },
          400,
          'C',
        ],
        [
          'Infinity as a string',
          { x: [[0], ['Infinity']], y: [[1], [2]], solver: { solver: 'emd' } },
          400,
          'x',
        ],
        [
          '-Infinity in a marginal',
          {
            C: [
              [0, 1],
              [1, 0],
            ],
            a: ['-Infinity', 1],
            solver: { solver: 'emd' },
          },
          400,
          'a',
        ],
        ['ragged rows', { C: [[0, 1], [1]], solver: { solver: 'emd' } }, 400, 'C.1'],
        [
          'a longer than n',
          {
            C: [
              [0, 1],
              [1, 0],
            ],
            a: [0.5, 0.25, 0.25],
            solver: { solver: 'emd' },
          },
          400,
          'a',
        ],
        ['x and y of different dimension', { x: [[0, 0]], y: [[1]], solver: { solver: 'emd' } }, 400, 'y.0'],
        ['deep nesting', { C: nest(5000), solver: { solver: 'emd' } }, 400],
        [
          'a negative weight',
          {
            C: [
              [0, 1],
              [1, 0],
            ],
            b: [-1, 2],
            solver: { solver: 'emd' },
          },
          400,
          'b',
        ],
      ];
      for (const [what, body, status, pathPrefix] of cases) {
        const res = await check('arrays', what, () =>
          app.inject({
            method: 'POST',
            url: '/v1/ot/plan',
            payload: toJsonText(body),
            headers: { 'content-type': 'application/json' },
          }),
        );
        expect(res.statusCode, what).toBe(status);
        const err = JSON.parse(res.body).error;
        if (pathPrefix)
          expect(err.details.map((d: { path: string }) => d.path).join(' '), what).toContain(
            `body.${pathPrefix}`,
          );
      }
      // 1e308 is a finite number: accepted by validation; the solver must not turn it into a 5xx (or a NaN result).
      const huge = await check('arrays', '1e308 costs', () =>
        app.inject({
          method: 'POST',
          url: '/v1/ot/plan',
          payload: {
            C: [
              [1e308, 0],
              [0, 1e308],
            ],
            solver: { solver: 'emd' },
          },
        }),
      );
      if (huge.statusCode === 200) expect(JSON.parse(huge.body).cost).toBeTypeOf('number');
      // n*m beyond OT_MAX_ENTRIES (25e6 by default; 5001 x 5001 one-dimensional points is a small body): refused
      // before any solver runs.
      const x = Array.from({ length: 5001 }, (_, i) => [i]);
      const tooBig = await check('arrays', 'n*m beyond OT_MAX_ENTRIES', () =>
        app.inject({ method: 'POST', url: '/v1/ot/plan', payload: { x, y: x, solver: { solver: 'emd' } } }),
      );
      expect(tooBig.statusCode).toBe(413);
      expect(JSON.parse(tooBig.body).error.code).toBe('TW_PROBLEM_TOO_LARGE');
    },
    budget(60_000),
  );

  it(
    'path parameters: hostile ids and names get coded 4xx',
    async () => {
      const pathOps = ops.filter((o) => o.parameters?.some((p) => p.in === 'path'));
      expect(pathOps.length).toBeGreaterThan(0);
      const hostileSegment = fc.oneof(
        fc.string({ maxLength: 40 }),
        fc.constantFrom(
          '..',
          '%2e%2e%2f',
          '%00',
          'x'.repeat(300),
          '__proto__',
          'constructor',
          '%F0%9F%92%A9',
          '%ff',
        ),
        fc.uuid(),
      );
      for (const op of pathOps) {
        const label = `${op.method} ${op.url}`;
        await fc.assert(
          fc.asyncProperty(hostileSegment, async (segment) => {
            const url = op.url.replace(
              /\{[^}]+\}/g,
              segment.startsWith('%') ? segment : encodeURIComponent(segment),
            );
            await check(label, url, () => app.inject({ method: op.method as 'GET', url }));
          }),
          { numRuns: RUNS, seed: SEED, endOnFailure: true },
        );
      }
    },
    budget(60_000),
  );

  it(
    'image routes: query strings from the schema, and broken ones, never get a 5xx',
    async () => {
      const imageOps = ops.filter(isImageOp);
      expect(imageOps.map((o) => o.url)).toContain('/v1/denoise');
      for (const op of imageOps) {
        const query = op.parameters?.filter((p) => p.in === 'query' && p.name !== 'async') ?? [];
        // Mostly valid query strings (a few parameters set, from their schemas), or one parameter hostile.
        const valid = fc.record(
          Object.fromEntries(
            query.map((p) => [
              p.name,
              fc.oneof(
                { weight: 3, arbitrary: fc.constant(undefined) },
                { weight: 1, arbitrary: QUERY_HINTS[p.name] ?? validShaped(p.schema) },
              ),
            ]),
          ),
        );
        const seeds = QUERY_SEEDS[op.url] ?? [];
        const base = seeds.length ? fc.oneof(valid, fc.constantFrom(...seeds)) : valid;
        const params = fc
          .tuple(base, fc.option(fc.tuple(fc.constantFrom(...query.map((p) => p.name)), hostileScalar)))
          .map(([v, broken]) => (broken ? { ...v, [broken[0]]: broken[1] } : v));
        const label = `${op.method} ${op.url}`;
        await fc.assert(
          fc.asyncProperty(params, async (values) => {
            const qs = new URLSearchParams();
            for (const [k, v] of Object.entries(values)) {
              if (v === undefined) continue;
              qs.set(k, typeof v === 'string' ? v : JSON.stringify(v));
            }
            const url = `${op.url}?${qs}`;
            await check(label, url, () =>
              app.inject({ method: 'POST', url, payload: png, headers: { 'content-type': 'image/png' } }),
            );
          }),
          { numRuns: RUNS, seed: SEED, endOnFailure: true },
        );
      }
      expect(outcomes.get('POST /v1/denoise')?.get('200') ?? 0).toBeGreaterThan(0);
      expect(outcomes.get('POST /v1/inpaint')?.get('200') ?? 0).toBeGreaterThan(0);
      expect(outcomes.get('POST /v1/restore')?.get('200') ?? 0).toBeGreaterThan(0);
    },
    budget(120_000),
  );

  it(
    'image routes: JSON bodies (base64 image lists, hostile values) never get a 5xx',
    async () => {
      const imageOps = ops.filter(isImageOp);
      const b64 = fc.oneof(
        fc.constant(png.toString('base64')),
        fc.constant(png.subarray(0, 40).toString('base64')),
        fc.string({ maxLength: 40 }),
        fc.constantFrom('', '====', 'data:image/png;base64,AAAA', '%%%'),
      );
      const body = fc.oneof(
        fc.record({ images: fc.array(fc.oneof(b64, hostileScalar), { maxLength: 3 }) }, { requiredKeys: [] }),
        fc.jsonValue({ maxDepth: 3 }),
        fc
          .tuple(fc.record({ images: fc.array(b64, { minLength: 1, maxLength: 2 }) }), mutation)
          .map(([v, m]) => mutate(v, m)),
      );
      for (const op of imageOps) {
        const label = `${op.method} ${op.url} (JSON)`;
        await fc.assert(
          fc.asyncProperty(body, async (value) => {
            const text = toJsonText(value);
            await check(label, text, () =>
              app.inject({
                method: 'POST',
                url: op.url,
                payload: text,
                headers: { 'content-type': 'application/json' },
              }),
            );
          }),
          { numRuns: RUNS, seed: SEED, endOnFailure: true },
        );
      }
    },
    budget(60_000),
  );

  it(
    'GraphQL: valid documents, broken documents and hostile variables never get a 5xx; errors are coded',
    async () => {
      const document = fc.oneof(
        fc.constantFrom(...GRAPHQL_SEEDS),
        // One character removed, or a random one inserted: mostly syntax errors.
        fc
          .tuple(fc.constantFrom(...GRAPHQL_SEEDS), fc.nat(), fc.string({ maxLength: 3 }))
          .map(([q, at, s]) => q.slice(0, at % q.length) + s + q.slice((at % q.length) + (s ? 0 : 1))),
        fc
          .integer({ min: 1, max: 400 })
          .map((n) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: health { ready }`).join(' ')} }`),
        fc.integer({ min: 5, max: 200 }).map((d) => `{ ${'health { '.repeat(d)}ready${' }'.repeat(d)} }`),
        fc.string({ maxLength: 60 }),
        // JSON where GraphQL text belongs: mercurius would take it for a pre-parsed AST.
        fc.constantFrom('null', '5', 'true', '{}', '[]', '"x"', '{"kind":"Document","definitions":[null]}'),
      );
      const body = fc.record(
        {
          query: fc.oneof({ weight: 5, arbitrary: document }, { weight: 1, arbitrary: hostileScalar }),
          variables: fc.oneof(fc.constant({ id: 'x' }), fc.jsonValue({ maxDepth: 2 }), hostileScalar),
          operationName: fc.oneof(fc.constant('Q'), fc.string({ maxLength: 8 }), fc.constant(null)),
        },
        { requiredKeys: ['query'] },
      );
      await fc.assert(
        fc.asyncProperty(body, async (b) => {
          const text = toJsonText(b);
          const res = await check('POST /graphql', text, () =>
            app.inject({
              method: 'POST',
              url: '/graphql',
              payload: text,
              headers: { 'content-type': 'application/json' },
            }),
          );
          const parsed = JSON.parse(res.body);
          if (res.statusCode < 400 || !parsed.error) {
            for (const e of parsed.errors ?? [])
              expect(e.extensions?.code, `${text} -> ${res.body.slice(0, 300)}`).toMatch(/^TW_[A-Z_]+$/);
          }
        }),
        { numRuns: RUNS * 3, seed: SEED, endOnFailure: true },
      );
      expect(outcomes.get('POST /graphql')?.get('200') ?? 0).toBeGreaterThan(0);
    },
    budget(120_000),
  );
});
