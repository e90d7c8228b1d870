import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { quadraticOt } from '../../src/ot/quadratic.js';
import { sparseOt, topKIndices } from '../../src/ot/sparse.js';
import { OtInputError } from '../../src/ot/types.js';

interface SmoothCase {
  n: number;
  m: number;
  reg: number;
  a: number[];
  b: number[];
  C: number[];
}

const fixtures: { cases: SmoothCase[] } = JSON.parse(
  readFileSync(new URL('../fixtures/ot/smooth_l2.json', import.meta.url), 'utf8'),
);

function problemOf(c: SmoothCase) {
  return {
    a: Float64Array.from(c.a),
    b: Float64Array.from(c.b),
    C: { n: c.n, m: c.m, data: Float64Array.from(c.C) },
  };
}

function nonzerosPerColumn(plan: Float64Array, n: number, m: number): number[] {
  return Array.from({ length: m }, (_, j) => {
    let z = 0;
    for (let i = 0; i < n; i++) if (plan[i * m + j] !== 0) z++;
    return z;
  });
}

function nonzerosPerRow(plan: Float64Array, n: number, m: number): number[] {
  return Array.from({ length: n }, (_, i) => {
    let z = 0;
    for (let j = 0; j < m; j++) if (plan[i * m + j] !== 0) z++;
    return z;
  });
}

describe('topKIndices', () => {
  it('selects the k largest entries above the floor, ties broken by index', () => {
    const values = Float64Array.from([0.3, -1, 0.9, 0.3, 0.5, 0.9, 0.1, 2]);
    const selected = new Int32Array(8);
    const order = new Int32Array(8);
    const count = topKIndices(values, 8, 4, 0, selected, order);
    expect(count).toBe(4);
    expect(Array.from(selected.subarray(0, 4)).sort()).toEqual([2, 4, 5, 7]);
    const five = topKIndices(values, 8, 5, 0, selected, order);
    expect(Array.from(selected.subarray(0, five)).sort()).toEqual([0, 2, 4, 5, 7]);
    // Fewer positives than k: all of them.
    expect(topKIndices(values, 8, 8, 0, selected, order)).toBe(7);
  });

  it('matches a full sort on random data', () => {
    let seed = 3;
    const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
    for (let trial = 0; trial < 50; trial++) {
      const len = 1 + (trial % 17);
      const values = Float64Array.from({ length: len }, rand);
      const k = 1 + (trial % len);
      const selected = new Int32Array(len);
      const count = topKIndices(values, len, k, Number.NEGATIVE_INFINITY, selected, new Int32Array(len));
      const expected = Array.from(values.keys())
        .sort((p, q) => values[q] - values[p])
        .slice(0, k)
        .sort((p, q) => p - q);
      expect(Array.from(selected.subarray(0, count)).sort((p, q) => p - q)).toEqual(expected);
    }
  });
});

describe('sparseOt', () => {
  const big = fixtures.cases.find((x) => x.n === 30 && x.reg === 0.1)!;
  const { a, b, C } = problemOf(big);
  const { n, m } = C;

  for (const formulation of ['dual', 'semiDual'] as const) {
    for (const side of ['columns', 'rows'] as const) {
      it(`with k >= n reproduces quadratic OT (${formulation}, ${side})`, () => {
        const quadratic = quadraticOt(a, b, C, big.reg, { formulation });
        const sparse = sparseOt(a, b, C, big.reg, n + 5, { formulation, side });
        expect(sparse.converged).toBe(true);
        let worst = 0;
        for (let i = 0; i < n * m; i++)
          worst = Math.max(worst, Math.abs(sparse.plan![i] - quadratic.plan![i]));
        expect(worst).toBeLessThan(1e-6);
        expect(Math.abs(sparse.cost - quadratic.cost)).toBeLessThan(1e-8);
      });
    }
  }

  it('binds: the unconstrained quadratic plan has columns and rows with more than 2 nonzeros', () => {
    // Guards the cardinality tests below against being vacuous.
    const quadratic = quadraticOt(a, b, C, big.reg);
    expect(Math.max(...nonzerosPerColumn(quadratic.plan!, n, m))).toBeGreaterThan(2);
    expect(Math.max(...nonzerosPerRow(quadratic.plan!, n, m))).toBeGreaterThan(2);
  });

  for (const formulation of ['dual', 'semiDual'] as const) {
    for (const k of [1, 2, 3]) {
      it(`keeps at most k=${k} nonzeros per column (${formulation})`, () => {
        const res = sparseOt(a, b, C, big.reg, k, { formulation });
        const counts = nonzerosPerColumn(res.plan!, n, m);
        for (const z of counts) expect(z).toBeLessThanOrEqual(k);
        expect(Math.max(...counts)).toBe(k);
        expect(res.sparsePlan!.values.length).toBe(counts.reduce((s, z) => s + z, 0));
        for (let r = 0; r < res.sparsePlan!.values.length; r++) {
          const i = res.sparsePlan!.rows[r];
          const j = res.sparsePlan!.cols[r];
          expect(res.plan![i * m + j]).toBe(res.sparsePlan!.values[r]);
        }
        expect(res.plan!.every((p) => p >= 0)).toBe(true);
      });

      it(`keeps at most k=${k} nonzeros per row with side='rows' (${formulation})`, () => {
        const res = sparseOt(a, b, C, big.reg, k, { formulation, side: 'rows' });
        for (const z of nonzerosPerRow(res.plan!, n, m)) expect(z).toBeLessThanOrEqual(k);
      });
    }
  }

  it('semi-dual meets the constrained side exactly', () => {
    const cols = sparseOt(a, b, C, big.reg, 3, { formulation: 'semiDual' });
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += cols.plan![i * m + j];
      expect(Math.abs(s - b[j])).toBeLessThan(1e-14);
    }
    const rows = sparseOt(a, b, C, big.reg, 3, { formulation: 'semiDual', side: 'rows' });
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < m; j++) s += rows.plan![i * m + j];
      expect(Math.abs(s - a[i])).toBeLessThan(1e-14);
    }
  });

  it('approaches the marginals as k grows, and reports the gap it leaves', () => {
    const errors = [2, 6, n].map((k) => sparseOt(a, b, C, big.reg, k).marginalError!);
    expect(errors[2]).toBeLessThan(1e-7);
    expect(errors[1]).toBeLessThan(errors[0]);
    const tight = sparseOt(a, b, C, big.reg, 2);
    expect(tight.warnings.join(' ')).toMatch(/marginal error/);
    // Potentials explain the plan on its support: P_ij = (f_i + g_j - C_ij) / reg.
    for (let r = 0; r < tight.sparsePlan!.values.length; r++) {
      const i = tight.sparsePlan!.rows[r];
      const j = tight.sparsePlan!.cols[r];
      const predicted = (tight.f![i] + tight.g![j] - C.data[i * m + j]) / big.reg;
      expect(Math.abs(predicted - tight.sparsePlan!.values[r])).toBeLessThan(1e-12);
    }
  });

  it('rejects k that cannot cover every row, and non-integer k', () => {
    const thin = problemOf(fixtures.cases.find((x) => x.n === 20 && x.m === 15)!);
    expect(() => sparseOt(thin.a, thin.b, thin.C, 0.1, 1)).toThrow(OtInputError);
    expect(() => sparseOt(a, b, C, 0.1, 1.5)).toThrow(/positive integer/);
  });
});
