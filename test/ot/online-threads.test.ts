import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { resolvedOnlineThreads, testConfig } from '../../src/config.js';
import { costMatrix, pointCloud, sinkhorn } from '../../src/ot/index.js';
import { sinkhornOnline } from '../../src/ot/online.js';
import { CpuSoftmin, cpuSoftmin } from '../../src/ot/online-cpu.js';
import type { OnlineCost, OnlineGeometry } from '../../src/ot/online-kernel.js';
import {
  closeOnlineThreads,
  onlineThreadStats,
  setOnlineThreadIdleMs,
  setOnlineThreads,
  ThreadedCpuSoftmin,
  threadedCpuSoftmin,
  threadsFor,
} from '../../src/ot/online-threads.js';
import { readCgroupCpuLimit } from '../../src/util/cgroup.js';
import { makeApp } from '../helpers.js';
import { gaussianCloud, maxAbsDiff, seededRandom } from './fixtures.js';

function geometry(n: number, m: number, d: number, cost: OnlineCost, seed: number): OnlineGeometry {
  const random = seededRandom(seed);
  const x = gaussianCloud(n, d, random);
  const y = gaussianCloud(m, d, random, 1);
  return { x, n, y, m, dim: d, cost, costScale: 2.5 };
}

function weights(len: number, seed: number, zeros: number[]): Float64Array {
  const random = seededRandom(seed);
  const w = Float64Array.from({ length: len }, () => 0.2 + random());
  for (const k of zeros) w[k] = 0;
  const s = w.reduce((p, q) => p + q, 0);
  return w.map((v) => v / s);
}

/** OS threads of this process (Linux), to see helper threads come and go. */
function osThreads(): number {
  return Number(/Threads:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

afterAll(async () => {
  setOnlineThreads(1);
  await closeOnlineThreads();
});

describe('threaded online Sinkhorn', () => {
  const cases: [OnlineCost, number, number, number, number][] = [
    ['sqeuclidean', 137, 129, 2, 2],
    ['euclidean', 71, 90, 3, 3],
    ['sqeuclidean', 45, 64, 1, 4],
  ];
  it.each(cases)('%s %i x %i in %i-D on %i threads equals one thread', async (cost, n, m, d, threads) => {
    const geo = geometry(n, m, d, cost, n + m);
    const a = weights(n, 1, [0, 7]);
    const b = weights(m, 2, [3]);
    const factory = threadedCpuSoftmin({ threads, minPairsPerThread: 0 });
    for (const epsilonScaling of [false, true]) {
      const opts = { reg: 0.02, tol: 1e-11, maxIter: 20_000, epsilonScaling };
      const one = await sinkhornOnline(geo, a, b, opts, cpuSoftmin);
      const many = await sinkhornOnline(geo, a, b, opts, factory);
      expect(many.converged).toBe(true);
      expect(many.iterations).toBe(one.iterations);
      expect(maxAbsDiff(many.f, one.f)).toBeLessThan(1e-12);
      expect(maxAbsDiff(many.g, one.g)).toBeLessThan(1e-12);
      expect(Math.abs(many.cost - one.cost)).toBeLessThan(1e-12);
      expect(Math.abs(many.objective - one.objective)).toBeLessThan(1e-12);
      expect(Math.abs(many.marginalError - one.marginalError)).toBeLessThan(1e-12);
    }
  });

  it('equals dense log-domain Sinkhorn within 1e-9', async () => {
    const geo = geometry(83, 61, 2, 'sqeuclidean', 5);
    const C = costMatrix(pointCloud(geo.x, 2), pointCloud(geo.y, 2), { cost: 'sqeuclidean' });
    for (let k = 0; k < C.data.length; k++) C.data[k] /= geo.costScale;
    const a = weights(83, 3, [4]);
    const b = weights(61, 4, []);
    const opts = { tol: 1e-11, maxIter: 20_000 };
    const dense = sinkhorn(a, b, C, 0.02, { ...opts, method: 'log', returnPlan: false });
    const online = await sinkhornOnline(
      geo,
      a,
      b,
      { reg: 0.02, ...opts },
      threadedCpuSoftmin({ threads: 2, minPairsPerThread: 0 }),
    );
    expect(online.iterations).toBe(dense.iterations);
    expect(maxAbsDiff(online.f, dense.f)).toBeLessThan(1e-9);
    expect(maxAbsDiff(online.g, dense.g)).toBeLessThan(1e-9);
    expect(Math.abs(online.cost - dense.cost)).toBeLessThan(1e-9);
  });

  it('each call (rows, cols, fused rows, cost) equals the one-thread backend', async () => {
    const geo = geometry(57, 44, 3, 'euclidean', 11);
    const one = new CpuSoftmin(geo);
    const many = new ThreadedCpuSoftmin(geo, 3);
    try {
      const random = seededRandom(8);
      const hn = Float64Array.from({ length: 57 }, () => random() - 0.5);
      const hm = Float64Array.from({ length: 44 }, () => random() - 0.5);
      hm[5] = Number.NEGATIVE_INFINITY;
      const [o1, o2] = [new Float64Array(57), new Float64Array(57)];
      one.rows(hm, 0.05, o1);
      await many.rows(hm, 0.05, o2);
      expect(Array.from(o2)).toEqual(Array.from(o1));
      const [c1, c2] = [new Float64Array(44), new Float64Array(44)];
      one.cols(hn, 0.05, c1);
      await many.cols(hn, 0.05, c2);
      expect(Array.from(c2)).toEqual(Array.from(c1));
      const a = weights(57, 5, [2]);
      const b = weights(44, 6, [5]);
      const [f1, f2] = [hn.slice(), hn.slice()];
      const [acc1, acc2] = [new Float64Array(44), new Float64Array(44)];
      one.rowsFused(hm, a, b, 0.05, f1, acc1);
      await many.rowsFused(hm, a, b, 0.05, f2, acc2);
      // Each row's potential is computed alone: exactly equal; the column sums add partial sums.
      expect(Array.from(f2)).toEqual(Array.from(f1));
      expect(maxAbsDiff(acc2, acc1)).toBeLessThan(1e-15 * Math.max(...acc1));
      const cost1 = one.costSum(hn, hm, 0.05);
      const cost2 = await many.costSum(hn, hm, 0.05);
      expect(Math.abs(cost2 - cost1)).toBeLessThan(1e-14 * Math.abs(cost1));
    } finally {
      many.dispose();
    }
  });

  it('uses fewer threads on small problems and on clouds too large to copy', () => {
    expect(threadsFor(1000, 1000, 2)).toBe(1);
    expect(threadsFor(2000, 1000, 4)).toBe(2);
    expect(threadsFor(10_000, 10_000, 2)).toBe(2);
    expect(threadsFor(10, 10, 3, 0)).toBe(3);
    // Each extra thread copies the clouds: 100k + 100k points in 1024-D (1.6 GB a copy) stay on one thread.
    expect(threadsFor(100_000, 100_000, 2, undefined, 1024)).toBe(1);
    expect(threadsFor(100_000, 100_000, 4, undefined, 3)).toBe(4);
    expect(threadsFor(20_000, 20_000, 8, undefined, 512)).toBe(3);
  });

  it('setOnlineThreads makes the default CPU backend threaded', async () => {
    const geo = geometry(30, 30, 2, 'sqeuclidean', 3);
    setOnlineThreads(2, 0);
    const backend = cpuSoftmin(geo);
    try {
      expect(backend).toBeInstanceOf(ThreadedCpuSoftmin);
    } finally {
      backend.dispose();
      setOnlineThreads(1);
    }
    const plain = cpuSoftmin(geo);
    expect(plain).toBeInstanceOf(CpuSoftmin);
  });
});

describe('helper threads are cleaned up', () => {
  it('100 solves keep one helper, which ends when idle', async () => {
    await closeOnlineThreads();
    const before = osThreads();
    const geo = geometry(40, 35, 2, 'sqeuclidean', 9);
    const a = new Float64Array(40).fill(1 / 40);
    const b = new Float64Array(35).fill(1 / 35);
    const factory = threadedCpuSoftmin({ threads: 2, minPairsPerThread: 0 });
    let most = 0;
    for (let k = 0; k < 100; k++) {
      const r = await sinkhornOnline(geo, a, b, { reg: 0.05, tol: 1e-9 }, factory);
      expect(r.converged).toBe(true);
      most = Math.max(most, onlineThreadStats().live);
    }
    expect(most).toBe(1);
    expect(onlineThreadStats()).toEqual({ live: 1, idle: 1 });
    const previous = setOnlineThreadIdleMs(50);
    try {
      // The idle timer of the last release still runs at the old value: one more solve restarts it.
      await sinkhornOnline(geo, a, b, { reg: 0.05, tol: 1e-9 }, factory);
      await until(() => onlineThreadStats().live === 0);
      expect(onlineThreadStats()).toEqual({ live: 0, idle: 0 });
      await until(() => osThreads() <= before);
      expect(osThreads()).toBeLessThanOrEqual(before);
    } finally {
      setOnlineThreadIdleMs(previous);
    }
  });

  it('an aborted solve gives its helpers back', async () => {
    const geo = geometry(60, 60, 2, 'sqeuclidean', 4);
    const a = new Float64Array(60).fill(1 / 60);
    const controller = new AbortController();
    const solve = sinkhornOnline(
      geo,
      a,
      a,
      {
        reg: 1e-4,
        tol: 1e-14,
        maxIter: 1_000_000,
        checkEvery: 1,
        signal: controller.signal,
        onProgress: (p) => {
          if (p > 0) controller.abort();
        },
      },
      threadedCpuSoftmin({ threads: 3, minPairsPerThread: 0 }),
    );
    await expect(solve).rejects.toThrow();
    expect(onlineThreadStats().live).toBe(onlineThreadStats().idle);
    await closeOnlineThreads();
    expect(onlineThreadStats()).toEqual({ live: 0, idle: 0 });
  });

  it('a terminated worker (a deadline) ends its helper threads mid-sweep', async () => {
    await closeOnlineThreads();
    const before = osThreads();
    const online = fileURLToPath(new URL('../../src/ot/online.ts', import.meta.url));
    const threads = fileURLToPath(new URL('../../src/ot/online-threads.ts', import.meta.url));
    // A compute worker stand-in: a 3000 x 3000 solve on 3 threads, terminated while it runs.
    const code = `
      const { parentPort } = require('node:worker_threads');
      (async () => {
        const { register } = await import('tsx/esm/api');
        register();
        const { sinkhornOnline } = await import(${JSON.stringify(online)});
        const { threadedCpuSoftmin } = await import(${JSON.stringify(threads)});
        const n = 3000;
        const x = Float64Array.from({ length: 2 * n }, (_, k) => Math.sin(k));
        const y = Float64Array.from({ length: 2 * n }, (_, k) => Math.cos(k));
        const a = new Float64Array(n).fill(1 / n);
        const geo = { x, n, y, m: n, dim: 2, cost: 'sqeuclidean', costScale: 1 };
        setTimeout(() => parentPort.postMessage('solving'), 300);
        await sinkhornOnline(geo, a, a, { reg: 1e-3, tol: 1e-15, maxIter: 100000 },
          threadedCpuSoftmin({ threads: 3, minPairsPerThread: 0 }));
      })();`;
    const worker = new Worker(code, { eval: true });
    await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    // The worker and its two helpers are running.
    expect(osThreads()).toBeGreaterThanOrEqual(before + 3);
    await worker.terminate();
    await until(() => osThreads() <= before);
    expect(osThreads()).toBeLessThanOrEqual(before);
  }, 30_000);
});

describe('OT_ONLINE_THREADS', () => {
  it('defaults to the cores per compute worker, within the container CPU limit; a value wins', () => {
    const host = os.availableParallelism();
    expect(resolvedOnlineThreads(testConfig({ WORKERS: 1 }), null)).toBe(host);
    expect(resolvedOnlineThreads(testConfig({ WORKERS: 1 }), 1.5)).toBe(1);
    expect(resolvedOnlineThreads(testConfig({ WORKERS: 1 }), 1000)).toBe(host);
    expect(resolvedOnlineThreads(testConfig({ WORKERS: 256 }), null)).toBe(1);
    expect(resolvedOnlineThreads(testConfig({ WORKERS: 256, OT_ONLINE_THREADS: 3 }), 1)).toBe(3);
  });

  it('reads the CPU limit of cgroup v2 and v1, nested, or none', () => {
    const roots: string[] = [];
    const fake = (files: Record<string, string>) => {
      const root = mkdtempSync(path.join(os.tmpdir(), 'tweedie-cpu-'));
      roots.push(root);
      for (const [file, text] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
        writeFileSync(path.join(root, file), `${text}\n`);
      }
      return root;
    };
    try {
      expect(readCgroupCpuLimit({ root: fake({ 'cpu.max': '200000 100000' }), selfCgroup: '0::/' })).toBe(2);
      expect(readCgroupCpuLimit({ root: fake({ 'cpu.max': 'max 100000' }), selfCgroup: '0::/' })).toBeNull();
      // The smallest of the group's and its ancestors'.
      const nested = fake({ 'kubepods/cpu.max': '150000 100000', 'kubepods/pod1/cpu.max': 'max 100000' });
      expect(readCgroupCpuLimit({ root: nested, selfCgroup: '0::/kubepods/pod1' })).toBe(1.5);
      const v1 = fake({
        'cpu/docker/c1/cpu.cfs_quota_us': '300000',
        'cpu/docker/c1/cpu.cfs_period_us': '100000',
      });
      expect(
        readCgroupCpuLimit({ root: v1, selfCgroup: '3:cpu,cpuacct:/docker/c1\n2:memory:/docker/c1' }),
      ).toBe(3);
      const v1None = fake({ 'cpu/cpu.cfs_quota_us': '-1', 'cpu/cpu.cfs_period_us': '100000' });
      expect(readCgroupCpuLimit({ root: v1None, selfCgroup: '3:cpu,cpuacct:/' })).toBeNull();
      expect(readCgroupCpuLimit({ root: fake({}), selfCgroup: '' })).toBeNull();
    } finally {
      for (const root of roots) rmSync(root, { recursive: true, force: true });
    }
  });

  it('reaches the compute workers: a large online problem runs on 2 threads', async () => {
    const app = await makeApp({ OT_ONLINE_THREADS: 2, WORKERS: 1 });
    try {
      const random = seededRandom(17);
      const cloud = (shift: number) => Array.from({ length: 1500 }, () => [random() + shift, random()]);
      const payload = {
        x: cloud(0),
        y: cloud(0.5),
        solver: { solver: 'sinkhorn', reg: 0.1, online: true, maxIter: 2 },
      };
      const res = await app.inject({ method: 'POST', url: '/v1/ot/distance', payload });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().backend).toBe('cpu-wasm-simd x2');
    } finally {
      await app.close();
    }
  }, 30_000);
});
