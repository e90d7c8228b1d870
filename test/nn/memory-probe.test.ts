/**
 * The device-memory accounting of src/nn/batcher.ts for models measured with their own MemoryProbe (RED-Diff
 * steps, EPS-AD), on wasm (the budget is backend-independent): a probe whose peak is known exactly gives that
 * estimate, a task of several uses needs every model's weights and the largest peak, and admission answers 413
 * when it can never fit, 503 while others hold the memory, and admits again once they release it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { initTfjs } from '../../src/nn/backend.js';
import {
  admitDeviceUses,
  configureBatching,
  estimateDeviceBytes,
  type MemoryProbe,
  releaseDeviceMemory,
} from '../../src/nn/batcher.js';
import { checkCancelled, runCancellable } from '../../src/util/cancellation.js';

const { tf } = await initTfjs('wasm');
afterEach(() => {
  configureBatching({ maxSize: 1 });
});

/** A probe whose peak is `floats` float32 values per input pixel (and nothing fixed). */
function exactProbe(name: string, floats: number): MemoryProbe {
  return { name, run: ([n, h, w]) => tf.fill([n * h * w * floats], 0) };
}

function tinyModel(units: number) {
  return tf.sequential({ layers: [tf.layers.dense({ inputShape: [1], units, useBias: false })] });
}

describe('MemoryProbe accounting', () => {
  it('estimates a probe from its measured peak: bytes per pixel x n x h x w', async () => {
    const model = tinyModel(4);
    expect(await estimateDeviceBytes(tf, model, [3, 10, 20, 1], exactProbe('ten', 10))).toBe(
      3 * 10 * 20 * 40,
    );
    // Another probe of the same model is measured on its own.
    expect(await estimateDeviceBytes(tf, model, [1, 10, 10, 1], exactProbe('two', 2))).toBe(800);
    model.dispose();
  });

  it('admits a task of several uses for both weights and the larger peak: 413 beyond, 503 while busy', async () => {
    const a = tinyModel(1000); // 4000 bytes of weights
    const b = tinyModel(500); // 2000 bytes
    const uses = (side: number) => [
      { model: a, shape: [1, side, side, 1], probe: exactProbe('a', 4) }, // 16 bytes a pixel
      { model: b, shape: [2, side, side, 1], probe: exactProbe('b', 1) }, // 4 bytes a pixel, 2 images
    ];
    const resident = tf.memory().numBytes;
    // The budget holds what is resident, both models' weights are in it already; 100x100 needs 160 000 bytes.
    configureBatching({ memoryBudgetBytes: resident + 200_000 });
    const held = await admitDeviceUses(tf, uses(100), 'Send fewer images');
    expect(held).toBe(160_000);
    // A second one does not fit beside it now.
    await expect(admitDeviceUses(tf, uses(100))).rejects.toMatchObject({
      code: 'TW_GPU_MEMORY_BUSY',
      statusCode: 503,
    });
    releaseDeviceMemory(held);
    releaseDeviceMemory(await admitDeviceUses(tf, uses(100)));
    // Beyond the budget whatever else runs: 200x200 needs 640 000 bytes + 6000 of weights.
    await expect(admitDeviceUses(tf, uses(200), 'Send fewer images')).rejects.toMatchObject({
      code: 'TW_GPU_MEMORY_EXCEEDED',
      statusCode: 413,
      message: expect.stringMatching(/Send fewer images/),
      details: { neededBytes: 640_000 + 6000 },
    });
    a.dispose();
    b.dispose();
  });

  it('does not probe beyond a tiny budget: a bound from the size it could measure, above the peak', async () => {
    const model = tinyModel(2);
    const sides: number[] = [];
    const probe: MemoryProbe = {
      name: 'tiny-budget',
      run: ([n, h, w]) => {
        sides.push(h);
        return tf.fill([n * h * w * 4], 0); // 16 bytes a pixel
      },
    };
    // Room for 32x32 (16 384 bytes), not for 64x64 (65 536).
    configureBatching({ memoryBudgetBytes: tf.memory().numBytes + 30_000 });
    const estimate = await estimateDeviceBytes(tf, model, [1, 100, 100, 1], probe);
    expect(sides).toEqual([32]);
    expect(estimate).toBeGreaterThanOrEqual(16 * 100 * 100);
    expect(estimate).toBeLessThanOrEqual(2 * 16 * 100 * 100);
    model.dispose();
  });

  it('a probe that fails is an admission error, and leaves TF.js profiling off', async () => {
    const model = tinyModel(3);
    configureBatching({ memoryBudgetBytes: 1e9 });
    const failing: MemoryProbe = {
      name: 'failing',
      run: async () => {
        tf.dispose(tf.fill([64], 1));
        throw new Error('probe failed');
      },
    };
    await expect(admitDeviceUses(tf, [{ model, shape: [1, 8, 8, 1], probe: failing }])).rejects.toThrow(
      'probe failed',
    );
    // Left on, every later kernel of the thread would be timed and recorded in a list that only grows.
    expect(tf.engine().state.profiling).toBe(false);
    model.dispose();
  });

  it('a measurement shared by two tasks is not cancelled by the one that started it', async () => {
    const model = tinyModel(2);
    configureBatching({ memoryBudgetBytes: 1e9 });
    const flag = { cancelled: false };
    // Like the RED-Diff probe: it waits, then checks the running task's flag before its network call.
    const slow: MemoryProbe = {
      name: 'slow',
      run: async ([n, h, w]) => {
        await new Promise((r) => setTimeout(r, 20));
        checkCancelled();
        return tf.fill([n * h * w], 0);
      },
    };
    const use = [{ model, shape: [1, 10, 10, 1], probe: slow }];
    const first = runCancellable(
      () => flag.cancelled,
      () => admitDeviceUses(tf, use),
    );
    const second = runCancellable(
      () => false,
      () => admitDeviceUses(tf, use),
    );
    flag.cancelled = true;
    const [a, b] = await Promise.allSettled([first, second]);
    // The task that was not cancelled is admitted (100 pixels x 4 bytes).
    expect(b).toEqual({ status: 'fulfilled', value: 400 });
    if (a.status === 'fulfilled') releaseDeviceMemory(a.value);
    releaseDeviceMemory(400);
    model.dispose();
  });

  it('two measurements at once in one thread are each measured alone (tf.profile is one per thread)', async () => {
    const model = tinyModel(5);
    // An async probe (as RED-Diff's and EPS-AD's are): its kernel runs after an await.
    const late: MemoryProbe = {
      name: 'late',
      run: async ([n, h, w]) => {
        await new Promise((r) => setTimeout(r, 10));
        return tf.fill([n * h * w * 10], 0);
      },
    };
    const tensors = tf.memory().numTensors;
    const [a, b] = await Promise.all([
      estimateDeviceBytes(tf, model, [1, 10, 10, 1], late),
      estimateDeviceBytes(tf, model, [1, 10, 10, 1], exactProbe('beside', 2)),
    ]);
    expect([a, b]).toEqual([4000, 800]);
    // Every probe's output was freed.
    expect(tf.memory().numTensors).toBe(tensors);
    model.dispose();
  });
});
