/**
 * The soft-min of online (matrix-free) Sinkhorn on a GPU, through WebGPU compute shaders (WGSL, float32): the
 * `SoftminFactory` of src/ot/online-kernel.ts, on the thread's shared device (src/gpu/device.ts).
 *
 * Per geometry the points are uploaded once; per call, h goes up and the output comes back (mapAsync). One
 * invocation computes one output: it streams the other cloud through workgroup memory in tiles (the points and
 * their h, loaded cooperatively), computes the cost on the fly and keeps an online log-sum-exp (a running max m
 * and a sum of exp(t - m), rescaled when the max grows; the sum of each tile is accumulated apart, so that the
 * float32 rounding of the sum grows with tile + m / tile terms, not m). No n x m array exists anywhere.
 * A second kernel gives the transport cost <C, P> (`costSum`, see there) the same way, so that a solve on the GPU
 * never falls back to a CPU pass over the n*m pairs.
 *
 * float32 accuracy, and what the host does for it in float64:
 * - the points are centred (the cost is translation invariant) and scaled by costScale (1/costScale for
 *   'euclidean', 1/sqrt(costScale) for 'sqeuclidean') before they are rounded to float32, so that far-off clouds
 *   do not lose their differences;
 * - h is shifted by its largest finite entry H (out = -H - eps * LSE((h - H - c) / eps), H added back in float64),
 *   since potentials can be large next to their differences; entries more than maxCost + 200 eps below H are
 *   clamped there (their weight, below e^-200 of the largest term, changes nothing);
 * - zero-weight entries (h = -Infinity) are sent as a sentinel that the shader skips (a uniform branch), never as
 *   an infinity (WGSL does not promise IEEE infinities).
 * The error is then absolute, on the scale of the values: |out - exact| is a few 1e-7 of (largest cost + spread of
 * the h entries that matter), whatever eps, and whatever the offset H (the test checks 1e-5 of that scale).
 */

import { fail } from '../errors.js';
import { getWebGpu } from '../gpu/device.js';
import type { OnlineCost, OnlineGeometry, SoftminBackend, SoftminFactory } from './online-kernel.js';

// WebGPU constants (the spec's values), so that this module does not depend on the globals being installed.
const BUFFER_MAP_READ = 0x0001;
const BUFFER_COPY_SRC = 0x0004;
const BUFFER_COPY_DST = 0x0008;
const BUFFER_UNIFORM = 0x0040;
const BUFFER_STORAGE = 0x0080;
const MAP_READ = 0x0001;

/** A zero-weight entry's h as sent (the shader skips entries below -2e38). */
const SKIP_VALUE = -3.4e38;
/** Beyond this, cost / eps would overflow float32. */
const F32_HEADROOM = 1e37;

export interface WebGpuSoftminOptions {
  /** Accept a software adapter (lavapipe) when no device is given. Default false. */
  allowSoftware?: boolean;
  /** Invocations per workgroup (default 64). */
  workgroupSize?: number;
  /**
   * Points of the other cloud per workgroup-memory tile (default: the workgroup size, fewer when the dimension
   * is large). 0 reads them from the storage buffer directly (no workgroup memory).
   */
  tile?: number;
}

interface Kernel {
  pipeline: GPUComputePipeline;
  workgroupSize: number;
}

const kernels = new WeakMap<GPUDevice, Map<string, Promise<Kernel>>>();

/**
 * The WebGPU soft-min. Without a device, the thread's shared one (src/gpu/device.ts) is used; when there is none
 * (or only a software adapter and `allowSoftware` is not set) the factory throws a coded 422 that gives the reason.
 */
export function webgpuSoftmin(device?: GPUDevice, opts: WebGpuSoftminOptions = {}): SoftminFactory {
  return async (geometry) => {
    let dev = device;
    if (!dev) {
      const gpu = await getWebGpu({ allowSoftware: opts.allowSoftware });
      if (!gpu.ok) {
        throw fail('UNPROCESSABLE', `The WebGPU backend is not available: ${gpu.reason}`, {
          details: { backend: 'webgpu', reason: gpu.reason },
        });
      }
      dev = gpu.device;
    }
    return WebGpuSoftmin.create(dev, geometry, opts);
  };
}

/** WGSL for one (cost, dim, workgroup size, tile): constants are baked in so that the dim loop unrolls. */
export function softminShader(cost: OnlineCost, dim: number, workgroupSize: number, tile: number): string {
  return onlineShader('softmin', cost, dim, workgroupSize, tile);
}

/**
 * WGSL of the transport-cost kernel (`costSum`): per output i, m_i = max_k t_k and
 * w_i = sum_k exp(t_k - m_i) c_ik * cNorm, with t_k = (h_k - c_ik) / eps, written as outv[2i], outv[2i + 1].
 */
export function costSumShader(cost: OnlineCost, dim: number, workgroupSize: number, tile: number): string {
  return onlineShader('costSum', cost, dim, workgroupSize, tile);
}

type ShaderMode = 'softmin' | 'costSum';

function onlineShader(
  mode: ShaderMode,
  cost: OnlineCost,
  dim: number,
  workgroupSize: number,
  tile: number,
): string {
  const inRegisters = dim <= 32;
  const shared = tile > 0;
  const sum = mode === 'costSum';
  const pIn = shared ? 'tileP[k * DIM + c]' : 'ptsIn[(base + k) * DIM + c]';
  const hIn = shared ? 'tileH[k]' : 'h[base + k]';
  const pOut = inRegisters ? 'xi[c]' : 'ptsOut[i * DIM + c]';
  const costOf = cost === 'euclidean' ? 'sqrt(d2)' : 'd2';
  // softmin: s = sum exp(t - m). costSum: s = sum exp(t - m) * c * cNorm, the tile sums added with Kahan's
  // compensation (comp), rescaled with s when the max grows.
  const term = sum ? 'let cw = cst * params.cNorm;\n        ' : '';
  const grow = sum ? 'fma(st, r, cw)' : 'fma(st, r, 1.0)';
  const add = sum ? 'fma(exp(t - m), cw, st)' : 'st + exp(t - m)';
  return /* wgsl */ `
struct Params { nOut: u32, nIn: u32, invEps: f32, groupsX: u32${sum ? ', cNorm: f32' : ''} }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> ptsOut: array<f32>;
@group(0) @binding(2) var<storage, read> ptsIn: array<f32>;
@group(0) @binding(3) var<storage, read> h: array<f32>;
@group(0) @binding(4) var<storage, read_write> outv: array<f32>;

const DIM: u32 = ${dim}u;
const WG: u32 = ${workgroupSize}u;
const TILE: u32 = ${shared ? tile : workgroupSize}u;
${shared ? `var<workgroup> tileP: array<f32, ${tile * dim}>;\nvar<workgroup> tileH: array<f32, ${tile}>;` : ''}

${
  sum
    ? `// outv[2i] = m, outv[2i + 1] = s: sum_k exp((h[k] - cost(i, k)) / eps) cost(i, k) = exp(m) * s / cNorm (the
// host adds the rest in float64).`
    : `// out[i] = m + log(s) = LSE_k (h[k] - cost(i, k)) / eps, the log-sum-exp in units of eps (the host turns it into
// -eps * LSE - H in float64).`
}
@compute @workgroup_size(${workgroupSize})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let i = (wid.y * params.groupsX + wid.x) * WG + lid;
  let live = i < params.nOut;
  ${inRegisters ? 'var xi: array<f32, DIM>;\n  if (live) { for (var c = 0u; c < DIM; c++) { xi[c] = ptsOut[i * DIM + c]; } }' : ''}
  var m: f32 = -3.4e38;
  var s: f32 = 0.0;
  ${sum ? 'var comp: f32 = 0.0;' : ''}
  for (var base = 0u; base < params.nIn; base += TILE) {
    let count = min(TILE, params.nIn - base);
    ${
      shared
        ? `for (var k = lid; k < count * DIM; k += WG) { tileP[k] = ptsIn[base * DIM + k]; }
    for (var k = lid; k < count; k += WG) { tileH[k] = h[base + k]; }
    workgroupBarrier();`
        : ''
    }
    var st: f32 = 0.0;
    if (live) {
      for (var k = 0u; k < count; k++) {
        let hk = ${hIn};
        if (hk < -2.0e38) { continue; }
        var d2: f32 = 0.0;
        for (var c = 0u; c < DIM; c++) {
          let d = ${pOut} - ${pIn};
          d2 = fma(d, d, d2);
        }
        let cst = ${costOf};
        ${term}let t = max((hk - cst) * params.invEps, -3.0e38);
        if (t > m) {
          let r = exp(m - t);
          s = s * r;
          ${sum ? 'comp = comp * r;\n          ' : ''}st = ${grow};
          m = t;
        } else {
          st = ${add};
        }
      }
    }
    ${
      sum
        ? `let y = st - comp;
    let tot = s + y;
    comp = (tot - s) - y;
    s = tot;`
        : 's = s + st;'
    }
    ${shared ? 'workgroupBarrier();' : ''}
  }
  ${sum ? 'if (live) { outv[2u * i] = m; outv[2u * i + 1u] = s; }' : 'if (live) { outv[i] = m + log(s); }'}
}
`;
}

function kernelFor(
  device: GPUDevice,
  mode: ShaderMode,
  cost: OnlineCost,
  dim: number,
  workgroupSize: number,
  tile: number,
): Promise<Kernel> {
  let byKey = kernels.get(device);
  if (!byKey) {
    byKey = new Map();
    kernels.set(device, byKey);
  }
  const key = `${mode}/${cost}/${dim}/${workgroupSize}/${tile}`;
  let k = byKey.get(key);
  if (!k) {
    const module = device.createShaderModule({ code: onlineShader(mode, cost, dim, workgroupSize, tile) });
    k = device
      .createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } })
      .then((pipeline) => ({ pipeline, workgroupSize }));
    k.catch(() => byKey.delete(key));
    byKey.set(key, k);
  }
  return k;
}

/** Centres both clouds together, scales by costScale, rounds to float32; returns the largest cost (scaled). */
function prepareClouds(g: OnlineGeometry): { x: Float32Array; y: Float32Array; maxCost: number } {
  const { n, m, dim } = g;
  const centre = new Float64Array(dim);
  for (const [p, count] of [
    [g.x, n],
    [g.y, m],
  ] as const) {
    for (let i = 0; i < count * dim; i++) {
      if (!Number.isFinite(p[i])) throw fail('UNPROCESSABLE', 'The point coordinates must be finite numbers');
      centre[i % dim] += p[i];
    }
  }
  if (n + m > 0) for (let c = 0; c < dim; c++) centre[c] /= n + m;
  const scale = g.cost === 'euclidean' ? 1 / g.costScale : 1 / Math.sqrt(g.costScale);
  let maxCost = 0;
  const radius = [0, 0];
  const out = [g.x, g.y].map((p, side) => {
    const count = side === 0 ? n : m;
    const f = new Float32Array(Math.max(1, count * dim));
    for (let i = 0; i < count; i++) {
      let r2 = 0;
      for (let c = 0; c < dim; c++) {
        const v = (p[i * dim + c] - centre[c]) * scale;
        f[i * dim + c] = v;
        r2 += v * v;
      }
      radius[side] = Math.max(radius[side], Math.sqrt(r2));
    }
    return f;
  });
  const diameter = radius[0] + radius[1];
  maxCost = g.cost === 'euclidean' ? diameter : diameter * diameter;
  if (!(maxCost < F32_HEADROOM)) {
    throw fail(
      'UNPROCESSABLE',
      'The point cloud is too spread out for float32 costs: rescale it or use costScale',
      {
        details: { maxCost },
      },
    );
  }
  return { x: out[0], y: out[1], maxCost };
}

class WebGpuSoftmin implements SoftminBackend {
  readonly name = 'webgpu';
  private disposed = false;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly buffers: GPUBuffer[];
  private readonly hHost: Float32Array;
  /** The transport-cost kernel and its buffers, made on the first costSum call. */
  private costSumState?: Promise<CostSumState>;

  private constructor(
    private readonly device: GPUDevice,
    private readonly maxCost: number,
    private readonly kernel: Kernel,
    private readonly hBuf: GPUBuffer,
    private readonly outBuf: GPUBuffer,
    private readonly readBuf: GPUBuffer,
    private readonly sides: { rows: Side; cols: Side },
    private readonly setup: Setup,
    owned: GPUBuffer[],
  ) {
    this.buffers = owned;
    this.hHost = new Float32Array(Math.max(1, sides.rows.nIn, sides.cols.nIn));
  }

  static async create(
    device: GPUDevice,
    g: OnlineGeometry,
    opts: WebGpuSoftminOptions,
  ): Promise<WebGpuSoftmin> {
    const { n, m, dim } = g;
    if (
      !(Number.isInteger(n) && Number.isInteger(m) && Number.isInteger(dim) && n >= 0 && m >= 0 && dim >= 1)
    ) {
      throw fail('UNPROCESSABLE', 'The geometry needs integer sizes n, m >= 0 and dim >= 1');
    }
    if (g.x.length !== n * dim || g.y.length !== m * dim) {
      throw fail('UNPROCESSABLE', 'The point arrays do not have n * dim and m * dim entries');
    }
    if (!(g.costScale > 0 && Number.isFinite(g.costScale))) {
      throw fail('UNPROCESSABLE', 'costScale must be a positive finite number');
    }
    const limits = device.limits;
    const bytes = Math.max(n, m) * dim * 4;
    if (bytes > limits.maxStorageBufferBindingSize) {
      throw fail('PROBLEM_TOO_LARGE', 'The point cloud does not fit in one GPU storage buffer', {
        details: { bytes, limit: limits.maxStorageBufferBindingSize },
      });
    }
    const wg = Math.min(
      opts.workgroupSize ?? 64,
      limits.maxComputeWorkgroupSizeX,
      limits.maxComputeInvocationsPerWorkgroup,
    );
    const fit = Math.floor(limits.maxComputeWorkgroupStorageSize / 4 / (dim + 1));
    const tile = Math.max(0, Math.min(opts.tile ?? wg, fit));
    /** Workgroups for nOut outputs: a 2-D grid when they do not fit in one dimension. */
    const grid = (nOut: number) => {
      const groups = Math.ceil(nOut / wg);
      const groupsX = Math.max(1, Math.min(groups, limits.maxComputeWorkgroupsPerDimension));
      return { groupsX, groupsY: Math.ceil(groups / groupsX) };
    };
    if (grid(Math.max(n, m)).groupsY > limits.maxComputeWorkgroupsPerDimension) {
      throw fail('PROBLEM_TOO_LARGE', 'Too many points for one GPU dispatch', {
        details: { points: Math.max(n, m) },
      });
    }
    const { x, y, maxCost } = prepareClouds(g);

    let kernel: Kernel;
    try {
      kernel = await kernelFor(device, 'softmin', g.cost, dim, wg, tile);
    } catch (err) {
      throw fail('UNPROCESSABLE', `The WebGPU soft-min shader did not compile: ${(err as Error).message}`, {
        details: { backend: 'webgpu' },
        cause: err,
      });
    }
    // No await between the pushes and the pops, so that concurrent users of the device do not swap scopes.
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    const owned: GPUBuffer[] = [];
    const buffer = (size: number, usage: number, data?: Float32Array): GPUBuffer => {
      const b = device.createBuffer({ size: Math.max(4, size), usage, mappedAtCreation: data !== undefined });
      if (data) {
        new Float32Array(b.getMappedRange()).set(data);
        b.unmap();
      }
      owned.push(b);
      return b;
    };
    let made: WebGpuSoftmin | undefined;
    let failure: unknown;
    const buffers = {} as Setup['buffers'];
    try {
      const big = Math.max(1, n, m) * 4;
      const xBuf = buffer(x.byteLength, BUFFER_STORAGE, x);
      const yBuf = buffer(y.byteLength, BUFFER_STORAGE, y);
      const hBuf = buffer(big, BUFFER_STORAGE | BUFFER_COPY_DST);
      const outBuf = buffer(big, BUFFER_STORAGE | BUFFER_COPY_SRC);
      const readBuf = buffer(big, BUFFER_MAP_READ | BUFFER_COPY_DST);
      const sides = {} as { rows: Side; cols: Side };
      for (const [name, ptsOut, ptsIn, nOut, nIn] of [
        ['rows', xBuf, yBuf, n, m],
        ['cols', yBuf, xBuf, m, n],
      ] as const) {
        buffers[name] = { ptsOut, ptsIn };
        const params = buffer(16, BUFFER_UNIFORM | BUFFER_COPY_DST);
        const bindGroup = device.createBindGroup({
          layout: kernel.pipeline.getBindGroupLayout(0),
          entries: [
            { binding: 0, resource: { buffer: params } },
            { binding: 1, resource: { buffer: ptsOut } },
            { binding: 2, resource: { buffer: ptsIn } },
            { binding: 3, resource: { buffer: hBuf } },
            { binding: 4, resource: { buffer: outBuf } },
          ],
        });
        sides[name] = { nOut, nIn, params, bindGroup, ...grid(nOut) };
      }
      const setup = { cost: g.cost, dim, wg, tile, buffers };
      made = new WebGpuSoftmin(device, maxCost, kernel, hBuf, outBuf, readBuf, sides, setup, owned);
    } catch (err) {
      failure = err;
    }
    const [validation, oom] = await Promise.all([device.popErrorScope(), device.popErrorScope()]);
    const problem = (validation ?? oom ?? failure) as { message?: string } | undefined;
    if (problem || !made) {
      for (const b of owned) b.destroy();
      throw fail('UNPROCESSABLE', `The WebGPU backend could not set up the problem: ${problem?.message}`, {
        details: { backend: 'webgpu' },
        cause: problem,
      });
    }
    return made;
  }

  rows(h: Float64Array, eps: number, out: Float64Array): Promise<void> {
    return this.serial(() => this.softmin(this.sides.rows, h, eps, out));
  }

  cols(h: Float64Array, eps: number, out: Float64Array): Promise<void> {
    return this.serial(() => this.softmin(this.sides.cols, h, eps, out));
  }

  /**
   * The transport cost sum_ij exp((hr_i + hc_j - c_ij) / eps) c_ij (c divided by costScale; -Infinity entries
   * contribute nothing), the `costSum` of SoftminCostBackend (online-cpu.ts), so that online.ts needs no CPU
   * pass over the n*m pairs. One kernel pass over the pairs from the side with more points (more invocations):
   * each invocation keeps the running max m_i of t_k = (h_k - H - c_ik) / eps and w_i = sum_k exp(t_k - m_i)
   * c_ik / C (C the largest cost, so that w stays far from the float32 overflow), its per-tile sums added with
   * Kahan's compensation; the host adds exp((h_i + H) / eps + m_i) * w_i * C over i in float64 (the float32
   * rounding of m_i cancels: the shader used that very value).
   *
   * Accuracy: relative, a few 1e-7 of (largest cost + spread of the h entries that matter) / eps, as for
   * rows/cols (the error of t_k, the exponent of each term, is absolute on that scale); the test checks 1e-5.
   * NaN in hr or hc gives NaN, +Infinity gives +Infinity, and all -Infinity on either side gives 0, without the
   * GPU.
   */
  costSum(hr: Float64Array, hc: Float64Array, eps: number): Promise<number> {
    return this.serial(() => this.transportCost(hr, hc, eps));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const b of this.buffers) b.destroy();
  }

  /** Calls share the h/out/read buffers: they run one after the other. */
  private serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.chain.then(task);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private checkCall(h: Float64Array, nIn: number, eps: number, out: number, nOut: number): void {
    if (this.disposed) throw new Error('The WebGPU soft-min backend was disposed');
    if (h.length !== nIn || out !== nOut) {
      throw new RangeError(`soft-min: h has ${h.length} entries (want ${nIn}), out ${out} (want ${nOut})`);
    }
    if (!(eps > 0 && Number.isFinite(eps)))
      throw new RangeError('soft-min: eps must be a positive finite number');
  }

  /**
   * The largest finite entry H of h; when it is finite, hHost holds h - H as sent to the shader (see the top of
   * the file). NaN when h has a NaN, +Infinity when it has one, -Infinity when every entry is -Infinity.
   */
  private shiftH(h: Float64Array, eps: number): number {
    let top = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < h.length; j++) {
      const v = h[j];
      if (Number.isNaN(v)) return Number.NaN;
      if (v === Number.POSITIVE_INFINITY) return v;
      if (v > top) top = v;
    }
    if (top === Number.NEGATIVE_INFINITY) return top;
    if (!(this.maxCost / eps < F32_HEADROOM)) {
      throw fail('UNPROCESSABLE', 'eps is too small next to the cost for float32 (use the CPU backend)', {
        details: { eps, maxCost: this.maxCost },
      });
    }
    const floor = -(this.maxCost + 200 * eps);
    const hf = this.hHost;
    for (let j = 0; j < h.length; j++) {
      const v = h[j];
      hf[j] = v === Number.NEGATIVE_INFINITY ? SKIP_VALUE : Math.max(v - top, floor);
    }
    return top;
  }

  /** Uploads params and hHost, runs one dispatch over `side`, returns a copy of the first `floats` outputs. */
  private async dispatch(
    pipeline: GPUComputePipeline,
    side: Dispatch,
    params: ArrayBuffer,
    nIn: number,
    out: { outBuf: GPUBuffer; readBuf: GPUBuffer },
    floats: number,
  ): Promise<Float32Array> {
    const { device } = this;
    device.queue.writeBuffer(side.params, 0, params);
    device.queue.writeBuffer(this.hBuf, 0, this.hHost.buffer, 0, Math.max(1, nIn) * 4);
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, side.bindGroup);
    pass.dispatchWorkgroups(side.groupsX, side.groupsY);
    pass.end();
    encoder.copyBufferToBuffer(out.outBuf, 0, out.readBuf, 0, floats * 4);
    device.queue.submit([encoder.finish()]);
    await out.readBuf.mapAsync(MAP_READ, 0, floats * 4);
    try {
      return new Float32Array(out.readBuf.getMappedRange(0, floats * 4).slice(0));
    } finally {
      out.readBuf.unmap();
    }
  }

  private async softmin(side: Side, h: Float64Array, eps: number, out: Float64Array): Promise<void> {
    const { nOut, nIn } = side;
    this.checkCall(h, nIn, eps, out.length, nOut);
    if (nOut === 0) return;
    // NaN and +Infinity give what the formula gives (NaN, -Infinity) without the GPU.
    const top = this.shiftH(h, eps);
    if (Number.isNaN(top)) return void out.fill(Number.NaN);
    if (top === Number.POSITIVE_INFINITY) return void out.fill(Number.NEGATIVE_INFINITY);
    if (top === Number.NEGATIVE_INFINITY) return void out.fill(Number.POSITIVE_INFINITY);
    const params = new ArrayBuffer(16);
    new Uint32Array(params, 0, 2).set([nOut, nIn]);
    new Float32Array(params, 8, 1)[0] = 1 / eps;
    new Uint32Array(params, 12, 1)[0] = side.groupsX;
    const bufs = { outBuf: this.outBuf, readBuf: this.readBuf };
    const lse = await this.dispatch(this.kernel.pipeline, side, params, nIn, bufs, nOut);
    for (let i = 0; i < nOut; i++) out[i] = -top - eps * lse[i];
  }

  private async transportCost(hr: Float64Array, hc: Float64Array, eps: number): Promise<number> {
    const { rows } = this.sides;
    this.checkCall(hc, rows.nIn, eps, hr.length, rows.nOut);
    for (const h of [hr, hc]) {
      for (let k = 0; k < h.length; k++) {
        if (Number.isNaN(h[k])) return Number.NaN;
      }
    }
    // The outer side (one invocation per point) is the larger one; hOut is added on the host, hIn on the GPU.
    const byRows = rows.nOut >= rows.nIn;
    const hOut = byRows ? hr : hc;
    const hIn = byRows ? hc : hr;
    let outTop = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < hOut.length; i++) outTop = Math.max(outTop, hOut[i]);
    const top = this.shiftH(hIn, eps);
    if (top === Number.POSITIVE_INFINITY || outTop === Number.POSITIVE_INFINITY)
      return Number.POSITIVE_INFINITY;
    if (top === Number.NEGATIVE_INFINITY || outTop === Number.NEGATIVE_INFINITY) return 0;
    const state = await this.costSumKernel();
    const side = byRows ? state.rows : state.cols;
    const { nOut, nIn } = byRows ? this.sides.rows : this.sides.cols;
    const norm = Math.fround(this.maxCost > 0 ? 1 / this.maxCost : 1);
    const params = new ArrayBuffer(32);
    new Uint32Array(params, 0, 2).set([nOut, nIn]);
    new Float32Array(params, 8, 1)[0] = 1 / eps;
    new Uint32Array(params, 12, 1)[0] = side.groupsX;
    new Float32Array(params, 16, 1)[0] = norm;
    const res = await this.dispatch(state.kernel.pipeline, side, params, nIn, state, 2 * nOut);
    let total = 0;
    for (let i = 0; i < nOut; i++) {
      const w = res[2 * i + 1];
      if (hOut[i] === Number.NEGATIVE_INFINITY || w === 0) continue;
      total += Math.exp((hOut[i] + top) / eps + res[2 * i]) * w;
    }
    return total / norm;
  }

  /** Compiles the transport-cost kernel and makes its buffers, once (a failure is not kept: the next call retries). */
  private costSumKernel(): Promise<CostSumState> {
    if (!this.costSumState) {
      this.costSumState = this.makeCostSum();
      this.costSumState.catch(() => {
        this.costSumState = undefined;
      });
    }
    return this.costSumState;
  }

  private async makeCostSum(): Promise<CostSumState> {
    const { device, setup } = this;
    const nOut = Math.max(1, this.sides.rows.nOut, this.sides.cols.nOut);
    const bytes = 2 * nOut * 4;
    if (bytes > device.limits.maxStorageBufferBindingSize) {
      throw fail('PROBLEM_TOO_LARGE', 'The transport cost does not fit in one GPU storage buffer', {
        details: { bytes, limit: device.limits.maxStorageBufferBindingSize },
      });
    }
    let kernel: Kernel;
    try {
      kernel = await kernelFor(device, 'costSum', setup.cost, setup.dim, setup.wg, setup.tile);
    } catch (err) {
      throw fail('UNPROCESSABLE', `The WebGPU cost shader did not compile: ${(err as Error).message}`, {
        details: { backend: 'webgpu' },
        cause: err,
      });
    }
    if (this.disposed) throw new Error('The WebGPU soft-min backend was disposed');
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    const made: GPUBuffer[] = [];
    let state: CostSumState | undefined;
    let failure: unknown;
    try {
      const buffer = (size: number, usage: number) => {
        const b = device.createBuffer({ size, usage });
        made.push(b);
        return b;
      };
      const outBuf = buffer(bytes, BUFFER_STORAGE | BUFFER_COPY_SRC);
      const readBuf = buffer(bytes, BUFFER_MAP_READ | BUFFER_COPY_DST);
      const dispatch = (name: 'rows' | 'cols'): Dispatch => {
        const params = buffer(32, BUFFER_UNIFORM | BUFFER_COPY_DST);
        const { ptsOut, ptsIn } = setup.buffers[name];
        const bindGroup = device.createBindGroup({
          layout: kernel.pipeline.getBindGroupLayout(0),
          entries: [
            { binding: 0, resource: { buffer: params } },
            { binding: 1, resource: { buffer: ptsOut } },
            { binding: 2, resource: { buffer: ptsIn } },
            { binding: 3, resource: { buffer: this.hBuf } },
            { binding: 4, resource: { buffer: outBuf } },
          ],
        });
        const { groupsX, groupsY } = this.sides[name];
        return { params, bindGroup, groupsX, groupsY };
      };
      state = { kernel, outBuf, readBuf, rows: dispatch('rows'), cols: dispatch('cols') };
    } catch (err) {
      failure = err;
    }
    const [validation, oom] = await Promise.all([device.popErrorScope(), device.popErrorScope()]);
    const problem = (validation ?? oom ?? failure) as { message?: string } | undefined;
    if (problem || !state || this.disposed) {
      for (const b of made) b.destroy();
      if (this.disposed) throw new Error('The WebGPU soft-min backend was disposed');
      throw fail('UNPROCESSABLE', `The WebGPU backend could not set up the cost pass: ${problem?.message}`, {
        details: { backend: 'webgpu' },
        cause: problem,
      });
    }
    this.buffers.push(...made);
    return state;
  }
}

/** One dispatch: its params buffer, bind group and grid. */
interface Dispatch {
  params: GPUBuffer;
  bindGroup: GPUBindGroup;
  groupsX: number;
  groupsY: number;
}

interface Side extends Dispatch {
  nOut: number;
  nIn: number;
}

/** What create() keeps for the kernels made later (costSum). */
interface Setup {
  cost: OnlineCost;
  dim: number;
  wg: number;
  tile: number;
  buffers: Record<'rows' | 'cols', { ptsOut: GPUBuffer; ptsIn: GPUBuffer }>;
}

interface CostSumState {
  kernel: Kernel;
  outBuf: GPUBuffer;
  readBuf: GPUBuffer;
  rows: Dispatch;
  cols: Dispatch;
}
