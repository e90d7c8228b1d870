/**
 * The one place that creates the WebGPU adapter and device (Dawn, through the `webgpu` npm package), once per
 * thread: module state is per thread, so each compute worker gets its own device, as Dawn wants.
 *
 * Everything that runs on the GPU (the online Sinkhorn soft-min kernels, src/ot/online-webgpu.ts; later the TF.js
 * WebGPU backend) shares this device: `new WebGPUBackend(gpu.device, gpu.adapterInfo)` from
 * @tensorflow/tfjs-backend-webgpu takes exactly what `getWebGpu()` returns. The device is requested with the
 * features and limits that TF.js's own backend factory asks for (the adapter's maxima for storage buffers and
 * workgroups, 'timestamp-query' and 'bgra8unorm-storage' when present), so a TF.js backend built on it behaves as
 * one built by TF.js. TF.js registers its backend only if `navigator.gpu` exists when its module is evaluated:
 * acquiring the device sets `navigator.gpu` and the WebGPU globals (GPUBufferUsage, ...), without overwriting
 * any that exist, so import the TF.js backend after `getWebGpu()`.
 *
 * Never throws: when there is no adapter (no GPU and no software Vulkan driver, or the `webgpu` native module
 * does not load) the answer is `{ ok: false, reason }`. A software adapter (Mesa's lavapipe/llvmpipe, SwiftShader)
 * is a CPU running shaders, slower than our wasm kernels: it is only returned when asked for (`allowSoftware`),
 * as the tests do; the report says which kind it is either way.
 */

/** What the adapter says about itself. */
export interface GpuAdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** The adapter is a CPU implementation (lavapipe/llvmpipe, SwiftShader, WARP, or a fallback adapter). */
  software: boolean;
  /** The adapter reports itself as a fallback adapter (GPUAdapterInfo.isFallbackAdapter). */
  fallback: boolean;
}

export interface WebGpu {
  ok: true;
  device: GPUDevice;
  adapter: GPUAdapter;
  /** The raw GPUAdapterInfo, for `new WebGPUBackend(device, adapterInfo)`. */
  adapterInfo: GPUAdapterInfo;
  info: GpuAdapterReport;
}

export interface NoWebGpu {
  ok: false;
  /** Why there is no device, in words (for logs, health reports and error details). */
  reason: string;
  /** The adapter that was found but refused (a software one without `allowSoftware`). */
  info?: GpuAdapterReport;
}

export interface GetWebGpuOptions {
  /** Accept a software adapter (lavapipe, SwiftShader). Default false: a service should prefer wasm to it. */
  allowSoftware?: boolean;
}

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|software|warp|microsoft basic render/i;

/** Reads GPUAdapterInfo's fields (they are getters, not own properties) into a plain report. */
export function describeAdapter(info: GPUAdapterInfo): GpuAdapterReport {
  const fallback = (info as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  const vendor = info.vendor ?? '';
  const architecture = info.architecture ?? '';
  const device = info.device ?? '';
  const description = info.description ?? '';
  return {
    vendor,
    architecture,
    device,
    description,
    fallback,
    software: fallback || SOFTWARE.test([vendor, architecture, device, description].join(' ')),
  };
}

let pending: Promise<WebGpu | NoWebGpu> | undefined;

/**
 * The thread's WebGPU device, created on the first call (later calls share it). A device that is lost (or
 * released) is forgotten, so the next call makes a new one. "No adapter" is remembered too (a driver does not
 * appear while the process runs): the adapter is looked for once per thread, until releaseWebGpu().
 */
export async function getWebGpu(opts: GetWebGpuOptions = {}): Promise<WebGpu | NoWebGpu> {
  pending ??= acquire();
  const got = await pending;
  if (got.ok && got.info.software && !opts.allowSoftware) {
    return {
      ok: false,
      reason: `only a software adapter was found (${got.info.description || got.info.device}); it is slower than the CPU path, and used only when asked for`,
      info: got.info,
    };
  }
  return got;
}

/** Destroys the thread's device (if any), so that the process can exit; the next getWebGpu() makes a new one. */
export async function releaseWebGpu(): Promise<void> {
  const p = pending;
  pending = undefined;
  const got = await p;
  if (got?.ok) {
    // Released on purpose: not a loss.
    released.add(got.device);
    got.device.destroy();
  }
}

// --- device loss ---------------------------------------------------------------------------------------------------

/** Devices destroyed by releaseWebGpu(): their `lost` promise is no loss to report. */
const released = new WeakSet<GPUDevice>();
const lostListeners = new Set<(reason: string) => void>();

/**
 * Calls `listener` with the reason (in words) when the thread's device is lost (a driver reset or crash, the GPU
 * taken away: Dawn resolves `device.lost`); not when releaseWebGpu() destroys it. Returns the unsubscribe function.
 * The compute worker fails its tasks in flight and is replaced on it (src/compute/worker.ts).
 */
export function onDeviceLost(listener: (reason: string) => void): () => void {
  lostListeners.add(listener);
  return () => lostListeners.delete(listener);
}

/**
 * Reports a loss of the thread's device to the onDeviceLost listeners. Dawn's `device.lost` calls it (after
 * forgetting the device); a test or a fault drill calls it to inject a loss without destroying a real device.
 */
export function reportDeviceLoss(reason: string): void {
  for (const listener of [...lostListeners]) listener(reason);
}

async function acquire(): Promise<WebGpu | NoWebGpu> {
  let gpu: GPU;
  try {
    const { create, globals } = await import('webgpu');
    installGlobals(globals as Record<string, unknown>);
    gpu = create([]);
    const nav = globalThis as { navigator?: { gpu?: GPU } };
    if (nav.navigator === undefined) nav.navigator = { gpu };
    else if (nav.navigator.gpu === undefined) nav.navigator.gpu = gpu;
  } catch (err) {
    return { ok: false, reason: `the WebGPU module (Dawn) could not be loaded: ${(err as Error).message}` };
  }
  try {
    const adapter =
      (await gpu.requestAdapter({ powerPreference: 'high-performance' })) ??
      (await gpu.requestAdapter({ forceFallbackAdapter: true }));
    if (!adapter) {
      return {
        ok: false,
        reason: 'no WebGPU adapter: no GPU with a Vulkan driver, and no software Vulkan driver',
      };
    }
    const adapterInfo = adapter.info;
    const info = describeAdapter(adapterInfo);
    const features: GPUFeatureName[] = [];
    for (const f of ['timestamp-query', 'bgra8unorm-storage'] as GPUFeatureName[]) {
      if (adapter.features.has(f)) features.push(f);
    }
    const l = adapter.limits;
    const device = await adapter.requestDevice({
      requiredFeatures: features,
      requiredLimits: {
        maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
        maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
        maxBufferSize: l.maxBufferSize,
        maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
        maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      },
    });
    const mine = pending;
    void device.lost.then((info) => {
      // Forget a lost device (driver reset, destroy()) so that the next caller gets a new one.
      if (pending === mine) pending = undefined;
      if (released.has(device)) return;
      reportDeviceLoss(`${info.reason ?? 'unknown'}${info.message ? `: ${info.message}` : ''}`);
    });
    return { ok: true, device, adapter, adapterInfo, info };
  } catch (err) {
    return { ok: false, reason: `the WebGPU device could not be created: ${(err as Error).message}` };
  }
}

function installGlobals(globals: Record<string, unknown>): void {
  const g = globalThis as Record<string, unknown>;
  for (const [k, v] of Object.entries(globals)) {
    if (g[k] === undefined) g[k] = v;
  }
}
