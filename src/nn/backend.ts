/**
 * Chooses and initialises the TF.js backend for this thread (each worker thread has its own TF.js instance).
 *
 * 'auto' prefers the native TensorFlow binding (GPU build first) when one is installed, then the wasm backend
 * (the embedded default: it installs from the npm registry alone, with our fast conv2d gradient kernels), then the
 * pure-JS cpu backend. The native packages are optional and absent from package.json, so a missing module is a
 * quiet fallback, recorded in `tried`.
 */
import { registerWasmGradKernels } from './wasm-grad-kernels.js';

export type Tf = typeof import('@tensorflow/tfjs');
export type BackendPreference = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_PREFERENCES: readonly BackendPreference[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

export interface BackendAttempt {
  name: string;
  error?: string;
}

export interface TfjsRuntime {
  tf: Tf;
  /** The active TF.js backend name: 'tensorflow', 'wasm' or 'cpu'. */
  backend: string;
  /** True when the native TensorFlow binding runs the ops. */
  native: boolean;
  /** Every candidate considered, in order, with the reason it was skipped. */
  tried: BackendAttempt[];
}

type Candidate = { name: string; native: boolean; activate: (tf: Tf) => Promise<void> };

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

const cpuCandidate: Candidate = { name: 'cpu', native: false, activate: (tf) => activate(tf, 'cpu') };

function candidatesFor(pref: BackendPreference): Candidate[] {
  switch (pref) {
    case 'auto':
      return [
        nativeCandidate(NATIVE_GPU_PACKAGE),
        nativeCandidate(NATIVE_CPU_PACKAGE),
        wasmCandidate,
        cpuCandidate,
      ];
    case 'tensorflow':
      return [nativeCandidate(NATIVE_GPU_PACKAGE), nativeCandidate(NATIVE_CPU_PACKAGE)];
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
  for (const candidate of candidatesFor(pref)) {
    try {
      await candidate.activate(tf);
      tried.push({ name: candidate.name });
      return { tf, backend: tf.getBackend(), native: candidate.native, tried };
    } catch (error) {
      tried.push({ name: candidate.name, error: describeError(error) });
    }
  }
  const reasons = tried.map((t) => `${t.name}: ${t.error}`).join('; ');
  throw new Error(`TF.js backend '${pref}' is unavailable (${reasons})`);
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
