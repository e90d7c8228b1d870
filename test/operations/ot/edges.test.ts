/**
 * Optimal transport right at the edges (issue 20), through HTTP: defaults are the library's (a capped simplex
 * or Sinkhorn no longer gives a wrong 200), unbalanced emd1d is refused like every balanced solver, costs near
 * the double limit are solved (POT's answers, test/fixtures/ot/edges.json) or refused with TW_NUMERIC_RANGE,
 * and no answer carries a NaN or an infinity.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OT_DEFAULTS } from '../../../src/ot/defaults.js';
import { emd } from '../../../src/ot/emd.js';
import { costMatrix, pointCloud } from '../../../src/ot/geometry.js';
import { uniform } from '../../../src/ot/marginals.js';
import { toTweedieError } from '../../../src/plugins/app/errors.js';
import { Rng } from '../../../src/util/random.js';
import { makeApp } from '../../helpers.js';

const edges = JSON.parse(readFileSync(new URL('../../fixtures/ot/edges.json', import.meta.url), 'utf8'));

function cloud(rng: Rng, n: number, d: number) {
  return Array.from({ length: n }, () => Array.from({ length: d }, () => rng.normal()));
}

describe('OT at the edges, over REST and GraphQL', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    app = await makeApp({ OT_MAX_ENTRIES: 100_000, OT_MAX_DIM: 16 });
  });
  afterAll(async () => {
    await app.close();
  });
  const post = (url: string, payload: object) => app.inject({ method: 'POST', url, payload });

  it('exact Monge gap with default settings runs the simplex to optimality (150 points in 10-D)', async () => {
    const rng = new Rng(1);
    const x = cloud(rng, 150, 10);
    const Tx = cloud(rng, 150, 10);
    const res = await post('/v1/ot/monge-gap', { x, Tx, exact: true });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.converged).toBe(true);
    expect(body.warnings).toEqual([]);
    const C = costMatrix(pointCloud(x), pointCloud(Tx));
    const exact = emd(uniform(150), uniform(150), C, { maxIter: 1e7 });
    expect(body.transportCost).toBeCloseTo(exact.cost, 10);
    expect(body.gap).toBeGreaterThanOrEqual(0);
  });

  it('Sinkhorn divergence defaults to POT 10000 iterations and matches POT where 1000 do not converge', async () => {
    const d = edges.divergence_long;
    expect(d.error_after_1000).toBeGreaterThan(1e-9);
    const res = await post('/v1/ot/sinkhorn-divergence', { x: d.x, y: d.y, reg: d.reg });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.converged).toBe(true);
    expect(Math.abs(body.value - d.value) / d.value).toBeLessThan(1e-8);
  });

  it('emd1d refuses unequal masses like the other balanced solvers, and rescales with normalize', async () => {
    const payload = { x: [[0], [1]], y: [[0.3]], a: [0.5, 0.5], b: [200], solver: { solver: 'emd1d' } };
    const res = await post('/v1/ot/plan', payload);
    expect(res.statusCode).toBe(422);
    expect(res.json().error.code).toBe('TW_UNBALANCED_MARGINALS');
    const emdRes = await post('/v1/ot/plan', { ...payload, solver: { solver: 'emd' } });
    expect(emdRes.json().error.code).toBe('TW_UNBALANCED_MARGINALS');
    const ok = await post('/v1/ot/plan', { ...payload, normalize: true });
    expect(ok.statusCode).toBe(200);
    expect(ok.json().cost).toBeCloseTo(0.5 * 0.3 ** 2 + 0.5 * 0.7 ** 2, 12);
  });

  it('emd solves finite costs near the double limit (POT: 8.5e307)', async () => {
    const f = edges.emd_near_limit;
    const res = await post('/v1/ot/plan', { C: f.C, solver: { solver: 'emd' }, output: { plan: 'dense' } });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.status).toBe('optimal');
    expect(body.cost).toBe(f.cost);
    expect(body.plan.data).toEqual(f.plan);
    // Finite potentials in cost units: dual feasible, tight on the plan's support.
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 2; j++) {
        const slack = f.C[i][j] - (body.f[i] + body.g[j]);
        expect(slack).toBeGreaterThanOrEqual(-1e-12 * 1.7e308);
        if (f.plan[i * 2 + j] > 0) expect(Math.abs(slack)).toBeLessThanOrEqual(1e-12 * 1.7e308);
      }
    }
  });

  it('Sinkhorn refuses a reg the cost range cannot be represented at, with what to change', async () => {
    const res = await post('/v1/ot/plan', {
      C: [
        [-1.7e308, 1.7e308],
        [1.7e308, 0],
      ],
      solver: { solver: 'sinkhorn', reg: 1 },
    });
    expect(res.statusCode).toBe(422);
    const err = res.json().error;
    expect(err.code).toBe('TW_NUMERIC_RANGE');
    expect(err.message).toMatch(/raise reg/);
    // At a reg that is representable the same costs are solved (rescaled internally) and the answer is finite.
    const ok = await post('/v1/ot/plan', {
      C: [
        [-1.7e308, 1.7e308],
        [1.7e308, 0],
      ],
      solver: { solver: 'sinkhorn', reg: 1e308 },
      output: { plan: 'dense' },
    });
    expect(ok.statusCode).toBe(200);
    const body = ok.json();
    expect(body.converged).toBe(true);
    expect(body.marginalError).toBeLessThan(1e-9);
    expect(Number.isFinite(body.cost)).toBe(true);
  });

  it('coordinates whose cost overflows, overflowing and subnormal masses: 422 TW_NUMERIC_RANGE', async () => {
    const big = await post('/v1/ot/plan', {
      x: [[1e200], [0]],
      y: [[0], [1]],
      solver: { solver: 'sinkhorn', reg: 1 },
    });
    expect(big.statusCode).toBe(422);
    expect(big.json().error.code).toBe('TW_NUMERIC_RANGE');
    expect(big.json().error.message).toMatch(/divide the coordinates/);
    const heavy = await post('/v1/ot/plan', {
      C: [
        [0, 1],
        [1, 0],
      ],
      a: [1e308, 1e308],
      b: [1e308, 1e308],
      solver: { solver: 'emd' },
    });
    expect(heavy.statusCode).toBe(422);
    expect(heavy.json().error.code).toBe('TW_NUMERIC_RANGE');
    expect(heavy.json().error.message).toMatch(/overflows/);
    const tiny = await post('/v1/ot/plan', {
      C: [
        [0, 1],
        [1, 0],
      ],
      a: [5e-324, 5e-324],
      b: [5e-324, 5e-324],
      solver: { solver: 'sinkhorn', reg: 0.1 },
    });
    expect(tiny.statusCode).toBe(422);
    expect(tiny.json().error.code).toBe('TW_NUMERIC_RANGE');
    expect(tiny.json().error.message).toMatch(/multiply the weights/);
  });

  it('unbalanced Sinkhorn with zero weights answers finite potentials (JSON has no -Infinity)', async () => {
    const res = await post('/v1/ot/plan', {
      C: [
        [0, 1, 2],
        [1, 0, 1],
        [2, 1, 0],
      ],
      a: [0, 0.5, 0.5],
      b: [0.5, 0.5, 0],
      solver: { solver: 'unbalanced', reg: 0.1, regM: 1 },
      output: { plan: 'dense' },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    for (const v of [...body.f, ...body.g]) expect(Number.isFinite(v)).toBe(true);
    expect(body.plan.data.slice(0, 3)).toEqual([0, 0, 0]);
  });

  it('empty point clouds get the schema issues, never a JavaScript message', async () => {
    for (const [url, payload] of [
      ['/v1/ot/plan', { x: [], y: [], solver: { solver: 'emd' } }],
      ['/v1/ot/monge-gap', { x: [], Tx: [] }],
      ['/v1/ot/sinkhorn-divergence', { x: [], y: [], reg: 1 }],
    ] as const) {
      const res = await post(url, payload);
      expect(res.statusCode, url).toBe(400);
      const err = res.json().error;
      expect(err.code).toBe('TW_VALIDATION');
      expect(err.message).not.toMatch(/Cannot read|undefined/);
      expect(err.details.map((d: { path: string }) => d.path)).toContain('body.x');
    }
  });

  it('text/plain is 415 on the JSON routes', async () => {
    for (const url of ['/v1/ot/plan', '/v1/ot/sinkhorn-divergence', '/v1/jobs']) {
      const res = await app.inject({
        method: 'POST',
        url,
        headers: { 'content-type': 'text/plain' },
        payload: '{"C":[[0]],"solver":{"solver":"emd"}}',
      });
      expect(res.statusCode, url).toBe(415);
      expect(res.json().error.code).toBe('TW_UNSUPPORTED_MEDIA_TYPE');
    }
  });

  it('OpenAPI and GraphQL show the library defaults', async () => {
    const spec = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const text = JSON.stringify(spec);
    const body = (path: string) =>
      JSON.stringify(spec.paths[path].post.requestBody.content['application/json'].schema);
    expect(body('/v1/ot/sinkhorn-divergence')).toContain(
      `"default":${OT_DEFAULTS.sinkhornDivergence.maxIter}`,
    );
    expect(body('/v1/ot/monge-gap')).toContain(`default ${OT_DEFAULTS.mongeGap.exactMaxIter}`);
    const plan = body('/v1/ot/plan');
    for (const v of [
      OT_DEFAULTS.emd.maxIter,
      OT_DEFAULTS.sns.maxNewtonIterations,
      OT_DEFAULTS.quadratic.maxIter,
    ])
      expect(plan).toContain(`"default":${v}`);
    expect(text).toContain('maxIter');
    const gql = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query:
          '{ a: __type(name: "SinkhornDivergenceInput") { inputFields { name defaultValue description } } ' +
          'b: __type(name: "MongeGapInput") { inputFields { name defaultValue description } } }',
      },
    });
    const types = gql.json().data;
    type Field = { name: string; defaultValue: string | null; description: string | null };
    const field = (t: { inputFields: Field[] }, name: string) =>
      t.inputFields.find((f) => f.name === name) as {
        defaultValue: string | null;
        description: string | null;
      };
    expect(field(types.a, 'maxIter').defaultValue).toBe(String(OT_DEFAULTS.sinkhornDivergence.maxIter));
    expect(Number(field(types.a, 'tol').defaultValue)).toBe(OT_DEFAULTS.sinkhornDivergence.tol);
    expect(Number(field(types.b, 'tol').defaultValue)).toBe(OT_DEFAULTS.mongeGap.tol);
    expect(field(types.b, 'maxIter').description).toContain(String(OT_DEFAULTS.mongeGap.maxIter));
    expect(field(types.b, 'maxIter').description).toContain(String(OT_DEFAULTS.mongeGap.exactMaxIter));
  });
});

describe('a validator that throws', () => {
  it('is a 400 TW_VALIDATION whose message is not the exception (Fastify marks it 500)', () => {
    const err = Object.assign(new TypeError("Cannot read properties of undefined (reading 'length')"), {
      code: 'FST_ERR_VALIDATION',
      statusCode: 500,
      validationContext: 'body',
    });
    const te = toTweedieError(err);
    expect(te.statusCode).toBe(400);
    expect(te.code).toBe('TW_VALIDATION');
    expect(te.message).not.toMatch(/Cannot read/);
  });
});
