/**
 * Optimal transport through REST and GraphQL: every solver answers, answers agree with the library and between
 * the two protocols, and every bad input gets its coded error with a path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emd } from '../../../src/ot/emd.js';
import { costFromMatrix } from '../../../src/ot/geometry.js';
import { Rng } from '../../../src/util/random.js';
import { makeApp } from '../../helpers.js';

function cloud(rng: Rng, n: number, d: number, shift = 0) {
  return Array.from({ length: n }, () => Array.from({ length: d }, () => rng.normal() + shift));
}

describe('OT over REST', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    app = await makeApp({ OT_MAX_ENTRIES: 10_000, OT_MAX_DIM: 16 });
  });
  afterAll(async () => {
    await app.close();
  });
  const post = (url: string, payload: object) => app.inject({ method: 'POST', url, payload });

  it('emd on a cost matrix matches the library and respects the marginals', async () => {
    const C = [
      [0, 1, 2],
      [1, 0, 1],
      [2, 1, 0],
    ];
    const a = [0.5, 0.3, 0.2];
    const b = [0.2, 0.3, 0.5];
    const res = await post('/v1/ot/plan', { C, a, b, solver: { solver: 'emd' }, output: { plan: 'sparse' } });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    const lib = emd(a, b, costFromMatrix(C));
    expect(body.cost).toBeCloseTo(lib.cost, 12);
    expect(body.status).toBe('optimal');
    expect(body.plan.format).toBe('sparse');
    expect(body.plan.nnz).toBeLessThanOrEqual(5);
    const rowSums = [0, 0, 0];
    const colSums = [0, 0, 0];
    body.plan.rows.forEach((r: number, k: number) => {
      rowSums[r] += body.plan.values[k];
      colSums[body.plan.cols[k]] += body.plan.values[k];
    });
    for (let i = 0; i < 3; i++) expect(rowSums[i]).toBeCloseTo(a[i], 12);
    for (let j = 0; j < 3; j++) expect(colSums[j]).toBeCloseTo(b[j], 12);
    expect(body.f).toHaveLength(3);
    expect(body.g).toHaveLength(3);
  });

  it('every solver answers on point clouds with a sensible cost', async () => {
    const rng = new Rng(7);
    const x = cloud(rng, 20, 2);
    const y = cloud(rng, 25, 2, 1);
    const exact = (await post('/v1/ot/distance', { x, y, solver: { solver: 'emd' } })).json();
    expect(exact.plan).toBeUndefined();
    const solvers = [
      { solver: 'sinkhorn', reg: 0.05 },
      { solver: 'sinkhorn', reg: 0.05, epsilonScaling: true, method: 'log' },
      { solver: 'sns', reg: 0.05 },
      { solver: 'quadratic', reg: 0.5 },
      { solver: 'sparse', reg: 0.5, k: 2 },
      { solver: 'unbalanced', reg: 0.05, regM: 1000 },
    ];
    for (const s of solvers) {
      const res = await post('/v1/ot/plan', { x, y, scaling: 'none', solver: s, output: { plan: 'dense' } });
      expect(res.statusCode, JSON.stringify(s) + res.body).toBe(200);
      const body = res.json();
      expect(body.plan.format).toBe('dense');
      expect(body.plan.data).toHaveLength(20 * 25);
      // Regularised costs are close to, and (balanced) not below, the exact optimum.
      expect(body.cost).toBeGreaterThan(exact.cost * 0.9);
      expect(body.cost).toBeLessThan(exact.cost * 1.3);
      if (s.solver === 'sparse') {
        for (let j = 0; j < 25; j++) {
          let nnz = 0;
          for (let i = 0; i < 20; i++) if (body.plan.data[i * 25 + j] > 0) nnz++;
          expect(nnz).toBeLessThanOrEqual(2);
        }
      }
    }
  });

  it('emd1d on 1-D points', async () => {
    const res = await post('/v1/ot/plan', {
      x: [[0], [1], [2]],
      y: [[0.5], [1.5], [2.5]],
      p: 1,
      solver: { solver: 'emd1d' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().cost).toBeCloseTo(0.5, 12);
  });

  it('reports non-convergence with a warning', async () => {
    const rng = new Rng(3);
    const res = await post('/v1/ot/plan', {
      x: cloud(rng, 30, 2),
      y: cloud(rng, 30, 2),
      solver: { solver: 'sinkhorn', reg: 1e-3, maxIter: 5, checkEvery: 1, method: 'log' },
      output: { plan: 'none', errorHistory: true },
    });
    const body = res.json();
    expect(res.statusCode).toBe(200);
    expect(body.converged).toBe(false);
    expect(body.warnings.join(' ')).toMatch(/maxIter/);
    expect(body.errorHistory.length).toBeGreaterThan(0);
  });

  it('sinkhorn divergence and Monge gap', async () => {
    const rng = new Rng(11);
    const x = cloud(rng, 15, 2);
    const same = await post('/v1/ot/sinkhorn-divergence', { x, y: x, reg: 0.1 });
    expect(same.statusCode).toBe(200);
    expect(Math.abs(same.json().raw)).toBeLessThan(1e-8);
    const far = await post('/v1/ot/sinkhorn-divergence', { x, y: x.map((p) => [p[0] + 3, p[1]]), reg: 0.1 });
    expect(far.json().value).toBeGreaterThan(5);
    // A translation is an OT map for the squared Euclidean cost: exact gap 0.
    const gap = await post('/v1/ot/monge-gap', { x, Tx: x.map((p) => [p[0] + 1, p[1] - 2]), exact: true });
    expect(gap.statusCode).toBe(200);
    expect(Math.abs(gap.json().gap)).toBeLessThan(1e-9);
    // A reflection of half the points is not.
    const bad = await post('/v1/ot/monge-gap', {
      x,
      Tx: x.map((p, i) => (i % 2 ? [-p[0], p[1]] : p)),
      exact: true,
    });
    expect(bad.json().gap).toBeGreaterThan(1e-3);
  });

  it('refuses bad input with coded errors and paths', async () => {
    const cases: [object, number, string, RegExp?][] = [
      [{ C: [[0, 1], [1]], solver: { solver: 'emd' } }, 400, 'TW_VALIDATION', /C\.1/],
      [
        {
          C: [
            [0, 1],
            [1, 0],
          ],
          a: [0.5, -0.5],
          solver: { solver: 'emd' },
        },
        400,
        'TW_VALIDATION',
        /a\.1/,
      ],
      [
        {
          C: [
            [0, 1],
            [1, 0],
          ],
          a: ['NaN', 1],
          solver: { solver: 'emd' },
        },
        400,
        'TW_VALIDATION',
        /a\.0/,
      ],
      [
        {
          C: [
            [0, 1],
            [1, 0],
          ],
          solver: { solver: 'sinkhorn' },
        },
        400,
        'TW_VALIDATION',
        /reg/,
      ],
      [
        {
          C: [
            [0, 1],
            [1, 0],
          ],
          solver: { solver: 'magic' },
        },
        400,
        'TW_VALIDATION',
      ],
      [{ x: [[0, 0]], y: [[0]], solver: { solver: 'emd' } }, 400, 'TW_VALIDATION', /dimension/],
      [
        {
          C: [
            [0, 1],
            [1, 0],
          ],
          a: [0.5, 0.5],
          b: [1, 1],
          solver: { solver: 'emd' },
        },
        422,
        'TW_UNBALANCED_MARGINALS',
        /sum/,
      ],
      [
        { C: Array.from({ length: 101 }, () => Array(100).fill(1)), solver: { solver: 'emd' } },
        413,
        'TW_PROBLEM_TOO_LARGE',
        /OT_MAX_ENTRIES/,
      ],
      [
        { x: [Array(17).fill(0)], y: [Array(17).fill(1)], solver: { solver: 'emd' } },
        413,
        'TW_PROBLEM_TOO_LARGE',
        /OT_MAX_DIM/,
      ],
    ];
    for (const [payload, status, code, detail] of cases) {
      const res = await post('/v1/ot/plan', payload);
      expect(res.statusCode, JSON.stringify(payload).slice(0, 80) + res.body).toBe(status);
      expect(res.json().error.code).toBe(code);
      if (detail) expect(JSON.stringify(res.json().error)).toMatch(detail);
    }
    // normalize: true accepts unequal masses.
    const ok = await post('/v1/ot/plan', {
      C: [
        [0, 1],
        [1, 0],
      ],
      a: [0.5, 0.5],
      b: [1, 1],
      normalize: true,
      solver: { solver: 'emd' },
    });
    expect(ok.statusCode).toBe(200);
  });

  it('documents every solver parameter in OpenAPI', async () => {
    const spec = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const text = JSON.stringify(spec.paths['/v1/ot/plan']);
    for (const word of ['sinkhorn', 'epsilonScaling', 'sparsity', 'regM', 'maxIter', 'threshold'])
      expect(text).toContain(word);
  });
});

describe('OT over GraphQL', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    app = await makeApp();
  });
  afterAll(async () => {
    await app.close();
  });
  const gql = (query: string, variables?: object) =>
    app.inject({ method: 'POST', url: '/graphql', payload: { query, variables } });

  it('otPlan gives the same answer as REST', async () => {
    const C = [
      [0, 2, 1],
      [2, 0, 1],
    ];
    const rest = (
      await app.inject({
        method: 'POST',
        url: '/v1/ot/plan',
        payload: { C, solver: { solver: 'sinkhorn', reg: 0.1 }, output: { plan: 'dense' } },
      })
    ).json();
    const res = await gql(
      'query($C: [[Float!]!]) { otPlan(input: { C: $C, solver: SINKHORN, params: { reg: 0.1 }, plan: DENSE }) { cost converged iterations plan { format data } f g } }',
      { C },
    );
    expect(res.statusCode).toBe(200);
    const data = res.json().data.otPlan;
    expect(data.cost).toBe(rest.cost);
    expect(data.plan.data).toEqual(rest.plan.data);
    expect(data.f).toEqual(rest.f);
  });

  it('otDistance, sinkhornDivergence and mongeGap answer', async () => {
    const res = await gql(
      '{ otDistance(input: { x: [[0],[1]], y: [[1],[2]], solver: EMD }) { cost plan { format } } ' +
        'sinkhornDivergence(input: { x: [[0,0],[1,1]], y: [[0,0],[1,1]], reg: 0.1 }) { raw } ' +
        'mongeGap(input: { x: [[0,0],[1,1]], Tx: [[1,0],[2,1]], exact: true }) { gap displacement } }',
    );
    const data = res.json().data;
    expect(data.otDistance.cost).toBeCloseTo(1, 12);
    expect(data.otDistance.plan).toBeNull();
    expect(Math.abs(data.sinkhornDivergence.raw)).toBeLessThan(1e-8);
    expect(data.mongeGap.gap).toBeCloseTo(0, 9);
    expect(data.mongeGap.displacement).toBeCloseTo(1, 12);
  });

  it('maps validation and domain errors to extensions.code', async () => {
    const bad = await gql('{ otPlan(input: { C: [[0,1],[1]], solver: EMD }) { cost } }');
    expect(bad.json().errors[0].extensions.code).toBe('TW_VALIDATION');
    const unbalanced = await gql(
      '{ otPlan(input: { C: [[0,1],[1,0]], a: [1,1], b: [0.5,0.5], solver: EMD }) { cost } }',
    );
    expect(unbalanced.json().errors[0].extensions.code).toBe('TW_UNBALANCED_MARGINALS');
  });
});
