import { describe, expect, it } from 'vitest';
import {
  costMatrix,
  pointCloud,
  scaleCost,
  sinkhorn,
  sinkhornUnbalanced,
  uniform,
} from '../../src/ot/index.js';
import { gaussianCloud, maxAbsDiff, pot, seededRandom } from './fixtures.js';

describe('sinkhornUnbalanced against POT sinkhorn_unbalanced', () => {
  it.each(pot.unbalanced.map((c: any) => [c.n, c.m, c.reg, c.reg_m, c]) as any[][])(
    '%i x %i, reg %s, reg_m %s',
    (_n, _m, _r, _rm, c: any) => {
      const { C } = scaleCost(costMatrix(pointCloud(c.x, 2), pointCloud(c.y, 2)), 'max');
      const r = sinkhornUnbalanced(c.a, c.b, C, c.reg, c.reg_m, { tol: 1e-14, maxIter: 100_000 });
      expect(r.converged).toBe(true);
      expect(maxAbsDiff(r.plan!, c.plan)).toBeLessThan(1e-8);
      const planMass = c.plan.reduce((s: number, v: number) => s + v, 0);
      expect(r.mass).toBeCloseTo(planMass, 10);
    },
  );
});

describe('sinkhornUnbalanced', () => {
  const random = seededRandom(21);
  const n = 20;
  const C = scaleCost(
    costMatrix(pointCloud(gaussianCloud(n, 2, random), 2), pointCloud(gaussianCloud(n, 2, random, 1), 2)),
    'max',
  ).C;
  const a = uniform(n);
  const b = uniform(n);

  it('regM = Infinity is balanced Sinkhorn (same plan) and large regM approaches it', () => {
    const balanced = sinkhorn(a, b, C, 0.05, { tol: 1e-13, maxIter: 100_000 });
    const infinite = sinkhornUnbalanced(a, b, C, 0.05, Number.POSITIVE_INFINITY, {
      tol: 1e-13,
      maxIter: 100_000,
    });
    expect(maxAbsDiff(infinite.plan!, balanced.plan!)).toBeLessThan(1e-11);
    // The plan moves towards the balanced one as regM grows.
    const distances = [0.1, 1, 10].map((regM) =>
      maxAbsDiff(
        sinkhornUnbalanced(a, b, C, 0.05, regM, { tol: 1e-10, maxIter: 100_000 }).plan!,
        balanced.plan!,
      ),
    );
    expect(distances[1]).toBeLessThan(distances[0]);
    expect(distances[2]).toBeLessThan(distances[1] / 3);
  });

  it('follows POT convention P = exp((f + g - C)/eps) and gives -Infinity potentials on zero weights', () => {
    const a0 = Float64Array.from(a, (v, i) => (i === 0 ? 0 : v));
    const r = sinkhornUnbalanced(a0, b, C, 0.1, 1, { tol: 1e-12 });
    expect(r.f[0]).toBe(Number.NEGATIVE_INFINITY);
    for (let j = 0; j < n; j++) expect(r.plan![j]).toBe(0);
    const i = 3;
    const j = 7;
    expect(r.plan![i * n + j]).toBeCloseTo(Math.exp((r.f[i] + r.g[j] - C.data[i * n + j]) / 0.1), 15);
  });

  it('reports the objective POT minimises, and the plan minimises it', () => {
    const eps = 0.1;
    const regM = 0.5;
    const r = sinkhornUnbalanced(a, b, C, eps, regM, { tol: 1e-13, maxIter: 100_000 });
    const objective = (P: Float64Array) => {
      let value = 0;
      const rows = new Float64Array(n);
      const cols = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          const p = P[i * n + j];
          value += p * C.data[i * n + j] + eps * (p * Math.log(p) - p);
          rows[i] += p;
          cols[j] += p;
        }
      }
      for (let k = 0; k < n; k++) {
        value += regM * (rows[k] * Math.log(rows[k] / a[k]) - rows[k] + a[k]);
        value += regM * (cols[k] * Math.log(cols[k] / b[k]) - cols[k] + b[k]);
      }
      return value;
    };
    expect(r.objective).toBeCloseTo(objective(r.plan!), 12);
    for (const factor of [0.98, 1.02])
      expect(objective(r.plan!.map((p) => p * factor))).toBeGreaterThan(r.objective);
    const bumped = Float64Array.from(r.plan!);
    bumped[5] *= 1.5;
    expect(objective(bumped)).toBeGreaterThan(r.objective);
  });

  it('reports non-convergence with a warning and aborts on signal', () => {
    const r = sinkhornUnbalanced(a, b, C, 1e-3, 1, { maxIter: 3, tol: 1e-15 });
    expect(r.converged).toBe(false);
    expect(r.warnings[0]).toMatch(/did not converge in 3 iterations/);
    const controller = new AbortController();
    controller.abort();
    expect(() => sinkhornUnbalanced(a, b, C, 1e-3, 1, { signal: controller.signal, checkEvery: 1 })).toThrow(
      expect.objectContaining({ name: 'AbortError' }),
    );
  });
});
