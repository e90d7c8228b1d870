/**
 * Online Sinkhorn refuses, before solving, costs it cannot represent (as the dense path does when it builds its
 * cost matrix): a coded 422 naming the pair, not iterations on NaN until maxIter.
 */
import { describe, expect, it } from 'vitest';
import { checkOnlineCostRange, sinkhornOnline } from '../../src/ot/online.js';
import { cpuSoftmin } from '../../src/ot/online-cpu.js';
import type { OnlineGeometry, SoftminFactory } from '../../src/ot/online-kernel.js';
import { OtInputError } from '../../src/ot/types.js';
import { makeApp } from '../helpers.js';

function geometry(
  x: number[][],
  y: number[][],
  costScale = 1,
  cost: 'sqeuclidean' | 'euclidean' = 'sqeuclidean',
) {
  return {
    x: Float64Array.from(x.flat()),
    n: x.length,
    y: Float64Array.from(y.flat()),
    m: y.length,
    dim: x[0].length,
    cost,
    costScale,
  } satisfies OnlineGeometry;
}

async function rejection(promise: Promise<unknown>): Promise<OtInputError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof OtInputError) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

describe('online Sinkhorn range check', () => {
  it('an overflowing cost is refused before any soft-min, naming the pair', async () => {
    let built = 0;
    const counting: SoftminFactory = (g) => {
      built++;
      return cpuSoftmin(g);
    };
    for (const cost of ['sqeuclidean', 'euclidean'] as const) {
      const geo = geometry(
        [
          [0, 0],
          [1e200, 0],
        ],
        [
          [0, 0],
          [1, 1],
          [2, 1],
        ],
        1,
        cost,
      );
      const half = [0.5, 0.5];
      const third = [1 / 3, 1 / 3, 1 / 3];
      const err = await rejection(sinkhornOnline(geo, half, third, { reg: 0.1 }, counting));
      expect(err.kind).toBe('range');
      expect(err.details).toEqual({ i: 1, j: 0 });
      expect(err.message).toMatch(/overflows double precision: divide the coordinates/);
    }
    expect(built).toBe(0);
  });

  it('a finite cost above 2^960 is refused unless the cost scale brings it down', async () => {
    // The bounding box overflows (2e154 squared) though no cross pair does: the pairs decide.
    const x = [
      [-1e154, 0],
      [1e154, 0],
    ];
    const y = [[0, 0]];
    expect(() => checkOnlineCostRange(geometry(x, y))).toThrow(/too large for online Sinkhorn/);
    const scaled = geometry(x, y, 1e308);
    expect(() => checkOnlineCostRange(scaled)).not.toThrow();
    const r = await sinkhornOnline(scaled, [0.5, 0.5], [1], { reg: 0.1 });
    expect(r.converged).toBe(true);
    // Both points are 1e154 from y[0]: every cost is 1e308, 1 once scaled.
    expect(r.cost).toBeCloseTo(1, 12);
  });

  it('through REST: 422 TW_NUMERIC_RANGE before solving', async () => {
    const app = await makeApp({ WORKERS: 1 });
    try {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/ot/distance',
        payload: {
          x: [
            [0, 0],
            [1e200, 0],
          ],
          y: [
            [0, 0],
            [1, 1],
          ],
          solver: { solver: 'sinkhorn', reg: 0.1, online: true, maxIter: 100_000 },
        },
      });
      expect(res.statusCode, res.body).toBe(422);
      expect(res.json().error.code).toBe('TW_NUMERIC_RANGE');
      expect(res.json().error.message).toMatch(/between x\[1\] and y\[0\] overflows/);
    } finally {
      await app.close();
    }
  }, 30_000);
});
