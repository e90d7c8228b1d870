import { describe, expect, it } from 'vitest';
import { minimizeLbfgs, type Objective } from '../../src/ot/lbfgs.js';

/** Extended Rosenbrock: sum over consecutive pairs, minimum at all ones. */
const rosenbrock: Objective = (x, grad) => {
  grad.fill(0);
  let f = 0;
  for (let i = 0; i < x.length - 1; i++) {
    const a = x[i + 1] - x[i] * x[i];
    const b = 1 - x[i];
    f += 100 * a * a + b * b;
    grad[i] += -400 * x[i] * a - 2 * b;
    grad[i + 1] += 200 * a;
  }
  return f;
};

/** Seeded uniform generator (mulberry32) so the tests are reproducible. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('minimizeLbfgs', () => {
  it('finds the 2-D Rosenbrock minimum from the classic start', () => {
    const res = minimizeLbfgs(rosenbrock, Float64Array.from([-1.2, 1]), { gtol: 1e-10, maxIter: 500 });
    expect(res.converged).toBe(true);
    for (const v of res.x) expect(Math.abs(v - 1)).toBeLessThan(1e-6);
    expect(res.f).toBeLessThan(1e-12);
  });

  it('finds the 10-D Rosenbrock minimum', () => {
    const x0 = new Float64Array(10).map((_, i) => (i % 2 === 0 ? -1.2 : 1));
    const res = minimizeLbfgs(rosenbrock, x0, { gtol: 1e-10, maxIter: 2000 });
    expect(res.converged).toBe(true);
    for (const v of res.x) expect(Math.abs(v - 1)).toBeLessThan(1e-6);
  });

  it('minimises a strictly convex quadratic to its closed-form minimiser', () => {
    // f(x) = 1/2 x'Ax - b'x with A = B'B + I (SPD, condition number in the hundreds); minimiser solves Ax = b.
    const dim = 30;
    const rand = rng(7);
    const B = Array.from({ length: dim }, () => Array.from({ length: dim }, () => 3 * (rand() - 0.5)));
    const A = Array.from({ length: dim }, (_, i) =>
      Array.from({ length: dim }, (_, j) => {
        let s = i === j ? 0.05 : 0;
        for (let k = 0; k < dim; k++) s += B[k][i] * B[k][j];
        return s;
      }),
    );
    const b = Array.from({ length: dim }, () => rand() - 0.5);
    const quad: Objective = (x, grad) => {
      let f = 0;
      for (let i = 0; i < dim; i++) {
        let ax = 0;
        for (let j = 0; j < dim; j++) ax += A[i][j] * x[j];
        grad[i] = ax - b[i];
        f += 0.5 * x[i] * ax - b[i] * x[i];
      }
      return f;
    };
    // Closed form by Gaussian elimination with partial pivoting.
    const M = A.map((row, i) => [...row, b[i]]);
    for (let c = 0; c < dim; c++) {
      let p = c;
      for (let r = c + 1; r < dim; r++) if (Math.abs(M[r][c]) > Math.abs(M[p][c])) p = r;
      [M[c], M[p]] = [M[p], M[c]];
      for (let r = c + 1; r < dim; r++) {
        const factor = M[r][c] / M[c][c];
        for (let k = c; k <= dim; k++) M[r][k] -= factor * M[c][k];
      }
    }
    const exact = new Array<number>(dim).fill(0);
    for (let r = dim - 1; r >= 0; r--) {
      let s = M[r][dim];
      for (let k = r + 1; k < dim; k++) s -= M[r][k] * exact[k];
      exact[r] = s / M[r][r];
    }
    const res = minimizeLbfgs(quad, new Float64Array(dim), { gtol: 1e-11, ftol: 0, maxIter: 5000 });
    expect(res.converged).toBe(true);
    const scale = Math.max(...exact.map(Math.abs));
    for (let i = 0; i < dim; i++)
      expect(Math.abs(res.x[i] - exact[i])).toBeLessThan(1e-7 * Math.max(1, scale));
  });

  it('reports non-convergence honestly when maxIter is too small', () => {
    const res = minimizeLbfgs(rosenbrock, Float64Array.from([-1.2, 1]), { maxIter: 3 });
    expect(res.converged).toBe(false);
    expect(res.iterations).toBe(3);
    expect(res.message).toMatch(/maxIter/);
  });

  it('stops on an aborted signal', () => {
    const controller = new AbortController();
    controller.abort();
    expect(() =>
      minimizeLbfgs(rosenbrock, Float64Array.from([-1.2, 1]), { signal: controller.signal }),
    ).toThrow(/aborted/);
  });
});
