/**
 * `npx tsx bench/ot/defaults.ts [count] [seed] [random|uniform]`: how many iterations SNS and quadratic OT need on typical problems,
 * i.e. whether their defaults (src/ot/defaults.ts) converge. Random problems as in issue 20's check: n != m
 * log-uniform in [5, 800], d in [1, 50], Gaussian clouds at a random scale so that costs reach up to ~1e4,
 * random weights down to 1e-6 relative, reg log-uniform in [1e-3, 1e-1] x max C (SNS) or [0.05, 5] x mean C
 * (quadratic, whose plans are sparse from there). Each solver runs with a budget far above its default and
 * reports the iterations it used; the table gives the quantiles and how many would hit the default.
 */
import { OT_DEFAULTS } from '../../src/ot/defaults.js';
import { costMatrix, maxCost, pointCloud } from '../../src/ot/geometry.js';
import { quadraticOt } from '../../src/ot/quadratic.js';
import { sinkhornNewtonSparse } from '../../src/ot/sns.js';
import { Rng } from '../../src/util/random.js';

const count = Number(process.argv[2] ?? 36);
const seed = Number(process.argv[3] ?? 20);
/** 'random' (default): weights log-uniform down to 1e-6 relative; 'uniform': 1/n, 1/m. */
const weightKind = process.argv[4] ?? 'random';
const rng = new Rng(seed);
const logUniform = (lo: number, hi: number) => Math.exp(Math.log(lo) + rng.uniform() * Math.log(hi / lo));

function problem() {
  let n = 0;
  let m = 0;
  while (n === m) {
    n = Math.round(logUniform(5, 800));
    m = Math.round(logUniform(5, 800));
  }
  const d = 1 + rng.int(50);
  const scale = logUniform(0.1, 100 / Math.sqrt(2 * d));
  const cloud = (k: number, shift: number) =>
    pointCloud(
      Array.from({ length: k }, () => Array.from({ length: d }, () => scale * (rng.normal() + shift))),
    );
  const C = costMatrix(cloud(n, 0), cloud(m, 0.5));
  const weights = (k: number) => {
    if (weightKind === 'uniform') return new Float64Array(k).fill(1 / k);
    const w = Float64Array.from({ length: k }, () => logUniform(1e-6, 1));
    const s = w.reduce((x, y) => x + y, 0);
    return w.map((v) => v / s);
  };
  return { n, m, d, C, a: weights(n), b: weights(m) };
}

const quantiles = (v: number[]) => {
  const s = [...v].sort((x, y) => x - y);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return `median ${q(0.5)}, p90 ${q(0.9)}, max ${s[s.length - 1]}`;
};

const sns: number[] = [];
const snsFailed: string[] = [];
const quad: number[] = [];
const quadFailed: string[] = [];
const t0 = performance.now();
for (let k = 0; k < count; k++) {
  const { n, m, d, C, a, b } = problem();
  const maxC = maxCost(C);
  let mean = 0;
  for (const v of C.data) mean += v;
  mean /= C.data.length;
  const epsSns = logUniform(1e-3, 1e-1) * maxC;
  const r = sinkhornNewtonSparse(a, b, C, epsSns, { maxNewtonIterations: 10_000 });
  const newton = r.stageIterations?.newton ?? r.iterations;
  if (r.converged) sns.push(newton);
  else snsFailed.push(`${n}x${m} d=${d} eps/maxC=${(epsSns / maxC).toExponential(1)}`);
  const regQ = logUniform(0.05, 5) * mean;
  const q = quadraticOt(a, b, C, regQ, { maxIter: 10_000 });
  if (q.converged) quad.push(q.iterations);
  else quadFailed.push(`${n}x${m} d=${d} reg/meanC=${(regQ / mean).toExponential(1)}`);
  console.error(
    `${k + 1}/${count} ${n}x${m} d=${d} maxC=${maxC.toExponential(1)}: sns ${newton} newton (${r.converged}), quadratic ${q.iterations} (${q.converged})`,
  );
}
const over = (v: number[], limit: number) => v.filter((x) => x > limit).length;
console.log(
  `${count} problems (seed ${seed}, ${weightKind} weights), ${((performance.now() - t0) / 1000).toFixed(0)} s`,
);
console.log(
  `SNS Newton steps: ${quantiles(sns)}; above the default ${OT_DEFAULTS.sns.maxNewtonIterations}: ${over(sns, OT_DEFAULTS.sns.maxNewtonIterations)}; above 50: ${over(sns, 50)}; not converged in 10000: ${snsFailed.length} ${snsFailed.join('; ')}`,
);
console.log(
  `quadratic L-BFGS iterations: ${quantiles(quad)}; above the default ${OT_DEFAULTS.quadratic.maxIter}: ${over(quad, OT_DEFAULTS.quadratic.maxIter)}; above 1000: ${over(quad, 1000)}; not converged in 10000: ${quadFailed.length} ${quadFailed.join('; ')}`,
);
