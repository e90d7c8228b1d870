import type { Tensor4D } from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';

// TF.js on WebGPU through the thread's Dawn device: lavapipe (Mesa's software Vulkan driver) on CI and on machines
// without a GPU. Its own file: one Dawn instance per process (a second one, from a reset module graph, crashes it).
// Skipped when there is no adapter, unless TEST_WEBGPU=1 (.ci/run installs lavapipe and sets it).

describe('initTfjs webgpu', () => {
  it("'webgpu' runs on the software adapter when asked for by name", async (ctx) => {
    const { initTfjs } = await import('../../src/nn/backend.js');
    // The device module of this module graph (one Dawn device per process: two crash it).
    const { releaseWebGpu } = await import('../../src/gpu/device.js');
    ctx.onTestFinished(releaseWebGpu);
    const runtime = await initTfjs('webgpu');
    // Without any adapter (no lavapipe) it fell back to wasm: skipped, unless TEST_WEBGPU=1 demands one.
    if (runtime.backend !== 'webgpu' && process.env.TEST_WEBGPU !== '1') ctx.skip();
    expect(runtime.backend).toBe('webgpu');
    expect(runtime.tried).toEqual([{ name: 'webgpu' }]);
    expect(runtime.adapter?.description).toBeTruthy();
    const { tf } = runtime;
    const y = tf.conv2d(tf.ones([1, 6, 6, 1]) as Tensor4D, tf.ones([3, 3, 1, 2]) as Tensor4D, 1, 'same');
    const data = await y.data();
    expect(Array.from(data)).toEqual(
      [
        4, 6, 6, 6, 6, 4, 6, 9, 9, 9, 9, 6, 6, 9, 9, 9, 9, 6, 6, 9, 9, 9, 9, 6, 6, 9, 9, 9, 9, 6, 4, 6, 6, 6,
        6, 4,
      ].flatMap((v) => [v, v]),
    );
    tf.dispose(y);
  });
});
