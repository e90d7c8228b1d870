import { afterAll, describe, expect, it, vi } from 'vitest';
import { describeAdapter, getWebGpu, releaseWebGpu } from '../../src/gpu/device.js';
import { sinkhornOnline } from '../../src/ot/online.js';
import { CpuSoftmin, cpuSoftmin, type SoftminCostBackend } from '../../src/ot/online-cpu.js';
import type { OnlineCost, OnlineGeometry, SoftminBackend } from '../../src/ot/online-kernel.js';
import { type WebGpuSoftminOptions, webgpuSoftmin } from '../../src/ot/online-webgpu.js';
import { gaussianCloud, maxAbsDiff, seededRandom } from './fixtures.js';

// The WebGPU soft-min against a float64 reference, on whatever adapter there is: lavapipe (Mesa's software Vulkan
// driver) on CI and on machines without a GPU. Skipped when there is no adapter, unless TEST_WEBGPU=1 (.ci/run
// installs lavapipe and sets it): then a missing adapter fails the suite.
const gpu = await getWebGpu({ allowSoftware: true });
const required = process.env.TEST_WEBGPU === '1';

afterAll(releaseWebGpu);

/** rows of the kernel interface in float64: out[i] = -eps log sum_j exp((h[j] - c(p_i, q_j)) / eps). */
function reference(
  p: Float64Array,
  q: Float64Array,
  dim: number,
  cost: OnlineCost,
  costScale: number,
  h: Float64Array,
  eps: number,
): Float64Array {
  const nOut = p.length / dim;
  const out = new Float64Array(nOut);
  const t = new Float64Array(h.length);
  for (let i = 0; i < nOut; i++) {
    let top = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < h.length; j++) {
      let d2 = 0;
      for (let c = 0; c < dim; c++) d2 += (p[i * dim + c] - q[j * dim + c]) ** 2;
      t[j] = (h[j] - (cost === 'euclidean' ? Math.sqrt(d2) : d2) / costScale) / eps;
      top = Math.max(top, t[j]);
    }
    let s = 0;
    for (let j = 0; j < h.length; j++) if (t[j] > Number.NEGATIVE_INFINITY) s += Math.exp(t[j] - top);
    out[i] = top === Number.NEGATIVE_INFINITY ? Number.POSITIVE_INFINITY : -eps * (top + Math.log(s));
  }
  return out;
}

/**
 * The scale the float32 error is measured on: the largest cost plus the spread of the finite h. The error is
 * absolute on that scale, not relative to each output: an output is a difference of such terms and may be near
 * zero, while float32 rounds each term relative to its own size (the offset of h is removed in float64, so it is
 * left out of the scale on purpose: the test offsets h by 1e3 and 5e4 to check that).
 */
function valueScale(g: OnlineGeometry, ...hs: Float64Array[]): number {
  let maxCost = 0;
  for (let i = 0; i < g.n; i++) {
    for (let j = 0; j < g.m; j++) {
      let d2 = 0;
      for (let c = 0; c < g.dim; c++) d2 += (g.x[i * g.dim + c] - g.y[j * g.dim + c]) ** 2;
      maxCost = Math.max(maxCost, (g.cost === 'euclidean' ? Math.sqrt(d2) : d2) / g.costScale);
    }
  }
  let spread = 0;
  for (const h of hs) {
    const finite = [...h].filter(Number.isFinite);
    spread = Math.max(spread, Math.max(...finite) - Math.min(...finite));
  }
  return maxCost + spread;
}

function potentials(k: number, random: () => number, offset: number, zeroEvery = 0): Float64Array {
  const h = new Float64Array(k);
  for (let j = 0; j < k; j++)
    h[j] = zeroEvery && j % zeroEvery === 1 ? Number.NEGATIVE_INFINITY : offset + random();
  return h;
}

/** Worst |gpu - reference| / scale over rows and cols, for one geometry and several eps. */
async function worstError(
  g: OnlineGeometry,
  epsList: number[],
  offset: number,
  zeroEvery: number,
  opts: WebGpuSoftminOptions = {},
) {
  if (!gpu.ok) throw new Error('no adapter');
  const random = seededRandom(g.n * 131 + g.m * 7 + g.dim);
  const backend = await webgpuSoftmin(gpu.device, opts)(g);
  let worst = 0;
  try {
    for (const eps of epsList) {
      const hRows = potentials(g.m, random, offset, zeroEvery);
      const hCols = potentials(g.n, random, -offset, zeroEvery);
      const scale = valueScale(g, hRows, hCols);
      const rows = new Float64Array(g.n);
      const cols = new Float64Array(g.m);
      await backend.rows(hRows, eps, rows);
      await backend.cols(hCols, eps, cols);
      const wantRows = reference(g.x, g.y, g.dim, g.cost, g.costScale, hRows, eps);
      const wantCols = reference(g.y, g.x, g.dim, g.cost, g.costScale, hCols, eps);
      for (const [got, want] of [
        [rows, wantRows],
        [cols, wantCols],
      ]) {
        expect(got.every(Number.isFinite)).toBe(true);
        for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / scale);
      }
    }
  } finally {
    backend.dispose();
  }
  return worst;
}

function geometry(
  n: number,
  m: number,
  dim: number,
  cost: OnlineCost,
  costScale = 1,
  shift = 0,
): OnlineGeometry {
  const random = seededRandom(n * 1009 + m * 17 + dim);
  return {
    x: gaussianCloud(n, dim, random, shift),
    n,
    y: gaussianCloud(m, dim, random, shift + 0.5),
    m,
    dim,
    cost,
    costScale,
  };
}

describe('describeAdapter', () => {
  const info = (o: Partial<GPUAdapterInfo> & { isFallbackAdapter?: boolean }) =>
    ({ vendor: '', architecture: '', device: '', description: '', ...o }) as GPUAdapterInfo;

  it('tells a software adapter (lavapipe, SwiftShader, a fallback) from a GPU', () => {
    const lavapipe = info({ vendor: 'mesa', architecture: 'software', description: 'llvmpipe: Mesa 25.0.7' });
    expect(describeAdapter(lavapipe)).toMatchObject({ vendor: 'mesa', software: true, fallback: false });
    expect(describeAdapter(info({ vendor: 'google', description: 'SwiftShader Device' })).software).toBe(
      true,
    );
    expect(describeAdapter(info({ vendor: 'x', isFallbackAdapter: true }))).toMatchObject({
      software: true,
      fallback: true,
    });
    const h200 = info({ vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H200' });
    expect(describeAdapter(h200)).toMatchObject({
      vendor: 'nvidia',
      architecture: 'hopper',
      software: false,
    });
  });
});

describe('WebGPU adapter', () => {
  it.runIf(required)('is found when TEST_WEBGPU=1', () => {
    expect(gpu.ok ? 'ok' : gpu.reason).toBe('ok');
  });

  it.runIf(gpu.ok && gpu.info.software)(
    'is refused when it is software and software was not asked for',
    async () => {
      const refused = await getWebGpu();
      expect(refused.ok).toBe(false);
      expect(!refused.ok && refused.reason).toMatch(/software adapter/);
      const factory = webgpuSoftmin();
      await expect(factory(geometry(3, 4, 2, 'sqeuclidean'))).rejects.toMatchObject({
        code: 'TW_UNPROCESSABLE',
      });
    },
  );
});

describe.runIf(gpu.ok)('webgpuSoftmin (float32) against a float64 reference', () => {
  const eps = [10, 1, 0.1, 0.01];

  for (const cost of ['sqeuclidean', 'euclidean'] as const) {
    for (const dim of [1, 2, 3, 7]) {
      it(`${cost}, dim ${dim}: n != m, eps 10 to 0.01, zero weights, potentials offset by 1e3`, async () => {
        // 150 x 97 with 64-wide workgroups: several tiles, a partial one and idle invocations on both sides.
        const worst = await worstError(geometry(150, 97, dim, cost), eps, 1e3, 7);
        expect(worst).toBeLessThan(1e-5);
      });
    }
  }

  it('costScale, clouds far from the origin, tiny workgroups', async () => {
    const g = geometry(41, 66, 3, 'sqeuclidean', 2.5, 1e4);
    expect(await worstError(g, [1, 0.05], 0, 0, { workgroupSize: 8 })).toBeLessThan(1e-5);
    const e = geometry(66, 41, 2, 'euclidean', 0.1, -3e3);
    expect(await worstError(e, [1, 0.05], 5e4, 3, { workgroupSize: 16 })).toBeLessThan(1e-5);
  });

  it('large dim without workgroup memory', async () => {
    const g = geometry(30, 45, 40, 'sqeuclidean', 40);
    expect(await worstError(g, [1, 0.02], 0, 5, { tile: 0 })).toBeLessThan(1e-5);
    expect(await worstError(g, [0.02], 0, 0)).toBeLessThan(1e-5);
  });

  it('a log-domain Sinkhorn loop on it follows the same loop in float64 (no drift over 300 half-steps)', async () => {
    if (!gpu.ok) return;
    const g = geometry(60, 45, 2, 'sqeuclidean');
    const random = seededRandom(5);
    const weights = (k: number, zeroEvery: number) => {
      const w = Float64Array.from({ length: k }, (_, i) =>
        zeroEvery && i % zeroEvery === 2 ? 0 : 0.1 + random(),
      );
      const total = w.reduce((t, v) => t + v, 0);
      return w.map((v) => v / total);
    };
    const a = weights(g.n, 0);
    const b = weights(g.m, 6);
    const eps = 0.05;
    const backend = await webgpuSoftmin(gpu.device)(g);
    const f = new Float64Array(g.n);
    const gg = new Float64Array(g.m);
    let fRef: Float64Array = new Float64Array(g.n);
    let gRef: Float64Array = new Float64Array(g.m);
    try {
      for (let it = 0; it < 150; it++) {
        await backend.rows(
          gg.map((v, j) => v + eps * Math.log(b[j])),
          eps,
          f,
        );
        await backend.cols(
          f.map((v, i) => v + eps * Math.log(a[i])),
          eps,
          gg,
        );
        fRef = reference(
          g.x,
          g.y,
          2,
          g.cost,
          1,
          gRef.map((v, j) => v + eps * Math.log(b[j])),
          eps,
        );
        gRef = reference(
          g.y,
          g.x,
          2,
          g.cost,
          1,
          fRef.map((v, i) => v + eps * Math.log(a[i])),
          eps,
        );
      }
    } finally {
      backend.dispose();
    }
    const scale = valueScale(g, fRef, gRef);
    expect(maxAbsDiff(f, fRef) / scale).toBeLessThan(1e-5);
    expect(maxAbsDiff(gg, gRef) / scale).toBeLessThan(1e-5);
  });

  it('zero weights: an all-zero h gives +Infinity; NaN and +Infinity propagate as the formula says', async () => {
    if (!gpu.ok) return;
    const g = geometry(5, 4, 2, 'euclidean');
    const backend = await webgpuSoftmin(gpu.device)(g);
    try {
      const out = new Float64Array(5);
      await backend.rows(new Float64Array(4).fill(Number.NEGATIVE_INFINITY), 0.1, out);
      expect([...out]).toEqual(new Array(5).fill(Number.POSITIVE_INFINITY));
      // one weight left: the soft-min is that entry's h minus its cost, exactly
      const h = new Float64Array(4).fill(Number.NEGATIVE_INFINITY);
      h[2] = 3;
      await backend.rows(h, 0.1, out);
      const want = reference(g.x, g.y, 2, 'euclidean', 1, h, 0.1);
      for (let i = 0; i < 5; i++) expect(out[i]).toBeCloseTo(want[i], 5);
      await backend.rows(Float64Array.of(0, Number.NaN, 1, 2), 0.1, out);
      expect(out.every(Number.isNaN)).toBe(true);
      const back = new Float64Array(4);
      await backend.cols(Float64Array.of(0, 1, Number.POSITIVE_INFINITY, 2, 3), 0.1, back);
      expect([...back]).toEqual(new Array(4).fill(Number.NEGATIVE_INFINITY));
    } finally {
      backend.dispose();
      backend.dispose();
    }
    await expect(backend.rows(new Float64Array(4), 1, new Float64Array(5))).rejects.toThrow(/disposed/);
  });
  it('refuses what float32 cannot hold with a coded 422', async () => {
    if (!gpu.ok) return;
    const factory = webgpuSoftmin(gpu.device);
    const bad = geometry(4, 3, 2, 'sqeuclidean');
    bad.x[3] = Number.NaN;
    await expect(factory(bad)).rejects.toMatchObject({ code: 'TW_UNPROCESSABLE', message: /finite/ });
    const wide = geometry(4, 3, 2, 'sqeuclidean');
    wide.y[0] = 1e20;
    await expect(factory(wide)).rejects.toMatchObject({ code: 'TW_UNPROCESSABLE', message: /float32/ });
    const backend = await factory(geometry(4, 3, 2, 'sqeuclidean'));
    try {
      const out = new Float64Array(4);
      await expect(backend.rows(new Float64Array(3), 1e-40, out)).rejects.toMatchObject({
        code: 'TW_UNPROCESSABLE',
      });
      await expect(backend.rows(new Float64Array(2), 1, out)).rejects.toThrow(RangeError);
      // the backend still works after a refused call
      await backend.rows(new Float64Array(3), 1, out);
      expect(out.every(Number.isFinite)).toBe(true);
    } finally {
      backend.dispose();
    }
  });
});

/** sum_ij exp((hr_i + hc_j - c_ij) / eps) c_ij in float64 (c divided by costScale). */
function referenceCostSum(g: OnlineGeometry, hr: Float64Array, hc: Float64Array, eps: number): number {
  let total = 0;
  for (let i = 0; i < g.n; i++) {
    for (let j = 0; j < g.m; j++) {
      if (hr[i] === Number.NEGATIVE_INFINITY || hc[j] === Number.NEGATIVE_INFINITY) continue;
      let d2 = 0;
      for (let c = 0; c < g.dim; c++) d2 += (g.x[i * g.dim + c] - g.y[j * g.dim + c]) ** 2;
      const cost = (g.cost === 'euclidean' ? Math.sqrt(d2) : d2) / g.costScale;
      total += Math.exp((hr[i] + hc[j] - cost) / eps) * cost;
    }
  }
  return total;
}

function asCostBackend(backend: SoftminBackend): SoftminCostBackend {
  expect(typeof (backend as Partial<SoftminCostBackend>).costSum).toBe('function');
  return backend as SoftminCostBackend;
}

/** Worst relative error of costSum against the float64 reference, over several eps (relative to the scale). */
async function worstCostSumError(
  g: OnlineGeometry,
  epsOverScale: number[],
  offset: number,
  zeroEvery: number,
  opts: WebGpuSoftminOptions = {},
) {
  if (!gpu.ok) throw new Error('no adapter');
  const random = seededRandom(g.n * 31 + g.m * 3 + g.dim);
  const backend = asCostBackend(await webgpuSoftmin(gpu.device, opts)(g));
  let worst = 0;
  try {
    for (const ratio of epsOverScale) {
      // Offsets that cancel in hr_i + hc_j, as f and g do; the scale is that of rows/cols (largest cost + spread).
      const hr = potentials(g.n, random, offset, zeroEvery);
      const hc = potentials(g.m, random, -offset, zeroEvery);
      const eps = ratio * valueScale(g, hr, hc);
      const want = referenceCostSum(g, hr, hc, eps);
      const got = await backend.costSum(hr, hc, eps);
      expect(want).toBeGreaterThan(0);
      worst = Math.max(worst, Math.abs(got - want) / want);
    }
  } finally {
    backend.dispose();
  }
  return worst;
}

describe.runIf(gpu.ok)('webgpuSoftmin costSum (float32 kernel) against a float64 reference', () => {
  // eps from the whole value scale down to 1/50 of it: the relative error grows as scale / eps (see the kernel).
  const ratios = [1, 0.1, 0.02];

  for (const cost of ['sqeuclidean', 'euclidean'] as const) {
    for (const dim of [1, 2, 3, 7]) {
      it(`${cost}, dim ${dim}: n > m and n < m, zero weights, potentials offset by 1e3`, async () => {
        expect(await worstCostSumError(geometry(150, 97, dim, cost), ratios, 1e3, 7)).toBeLessThan(1e-5);
        expect(await worstCostSumError(geometry(70, 131, dim, cost), ratios, 1e3, 5)).toBeLessThan(1e-5);
      });
    }
  }

  it('costScale, clouds far from the origin, tiny workgroups, no workgroup memory', async () => {
    const g = geometry(41, 66, 3, 'sqeuclidean', 2.5, 1e4);
    expect(await worstCostSumError(g, [1, 0.05], 0, 0, { workgroupSize: 8 })).toBeLessThan(1e-5);
    const e = geometry(66, 41, 2, 'euclidean', 0.1, -3e3);
    expect(await worstCostSumError(e, [1, 0.05], 5e4, 3, { workgroupSize: 16 })).toBeLessThan(1e-5);
    const wide = geometry(30, 45, 40, 'sqeuclidean', 40);
    expect(await worstCostSumError(wide, [1, 0.05], 0, 4, { tile: 0 })).toBeLessThan(1e-5);
  });

  it('zero weights: all -Infinity gives 0, one pair left gives its term; NaN and +Infinity', async () => {
    if (!gpu.ok) return;
    const g = geometry(5, 4, 2, 'euclidean');
    const backend = asCostBackend(await webgpuSoftmin(gpu.device)(g));
    const none = (k: number) => new Float64Array(k).fill(Number.NEGATIVE_INFINITY);
    try {
      expect(await backend.costSum(none(5), new Float64Array(4), 0.1)).toBe(0);
      expect(await backend.costSum(new Float64Array(5), none(4), 0.1)).toBe(0);
      const hr = none(5);
      const hc = none(4);
      hr[3] = 0.25;
      hc[1] = 0.5;
      const want = referenceCostSum(g, hr, hc, 0.1);
      expect(want).toBeGreaterThan(0);
      expect(Math.abs((await backend.costSum(hr, hc, 0.1)) - want) / want).toBeLessThan(1e-5);
      hc[2] = Number.NaN;
      expect(await backend.costSum(hr, hc, 0.1)).toBeNaN();
      hc[2] = Number.POSITIVE_INFINITY;
      expect(await backend.costSum(hr, hc, 0.1)).toBe(Number.POSITIVE_INFINITY);
      await expect(backend.costSum(hr, new Float64Array(3), 0.1)).rejects.toThrow(RangeError);
      // rows still work after the cost pass (they share the h buffer)
      const out = new Float64Array(5);
      await backend.rows(Float64Array.of(0, 1, 2, 3), 0.1, out);
      const rowsWant = reference(g.x, g.y, 2, 'euclidean', 1, Float64Array.of(0, 1, 2, 3), 0.1);
      expect(maxAbsDiff(out, rowsWant)).toBeLessThan(1e-5);
    } finally {
      backend.dispose();
    }
    await expect(backend.costSum(new Float64Array(5), new Float64Array(4), 1)).rejects.toThrow(/disposed/);
  });
});

describe.runIf(gpu.ok)('sinkhornOnline on the WebGPU backend', () => {
  for (const cost of ['sqeuclidean', 'euclidean'] as const) {
    it(`${cost}: the cost comes from the GPU kernel (no CPU pass) and matches the CPU solve`, async () => {
      const g = geometry(90, 70, 2, cost);
      const random = seededRandom(11);
      const weights = (k: number, zeroEvery: number) => {
        const w = Float64Array.from({ length: k }, (_, i) =>
          zeroEvery && i % zeroEvery === 2 ? 0 : 0.1 + random(),
        );
        const total = w.reduce((t, v) => t + v, 0);
        return w.map((v) => v / total);
      };
      const a = weights(g.n, 9);
      const b = weights(g.m, 6);
      // float32 potentials: the marginal error settles near 1e-6 at this reg, so tol stays above it.
      const opts = { reg: 0.05, tol: 1e-5, maxIter: 5000 };
      const gpuCalls: number[] = [];
      const factory = webgpuSoftmin(undefined, { allowSoftware: true });
      const spied = async (geo: OnlineGeometry) => {
        const backend = asCostBackend(await factory(geo));
        const costSum = backend.costSum.bind(backend);
        backend.costSum = async (hr, hc, eps) => {
          gpuCalls.push(eps);
          return costSum(hr, hc, eps);
        };
        return backend;
      };
      const cpuPass = vi.spyOn(CpuSoftmin.prototype, 'costSum');
      let onGpu: Awaited<ReturnType<typeof sinkhornOnline>>;
      try {
        onGpu = await sinkhornOnline(g, a, b, opts, spied);
        expect(cpuPass).not.toHaveBeenCalled();
      } finally {
        cpuPass.mockRestore();
      }
      expect(onGpu.backend).toBe('webgpu');
      expect(gpuCalls).toEqual([0.05]);
      const onCpu = await sinkhornOnline(g, a, b, opts, cpuSoftmin);
      // The kernel alone: the CPU cost pass on the GPU solve's own potentials.
      const cpu = new CpuSoftmin(g);
      const direct = cpu.costSum(
        onGpu.f.map((v, i) => v + opts.reg * Math.log(a[i])),
        onGpu.g.map((v, j) => v + opts.reg * Math.log(b[j])),
        opts.reg,
      );
      expect(Math.abs(onGpu.cost - direct) / direct).toBeLessThan(1e-5);
      expect(onGpu.converged && onCpu.converged).toBe(true);
      expect(Math.abs(onGpu.cost - onCpu.cost) / onCpu.cost).toBeLessThan(1e-5);
      expect(Math.abs(onGpu.objective - onCpu.objective) / Math.abs(onCpu.objective)).toBeLessThan(1e-5);
    });
  }
});
