import { valueSymbol } from 'piscina';
import { afterAll, describe, expect, it } from 'vitest';
import type { TaskEnvelope, TaskOutcome } from '../../src/compute/task-types.js';
import runTask from '../../src/compute/worker.js';
import { getWebGpu, releaseWebGpu } from '../../src/gpu/device.js';
import { initTfjs } from '../../src/nn/backend.js';
import { getModel } from '../../src/nn/repository.js';

// A lost WebGPU device (driver reset, GPU gone: here device.destroy() on lavapipe) in a compute worker: the task
// that meets it answers 503 TW_GPU_DEVICE_LOST with Retry-After instead of crashing or failing with a 500, and the
// worker moves TF.js to a new device, where the models reload and the next task gives the same answer. The worker's
// task function runs in this thread (its TF.js runtime is this thread's). Skipped without an adapter, unless
// TEST_WEBGPU=1.
type LayersModel = import('@tensorflow/tfjs').LayersModel;

const probe = await getWebGpu({ allowSoftware: true });
const run = probe.ok || process.env.TEST_WEBGPU === '1';
afterAll(releaseWebGpu);

const unwrap = (o: TaskOutcome): TaskOutcome =>
  (valueSymbol in (o as object)
    ? (o as unknown as Record<symbol, TaskOutcome>)[valueSymbol]
    : o) as TaskOutcome;
const task = async (kind: TaskEnvelope['kind'], input: unknown) => unwrap(await runTask({ kind, input }));

describe.skipIf(!run)('a lost WebGPU device', () => {
  it('fails the task that meets it with 503 TW_GPU_DEVICE_LOST; the worker recovers on a new device', async () => {
    const rt = await initTfjs('webgpu');
    expect(rt.backend).toBe('webgpu');
    const data = Float32Array.from({ length: 16 * 16 }, (_, i) => 0.5 + 0.3 * Math.sin(i / 7));
    const infer = () => task('model.infer', { name: 'noise2score-gaussian', data, shape: [1, 16, 16, 1] });
    const before = await infer();
    expect(before.ok).toBe(true);

    // The device goes while the task runs: the cached model destroys it when it is called.
    const gpu = await getWebGpu({ allowSoftware: true });
    if (!gpu.ok) throw new Error(gpu.reason);
    const { model } = await getModel<LayersModel>(rt.tf, 'models', 'noise2score-gaussian');
    const predict = model.predict.bind(model);
    model.predict = ((...args: Parameters<LayersModel['predict']>) => {
      gpu.device.destroy();
      return predict(...args);
    }) as LayersModel['predict'];
    const lost = await infer();
    expect(lost.ok).toBe(false);
    expect(lost).toMatchObject({
      error: { code: 'TW_GPU_DEVICE_LOST', statusCode: 503, retryAfter: 1, details: { backend: 'webgpu' } },
    });

    const after = await infer();
    expect(after.ok).toBe(true);
    const a = (before as { result: { data: Float32Array } }).result.data;
    const b = (after as { result: { data: Float32Array } }).result.data;
    expect(b.length).toBe(a.length);
    for (let i = 0; i < a.length; i++) expect(Math.abs(b[i] - a[i])).toBeLessThanOrEqual(1e-5);
    const info = (await task('system.info', {})) as {
      result: { backend: string; tried: { error?: string }[] };
    };
    expect(info.result.backend).toBe('webgpu');
    expect(info.result.tried.some((t) => /device lost/.test(t.error ?? ''))).toBe(true);
    // The new device is a different one.
    const now = await getWebGpu({ allowSoftware: true });
    if (!now.ok) throw new Error(now.reason);
    expect(now.device).not.toBe(gpu.device);

    // Lost between two tasks: the next task recovers first and succeeds.
    now.device.destroy();
    await now.device.lost;
    const next = await infer();
    expect(next.ok).toBe(true);
  }, 120_000);
});
