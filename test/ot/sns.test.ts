import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { sinkhorn } from '../../src/ot/sinkhorn.js';
import { sinkhornNewtonSparse } from '../../src/ot/sns.js';
import type { CostMatrix } from '../../src/ot/types.js';

interface SinkhornCase {
  n: number;
  m: number;
  eps: number;
  a: number[];
  b: number[];
  C: number[];
  plan: number[];
}

const fixtures: { cases: SinkhornCase[] } = JSON.parse(
  readFileSync(new URL('../fixtures/ot/sns_sinkhorn_log.json', import.meta.url), 'utf8'),
);

function maxAbsDiff(u: ArrayLike<number>, v: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < u.length; i++) d = Math.max(d, Math.abs(u[i] - v[i]));
  return d;
}

/** Random assignment problem: C uniform in [0, 1] (normalised to max 1), uniform marginals. */
function randomAssignment(n: number, seed: number) {
  let s = seed;
  const rand = () => (s = (s * 16807) % 2147483647) / 2147483647;
  const data = Float64Array.from({ length: n * n }, rand);
  let max = 0;
  for (const v of data) max = Math.max(max, v);
  for (let k = 0; k < data.length; k++) data[k] /= max;
  const C: CostMatrix = { n, m: n, data };
  const a = new Float64Array(n).fill(1 / n);
  return { a, b: a.slice(), C };
}

describe('sinkhornNewtonSparse', () => {
  for (const c of fixtures.cases) {
    it(`matches POT sinkhorn_log and our log-domain Sinkhorn at eps=${c.eps} (n=${c.n}, m=${c.m})`, () => {
      const a = Float64Array.from(c.a);
      const b = Float64Array.from(c.b);
      const C = { n: c.n, m: c.m, data: Float64Array.from(c.C) };
      const sns = sinkhornNewtonSparse(a, b, C, c.eps, { tol: 1e-11 });
      expect(sns.converged).toBe(true);
      expect(sns.marginalError!).toBeLessThanOrEqual(1e-11);
      expect(sns.stageIterations!.newton).toBeGreaterThan(0);
      expect(maxAbsDiff(sns.plan!, c.plan)).toBeLessThan(1e-9);
      const ours = sinkhorn(a, b, C, c.eps, { method: 'log', tol: 1e-13, maxIter: 100_000 });
      expect(maxAbsDiff(sns.plan!, ours.plan!)).toBeLessThan(1e-9);
      expect(Math.abs(sns.cost - ours.cost)).toBeLessThan(1e-10);
      expect(Math.abs(sns.objective! - ours.objective)).toBeLessThan(1e-10);
      // Same potential convention as sinkhorn(): P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps).
      let worst = 0;
      for (let i = 0; i < c.n; i++) {
        for (let j = 0; j < c.m; j++) {
          const p = a[i] * b[j] * Math.exp((sns.f![i] + sns.g![j] - C.data[i * c.m + j]) / c.eps);
          worst = Math.max(worst, Math.abs(p - sns.plan![i * c.m + j]));
        }
      }
      expect(worst).toBeLessThan(1e-14);
    });
  }

  it('needs at least 10x fewer iterations than Sinkhorn at eta = 1200 (random assignment, n = 100)', () => {
    const { a, b, C } = randomAssignment(100, 12345);
    const eps = 1 / 1200;
    const tol = 1e-9;
    const sns = sinkhornNewtonSparse(a, b, C, eps, { tol });
    expect(sns.converged).toBe(true);
    const { sinkhorn: stage1, newton } = sns.stageIterations!;
    expect(sns.iterations).toBe(stage1 + newton);
    // Sinkhorn given ten times SNS's total budget still misses the tolerance (measured: it needs more than
    // 200000 iterations here), so the ratio is at least 10 by construction of the assertion.
    const budget = 10 * sns.iterations;
    const plain = sinkhorn(a, b, C, eps, { method: 'log', tol, maxIter: budget });
    expect(plain.converged).toBe(false);
    expect(plain.iterations).toBeGreaterThanOrEqual(budget);
    expect(plain.marginalError).toBeGreaterThan(100 * tol);
    // Both describe the same plan to the accuracy Sinkhorn reached.
    expect(maxAbsDiff(sns.plan!, plain.plan!)).toBeLessThan(10 * plain.marginalError);
  });

  it('reports stages, CG work and an error history that ends below tol', () => {
    const { a, b, C } = randomAssignment(60, 7);
    const messages: number[] = [];
    const res = sinkhornNewtonSparse(a, b, C, 1 / 600, {
      tol: 1e-10,
      sinkhornIterations: 15,
      onProgress: (fraction) => messages.push(fraction),
    });
    expect(res.converged).toBe(true);
    expect(res.stageIterations!.sinkhorn).toBe(15);
    expect(res.stageIterations!.cg).toBeGreaterThan(0);
    expect(res.errorHistory!.at(-1)!.error).toBeLessThanOrEqual(1e-10);
    expect(messages.at(-1)).toBe(1);
    for (const v of messages) expect(v >= 0 && v <= 1).toBe(true);
  });

  it('reports non-convergence with advice when Newton is capped', () => {
    const { a, b, C } = randomAssignment(40, 3);
    const res = sinkhornNewtonSparse(a, b, C, 1 / 1200, { tol: 1e-12, maxNewtonIterations: 2 });
    expect(res.converged).toBe(false);
    expect(res.status).toBe('max_iter_reached');
    expect(res.warnings.join(' ')).toMatch(/raise maxNewtonIterations/);
  });

  it('handles empty bins by solving on the support', () => {
    const c = fixtures.cases[0];
    const a = Float64Array.from([...c.a, 0]);
    const b = Float64Array.from([0, ...c.b]);
    const n = c.n + 1;
    const m = c.m + 1;
    const data = new Float64Array(n * m).fill(0.5);
    for (let i = 0; i < c.n; i++) for (let j = 0; j < c.m; j++) data[i * m + j + 1] = c.C[i * c.m + j];
    const res = sinkhornNewtonSparse(a, b, { n, m, data }, c.eps, { tol: 1e-11 });
    expect(res.converged).toBe(true);
    for (let i = 0; i < c.n; i++) {
      expect(res.plan![i * m]).toBe(0);
      for (let j = 0; j < c.m; j++)
        expect(Math.abs(res.plan![i * m + j + 1] - c.plan[i * c.m + j])).toBeLessThan(1e-9);
    }
    for (let j = 0; j < m; j++) expect(res.plan![(n - 1) * m + j]).toBe(0);
  });

  it('honours an aborted signal', () => {
    const { a, b, C } = randomAssignment(20, 1);
    const controller = new AbortController();
    controller.abort();
    expect(() => sinkhornNewtonSparse(a, b, C, 0.01, { signal: controller.signal })).toThrow(/aborted/);
  });
});
