import { describe, expect, it } from 'vitest';
import { simdWorkspace } from '../../src/ot/simd.js';
import { seededRandom } from './fixtures.js';

describe('WebAssembly SIMD kernels', () => {
  const ws = simdWorkspace([64, 64, 64]);

  it('is available on this runtime (Node >= 16.4 has WebAssembly SIMD)', () => {
    expect(ws).toBeDefined();
  });

  it.each([1, 2, 3, 4, 5, 7, 8, 31, 64])('dot and axpy agree with plain loops for length %i', (len) => {
    const random = seededRandom(len);
    const [x, y, out] = ws!.arrays;
    for (let k = 0; k < 64; k++) {
      x[k] = random() - 0.5;
      y[k] = random() - 0.5;
      out[k] = random();
    }
    const offset = 64 - len;
    let ref = 0;
    for (let j = 0; j < len; j++) ref += x[offset + j] * y[j];
    expect(ws!.dot(0, offset, 1, len)).toBeCloseTo(ref, 14);
    const before = Float64Array.from(out);
    ws!.axpy(0.75, 0, offset, 2, len);
    for (let j = 0; j < 64; j++) {
      expect(out[j]).toBe(j < len ? before[j] + 0.75 * x[offset + j] : before[j]);
    }
  });

  it('expRow matches Math.exp to a few ulp over the whole range, odd lengths and in place', () => {
    const len = 4001;
    const big = simdWorkspace([len, len, len])!;
    const [out, c, g] = big.arrays;
    const random = seededRandom(99);
    for (let j = 0; j < len; j++) {
      c[j] = random() * 1500 - 700; // exponents from about -800 to +700
      g[j] = random() - 0.5;
    }
    const expected = Array.from({ length: len }, (_, j) => Math.exp(0.25 + g[j] - 1 * c[j]));
    big.expRow(0, 0, 1, 0, 2, len, 0.25, 1);
    for (let j = 0; j < len; j++) {
      const e = expected[j];
      if (e === Number.POSITIVE_INFINITY) expect(out[j]).toBeGreaterThan(1e307);
      else if (e < 2.3e-308) expect(Math.abs(out[j] - e)).toBeLessThanOrEqual(2 * 5e-324 + 4e-16 * e);
      else expect(Math.abs(out[j] - e) / e).toBeLessThan(1e-15);
    }
    // In place: c becomes exp(-c) (out aliases c).
    const copy = Float64Array.from(c);
    g.fill(0);
    big.expRow(1, 0, 1, 0, 2, len, 0, 1);
    for (let j = 0; j < len; j += 97) {
      const e = Math.exp(-copy[j]);
      if (e > 1e-300 && e < 1e300) expect(Math.abs(c[j] - e) / e).toBeLessThan(1e-15);
    }
  });

  it.each([
    [1, false],
    [2, false],
    [3, true],
    [4, false],
    [4, true],
    [5, false],
    [6, true],
  ])(
    'costExp in %i-D (euclidean %s) matches the plain computation, NaN and edge exponents too',
    (dim, euclid) => {
      // dims 1-4 run the unrolled variants, 5 and 6 the coordinate loop.
      const n = 7;
      const m = 203;
      const w = simdWorkspace([dim * n, dim * m, m, m, 2, m, m])!;
      const [xs, ys, g, t, , b] = w.arrays;
      const random = seededRandom(dim * 10 + (euclid ? 1 : 0));
      for (let k = 0; k < dim * n; k++) xs[k] = 3 * (random() - 0.5);
      for (let k = 0; k < dim * m; k++) ys[k] = 3 * (random() - 0.5);
      for (let j = 0; j < m; j++) {
        g[j] = 40 * (random() - 0.5);
        b[j] = random();
      }
      g[4] = Number.NaN;
      g[9] = -1e6; // exp underflows to 0
      g[10] = 1e4; // clamped to exp(709.78), not Infinity
      const cs = 0.37;
      const scale = 20;
      w.costExpArgs(1, 0, n, 2, 3, 5, dim, cs, euclid);
      for (let i = 0; i < n; i++) {
        const shift = -0.3 * i;
        const s = w.costExp(i, m, shift, scale);
        let expectedSum = 0;
        for (let j = 0; j < m - 1; j++) {
          let d2 = 0;
          for (let k = 0; k < dim; k++) d2 += (xs[k * n + i] - ys[k * m + j]) ** 2;
          const e = Math.exp(shift + scale * (g[j] - cs * (euclid ? Math.sqrt(d2) : d2)));
          if (j === 4) expect(t[j]).toBeNaN();
          else if (j === 10) expect(Math.abs(t[j] / Math.exp(709.78) - 1)).toBeLessThan(1e-15);
          else if (e < 1e-300) expect(t[j]).toBeLessThan(1e-300);
          else expect(Math.abs(t[j] - e) / e).toBeLessThan(1e-14);
          if (j !== 4 && j !== 10) expectedSum += b[j] * t[j];
        }
        expect(s).toBeNaN(); // the NaN column reaches the sum
        expect(expectedSum).toBeGreaterThan(0);
      }
    },
  );

  it('kernelSweep does u_i = 1 / (K_i . bv) and col += a_i u_i K_i for every row in one call', () => {
    const n = 7;
    const m = 5;
    const sweep = simdWorkspace([n * m, m, n, n, m])!;
    const [K, bv, a, u, col] = sweep.arrays;
    const random = seededRandom(5);
    K.forEach((_, k) => {
      K[k] = random() + 0.1;
    });
    bv.forEach((_, j) => {
      bv[j] = random();
    });
    a.forEach((_, i) => {
      a[i] = i === 3 ? 0 : random();
    });
    sweep.kernelSweep(0, 1, 2, 3, 4, n, m);
    const expectedCol = new Float64Array(m);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < m; j++) s += K[i * m + j] * bv[j];
      expect(u[i]).toBeCloseTo(1 / s, 14);
      for (let j = 0; j < m; j++) expectedCol[j] += a[i] * (1 / s) * K[i * m + j];
    }
    for (let j = 0; j < m; j++) expect(col[j]).toBeCloseTo(expectedCol[j], 13);
  });

  it('refuses workspaces too large for a 32-bit memory', () => {
    expect(simdWorkspace([2 ** 29])).toBeUndefined();
  });
});
