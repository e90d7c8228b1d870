/**
 * `npm run bench:ot-http`: what HTTP adds to a transport solve. The same n = 1000 Sinkhorn problem (2-D Gaussian
 * clouds, sqeuclidean, reg = 1e-2 of max C, tol 1e-9, no plan returned) solved in-process and through
 * POST /v1/ot/plan on a real server on loopback (one compute worker). Median of 5 after one warm-up each.
 * Writes bench/RESULTS.md between <!-- ot-http:begin --> and <!-- ot-http:end -->.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../../src/app.js';
import { testConfig } from '../../src/config.js';
import { costMatrix, maxCost, pointCloud } from '../../src/ot/geometry.js';
import { uniform } from '../../src/ot/marginals.js';
import { sinkhorn } from '../../src/ot/sinkhorn.js';
import { Rng } from '../../src/util/random.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const RESULTS = join(ROOT, 'bench/RESULTS.md');
const N = 1000;
const REPS = 5;

function median(v: number[]) {
  const s = [...v].sort((a, b) => a - b);
  return s[s.length >> 1];
}

const rng = new Rng(1);
const x = Array.from({ length: N }, () => [rng.normal(), rng.normal()]);
const y = Array.from({ length: N }, () => [rng.normal() + 1, rng.normal() + 1]);
const C = costMatrix(pointCloud(x), pointCloud(y));
const reg = 1e-2 * maxCost(C);

const inProcess: number[] = [];
let inCost = 0;
for (let r = 0; r <= REPS; r++) {
  const t0 = performance.now();
  const res = sinkhorn(uniform(N), uniform(N), C, reg, { tol: 1e-9, returnPlan: false });
  if (r > 0) inProcess.push(performance.now() - t0);
  inCost = res.cost;
}

const app = await buildApp(testConfig({ WORKERS: 1, MODELS_DIR: join(ROOT, 'models', '__none__') }));
await app.listen({ port: 0, host: '127.0.0.1' });
const addr = app.server.address();
const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/v1/ot/plan`;
const body = JSON.stringify({
  x,
  y,
  solver: { solver: 'sinkhorn', reg, tol: 1e-9 },
  output: { plan: 'none', potentials: false },
});
const overHttp: number[] = [];
const workerSolve: number[] = [];
let httpCost = 0;
for (let r = 0; r <= REPS; r++) {
  const t0 = performance.now();
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const json = (await res.json()) as { cost: number; timings: { solveMs: number } };
  if (r > 0) {
    overHttp.push(performance.now() - t0);
    workerSolve.push(json.timings.solveMs);
  }
  httpCost = json.cost;
}
await app.close();

const mIn = median(inProcess);
const mHttp = median(overHttp);
const mSolve = median(workerSolve);
const section = `<!-- ot-http:begin -->
### HTTP overhead (\`npm run bench:ot-http\`)

Machine: nproc ${cpus().length}, ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}; load average before the
run ${loadavg()
  .map((v) => v.toFixed(2))
  .join(
    ' / ',
  )}. n = m = ${N} 2-D Gaussian clouds, sqeuclidean, Sinkhorn reg = 1e-2 of max C, tol 1e-9, no plan in
the answer (cost only; the request body is the two point clouds, ${(body.length / 1024).toFixed(0)} KiB of JSON). Median of ${REPS}.

| path | median (ms) | vs in-process |
|---|---:|---:|
| in-process \`sinkhorn()\` (cost matrix built beforehand) | ${mIn.toFixed(1)} | 1.00 |
| solve time inside the worker (builds the cost from the points) | ${mSolve.toFixed(1)} | ${(mSolve / mIn).toFixed(2)} |
| \`POST /v1/ot/plan\` end to end (JSON parse + zod validation + worker + answer) | ${mHttp.toFixed(1)} | ${(mHttp / mIn).toFixed(2)} |

Same cost both ways: in-process ${inCost.toPrecision(12)}, HTTP ${httpCost.toPrecision(12)}.
<!-- ot-http:end -->`;

const text = readFileSync(RESULTS, 'utf8');
const begin = text.indexOf('<!-- ot-http:begin -->');
const end = text.indexOf('<!-- ot-http:end -->');
const next =
  begin >= 0 && end > begin
    ? text.slice(0, begin) + section + text.slice(end + '<!-- ot-http:end -->'.length)
    : text.replace('<!-- ot:end -->', `${section}\n<!-- ot:end -->`);
writeFileSync(RESULTS, next);
console.log(section);
