/**
 * Micro-benchmark of the online Sinkhorn WebAssembly kernels (src/ot/simd.ts): CPU nanoseconds per pair of
 * costExp (the fused cost + exp pass of one row update), costRow (the cost pass alone) and expStoreDot (the
 * exp pass alone), on one thread, 400 rows of m = 10,000 points, 3 repeats. CPU time, so that a shared machine
 * disturbs it less than wall time.
 *
 *   npx tsx bench/ot/kernels.ts [--dims 2,3] [--rows 400] [--m 10000]
 */
import { simdWorkspace } from '../../src/ot/simd.js';

const opt = (name: string, fallback: string) => {
  const k = process.argv.indexOf(name);
  return k >= 0 ? process.argv[k + 1] : fallback;
};
const m = Number(opt('--m', '10000'));
const n = Number(opt('--rows', '400'));
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
};
for (const dim of opt('--dims', '2,3').split(',').map(Number)) {
  const ws = simdWorkspace([dim * n, dim * m, m, m, 2, m, m]);
  if (!ws) throw new Error('no WebAssembly SIMD on this runtime');
  const [xs, ys, h, , , b] = ws.arrays;
  for (let k = 0; k < xs.length; k++) xs[k] = Math.sin(k);
  for (let k = 0; k < ys.length; k++) ys[k] = Math.cos(k);
  for (let j = 0; j < m; j++) {
    h[j] = 0.1 * Math.sin(j);
    b[j] = 1 / m;
  }
  ws.costExpArgs(1, 0, n, 2, 3, 5, dim, 1 / 8, false);
  const ns = (ms: number) => ((ms * 1e6) / (n * m)).toFixed(2);
  for (let rep = 0; rep < 3; rep++) {
    let t = cpuMs();
    let s = 0;
    for (let i = 0; i < n; i++) s += ws.costExp(i, m, 0, 10);
    const costExp = cpuMs() - t;
    t = cpuMs();
    for (let i = 0; i < n; i++) ws.costRow(1, 0, i, n, 2, 3, m, dim, 1 / 8, false);
    const costRow = cpuMs() - t;
    t = cpuMs();
    for (let i = 0; i < n; i++) s += ws.expStoreDot(3, 5, m, 0, 0.001);
    const exp = cpuMs() - t;
    if (!(s > 0)) throw new Error('unexpected sum');
    console.log(`d=${dim}: costExp ${ns(costExp)} ns/pair, costRow ${ns(costRow)}, expStoreDot ${ns(exp)}`);
  }
}
