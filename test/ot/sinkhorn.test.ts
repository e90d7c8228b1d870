import { describe, expect, it } from 'vitest';
import {
  costMatrix,
  emd,
  KERNEL_MAX_RANGE,
  marginalErrorL1,
  maxCost,
  pointCloud,
  scaleCost,
  sinkhorn,
  sinkhorn2,
  uniform,
} from '../../src/ot/index.js';
import { gaussianCloud, maxAbsDiff, pot, seededRandom } from './fixtures.js';

function problem(n: number, seed: number) {
  const random = seededRandom(seed);
  const C = costMatrix(
    pointCloud(gaussianCloud(n, 2, random), 2),
    pointCloud(gaussianCloud(n, 2, random, 1), 2),
  );
  return scaleCost(C, 'max').C;
}

describe('sinkhorn against POT', () => {
  const cases = pot.sinkhorn.map((c: any) => [c.n, c.m, c.reg, c]);
  it.each(cases as any[][])('%i x %i, reg %s: plans, potentials and sinkhorn2', (_n, _m, _reg, c: any) => {
    const { C } = scaleCost(costMatrix(pointCloud(c.x, 2), pointCloud(c.y, 2)), 'max');
    for (const method of ['log', 'kernel', 'auto'] as const) {
      const r = sinkhorn(c.a, c.b, C, c.reg, { tol: 1e-12, maxIter: 1_000_000, method });
      expect(r.converged).toBe(true);
      expect(maxAbsDiff(r.plan!, c.plan)).toBeLessThan(1e-10);
      expect(maxAbsDiff(r.plan!, c.plan_log)).toBeLessThan(1e-10);
      expect(Math.abs(r.cost - c.sinkhorn2)).toBeLessThan(1e-9 * c.sinkhorn2);
      expect(r.marginalError).toBeLessThan(1e-11);
      // POT's log_u = log a + f/eps up to the (f + k, g - k) freedom: the difference must be one constant.
      const shiftU = c.log_u.map((lu: number, i: number) => lu - (Math.log(c.a[i]) + r.f[i] / c.reg));
      const shiftV = c.log_v.map((lv: number, j: number) => lv - (Math.log(c.b[j]) + r.g[j] / c.reg));
      expect(Math.max(...shiftU) - Math.min(...shiftU)).toBeLessThan(1e-8);
      expect(Math.abs(shiftU[0] + shiftV[0])).toBeLessThan(1e-8);
    }
    expect(
      Math.abs(sinkhorn2(c.a, c.b, C, c.reg, { tol: 1e-12, maxIter: 1_000_000 }) - c.sinkhorn2),
    ).toBeLessThan(1e-9 * c.sinkhorn2);
  });

  it('at reg 1e-3 of max C the log-domain linear cost is within 1% of emd', () => {
    const c = pot.sinkhorn_small_reg;
    const { C } = scaleCost(costMatrix(pointCloud(c.x, 2), pointCloud(c.y, 2)), 'max');
    const r = sinkhorn(c.a, c.b, C, c.reg, { tol: 1e-9, maxIter: 100_000, epsilonScaling: true });
    expect(r.method).toBe('log');
    expect(r.converged).toBe(true);
    expect(Math.abs(r.cost - c.emd2_normalized) / c.emd2_normalized).toBeLessThan(0.01);
    expect(Math.abs(emd(c.a, c.b, C).cost - c.emd2_normalized)).toBeLessThan(1e-12);
    expect(r.cost).toBeGreaterThanOrEqual(c.emd2_normalized - 1e-9);
  });
});

describe('sinkhorn', () => {
  it('chooses the kernel domain only under the documented range rule', () => {
    const C = problem(30, 1);
    expect(sinkhorn(uniform(30), uniform(30), C, 1 / KERNEL_MAX_RANGE + 1e-9).method).toBe('kernel');
    expect(sinkhorn(uniform(30), uniform(30), C, 1 / KERNEL_MAX_RANGE - 1e-6, { maxIter: 50 }).method).toBe(
      'log',
    );
  });

  it('objective equals <C,P> + eps KL(P | ab^T) and the dual value at convergence', () => {
    const C = problem(25, 2);
    const a = uniform(25);
    const eps = 0.05;
    const r = sinkhorn(a, a, C, eps, { tol: 1e-13, maxIter: 100_000 });
    let kl = 0;
    let cost = 0;
    for (let k = 0; k < r.plan!.length; k++) {
      const p = r.plan![k];
      cost += p * C.data[k];
      kl += p * Math.log(p / (1 / 625)) - p + 1 / 625;
    }
    expect(r.cost).toBeCloseTo(cost, 13);
    expect(r.objective).toBeCloseTo(cost + eps * kl, 12);
    const dual = r.f.reduce((s, v, i) => s + v * a[i], 0) + r.g.reduce((s, v, j) => s + v * a[j], 0);
    expect(r.objective).toBeCloseTo(dual, 11);
  });

  it('stopped by maxIter reports converged=false and a warning that says what to change', () => {
    const C = problem(40, 3);
    const r = sinkhorn(uniform(40), uniform(40), C, 1e-3, { maxIter: 20, tol: 1e-12 });
    expect(r.converged).toBe(false);
    expect(r.status).toBe('max_iter_reached');
    expect(r.iterations).toBe(20);
    expect(r.warnings[0]).toMatch(/did not converge in 20 iterations \(marginal error .* > tol 1\.00e-12\)/);
    expect(r.warnings[0]).toMatch(/raise maxIter or reg, or enable epsilon scaling/);
  });

  it('with epsilon scaling on, the warning does not suggest it', () => {
    const C = problem(40, 3);
    const r = sinkhorn(uniform(40), uniform(40), C, 1e-3, { maxIter: 20, tol: 1e-12, epsilonScaling: true });
    expect(r.converged).toBe(false);
    expect(r.warnings[0]).toMatch(/raise maxIter or reg$/);
    expect(r.warnings.join(' ')).not.toMatch(/epsilon scaling/);
  });

  // README's example: two groups of rows and columns ({0} x {0, 1} and {1, 2} x {2}) that trade only plan entries
  // of ~5e-10. Carried unchanged from one epsilon to the next, the potentials shift the groups apart and 1000
  // iterations left a marginal error of 2.1e-8; extrapolated across the stages, it converges.
  it.each(['log', 'auto'] as const)(
    'epsilon scaling converges on weakly linked blocks (README example, %s)',
    (method) => {
      const C = { n: 3, m: 3, data: Float64Array.from([0, 1, 4, 1, 0, 1, 4, 1, 0]) };
      const a = [0.5, 0.25, 0.25];
      const b = [0.25, 0.25, 0.5];
      const r = sinkhorn(a, b, C, 0.05, { method, epsilonScaling: true });
      expect(r.warnings).toEqual([]);
      expect(r.status).toBe('converged');
      expect(r.marginalError).toBeLessThanOrEqual(1e-9);
      expect(r.iterations).toBeLessThan(1000);
      // Carried unchanged from stage to stage, the potentials leave the groups apart: the stall it had.
      const carried = sinkhorn(a, b, C, 0.05, { method, epsilonScaling: { warmStart: 'carry' } });
      expect(carried.status).toBe('max_iter_reached');
      expect(carried.marginalError).toBeGreaterThan(1e-8);
      // The same plan as a direct solve run long enough (it needs ~1e9 iterations to meet 1e-9 itself).
      const direct = sinkhorn(a, b, C, 0.05, { method: 'log', maxIter: 200_000, tol: 0 });
      expect(maxAbsDiff(r.plan!, direct.plan!)).toBeLessThan(1e-5);
    },
  );

  it('aborting via signal throws AbortError, checked every checkEvery iterations', () => {
    const C = problem(40, 4);
    const controller = new AbortController();
    let calls = 0;
    const run = () =>
      sinkhorn(uniform(40), uniform(40), C, 1e-3, {
        maxIter: 10_000,
        tol: 1e-15,
        checkEvery: 5,
        signal: controller.signal,
        onProgress: (fraction) => {
          calls++;
          expect(fraction).toBeGreaterThanOrEqual(0);
          if (calls === 3) controller.abort();
        },
      });
    expect(run).toThrow(expect.objectContaining({ name: 'AbortError' }));
    expect(calls).toBe(3);
  });

  it('eps = 1e-4 * max C in the log domain gives finite results', () => {
    const C = problem(50, 5);
    const a = uniform(50);
    const r = sinkhorn(a, a, C, 1e-4, { maxIter: 3000, method: 'log', epsilonScaling: true });
    expect(r.method).toBe('log');
    // Convergence at this eps takes far more iterations; the point is stability, and rows are exact anyway.
    for (let i = 0; i < 50; i++) {
      let row = 0;
      for (let j = 0; j < 50; j++) row += r.plan![i * 50 + j];
      expect(row).toBeCloseTo(a[i], 12); // (f + g - C)/eps ~ 1e4 here: exp loses ~1e-12 relative
    }
    expect(r.marginalError).toBeLessThan(1e-2);
    for (const v of r.f) expect(Number.isFinite(v)).toBe(true);
    for (const v of r.g) expect(Number.isFinite(v)).toBe(true);
    for (const v of r.plan!) expect(Number.isFinite(v)).toBe(true);
    expect(Number.isFinite(r.cost)).toBe(true);
    expect(Number.isFinite(r.objective)).toBe(true);
    const exact = emd(a, a, C).cost;
    expect(Math.abs(r.cost - exact) / exact).toBeLessThan(0.02);
  });

  it('forcing the kernel domain at tiny eps falls back to the log domain instead of returning NaN', () => {
    const C = problem(30, 6);
    const r = sinkhorn(uniform(30), uniform(30), C, 3e-4, { method: 'kernel', maxIter: 2000 });
    expect(r.method).toBe('log');
    expect(Number.isFinite(r.cost)).toBe(true);
    expect(r.plan!.every(Number.isFinite)).toBe(true);
    expect(r.warnings.join(' ')).toMatch(/kernel domain forced .* > 250/);
    expect(r.warnings.join(' ')).toMatch(/switched to the log domain/);
  });

  it('epsilon scaling reaches the same plan as a direct solve, and in fewer iterations at small eps', () => {
    const C = problem(60, 7);
    const a = uniform(60);
    const direct = sinkhorn(a, a, C, 2e-3, { tol: 1e-10, maxIter: 200_000 });
    const scaled = sinkhorn(a, a, C, 2e-3, { tol: 1e-10, maxIter: 200_000, epsilonScaling: { factor: 0.5 } });
    expect(direct.converged && scaled.converged).toBe(true);
    expect(maxAbsDiff(direct.plan!, scaled.plan!)).toBeLessThan(1e-8);
    expect(scaled.iterations).toBeLessThan(direct.iterations);
  });

  it('records an error history at each check and reports the exact final marginal error', () => {
    const C = problem(20, 8);
    const a = uniform(20);
    const r = sinkhorn(a, a, C, 0.05, { tol: 1e-10, recordErrors: true, checkEvery: 3 });
    expect(r.errorHistory!.length).toBeGreaterThan(1);
    expect(r.errorHistory!.every((e) => e.iteration % 3 === 0)).toBe(true);
    const errors = r.errorHistory!.map((e) => e.error);
    expect(errors[errors.length - 1]).toBeLessThan(1e-10);
    expect(errors[0]).toBeGreaterThan(errors[errors.length - 1]);
    expect(r.marginalError).toBeCloseTo(marginalErrorL1(r.plan!, a, a), 15);
  });

  it('handles zero weights: empty rows/columns and finite potentials', () => {
    const C = problem(20, 9);
    const a = uniform(20).map((v, i) => (i < 5 ? 0 : v * (20 / 15)));
    const b = uniform(20);
    for (const method of ['log', 'kernel'] as const) {
      const r = sinkhorn(a, b, C, 0.05, { tol: 1e-11, maxIter: 10_000, method });
      expect(r.converged).toBe(true);
      for (let j = 0; j < 20; j++) expect(r.plan![j]).toBe(0);
      for (const v of r.f) expect(Number.isFinite(v)).toBe(true);
    }
  });

  it('the WebAssembly SIMD and plain JavaScript loops give the same answer in both domains', () => {
    const C = problem(33, 12);
    const a = uniform(33);
    for (const method of ['kernel', 'log'] as const) {
      const fast = sinkhorn(a, a, C, 0.02, { tol: 1e-12, maxIter: 100_000, method, simd: true });
      const plain = sinkhorn(a, a, C, 0.02, { tol: 1e-12, maxIter: 100_000, method, simd: false });
      expect(fast.iterations).toBe(plain.iterations);
      expect(maxAbsDiff(fast.plan!, plain.plan!)).toBeLessThan(1e-14);
      expect(Math.abs(fast.cost - plain.cost)).toBeLessThan(1e-13);
    }
  });

  it('uses raw cost units: reg scales with the cost', () => {
    const C = problem(15, 10);
    const scaled = { ...C, data: C.data.map((v) => v * maxCost(C) * 7) };
    const a = uniform(15);
    const r1 = sinkhorn(a, a, C, 0.1, { tol: 1e-12 });
    const r2 = sinkhorn(a, a, scaled, 0.1 * maxCost(scaled), { tol: 1e-12 });
    expect(maxAbsDiff(r1.plan!, r2.plan!)).toBeLessThan(1e-12);
  });
});
