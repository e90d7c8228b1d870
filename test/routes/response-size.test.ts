/**
 * What an answer may carry: a synchronous JSON answer is capped by MAX_RESPONSE_BYTES (413 TW_RESPONSE_TOO_LARGE,
 * naming the ways out), a dense OT plan over the cap is refused before it is solved, the OT text is written in the
 * worker, and a job's result (the way out) is streamed without holding the event loop.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boundedJson, JsonTooLargeError, jsonChunks } from '../../src/util/json-chunks.js';
import { Rng } from '../../src/util/random.js';
import { makeApp, repoRoot, waitForJob } from '../helpers.js';

const LIMIT = 16 * 1024;

function cloud(rng: Rng, n: number, d: number) {
  return Array.from({ length: n }, () => Array.from({ length: d }, () => rng.normal()));
}

describe('JSON text in pieces', () => {
  it('writes what JSON.stringify writes (typed arrays as arrays), long arrays in slices, and stops past a bound', () => {
    const long = Array.from({ length: 40_000 }, (_, i) => (i % 7 === 0 ? 0 : i / 3));
    const value = {
      a: 1,
      skip: undefined,
      s: 'é"\n',
      long,
      typed: Float64Array.from(long.slice(0, 20_000)),
      nested: [{ x: null, y: [1, 'two', undefined, Number.NaN] }, []],
      when: new Date(0),
    };
    const text = [...jsonChunks(value)].join('');
    expect(text).toBe(JSON.stringify({ ...value, typed: Array.from(value.typed) }));
    expect([...jsonChunks(long)].length).toBeGreaterThan(2);
    expect(boundedJson(value, 1e7).toString()).toBe(text);
    expect(() => boundedJson(value, 10_000)).toThrow(JsonTooLargeError);
  });
});

describe('MAX_RESPONSE_BYTES', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  const rng = new Rng(7);
  // 40 x 40: 1600 plan entries, some 30 KB of JSON as a dense plan; 4 x 4 fits easily.
  const big = { x: cloud(rng, 40, 2), y: cloud(rng, 40, 2) };
  const small = { x: cloud(rng, 4, 2), y: cloud(rng, 4, 2) };
  const sinkhorn = { solver: 'sinkhorn', reg: 0.5, maxIter: 50 };
  beforeAll(async () => {
    app = await makeApp({
      MAX_RESPONSE_BYTES: LIMIT,
      RATE_LIMIT_MAX: 0,
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
    });
  }, 60_000);
  afterAll(async () => app?.close());
  const post = (url: string, payload: object) => app.inject({ method: 'POST', url, payload });

  it('refuses a dense plan that could pass the cap before solving it (413 with the ways out)', async () => {
    // A solve that would run for minutes: answering 413 (not 504 after timeoutMs) shows it never started.
    const res = await post('/v1/ot/plan', {
      ...big,
      solver: { solver: 'sinkhorn', reg: 0.01, maxIter: 10_000_000, tol: 1e-300, checkEvery: 10_000 },
      output: { plan: 'dense' },
      timeoutMs: 5000,
    });
    expect(res.statusCode, res.body).toBe(413);
    const err = res.json().error;
    expect(err.code).toBe('TW_RESPONSE_TOO_LARGE');
    expect(err.message).toMatch(/MAX_RESPONSE_BYTES/);
    expect(err.details).toMatchObject({ limit: LIMIT, alternatives: ['sparse', 'none', 'async'] });
    expect(err.details.estimatedBytes).toBeGreaterThan(LIMIT);
  });

  it('refuses an answer whose text passes the cap (plan auto), and answers the same problem sparse or without plan', async () => {
    const dense = await post('/v1/ot/plan', { ...big, solver: sinkhorn });
    expect(dense.statusCode, dense.body.slice(0, 300)).toBe(413);
    expect(dense.json().error.code).toBe('TW_RESPONSE_TOO_LARGE');
    const sparse = await post('/v1/ot/plan', {
      ...big,
      solver: sinkhorn,
      output: { plan: 'sparse', threshold: 1e-3 },
    });
    expect(sparse.statusCode, sparse.body.slice(0, 300)).toBe(200);
    expect(sparse.json().plan.format).toBe('sparse');
    const none = await post('/v1/ot/distance', { ...big, solver: sinkhorn });
    expect(none.statusCode).toBe(200);
    expect(none.json().f).toHaveLength(40);
  });

  it('refuses over GraphQL too, measured in the worker (a dense plan before solving, auto after)', async () => {
    const gql = (plan: string) =>
      app.inject({
        method: 'POST',
        url: '/graphql',
        payload: {
          query: `query($x: [[Float!]!], $y: [[Float!]!]) { otPlan(input: { x: $x, y: $y, solver: SINKHORN, params: { reg: 0.5, maxIter: 50 }, plan: ${plan} }) { cost plan { data } } }`,
          variables: big,
        },
      });
    for (const plan of ['DENSE', 'AUTO']) {
      const res = await gql(plan);
      expect(res.json().errors?.[0]?.extensions?.code, res.body.slice(0, 300)).toBe('TW_RESPONSE_TOO_LARGE');
    }
  });

  it('caps any GraphQL answer at the same place, in the GraphQL error shape', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/graphql',
      // No compute: the schema's description, twice (some 29 KB).
      payload: {
        query:
          '{ a: __schema { ...S } b: __schema { ...S } } fragment S on __Schema { types { name description fields { name description } } }',
      },
    });
    expect(res.statusCode, `${res.rawPayload.length} ${res.body.slice(0, 200)}`).toBe(413);
    expect(res.json()).toMatchObject({
      data: null,
      errors: [{ extensions: { code: 'TW_RESPONSE_TOO_LARGE', details: { limit: LIMIT } } }],
      // The same refusal in our error shape too, as every other /graphql refusal sent outside GraphQL.
      error: { code: 'TW_RESPONSE_TOO_LARGE' },
    });
  });

  it('answers within the cap as before: every field, the plan, the timings, a JSON content type', async () => {
    const res = await post('/v1/ot/plan', { ...small, solver: sinkhorn, output: { plan: 'dense' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(Number(res.headers['content-length'])).toBe(res.rawPayload.length);
    const body = res.json();
    expect(body).toMatchObject({ solver: 'sinkhorn', n: 4, m: 4, plan: { format: 'dense', n: 4, m: 4 } });
    expect(body.plan.data).toHaveLength(16);
    expect(body.f).toHaveLength(4);
    expect(body.timings.solveMs).toBeGreaterThanOrEqual(0);
    expect(body.timings.totalMs).toBeGreaterThanOrEqual(body.timings.solveMs);
    const sum = body.plan.data.reduce((s: number, v: number) => s + v, 0);
    expect(sum).toBeCloseTo(1, 6);
  });

  it('caps every other JSON answer at one place (the OpenAPI document here), with the coded 413', async () => {
    const res = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(413);
    expect(res.json().error).toMatchObject({ code: 'TW_RESPONSE_TOO_LARGE', details: { limit: LIMIT } });
    expect(res.json().error.details.bytes).toBeGreaterThan(LIMIT);
  });

  it("serves a job's result over the cap (the way out), streamed", async () => {
    const accepted = await post('/v1/ot/plan', {
      ...big,
      solver: sinkhorn,
      output: { plan: 'dense' },
      async: true,
    });
    expect(accepted.statusCode, accepted.body).toBe(202);
    const location = accepted.headers.location as string;
    expect((await waitForJob(app, location)).state).toBe('succeeded');
    const res = await app.inject({ method: 'GET', url: `${location}/result` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['transfer-encoding']).toBe('chunked');
    expect(res.rawPayload.length).toBeGreaterThan(LIMIT);
    const body = res.json();
    expect(body.plan.data).toHaveLength(1600);
    expect(body.plan.data.reduce((s: number, v: number) => s + v, 0)).toBeCloseTo(1, 6);
  });

  it("serves an image job's output=json result over the cap too (the base64 image is not cut off by a 413)", async () => {
    const { default: sharp } = await import('sharp');
    const noise = Buffer.from(Array.from({ length: 96 * 96 }, () => Math.floor(rng.uniform() * 256)));
    const png = await sharp(noise, { raw: { width: 96, height: 96, channels: 1 } })
      .png()
      .toBuffer();
    const withModels = await makeApp({
      MAX_RESPONSE_BYTES: LIMIT,
      RATE_LIMIT_MAX: 0,
      MODELS_DIR: path.join(repoRoot, 'models'),
    });
    try {
      const accepted = await withModels.inject({
        method: 'POST',
        url: '/v1/denoise?noise=gaussian&level=25&output=json&async=true',
        headers: { 'content-type': 'image/png' },
        payload: png,
      });
      expect(accepted.statusCode, accepted.body).toBe(202);
      const location = accepted.headers.location as string;
      const job = await waitForJob(withModels, location, 60_000);
      expect(job.state, JSON.stringify(job)).toBe('succeeded');
      const res = await withModels.inject({ method: 'GET', url: `${location}/result` });
      expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
      expect(res.json().image.length).toBeGreaterThan(LIMIT);
    } finally {
      await withModels.close();
    }
  }, 60_000);
});

describe("a large job result's download", () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  let port: number;
  beforeAll(async () => {
    app = await makeApp({ RATE_LIMIT_MAX: 0, PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0 });
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as AddressInfo).port;
  }, 60_000);
  afterAll(async () => app?.close());

  it('does not hold the event loop (1500 x 1500 dense plan, some 40 MB of JSON)', async () => {
    const rng = new Rng(11);
    const accepted = await app.inject({
      method: 'POST',
      url: '/v1/ot/plan',
      payload: {
        x: cloud(rng, 1500, 2),
        y: cloud(rng, 1500, 2),
        solver: { solver: 'sinkhorn', reg: 1, maxIter: 3 },
        output: { plan: 'dense', potentials: false },
        async: true,
      },
    });
    expect(accepted.statusCode, accepted.body).toBe(202);
    const location = accepted.headers.location as string;
    expect((await waitForJob(app, location, 60_000)).state).toBe('succeeded');
    // The longest the loop went without running a 5 ms timer, while the result was served.
    let last = performance.now();
    let longest = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }, 5);
    // Over a socket, read by a client that only counts the bytes (an in-process reader that keeps 40 MB would
    // measure itself).
    const { status, bytes } = await new Promise<{ status: number; bytes: number }>((resolve, reject) => {
      http
        .get(`http://127.0.0.1:${port}${location}/result`, (res) => {
          let n = 0;
          res.on('data', (chunk: Buffer) => {
            n += chunk.length;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes: n }));
        })
        .on('error', reject);
    });
    await new Promise((r) => setTimeout(r, 20));
    clearInterval(ticker);
    expect(status).toBe(200);
    expect(bytes).toBeGreaterThan(20_000_000);
    // Serialised in one go (JSON.stringify of 2.25 M numbers), the loop stood still for 1.2 s here; streamed, the
    // longest stall was about 0.13 s (a garbage collection), 0.45 s on a machine loaded ~7 per core.
    expect(longest).toBeLessThan(700);
  }, 60_000);
});
