/**
 * Chooses and initialises the TF.js backend for this thread (each worker thread has its own TF.js instance).
 *
 * 'auto' prefers the native TensorFlow GPU binding when installed, then TF.js WebGPU (Dawn, src/gpu/device.ts) on a
 * hardware adapter, then the native CPU binding, then the wasm backend (the embedded default: it installs from the
 * npm registry alone, with our fast conv2d gradient kernels), then the pure-JS cpu backend. The native packages are
 * optional and absent from package.json, so a missing module is a quiet fallback, recorded in `tried`; so is a
 * missing or software-only WebGPU adapter (lavapipe, SwiftShader: a CPU running shaders, slower than wasm). A
 * software adapter is used only when asked for by name ('webgpu').
 *
 * WebGPU in Node has no synchronous read-back: code that runs models reads with `await t.data()`.
 */
import type { GpuAdapterReport } from '../gpu/device.js';
import type { ModelTier } from './manifest.js';
import { registerWasmGradKernels } from './wasm-grad-kernels.js';

export type Tf = typeof import('@tensorflow/tfjs');
export type BackendPreference = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export const BACKEND_PREFERENCES: readonly BackendPreference[] = [
  'auto',
  'tensorflow',
  'webgpu',
  'wasm',
  'cpu',
];

export interface BackendAttempt {
  name: string;
  error?: string;
}

export interface TfjsRuntime {
  tf: Tf;
  /** The active TF.js backend name: 'tensorflow', 'webgpu', 'wasm' or 'cpu'. */
  backend: string;
  /** The WebGPU adapter: the one in use on 'webgpu', or the one found and refused (a software one under 'auto'). */
  adapter?: GpuAdapterReport;
  /** True when the native TensorFlow binding runs the ops. */
  native: boolean;
  /** Every candidate considered, in order, with the reason it was skipped. */
  tried: BackendAttempt[];
}

type Candidate = {
  name: string;
  native: boolean;
  /** Activates the backend; may report the GPU adapter it found (also when it then fails). */
  activate: (tf: Tf, found: { adapter?: GpuAdapterReport }) => Promise<void>;
};

// Specifiers held in variables so TypeScript does not demand type declarations for packages that are not installed.
const NATIVE_GPU_PACKAGE: string = '@tensorflow/tfjs-node-gpu';
const NATIVE_CPU_PACKAGE: string = '@tensorflow/tfjs-node';

async function activate(tf: Tf, backendName: string): Promise<void> {
  const ok = await tf.setBackend(backendName);
  if (!ok) throw new Error(`tf.setBackend('${backendName}') failed`);
  await tf.ready();
}

function nativeCandidate(packageName: string): Candidate {
  return {
    name: `tensorflow (${packageName})`,
    native: true,
    activate: async (tf) => {
      // Importing the binding registers the 'tensorflow' backend with the shared tfjs-core instance.
      await import(packageName);
      await activate(tf, 'tensorflow');
    },
  };
}

const wasmCandidate: Candidate = {
  name: 'wasm',
  native: false,
  activate: async (tf) => {
    await import('@tensorflow/tfjs-backend-wasm');
    registerWasmGradKernels(tf);
    await activate(tf, 'wasm');
  },
};

/**
 * TF.js WebGPU on the thread's Dawn device (src/gpu/device.ts), which the online Sinkhorn kernels share. The
 * backend's module registers its own 'webgpu' factory (a second device) when navigator.gpu exists at import: ours
 * replaces it, so that there is one device per thread.
 */
function webgpuCandidate(allowSoftware: boolean): Candidate {
  return {
    name: 'webgpu',
    native: false,
    activate: async (tf, found) => {
      const { getWebGpu } = await import('../gpu/device.js');
      const gpu = await getWebGpu({ allowSoftware });
      found.adapter = gpu.info;
      if (!gpu.ok) throw new Error(gpu.reason);
      // getWebGpu() has set navigator.gpu and the WebGPU globals the backend's module needs at evaluation.
      const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
      if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
      tf.registerBackend('webgpu', () => new WebGPUBackend(gpu.device, gpu.adapterInfo), 0);
      await activate(tf, 'webgpu');
    },
  };
}

const cpuCandidate: Candidate = { name: 'cpu', native: false, activate: (tf) => activate(tf, 'cpu') };

function candidatesFor(pref: BackendPreference): Candidate[] {
  switch (pref) {
    case 'auto':
      return [
        nativeCandidate(NATIVE_GPU_PACKAGE),
        webgpuCandidate(false),
        nativeCandidate(NATIVE_CPU_PACKAGE),
        wasmCandidate,
        cpuCandidate,
      ];
    case 'tensorflow':
      return [nativeCandidate(NATIVE_GPU_PACKAGE), nativeCandidate(NATIVE_CPU_PACKAGE)];
    case 'webgpu':
      // Asked for by name: a software adapter is accepted; no device at all falls back (the reason in `tried`).
      return [webgpuCandidate(true), wasmCandidate, cpuCandidate];
    case 'wasm':
      return [wasmCandidate];
    case 'cpu':
      return [cpuCandidate];
    default:
      throw new Error(
        `unknown TF.js backend preference '${String(pref)}' (expected ${BACKEND_PREFERENCES.join('|')})`,
      );
  }
}

function describeError(error: unknown): string {
  const code = (error as { code?: string })?.code;
  if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return 'not installed';
  return error instanceof Error ? error.message : String(error);
}

async function initialise(pref: BackendPreference): Promise<TfjsRuntime> {
  const tf = await import('@tensorflow/tfjs');
  const tried: BackendAttempt[] = [];
  let adapter: GpuAdapterReport | undefined;
  for (const candidate of candidatesFor(pref)) {
    const found: { adapter?: GpuAdapterReport } = {};
    try {
      await candidate.activate(tf, found);
      adapter = found.adapter ?? adapter;
      tried.push({ name: candidate.name });
      return {
        tf,
        backend: tf.getBackend(),
        native: candidate.native,
        tried,
        ...(adapter ? { adapter } : {}),
      };
    } catch (error) {
      adapter = found.adapter ?? adapter;
      tried.push({ name: candidate.name, error: describeError(error) });
    }
  }
  const reasons = tried.map((t) => `${t.name}: ${t.error}`).join('; ');
  throw new Error(`TF.js backend '${pref}' is unavailable (${reasons})`);
}

/**
 * The model tier a backend serves by default: 'gpu' on WebGPU with a hardware adapter or on the native TensorFlow
 * GPU binding (tfjs-node-gpu), 'cpu' otherwise (wasm, cpu, tfjs-node, WebGPU on a software adapter such as lavapipe).
 */
export function backendModelTier(info: {
  backend: string | null | undefined;
  tried?: readonly BackendAttempt[];
  adapter?: { software?: boolean } | null;
}): ModelTier {
  if (info.backend === 'webgpu') return info.adapter?.software === false ? 'gpu' : 'cpu';
  if (info.backend === 'tensorflow') {
    const used = info.tried?.findLast((t) => t.error === undefined);
    return used?.name.includes('tfjs-node-gpu') ? 'gpu' : 'cpu';
  }
  return 'cpu';
}

/** This thread's tier (backendModelTier of its TF.js runtime); 'cpu' before TF.js is initialised. */
let threadTier: ModelTier = 'cpu';
export function runtimeModelTier(): ModelTier {
  return threadTier;
}

let runtime: Promise<TfjsRuntime> | undefined;
let runtimePreference: BackendPreference | undefined;

/**
 * Initialises TF.js once per thread. Later calls return the same runtime; asking explicitly for a different backend
 * than the one already chosen is an error rather than a silent switch (tensors and models would be stranded).
 */
export async function initTfjs(pref: BackendPreference = 'auto'): Promise<TfjsRuntime> {
  if (runtime === undefined) {
    runtimePreference = pref;
    runtime = initialise(pref);
    runtime.then(
      (r) => {
        threadTier = backendModelTier(r);
      },
      () => {},
    );
    // A failed initialisation may be retried (for instance with another preference).
    runtime.catch(() => {
      runtime = undefined;
      runtimePreference = undefined;
    });
    return runtime;
  }
  const current = await runtime;
  if (pref !== 'auto' && pref !== runtimePreference && pref !== current.backend) {
    throw new Error(
      `TF.js is already initialised with backend '${current.backend}'; cannot switch to '${pref}' in this thread`,
    );
  }
  return current;
}
