import { afterAll, describe, expect, it } from 'vitest';
import { describeAdapter, getWebGpu, releaseWebGpu } from '../../src/gpu/device.js';
import type { OnlineCost, OnlineGeometry } from '../../src/ot/online-kernel.js';
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
