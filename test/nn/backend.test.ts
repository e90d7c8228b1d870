import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it, vi } from 'vitest';

const workerFile = fileURLToPath(new URL('./fixtures/backend-worker.ts', import.meta.url));

async function freshBackendModule() {
  vi.resetModules();
  return import('../../src/nn/backend.js');
}

function runWorker(pref: string): Promise<any> {
  return new Promise((resolve, reject) => {
    // A plain-JS bootstrap registers tsx in the worker, then loads the TypeScript probe.
    const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(
      pathToFileURL(workerFile).href,
    )}); })`;
    const worker = new Worker(bootstrap, { eval: true, workerData: { pref } });
    worker.once('message', (message) => {
      resolve(message);
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => (code !== 0 ? reject(new Error(`worker exited with ${code}`)) : undefined));
  });
}

/** The gradient of sum(conv2d(ones 6x6, ones 3x3, same)) w.r.t. x: how many output windows cover each pixel. */
function expectedInputGradient(size: number, outChannels: number): number[] {
  const cover = (i: number) => 1 + (i > 0 ? 1 : 0) + (i < size - 1 ? 1 : 0);
  const out: number[] = [];
  for (let r = 0; r < size; r++) for (let c = 0; c < size; c++) out.push(cover(r) * cover(c) * outChannels);
  return out;
}

describe('initTfjs', () => {
  it('auto falls back quietly past missing native bindings to wasm with our gradient kernels', async (ctx) => {
    const { initTfjs } = await freshBackendModule();
    const { releaseWebGpu } = await import('../../src/gpu/device.js');
    ctx.onTestFinished(releaseWebGpu);
    const runtime = await initTfjs('auto');
    expect(runtime.backend).toBe('wasm');
    expect(runtime.native).toBe(false);
    expect(runtime.tried.map((t) => t.name)).toEqual([
      'tensorflow (@tensorflow/tfjs-node-gpu)',
      'webgpu',
      'tensorflow (@tensorflow/tfjs-node)',
      'wasm',
    ]);
    expect(runtime.tried[0].error).toBe('not installed');
    // No GPU here: either no adapter at all, or a software one (lavapipe) that 'auto' refuses.
    expect(runtime.tried[1].error).toMatch(/no WebGPU adapter|only a software adapter|could not be/);
    if (runtime.adapter) expect(runtime.adapter.software).toBe(true);
    expect(runtime.tried[3].error).toBeUndefined();
    expect(runtime.tf.getBackend()).toBe('wasm');
    expect(runtime.tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
    // Idempotent: the same runtime object, and an explicit request for the active backend is accepted.
    expect(await initTfjs()).toBe(runtime);
    expect(await initTfjs('wasm')).toBe(runtime);
    await expect(initTfjs('cpu')).rejects.toThrow(/already initialised with backend 'wasm'/);
  });

  it('an explicit unavailable backend throws a clear error', async () => {
    const { initTfjs } = await freshBackendModule();
    await expect(initTfjs('tensorflow')).rejects.toThrow(
      /backend 'tensorflow' is unavailable .*tfjs-node-gpu\): not installed/,
    );
  });

  it("'webgpu' without a device falls back to wasm, with the reason in tried", async () => {
    vi.resetModules();
    vi.doMock('../../src/gpu/device.js', () => ({
      getWebGpu: async () => ({ ok: false, reason: 'the WebGPU device could not be created: test' }),
    }));
    try {
      const { initTfjs } = await import('../../src/nn/backend.js');
      const runtime = await initTfjs('webgpu');
      expect(runtime.backend).toBe('wasm');
      expect(runtime.tried).toEqual([
        { name: 'webgpu', error: 'the WebGPU device could not be created: test' },
        { name: 'wasm' },
      ]);
    } finally {
      vi.doUnmock('../../src/gpu/device.js');
    }
  });

  it('an explicit cpu preference selects cpu only', async () => {
    const { initTfjs } = await freshBackendModule();
    const runtime = await initTfjs('cpu');
    expect(runtime.backend).toBe('cpu');
    expect(runtime.tried).toEqual([{ name: 'cpu' }]);
  });

  it('wasm initialises and trains inside a worker thread', async () => {
    const result = await runWorker('wasm');
    expect(result.backend).toBe('wasm');
    expect(result.gradients.dx).toEqual(expectedInputGradient(6, 2));
    // d/dw of sum over outputs: each filter tap sees the pixels it overlaps, for both output channels.
    const tapSum = [25, 30, 25, 30, 36, 30, 25, 30, 25];
    expect(result.gradients.dw).toEqual(tapSum.flatMap((v) => [v, v]));
    expect(result.numTensors).toBe(0);
  });
});
