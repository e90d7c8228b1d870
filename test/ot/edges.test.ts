/**
 * The library at the edges of double precision (issue 20): exact power-of-two rescaling of large costs, coded
 * range errors instead of NaN/Infinity, one source of defaults, and emd1d balanced like the other solvers.
 */
import { describe, expect, it } from 'vitest';
import { otPlanRequest, sinkhornDivergenceRequest } from '../../src/operations/ot/schema.js';
import { OT_DEFAULTS } from '../../src/ot/defaults.js';
import { emd } from '../../src/ot/emd.js';
import { emd1d } from '../../src/ot/emd1d.js';
import { costFromMatrix } from '../../src/ot/geometry.js';
import { accurateSum, checkWeights, uniform } from '../../src/ot/marginals.js';
import { assertFiniteResult, powerOfTwoScale, SAFE_COST_MAGNITUDE } from '../../src/ot/range.js';
import { sinkhorn } from '../../src/ot/sinkhorn.js';
import { OtInputError } from '../../src/ot/types.js';
import { sinkhornUnbalanced } from '../../src/ot/unbalanced.js';
import { gaussianCloud, seededRandom } from './fixtures.js';

function randomCost(n: number, m: number, seed: number, times = 1) {
  const random = seededRandom(seed);
  const data = gaussianCloud(n * m, 1, random).map((v) => Math.abs(v) * times);
  return { n, m, data };
}

function rangeError(fn: () => unknown): OtInputError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(OtInputError);
    expect((e as OtInputError).kind).toBe('range');
    return e as OtInputError;
  }
  throw new Error('expected an OtInputError');
}

describe('costs near the double limit', () => {
  const big = 2 ** 1000; // > SAFE_COST_MAGNITUDE: rescaled inside

  it('powerOfTwoScale brings a magnitude under the limit with a power of two', () => {
    expect(powerOfTwoScale(1e288)).toBe(1);
    const s = powerOfTwoScale(1.7e308);
    expect(Math.log2(s) % 1).toBe(0);
    expect(1.7e308 / s).toBeLessThanOrEqual(SAFE_COST_MAGNITUDE);
  });

  it('emd on C * 2^1000 is exactly 2^1000 times emd on C (plan, cost and potentials)', () => {
    const C = randomCost(7, 5, 1);
    const a = uniform(7);
    const b = uniform(5);
    const small = emd(a, b, C);
    const large = emd(a, b, { ...C, data: C.data.map((v) => v * big) });
    expect(large.status).toBe('optimal');
    expect(large.cost).toBe(small.cost * big);
    expect(Array.from(large.sparsePlan.values)).toEqual(Array.from(small.sparsePlan.values));
    // The large problem is solved as C * 2^1000 / 2^k, a different power of two: equal to rounding.
    for (let i = 0; i < 7; i++) expect(large.f[i] / big).toBeCloseTo(small.f[i], 12);
    for (let j = 0; j < 5; j++) expect(large.g[j] / big).toBeCloseTo(small.g[j], 12);
  });

  it('Sinkhorn on (C, reg) * 2^1000 gives the same plan and 2^1000 times the cost and potentials', () => {
    const C = randomCost(6, 8, 2);
    const a = uniform(6);
    const b = uniform(8);
    for (const method of ['kernel', 'log'] as const) {
      const small = sinkhorn(a, b, C, 0.3, { method });
      const large = sinkhorn(a, b, { ...C, data: C.data.map((v) => v * big) }, 0.3 * big, { method });
      expect(large.converged).toBe(true);
      expect(large.eps).toBe(0.3 * big);
      for (let k = 0; k < small.plan!.length; k++) expect(large.plan![k]).toBeCloseTo(small.plan![k], 14);
      expect(large.cost / big).toBeCloseTo(small.cost, 12);
      expect(large.objective / big).toBeCloseTo(small.objective, 12);
      for (let i = 0; i < 6; i++) expect(large.f[i] / big).toBeCloseTo(small.f[i], 12);
    }
  });

  it('Sinkhorn refuses max|C| / reg beyond double precision instead of reporting a converged garbage plan', () => {
    const C = costFromMatrix([
      [-1.7e308, 1.7e308],
      [1.7e308, 0],
    ]);
    const err = rangeError(() => sinkhorn([0.5, 0.5], [0.5, 0.5], C, 1));
    expect(err.message).toMatch(/raise reg to at least/);
    expect(err.message).toMatch(/emd/);
  });

  it('an answer with a NaN or an infinity is a range error naming the field', () => {
    expect(assertFiniteResult({ cost: 1, f: new Float64Array([1, 2]) }, 'plan')).toBeTruthy();
    const err = rangeError(() =>
      assertFiniteResult({ cost: 1, f: new Float64Array([1, Number.NaN]) }, 'plan'),
    );
    expect(err.message).toContain('f[1] = NaN');
    rangeError(() => assertFiniteResult({ nested: [{ v: Number.POSITIVE_INFINITY }] }, 'x'));
  });
});

describe('weights at the edges', () => {
  it('an overflowing total mass is a range error, not "zero total mass"', () => {
    expect(accurateSum([1e308, 1e308])).toBe(Number.POSITIVE_INFINITY);
    expect(rangeError(() => checkWeights([1e308, 1e308], 'a')).message).toMatch(/overflows/);
  });

  it('a subnormal total mass is a range error (Sinkhorn gave plans 1e14 times the mass)', () => {
    expect(rangeError(() => checkWeights([1e-310, 1e-310], 'a')).message).toMatch(/multiply the weights/);
    expect(() => checkWeights([1, 1e-320], 'a')).not.toThrow();
  });

  it('emd1d refuses unequal masses unless normalize', () => {
    expect(() => emd1d([0, 1], [0.3], [0.5, 0.5], [200], 2)).toThrow(/not balanced/);
    const r = emd1d([0, 1], [0.3], [0.5, 0.5], [200], 2, { normalize: true });
    expect(r.cost).toBeCloseTo(0.5 * 0.09 + 0.5 * 0.49, 14);
  });

  it("unbalanced Sinkhorn keeps POT's -Infinity potentials on zero weights, or finite ones on request", () => {
    const C = costFromMatrix([
      [0, 1, 2],
      [1, 0, 1],
      [2, 1, 0],
    ]);
    const a = [0, 0.5, 0.5];
    const b = [0.5, 0.5, 0];
    const pot = sinkhornUnbalanced(a, b, C, 0.1, 1);
    expect(pot.f[0]).toBe(Number.NEGATIVE_INFINITY);
    const finite = sinkhornUnbalanced(a, b, C, 0.1, 1, { zeroWeightPotentials: 'finite' });
    expect(Array.from(finite.plan!)).toEqual(Array.from(pot.plan!));
    expect(finite.f.slice(1)).toEqual(pot.f.slice(1));
    for (const v of [...finite.f, ...finite.g]) expect(Number.isFinite(v)).toBe(true);
    // f_0 is the row update without its log-weight term: -fi eps LSE_j((g_j - C_0j)/eps) over weighted columns.
    const eps = 0.1;
    const fi = 1 / (1 + eps);
    const lse = Math.log(Math.exp((pot.g[0] - 0) / eps) + Math.exp((pot.g[1] - 1) / eps));
    expect(finite.f[0]).toBeCloseTo(-fi * eps * lse, 12);
  });
});

describe('one source of defaults', () => {
  it('the request schemas take their defaults from the library', () => {
    const parsed = (solver: object) =>
      otPlanRequest.parse({ C: [[0]], solver }).solver as Record<string, unknown>;
    expect(parsed({ solver: 'emd' }).maxIter).toBe(OT_DEFAULTS.emd.maxIter);
    expect(parsed({ solver: 'sinkhorn', reg: 1 })).toMatchObject(OT_DEFAULTS.sinkhorn);
    expect(parsed({ solver: 'sns', reg: 1 })).toMatchObject(OT_DEFAULTS.sns);
    expect(parsed({ solver: 'quadratic', reg: 1 })).toMatchObject(OT_DEFAULTS.quadratic);
    expect(parsed({ solver: 'sparse', reg: 1, k: 1 })).toMatchObject(OT_DEFAULTS.sparse);
    expect(parsed({ solver: 'unbalanced', reg: 1, regM: 1 })).toMatchObject(OT_DEFAULTS.unbalanced);
    const div = sinkhornDivergenceRequest.parse({ x: [[0]], y: [[1]], reg: 1 });
    expect(div).toMatchObject(OT_DEFAULTS.sinkhornDivergence);
  });
});
