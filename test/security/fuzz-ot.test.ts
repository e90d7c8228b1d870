/**
 * Property-based fuzzing of POST /v1/ot/plan with fast-check: hostile JSON of every shape (random values, NaN and
 * Infinity smuggled as strings, 1e308, deep nesting, ragged arrays, near-valid bodies with one part broken) and
 * raw non-JSON bodies. The service must never answer 5xx, and every 4xx must carry our coded error shape.
 * The outcome counts are printed (the figures issue 10 asks for).
 */

import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp } from '../helpers.js';

/** What the checks read of an injected response. */
interface Injected {
  statusCode: number;
  body: string;
  json: () => any;
}

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

/** Numbers a careless parser or solver would mishandle, including strings that look like numbers. */
const hostileNumber = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -0, 1e308, -1e308, Number.MAX_VALUE, Number.MIN_VALUE, 5e-324, 2 ** 53 + 1, -1),
  fc.constantFrom('NaN', 'Infinity', '-Infinity', '1e999', '0x10', '', ' 1', 'null', '1,5'),
  fc.constantFrom(null, true, false),
  fc.integer({ min: -1e6, max: 1e6 }),
);

const row = (len: fc.Arbitrary<number>) =>
  len.chain((n) => fc.array(hostileNumber, { minLength: n, maxLength: n }));
/** Matrices, possibly ragged (rows of different lengths), possibly empty. */
const matrix = fc.oneof(
  fc.array(row(fc.integer({ min: 0, max: 6 })), { maxLength: 6 }),
  fc.integer({ min: 1, max: 5 }).chain((m) => fc.array(row(fc.constant(m)), { minLength: 1, maxLength: 5 })),
);
/** Well-formed small point clouds, so that some requests get as far as the solvers. */
const cleanCloud = fc.integer({ min: 1, max: 3 }).chain((d) =>
  fc.array(fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: d, maxLength: d }), {
    minLength: 1,
    maxLength: 6,
  }),
);
const solver = fc.oneof(
  fc.record(
    {
      solver: fc.constantFrom('emd', 'sinkhorn', 'sinkhorn-log', 'emd1d', 'sparse', 'unbalanced', 'nope', ''),
      reg: hostileNumber,
      maxIter: fc.oneof(fc.integer({ min: -5, max: 200 }), hostileNumber),
      tol: hostileNumber,
    },
    { requiredKeys: ['solver'] },
  ),
  fc.anything(),
);
const planLike = fc.record(
  {
    C: matrix,
    x: fc.oneof(matrix, cleanCloud),
    y: fc.oneof(matrix, cleanCloud),
    a: fc.array(hostileNumber, { maxLength: 7 }),
    b: fc.array(hostileNumber, { maxLength: 7 }),
    p: hostileNumber,
    cost: fc.oneof(fc.constantFrom('sqeuclidean', 'euclidean', 'cosine', 'bogus'), fc.anything()),
    scaling: fc.oneof(fc.constantFrom('none', 'max', 'mean', 'bogus'), hostileNumber),
    solver,
    output: fc.oneof(fc.record({ plan: fc.constantFrom('dense', 'sparse', 'none', 'x') }), fc.anything()),
    timeoutMs: fc.oneof(fc.integer({ min: -10, max: 5000 }), hostileNumber),
    async: fc.oneof(fc.boolean(), hostileNumber),
  },
  { requiredKeys: [] },
);
/** Deeply nested arrays and objects (a parser or validator that recurses without limit would fall over). */
const deep = fc.integer({ min: 50, max: 3000 }).map((depth) => {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { C: v };
  return { C: v, solver: { solver: 'emd' } };
});
/** A valid body (points or cost matrix, a real solver), then at most one part broken: reaches the solvers. */
const cleanMatrix = fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 })).chain(([n, m]) =>
  fc.array(fc.array(fc.double({ min: 0, max: 100, noNaN: true }), { minLength: m, maxLength: m }), {
    minLength: n,
    maxLength: n,
  }),
);
const validBody = fc.oneof(
  fc.record({
    x: cleanCloud,
    y: cleanCloud,
    solver: fc.oneof(
      fc.constant({ solver: 'emd' }),
      fc.record({
        solver: fc.constantFrom('sinkhorn', 'sinkhorn-log'),
        reg: fc.double({ min: 0.05, max: 2, noNaN: true }),
      }),
    ),
  }),
  fc.record({ C: cleanMatrix, solver: fc.constant({ solver: 'emd' }) }),
);
const brokenPart = fc.constantFrom(
  'x',
  'y',
  'C',
  'a',
  'b',
  'p',
  'solver',
  'output',
  'timeoutMs',
  'scaling',
  'extra',
);
const nearValid = fc
  .tuple(
    validBody,
    fc.option(fc.tuple(brokenPart, fc.oneof(hostileNumber, matrix, fc.anything())), { freq: 2 }),
  )
  .map(([body, broken]) => (broken ? { ...body, [broken[0]]: broken[1] } : body));
const jsonBody = fc.oneof(
  { weight: 4, arbitrary: nearValid },
  { weight: 5, arbitrary: planLike },
  { weight: 2, arbitrary: fc.anything({ maxDepth: 4 }) },
  { weight: 1, arbitrary: deep },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);
/** Bytes that are not (valid) JSON, sent as application/json. */
const rawBody = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.constantFrom('', '{', '[1,2', '{"C":[[1,2],[3', 'NaN', '{"C": NaN}', '{"__proto__": {"x": 1}}', 'null'),
  fc.integer({ min: 1000, max: 20000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
);

describe('fuzzing POST /v1/ot/plan', () => {
  let app: FastifyInstance;
  const outcomes = new Map<string, number>();
  let requests = 0;
  beforeAll(async () => {
    app = await makeApp({
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
      RATE_LIMIT_MAX: 0,
      // Generated problems are tiny; a short default deadline keeps a pathological one from stalling the run.
      REQUEST_TIMEOUT_MS: 5000,
      QUEUE_MAX: 1000,
    });
    // The first task of a kind loads its module in the worker (compiled on the fly under tsx: seconds on a busy
    // machine); pay that here, not inside the first generated request's deadline.
    await app.inject({
      method: 'POST',
      url: '/v1/ot/plan',
      payload: {
        C: [
          [0, 1],
          [1, 0],
        ],
        solver: { solver: 'emd' },
      },
    });
  }, 60_000);
  afterAll(async () => {
    const summary = [...outcomes.entries()].sort((a, b) => b[1] - a[1]);
    console.log(`fuzz /v1/ot/plan: ${requests} requests;`, Object.fromEntries(summary));
    await app?.close();
  });

  const check = async (send: () => PromiseLike<Injected>, label: string) => {
    const res = await send();
    requests++;
    let code = '';
    if (res.statusCode >= 400) {
      const body = res.json();
      code = body?.error?.code;
      expect(code, `${label} -> ${res.statusCode} ${res.body.slice(0, 300)}`).toMatch(/^TW_[A-Z_]+$/);
      expect(typeof body.error.message).toBe('string');
      expect(typeof body.error.requestId).toBe('string');
    }
    const key = `${res.statusCode}${code ? ` ${code}` : ''}`;
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    expect(res.statusCode, `${label} -> ${res.body.slice(0, 300)}`).toBeLessThan(500);
  };

  it('never answers 5xx to generated JSON bodies, and every 4xx is coded', async () => {
    await fc.assert(
      fc.asyncProperty(jsonBody, async (body) => {
        // undefined (a top-level value JSON cannot carry) is sent as an empty body.
        const text = JSON.stringify(body) ?? '';
        await check(
          () =>
            app.inject({
              method: 'POST',
              url: '/v1/ot/plan',
              payload: text,
              headers: { 'content-type': 'application/json' },
            }),
          text.slice(0, 300),
        );
      }),
      { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? 20261127), endOnFailure: true },
    );
    // The run reached the solvers (some answers are results), not only the validator.
    expect(outcomes.get('200') ?? 0).toBeGreaterThan(RUNS / 20);
  }, 120_000);

  it('never answers 5xx to bodies that are not JSON', async () => {
    await fc.assert(
      fc.asyncProperty(
        rawBody,
        fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded'),
        async (text, type) =>
          check(
            () =>
              app.inject({
                method: 'POST',
                url: '/v1/ot/plan',
                payload: text,
                headers: { 'content-type': type },
              }),
            `${type}: ${text.slice(0, 100)}`,
          ),
      ),
      { numRuns: Math.ceil(RUNS / 3), seed: 7, endOnFailure: true },
    );
    // Some of the above must have been refused as bad JSON, with its own code.
    expect(outcomes.get('400 TW_BAD_JSON') ?? 0).toBeGreaterThan(0);
  }, 60_000);
});
