import { describe, expect, it } from 'vitest';
import {
  type CostKind,
  checkBalanced,
  costFromMatrix,
  costMatrix,
  costScale,
  median,
  OtInputError,
  planMarginals,
  pointCloud,
  pointCloudCost,
  scaleCost,
  uniform,
} from '../../src/ot/index.js';
import { maxAbsDiff, pot, seededRandom } from './fixtures.js';

describe('costMatrix', () => {
  it.each(pot.geometry.map((c: any) => [`${c.cost} p=${c.p}`, c]) as any[][])(
    'matches ot.dist for %s',
    (_name, c: any) => {
      const C = costMatrix(pointCloud(c.x, c.d), pointCloud(c.y, c.d), { cost: c.cost as CostKind, p: c.p });
      expect(C.n).toBe(c.n);
      expect(C.m).toBe(c.m);
      expect(maxAbsDiff(C.data, c.C)).toBeLessThan(1e-12);
    },
  );

  it('gives exact zeros on the diagonal for sqeuclidean', () => {
    const x = pointCloud([
      [1e8, 1],
      [3, -2],
    ]);
    const C = costMatrix(x, x);
    expect(C.data[0]).toBe(0);
    expect(C.data[3]).toBe(0);
    expect(C.data[1]).toBeCloseTo((1e8 - 3) ** 2 + 9, -2);
  });

  it('defines the cosine cost of zero vectors', () => {
    const x = pointCloud([
      [0, 0],
      [1, 0],
    ]);
    const y = pointCloud([
      [0, 0],
      [0, 2],
      [-3, 0],
    ]);
    const C = costMatrix(x, y, { cost: 'cosine' });
    expect(Array.from(C.data)).toEqual([0, 1, 1, 1, 1, 2]);
  });

  it('rejects mismatched dimensions and bad p', () => {
    expect(() => costMatrix(pointCloud([[1, 2]]), pointCloud([[1, 2, 3]]))).toThrow(OtInputError);
    expect(() => costMatrix(pointCloud([[1]]), pointCloud([[2]]), { cost: 'minkowski', p: 0.5 })).toThrow(
      /p >= 1/,
    );
    expect(() => pointCloud([[1, Number.NaN]])).toThrow(/non-finite/);
  });

  it('wraps a given matrix', () => {
    const C = costFromMatrix([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect([C.n, C.m]).toEqual([2, 3]);
    expect(Array.from(C.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(() => costFromMatrix([1, 2, 3], 2, 2)).toThrow(/expected 2 x 2/);
    expect(() => costFromMatrix([[1, Number.POSITIVE_INFINITY]])).toThrow(/not finite/);
  });
});

describe('cost scaling', () => {
  const random = seededRandom(3);
  const data = new Float64Array(101).map(() => random() * 10);
  const C = { n: 1, m: 101, data };
  const sorted = Array.from(data).sort((p, q) => p - q);

  it('computes max, mean and median factors', () => {
    expect(costScale(C, 'max')).toBe(sorted[100]);
    expect(costScale(C, 'mean')).toBeCloseTo(sorted.reduce((s, v) => s + v, 0) / 101, 12);
    expect(costScale(C, 'median')).toBe(sorted[50]);
    expect(costScale(C, 'none')).toBe(1);
  });

  it('median handles even length and sorted input', () => {
    const even = Float64Array.from({ length: 1000 }, (_, k) => k);
    expect(median(even)).toBe(499.5);
    expect(median(Float64Array.from([5, 5, 5, 1]))).toBe(5);
  });

  it('scales the matrix and returns the factor', () => {
    const { C: scaled, scale } = scaleCost(C, 'max');
    expect(scale).toBe(sorted[100]);
    expect(Math.max(...scaled.data)).toBe(1);
    const viaClouds = pointCloudCost(pointCloud([[0], [2]]), pointCloud([[1], [4]]), { scaling: 'max' });
    expect(viaClouds.scale).toBe(16);
    expect(Array.from(viaClouds.C.data)).toEqual([1 / 16, 1, 1 / 16, 4 / 16]);
  });

  it('leaves an all-zero cost unscaled', () => {
    expect(costScale({ n: 1, m: 2, data: new Float64Array(2) }, 'max')).toBe(1);
  });
});

describe('marginals', () => {
  it('uniform', () => {
    expect(Array.from(uniform(4))).toEqual([0.25, 0.25, 0.25, 0.25]);
    expect(() => uniform(0)).toThrow(OtInputError);
  });

  it('throws an unbalanced error that names both sums', () => {
    try {
      checkBalanced([0.5, 0.5], [0.3, 0.3]);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(OtInputError);
      expect((err as OtInputError).kind).toBe('unbalanced');
      expect((err as Error).message).toContain('sum(a) = 1');
      expect((err as Error).message).toContain('sum(b) = 0.6');
    }
  });

  it('accepts a gap within 1e-9 relative and rescales b exactly', () => {
    const { b } = checkBalanced([0.5, 0.5], [0.5, 0.5 + 1e-10]);
    expect(b[0] + b[1]).toBeCloseTo(1, 15);
    expect(() => checkBalanced([0.5, 0.5], [0.5, 0.5 + 1e-8])).toThrow(/not balanced/);
  });

  it('normalize rescales b to the mass of a', () => {
    const { a, b } = checkBalanced([1, 1], [1, 3], { normalize: true });
    expect(Array.from(a)).toEqual([1, 1]);
    expect(Array.from(b)).toEqual([0.5, 1.5]);
  });

  it('rejects negative, non-finite and all-zero weights as invalid', () => {
    for (const bad of [
      [-0.1, 1.1],
      [Number.NaN, 1],
      [0, 0],
    ]) {
      try {
        checkBalanced(bad, [1]);
        expect.unreachable();
      } catch (err) {
        expect((err as OtInputError).kind).toBe('invalid');
      }
    }
  });

  it('planMarginals sums rows and columns', () => {
    const { rows, cols } = planMarginals(Float64Array.from([1, 2, 3, 4, 5, 6]), 2, 3);
    expect(Array.from(rows)).toEqual([6, 15]);
    expect(Array.from(cols)).toEqual([5, 7, 9]);
  });
});
