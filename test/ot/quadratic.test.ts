import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { quadraticOt, simplexThreshold } from '../../src/ot/quadratic.js';
import { OtInputError } from '../../src/ot/types.js';

interface SmoothCase {
  n: number;
  m: number;
  reg: number;
  a: number[];
  b: number[];
  C: number[];
  dual: { plan: number[]; cost: number; objective: number };
  semiDual: { plan: number[]; cost: number; objective: number };
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

function maxAbsDiff(u: ArrayLike<number>, v: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < u.length; i++) d = Math.max(d, Math.abs(u[i] - v[i]));
  return d;
}

describe('simplexThreshold', () => {
  it('gives the projection onto the simplex', () => {
    const v = Float64Array.from([0.5, 1.2, -1, 0.9]);
    const theta = simplexThreshold(v, 4, 1, new Float64Array(4));
    const projected = Array.from(v, (x) => Math.max(x - theta, 0));
    expect(projected.reduce((s, x) => s + x, 0)).toBeCloseTo(1, 14);
    // 1.2 - theta and 0.9 - theta are positive, 0.5 - theta is not: theta = (1.2 + 0.9 - 1) / 2.
    expect(theta).toBeCloseTo(0.55, 14);
  });
});

describe('quadraticOt against POT 0.8.2 ot.smooth (reg_type=l2)', () => {
  for (const c of fixtures.cases) {
    for (const formulation of ['dual', 'semiDual'] as const) {
      it(`${formulation} n=${c.n} m=${c.m} reg=${c.reg}`, () => {
        const { a, b, C } = problemOf(c);
        const res = quadraticOt(a, b, C, c.reg, { formulation });
        const ref = c[formulation];
        expect(res.converged).toBe(true);
        expect(res.warnings).toEqual([]);
        expect(Math.abs(res.cost - ref.cost)).toBeLessThan(1e-5);
        expect(maxAbsDiff(res.plan!, ref.plan)).toBeLessThan(1e-4);
        // Ours solves at least as well as POT's L-BFGS-B (up to its stopping noise).
        expect(res.objective!).toBeLessThan(ref.objective + 1e-7);
        expect(res.marginalError!).toBeLessThan(1e-7);
        // Potentials reproduce the plan: P = [f + g - C]_+ / reg.
        let worst = 0;
        for (let i = 0; i < c.n; i++) {
          for (let j = 0; j < c.m; j++) {
            const s = res.f![i] + res.g![j] - C.data[i * c.m + j];
            worst = Math.max(worst, Math.abs(Math.max(s, 0) / c.reg - res.plan![i * c.m + j]));
          }
        }
        expect(worst).toBeLessThan(1e-9);
      });
    }
  }
});

describe('quadraticOt properties', () => {
  const c = fixtures.cases.find((x) => x.n === 30 && x.reg === 0.01)!;
  const { a, b, C } = problemOf(c);

  it('semi-dual meets the column marginals to rounding, and agrees with the dual', () => {
    const semi = quadraticOt(a, b, C, c.reg, { formulation: 'semiDual' });
    const dual = quadraticOt(a, b, C, c.reg, { formulation: 'dual' });
    for (let j = 0; j < c.m; j++) {
      let s = 0;
      for (let i = 0; i < c.n; i++) s += semi.plan![i * c.m + j];
      expect(Math.abs(s - b[j])).toBeLessThan(1e-14);
    }
    expect(maxAbsDiff(semi.plan!, dual.plan!)).toBeLessThan(1e-6);
    expect(Math.abs(semi.cost - dual.cost)).toBeLessThan(1e-8);
  });

  it('gives a sparse plan at small reg (unlike entropic OT)', () => {
    const res = quadraticOt(a, b, C, c.reg);
    const zeros = res.plan!.filter((p) => p === 0).length;
    expect(zeros).toBeGreaterThan(0.5 * c.n * c.m);
  });

  it('warns when it runs out of iterations', () => {
    const res = quadraticOt(a, b, C, c.reg, { maxIter: 5 });
    expect(res.converged).toBe(false);
    expect(res.status).toBe('max_iter_reached');
    expect(res.warnings[0]).toMatch(/raise maxIter/);
  });

  it('rejects unbalanced marginals and bad reg', () => {
    const heavier = Float64Array.from(a, (v) => 2 * v);
    expect(() => quadraticOt(heavier, b, C, 0.1)).toThrow(OtInputError);
    expect(() => quadraticOt(a, b, C, 0)).toThrow(/reg/);
  });

  it('honours an aborted signal', () => {
    const controller = new AbortController();
    controller.abort();
    expect(() => quadraticOt(a, b, C, 0.1, { signal: controller.signal })).toThrow(/aborted/);
  });
});
