/**
 * The library solves a whole OT problem by itself (geometry -> problem -> solver -> output), with no service
 * around it: src/ot/solve.ts on a problem built by hand, shaped by src/ot/output.ts.
 */
import { describe, expect, it } from 'vitest';
import { emd } from '../../src/ot/emd.js';
import { pointCloud, pointCloudCost } from '../../src/ot/geometry.js';
import { uniform } from '../../src/ot/marginals.js';
import { planToJson } from '../../src/ot/output.js';
import type { OtPlanProblem } from '../../src/ot/problem.js';
import { solve } from '../../src/ot/solve.js';

const x = [[0], [1], [2], [3.5]];
const y = [[0.5], [1.5], [3]];
const base: Omit<OtPlanProblem, 'solver'> = {
  x,
  y,
  cost: 'sqeuclidean',
  p: 2,
  scaling: 'none',
  normalize: false,
  output: { plan: 'dense', threshold: 0, potentials: true, errorHistory: false },
};

describe('solve(problem)', () => {
  it('emd: the cost of the network simplex on the same geometry, and a plan with the marginals', async () => {
    const out = await solve({ ...base, solver: { solver: 'emd', maxIter: 100_000 } });
    const { C } = pointCloudCost(pointCloud(x), pointCloud(y), { cost: 'sqeuclidean' });
    const direct = emd(uniform(4), uniform(3), C);
    expect(out.cost).toBeCloseTo(direct.cost, 12);
    expect(out.plan?.format).toBe('dense');
    const json = planToJson(out);
    const data = Array.from((json.plan as unknown as { data: ArrayLike<number> }).data);
    const rows = [0, 1, 2, 3].map((i) => data.slice(i * 3, i * 3 + 3).reduce((a, b) => a + b, 0));
    for (const r of rows) expect(r).toBeCloseTo(0.25, 12);
    expect(Array.isArray(json.f)).toBe(true);
  });

  it('sinkhorn online (matrix-free) and on the dense cost agree; withPlan false drops the plan', async () => {
    const sinkhorn = {
      solver: 'sinkhorn' as const,
      reg: 0.5,
      method: 'log' as const,
      maxIter: 10_000,
      tol: 1e-9,
      checkEvery: 10,
      epsilonScaling: false,
    };
    const dense = await solve({ ...base, solver: sinkhorn }, { withPlan: false });
    const online = await solve(
      { ...base, output: { ...base.output, plan: 'sparse', topK: 2 }, solver: { ...sinkhorn, online: true } },
      { options: { otOnlineBackend: 'cpu' } },
    );
    expect(dense.plan).toBeUndefined();
    expect(dense.converged && online.converged).toBe(true);
    expect(online.cost).toBeCloseTo(dense.cost, 6);
    expect(online.plan?.format).toBe('sparse');
  });
});
