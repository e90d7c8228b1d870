import { describe, expect, it } from 'vitest';
import { costMatrix, pointCloud, sinkhorn } from '../../src/ot/index.js';
import { costRangeBound, onlineCostScale, onlineSparsePlan, sinkhornOnline } from '../../src/ot/online.js';
import { cpuSoftmin, cpuSoftminPlain } from '../../src/ot/online-cpu.js';
import type { OnlineCost, OnlineGeometry, SoftminFactory } from '../../src/ot/online-kernel.js';
import { gaussianCloud, maxAbsDiff, seededRandom } from './fixtures.js';

function clouds(n: number, m: number, d: number, seed: number) {
  const random = seededRandom(seed);
  return { x: gaussianCloud(n, d, random), y: gaussianCloud(m, d, random, 1), random };
}

function geometry(
  x: Float64Array,
  y: Float64Array,
  d: number,
  cost: OnlineCost,
  costScale = 1,
): OnlineGeometry {
  return { x, n: x.length / d, y, m: y.length / d, dim: d, cost, costScale };
}

/** The dense cost of the same geometry, divided by costScale. */
function denseCost(geo: OnlineGeometry) {
  const C = costMatrix(pointCloud(geo.x, geo.dim), pointCloud(geo.y, geo.dim), { cost: geo.cost });
  for (let k = 0; k < C.data.length; k++) C.data[k] /= geo.costScale;
  return C;
}

/** Weights with some exact zeros, normalised to mass 1. */
function weights(len: number, random: () => number, zeros: number[]): Float64Array {
  const w = Float64Array.from({ length: len }, () => 0.2 + random());
  for (const k of zeros) w[k] = 0;
  const s = w.reduce((p, q) => p + q, 0);
  return w.map((v) => v / s);
}

const factories: [string, SoftminFactory][] = [
  ['wasm simd', cpuSoftmin],
  ['plain loops', cpuSoftminPlain],
];

describe('online Sinkhorn equals dense log-domain Sinkhorn', () => {
  // Odd sizes exercise the scalar tails of the two-lane kernels; d = 3 and 1 the coordinate loop.
  const cases: [OnlineCost, number, number, number][] = [
    ['sqeuclidean', 37, 29, 2],
    ['euclidean', 31, 40, 3],
    ['sqeuclidean', 25, 26, 1],
  ];
  for (const [name, factory] of factories) {
    it.each(cases)(
      `%s %i x %i in %i-D (${name}): zero and non-uniform weights, epsilon scaling`,
      async (cost, n, m, d) => {
        const { x, y, random } = clouds(n, m, d, n * 7 + m);
        const geo = geometry(x, y, d, cost, 2.5);
        const C = denseCost(geo);
        const a = weights(n, random, [0, 5]);
        const b = weights(m, random, [3]);
        const reg = 0.02;
        // The same schedule on both sides: the dense range is exact, so give it explicitly.
        let maxC = 0;
        for (const c of C.data) maxC = Math.max(maxC, c);
        for (const epsilonScaling of [false, { initial: maxC }]) {
          const opts = { tol: 1e-11, maxIter: 20_000, epsilonScaling };
          const dense = sinkhorn(a, b, C, reg, { ...opts, method: 'log', returnPlan: false });
          const online = await sinkhornOnline(geo, a, b, { reg, ...opts }, factory);
          expect(online.converged).toBe(true);
          expect(online.iterations).toBe(dense.iterations);
          expect(maxAbsDiff(online.f, dense.f)).toBeLessThan(1e-9);
          expect(maxAbsDiff(online.g, dense.g)).toBeLessThan(1e-9);
          expect(Math.abs(online.cost - dense.cost)).toBeLessThan(1e-9);
          expect(Math.abs(online.objective - dense.objective)).toBeLessThan(1e-9);
          expect(Math.abs(online.marginalError - dense.marginalError)).toBeLessThan(1e-9);
          expect(online.marginalError).toBeLessThan(1e-10);
        }
      },
    );
  }

  it('default epsilon scaling (first epsilon from the bounding box) reaches the unscaled answer', async () => {
    const { x, y } = clouds(40, 33, 2, 21);
    const geo = geometry(x, y, 2, 'sqeuclidean');
    const bound = costRangeBound(geo);
    const maxC = denseCost(geo).data.reduce((p, q) => Math.max(p, q), 0);
    expect(bound).toBeGreaterThanOrEqual(maxC);
    expect(bound).toBeLessThan(4 * maxC);
    const a = new Float64Array(40).fill(1 / 40);
    const b = new Float64Array(33).fill(1 / 33);
    const opts = { reg: 0.01, tol: 1e-12, maxIter: 50_000 };
    const plain = await sinkhornOnline(geo, a, b, opts);
    const scaled = await sinkhornOnline(geo, a, b, { ...opts, epsilonScaling: true });
    expect(scaled.converged).toBe(true);
    // Potentials are defined up to a constant shift between f and g.
    const shift = scaled.f[0] - plain.f[0];
    expect(
      maxAbsDiff(
        scaled.f.map((v) => v - shift),
        plain.f,
      ),
    ).toBeLessThan(1e-9);
    expect(
      maxAbsDiff(
        scaled.g.map((v) => v + shift),
        plain.g,
      ),
    ).toBeLessThan(1e-9);
    expect(Math.abs(scaled.cost - plain.cost)).toBeLessThan(1e-9);
  });

  it('with a capped budget reports the same non-converged state and says so', async () => {
    const { x, y } = clouds(20, 20, 2, 5);
    const geo = geometry(x, y, 2, 'sqeuclidean');
    const a = new Float64Array(20).fill(1 / 20);
    const dense = sinkhorn(a, a, denseCost(geo), 1e-3, { method: 'log', maxIter: 7, returnPlan: false });
    const online = await sinkhornOnline(geo, a, a, { reg: 1e-3, maxIter: 7 });
    expect(online.converged).toBe(false);
    expect(online.status).toBe('max_iter_reached');
    expect(online.warnings.join()).toMatch(/did not converge in 7 iterations/);
    expect(maxAbsDiff(online.f, dense.f)).toBeLessThan(1e-9);
    expect(Math.abs(online.marginalError - dense.marginalError)).toBeLessThan(1e-9);
  });

  it('a fused backend takes the final column sums from its last row sweep (no extra soft-min)', async () => {
    const { x, y } = clouds(30, 27, 2, 13);
    const geo = geometry(x, y, 2, 'sqeuclidean');
    const a = new Float64Array(30).fill(1 / 30);
    const b = new Float64Array(27).fill(1 / 27);
    let cols = 0;
    const counting: SoftminFactory = (g) => {
      const inner = cpuSoftmin(g);
      return new Proxy(inner, {
        get(target, key) {
          if (key === 'cols') cols++;
          const value = Reflect.get(target, key);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    };
    const dense = sinkhorn(a, b, denseCost(geo), 0.05, { method: 'log', tol: 1e-11, returnPlan: false });
    for (const epsilonScaling of [false, { initial: 4 }]) {
      cols = 0;
      const r = await sinkhornOnline(geo, a, b, { reg: 0.05, tol: 1e-11, epsilonScaling }, counting);
      // One column soft-min per stage, to start its column sums.
      expect(cols).toBe(epsilonScaling ? 8 : 1);
      expect(r.converged).toBe(true);
      if (!epsilonScaling) {
        expect(Math.abs(r.marginalError - dense.marginalError)).toBeLessThan(1e-13);
        expect(Math.abs(r.objective - dense.objective)).toBeLessThan(1e-12);
      }
    }
  });

  it('awaits an asynchronous factory and backend, and disposes of it', async () => {
    const { x, y } = clouds(12, 9, 2, 9);
    const geo = geometry(x, y, 2, 'euclidean');
    let disposed = 0;
    const asyncFactory: SoftminFactory = async (g) => {
      const inner = cpuSoftminPlain(g);
      return {
        name: 'async-test',
        rows: async (h, eps, out) => inner.rows(h, eps, out),
        cols: async (h, eps, out) => inner.cols(h, eps, out),
        dispose: () => {
          disposed++;
        },
      };
    };
    const a = new Float64Array(12).fill(1 / 12);
    const b = new Float64Array(9).fill(1 / 9);
    const viaAsync = await sinkhornOnline(geo, a, b, { reg: 0.05, tol: 1e-10 }, asyncFactory);
    const direct = await sinkhornOnline(geo, a, b, { reg: 0.05, tol: 1e-10 });
    expect(viaAsync.backend).toBe('async-test');
    expect(disposed).toBe(1);
    expect(maxAbsDiff(viaAsync.f, direct.f)).toBeLessThan(1e-12);
    // The cost falls back to the CPU pass when the backend has no costSum.
    expect(Math.abs(viaAsync.cost - direct.cost)).toBeLessThan(1e-12);
  });
});

describe('online soft-min kernels', () => {
  it('wasm and plain loops agree, and a row of -Infinity gives +Infinity', () => {
    const { x, y } = clouds(15, 21, 3, 3);
    const geo = geometry(x, y, 3, 'sqeuclidean');
    const h = Float64Array.from({ length: 21 }, (_, j) => Math.sin(j));
    const simd = cpuSoftmin(geo);
    const plain = cpuSoftminPlain(geo);
    expect(simd.name).toBe('cpu-wasm-simd');
    const o1 = new Float64Array(15);
    const o2 = new Float64Array(15);
    for (const eps of [1e-3, 0.1, 10]) {
      simd.rows(h, eps, o1);
      plain.rows(h, eps, o2);
      expect(maxAbsDiff(o1, o2)).toBeLessThan(1e-12 * Math.max(1, eps));
    }
    h.fill(Number.NEGATIVE_INFINITY);
    simd.rows(h, 0.1, o1);
    plain.rows(h, 0.1, o2);
    expect([...o1, ...o2].every((v) => v === Number.POSITIVE_INFINITY)).toBe(true);
  });
});

describe('online cost scaling and sparse plans', () => {
  it('max and mean scales equal those of the dense matrix; median is refused', () => {
    const { x, y } = clouds(30, 17, 2, 11);
    for (const cost of ['sqeuclidean', 'euclidean'] as const) {
      const C = denseCost(geometry(x, y, 2, cost));
      const max = C.data.reduce((p, q) => Math.max(p, q), 0);
      const mean = C.data.reduce((p, q) => p + q, 0) / C.data.length;
      const geo = { x, n: 30, y, m: 17, dim: 2, cost };
      expect(onlineCostScale(geo, 'max')).toBeCloseTo(max, 12);
      expect(onlineCostScale(geo, 'mean')).toBeCloseTo(mean, 12);
      expect(onlineCostScale(geo, 'none')).toBe(1);
      expect(() => onlineCostScale(geo, 'median')).toThrow(/median/);
    }
  });

  it('top-k and threshold plans are exactly the largest entries of the dense plan', async () => {
    const { x, y, random } = clouds(23, 31, 2, 13);
    const geo = geometry(x, y, 2, 'sqeuclidean');
    const a = weights(23, random, [4]);
    const b = weights(31, random, [0]);
    const reg = 0.05;
    const online = await sinkhornOnline(geo, a, b, { reg, tol: 1e-11 });
    const dense = sinkhorn(a, b, denseCost(geo), reg, { method: 'log', tol: 1e-11 });
    const P = dense.plan!;
    const topK = onlineSparsePlan(geo, a, b, online.f, online.g, reg, { topK: 3 });
    const expected: [number, number, number][] = [];
    for (let i = 0; i < 23; i++) {
      const row = [...P.subarray(i * 31, i * 31 + 31)].map((v, j) => [v, j]).filter(([v]) => v > 0);
      row.sort((p, q) => q[0] - p[0]);
      for (const [v, j] of row.slice(0, 3).sort((p, q) => p[1] - q[1])) expected.push([i, j, v]);
    }
    expect(topK.values.length).toBe(expected.length);
    expected.forEach(([i, j, v], k) => {
      expect([topK.rows[k], topK.cols[k]]).toEqual([i, j]);
      expect(Math.abs(topK.values[k] - v)).toBeLessThan(1e-12);
    });
    const threshold = 1e-3;
    const above = onlineSparsePlan(geo, a, b, online.f, online.g, reg, { threshold });
    const count = P.reduce((c, v) => c + (v > threshold ? 1 : 0), 0);
    expect(above.values.length).toBe(count);
    for (let k = 0; k < above.values.length; k++)
      expect(Math.abs(above.values[k] - P[above.rows[k] * 31 + above.cols[k]])).toBeLessThan(1e-12);
    expect(() => onlineSparsePlan(geo, a, b, online.f, online.g, reg, {})).toThrow(
      /topK or a positive threshold/,
    );
    expect(() => onlineSparsePlan(geo, a, b, online.f, online.g, reg, { topK: 5, maxEntries: 10 })).toThrow(
      /more than 10 entries/,
    );
  });
});
