import { describe, expect, it } from 'vitest';
import { mongeGap, pointCloud, sinkhornDivergence } from '../../src/ot/index.js';
import { gaussianCloud, pot, seededRandom } from './fixtures.js';

describe('sinkhornDivergence against POT empirical_sinkhorn_divergence', () => {
  it.each(pot.divergence.map((c: any) => [c.n, c.m, c.reg, c]) as any[][])(
    '%i vs %i points, reg %s',
    (_n, _m, _r, c: any) => {
      const r = sinkhornDivergence(pointCloud(c.xs, 2), pointCloud(c.xt, 2), c.a, c.b, c.reg, {
        tol: 1e-12,
        maxIter: 100_000,
      });
      expect(r.converged).toBe(true);
      // POT stops its three solves at stopThr 1e-9, so agreement is ~1e-9 relative, not machine precision.
      expect(Math.abs(r.value - c.value)).toBeLessThan(1e-8 * c.value);
      expect(r.raw).toBeCloseTo(r.costXY - 0.5 * (r.costXX + r.costYY), 14);
    },
  );

  it('is 0 between a cloud and itself and grows with the shift', () => {
    const random = seededRandom(31);
    const x = gaussianCloud(30, 2, random);
    const same = sinkhornDivergence(pointCloud(x, 2), pointCloud(x, 2), undefined, undefined, 0.5);
    expect(same.raw).toBeCloseTo(0, 12);
    const near = sinkhornDivergence(
      pointCloud(x, 2),
      pointCloud(
        x.map((v) => v + 0.5),
        2,
      ),
      undefined,
      undefined,
      0.5,
    );
    const far = sinkhornDivergence(
      pointCloud(x, 2),
      pointCloud(
        x.map((v) => v + 2),
        2,
      ),
      undefined,
      undefined,
      0.5,
    );
    expect(near.value).toBeGreaterThan(0.1);
    expect(far.value).toBeGreaterThan(near.value);
  });
});

describe('mongeGap', () => {
  const random = seededRandom(41);
  const n = 40;
  const x = gaussianCloud(n, 2, random).map((v) => v * 5);

  it('exact: a translation (an OT map for sqeuclidean) has gap 0 within 1e-9', () => {
    const Tx = x.map((v, k) => v + (k % 2 === 0 ? 1.5 : -0.7));
    const r = mongeGap(pointCloud(x, 2), pointCloud(Tx, 2), { exact: true });
    expect(Math.abs(r.gap)).toBeLessThan(1e-9);
    expect(r.displacement).toBeCloseTo(1.5 ** 2 + 0.7 ** 2, 10);
  });

  it('exact: a map that swaps images is not optimal and has a positive gap', () => {
    const Tx = Float64Array.from(x);
    for (let k = 0; k < 10; k++) {
      Tx[2 * k] = x[2 * (k + 20)];
      Tx[2 * k + 1] = x[2 * (k + 20) + 1];
      Tx[2 * (k + 20)] = x[2 * k];
      Tx[2 * (k + 20) + 1] = x[2 * k + 1];
    }
    const r = mongeGap(pointCloud(x, 2), pointCloud(Tx, 2), { exact: true });
    expect(r.transportCost).toBeCloseTo(0, 12);
    expect(r.gap).toBeGreaterThan(1);
    expect(r.gap).toBeCloseTo(r.displacement, 12);
  });

  it('entropic: the identity map gives about eps log n, and never less', () => {
    const eps = 0.01;
    const r = mongeGap(pointCloud(x, 2), pointCloud(x, 2), { eps });
    expect(r.displacement).toBe(0);
    expect(r.gap).toBeGreaterThanOrEqual(eps * Math.log(n) - 1e-9);
    expect(r.gap).toBeLessThan(eps * Math.log(n) * 1.01);
    const Tx = x.map((v) => v * 1.1);
    const scaled = mongeGap(pointCloud(x, 2), pointCloud(Tx, 2), { eps });
    expect(scaled.gap).toBeGreaterThanOrEqual(eps * Math.log(n) - 1e-9);
  });

  it('rejects a map with the wrong number of images', () => {
    expect(() => mongeGap(pointCloud(x, 2), pointCloud(x.slice(0, 10), 2))).toThrow(/one image per point/);
  });
});
