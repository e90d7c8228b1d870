import { describe, expect, it } from 'vitest';
import {
  type CostKind,
  costFromMatrix,
  costMatrix,
  densePlan,
  emd,
  emd1d,
  emd2,
  emd2_1d,
  OtInputError,
  planMarginals,
  pointCloud,
  uniform,
  wasserstein1d,
} from '../../src/ot/index.js';
import { gaussianCloud, pot, seededRandom } from './fixtures.js';

/** Checks everything an optimal emd answer must satisfy, independently of POT. */
function checkOptimality(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  C: { n: number; m: number; data: Float64Array },
  r: ReturnType<typeof emd>,
) {
  const { n, m } = C;
  expect(r.status).toBe('optimal');
  expect(r.sparsePlan.values.length).toBeLessThanOrEqual(n + m - 1);
  const P = densePlan(r.sparsePlan, n, m);
  const { rows, cols } = planMarginals(P, n, m);
  for (let i = 0; i < n; i++) expect(Math.abs(rows[i] - a[i])).toBeLessThan(1e-12);
  for (let j = 0; j < m; j++) expect(Math.abs(cols[j] - b[j])).toBeLessThan(1e-12);
  let worst = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) worst = Math.max(worst, r.f[i] + r.g[j] - C.data[i * m + j]);
  expect(worst).toBeLessThanOrEqual(1e-10);
  let dual = 0;
  for (let i = 0; i < n; i++) dual += r.f[i] * a[i];
  for (let j = 0; j < m; j++) dual += r.g[j] * b[j];
  expect(Math.abs(dual - r.cost)).toBeLessThan(1e-10 * Math.max(1, Math.abs(r.cost)));
  for (let k = 0; k < r.sparsePlan.values.length; k++) expect(r.sparsePlan.values[k]).toBeGreaterThan(0);
}

describe('emd (network simplex) against POT emd2', () => {
  it.each(pot.emd.map((c: any, k: number) => [k, c.n, c.m, c.cost, c]) as any[][])(
    'problem %i (%i x %i, %s)',
    (_k, _n, _m, _c, c: any) => {
      const C = costMatrix(pointCloud(c.x, c.d), pointCloud(c.y, c.d), { cost: c.cost as CostKind, p: c.p });
      const r = emd(c.a, c.b, C);
      expect(Math.abs(r.cost - c.emd2)).toBeLessThanOrEqual(1e-9 * Math.abs(c.emd2) + 1e-15);
      checkOptimality(c.a, c.b, C, r);
    },
  );

  it('covers zero weights and degenerate (integer) costs in the fixture set', () => {
    expect(pot.emd.some((c: any) => c.a.includes(0) && c.b.includes(0))).toBe(true);
    expect(pot.emd.length).toBe(30);
  });
});

describe('emd', () => {
  it('solves a permutation problem exactly', () => {
    // Points on a line, cost |x - y|^2: the monotone matching is optimal.
    const C = costMatrix(pointCloud([3, 1, 2], 1), pointCloud([20, 10, 30], 1));
    const r = emd(uniform(3), uniform(3), C);
    const P = densePlan(r.sparsePlan, 3, 3);
    expect(P[0 * 3 + 2]).toBeCloseTo(1 / 3, 15);
    expect(P[1 * 3 + 1]).toBeCloseTo(1 / 3, 15);
    expect(P[2 * 3 + 0]).toBeCloseTo(1 / 3, 15);
    expect(emd2(uniform(3), uniform(3), C)).toBeCloseTo((27 ** 2 + 9 ** 2 + 18 ** 2) / 3, 10);
  });

  it('gives dual feasible potentials on zero-weight rows and columns', () => {
    const random = seededRandom(7);
    const n = 40;
    const C = costMatrix(
      pointCloud(gaussianCloud(n, 2, random), 2),
      pointCloud(gaussianCloud(n, 2, random, 1), 2),
    );
    const a = uniform(n).map((v, i) => (i % 4 === 0 ? 0 : v));
    const b = uniform(n).map((v, j) => (j % 5 === 0 ? 0 : v));
    const r = emd(a, b, C, { normalize: true });
    const sa = a.reduce((s, v) => s + v, 0);
    checkOptimality(
      a,
      b.map((v) => (v * sa) / b.reduce((s, w) => s + w, 0)),
      C,
      r,
    );
    for (let k = 0; k < r.sparsePlan.values.length; k++) expect(a[r.sparsePlan.rows[k]]).toBeGreaterThan(0);
  });

  it('centres the duals so that <u, a> = <v, b>', () => {
    const C = costFromMatrix([
      [0, 2],
      [3, 1],
    ]);
    const r = emd([0.3, 0.7], [0.6, 0.4], C);
    const ua = r.f[0] * 0.3 + r.f[1] * 0.7;
    const vb = r.g[0] * 0.6 + r.g[1] * 0.4;
    expect(ua).toBeCloseTo(vb, 12);
    expect(r.cost).toBeCloseTo(0.3 * 0 + 0.3 * 3 + 0.4 * 1, 14);
  });

  it('reports max_iter_reached with a warning when the pivot budget is too small', () => {
    const random = seededRandom(11);
    const n = 60;
    const C = costMatrix(
      pointCloud(gaussianCloud(n, 2, random), 2),
      pointCloud(gaussianCloud(n, 2, random), 2),
    );
    const r = emd(uniform(n), uniform(n), C, { maxIter: 5 });
    expect(r.status).toBe('max_iter_reached');
    expect(r.converged).toBe(false);
    expect(r.iterations).toBe(5);
    expect(r.warnings[0]).toMatch(/raise maxIter/);
  });

  it('throws on unbalanced marginals unless normalize is set', () => {
    const C = costFromMatrix([[1, 2]]);
    expect(() => emd([1], [0.2, 0.3], C)).toThrow(OtInputError);
    expect(emd([1], [0.2, 0.3], C, { normalize: true }).cost).toBeCloseTo(0.4 + 1.2, 14);
    expect(() => emd([1, 0], [1, 0], C)).toThrow(/dimension mismatch/);
  });

  it('throws AbortError when aborted', () => {
    const random = seededRandom(5);
    const n = 200;
    const C = costMatrix(
      pointCloud(gaussianCloud(n, 2, random), 2),
      pointCloud(gaussianCloud(n, 2, random), 2),
    );
    const controller = new AbortController();
    controller.abort();
    expect(() => emd(uniform(n), uniform(n), C, { signal: controller.signal })).toThrow(
      expect.objectContaining({ name: 'AbortError' }),
    );
  });
});

describe('1-D OT against POT', () => {
  it.each(pot.one_d.map((c: any, k: number) => [k, c]) as any[][])('case %i', (_k, c: any) => {
    for (const p of [1, 2]) {
      expect(Math.abs(emd2_1d(c.xa, c.xb, c.a, c.b, p) - c[`emd2_1d_minkowski_p${p}`])).toBeLessThan(1e-12);
      expect(Math.abs(wasserstein1d(c.xa, c.xb, c.a, c.b, p) - c[`wasserstein_1d_p${p}`])).toBeLessThan(
        1e-12,
      );
    }
    expect(Math.abs(emd2_1d(c.xa, c.xb, c.a, c.b, 2) - c.emd2_1d_sqeuclidean)).toBeLessThan(1e-12);
  });

  it('matches the network simplex and returns a valid sparse plan', () => {
    const random = seededRandom(9);
    const xa = gaussianCloud(25, 1, random);
    const xb = gaussianCloud(17, 1, random, 0.5);
    const a = uniform(25);
    const b = new Float64Array(17).map(() => random() + 0.1);
    const sb = b.reduce((s, v) => s + v, 0);
    b.forEach((v, j) => {
      b[j] = v / sb;
    });
    for (const p of [1, 1.5, 3]) {
      const r = emd1d(xa, xb, a, b, p);
      const C = costMatrix(pointCloud(xa, 1), pointCloud(xb, 1), { cost: 'minkowski', p: 1 });
      C.data.forEach((v, k) => {
        C.data[k] = v ** p;
      });
      expect(r.cost).toBeCloseTo(emd(a, b, C).cost, 12);
      expect(r.plan.values.length).toBeLessThanOrEqual(25 + 17 - 1);
      const { rows, cols } = planMarginals(densePlan(r.plan, 25, 17), 25, 17);
      for (let i = 0; i < 25; i++) expect(rows[i]).toBeCloseTo(a[i], 14);
      for (let j = 0; j < 17; j++) expect(cols[j]).toBeCloseTo(b[j], 14);
    }
  });

  it('wasserstein1d with root returns W_p', () => {
    const w2sq = wasserstein1d([0, 1], [3, 4], undefined, undefined, 2);
    expect(w2sq).toBeCloseTo(9, 14);
    expect(wasserstein1d([0, 1], [3, 4], undefined, undefined, 2, { root: true })).toBeCloseTo(3, 14);
  });
});

describe('emd performance smoke test', () => {
  it('solves 300 x 300 well within a second', () => {
    const random = seededRandom(1);
    const n = 300;
    const C = costMatrix(
      pointCloud(gaussianCloud(n, 2, random), 2),
      pointCloud(gaussianCloud(n, 2, random, 1), 2),
    );
    const t = performance.now();
    const r = emd(uniform(n), uniform(n), C);
    expect(performance.now() - t).toBeLessThan(2000);
    checkOptimality(uniform(n), uniform(n), C, r);
  });
});
