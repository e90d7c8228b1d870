/**
 * Epsilon scaling's warm start: 'carry' (each stage starts from the last potentials) against 'extrapolate' (the
 * default: along the line through the last two stages' potentials), dense Sinkhorn with `epsilonScaling: true` and
 * the defaults otherwise (maxIter 1000, tol 1e-9). Problems: README's 3x3 example at five regs, the 3-point
 * clouds of README's online example (squared Euclidean, scaled by the max) at six, and 36 Gaussian-cloud problems
 * (seeds 1-6, n = 10 and 30, reg 0.003, 0.01 and 0.03 of the max cost). Prints, per warm start, the problems
 * that converged, their iterations, the mean log10 of the final marginal error and the failures.
 *   npx tsx bench/ot/warm-start.ts
 */
import { costMatrix, pointCloud, scaleCost, sinkhorn, uniform } from '../../src/ot/index.js';
import type { CostMatrix } from '../../src/ot/types.js';
import { gaussianCloud, seededRandom } from '../../test/ot/fixtures.js';

const cases: { name: string; a: ArrayLike<number>; b: ArrayLike<number>; C: CostMatrix; reg: number }[] = [];
const readme = { n: 3, m: 3, data: Float64Array.from([0, 1, 4, 1, 0, 1, 4, 1, 0]) };
for (const reg of [0.02, 0.03, 0.05, 0.1, 0.2])
  cases.push({ name: `readme ${reg}`, a: [0.5, 0.25, 0.25], b: [0.25, 0.25, 0.5], C: readme, reg });
const points = scaleCost(
  costMatrix(pointCloud([0, 0, 1, 0, 0, 1], 2), pointCloud([1, 1, 2, 1, 1, 2], 2)),
  'max',
).C;
for (const reg of [0.005, 0.01, 0.02, 0.03, 0.05, 0.1])
  cases.push({ name: `points ${reg}`, a: uniform(3), b: uniform(3), C: points, reg });
for (const seed of [1, 2, 3, 4, 5, 6])
  for (const n of [10, 30])
    for (const reg of [0.003, 0.01, 0.03]) {
      const random = seededRandom(seed);
      const C = scaleCost(
        costMatrix(pointCloud(gaussianCloud(n, 2, random), 2), pointCloud(gaussianCloud(n, 2, random, 1), 2)),
        'max',
      ).C;
      cases.push({ name: `gauss s${seed} n${n} ${reg}`, a: uniform(n), b: uniform(n), C, reg });
    }

for (const warmStart of ['carry', 'extrapolate'] as const) {
  let converged = 0;
  let iterations = 0;
  let logError = 0;
  const failures: string[] = [];
  for (const { name, a, b, C, reg } of cases) {
    const r = sinkhorn(a, b, C, reg, { epsilonScaling: { warmStart } });
    logError += Math.log10(Math.max(r.marginalError, 1e-16));
    if (r.converged) {
      converged++;
      iterations += r.iterations;
    } else failures.push(`${name}: ${r.marginalError.toExponential(1)}`);
  }
  console.log(
    `${warmStart}: converged ${converged}/${cases.length} (${iterations} iterations), ` +
      `mean log10 marginal error ${(logError / cases.length).toFixed(2)}\n  not converged: ${failures.join(', ')}`,
  );
}
