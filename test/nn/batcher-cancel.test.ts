/**
 * A network call waiting in a batch (src/nn/batcher.ts) whose task is cancelled (src/util/cancellation.ts) before
 * the batch leaves is dropped from it: the task gets the cancellation, the batch runs without it (one input fewer)
 * and the other calls get their own outputs; a batch of cancelled calls only makes no network call at all.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { initTfjs } from '../../src/nn/backend.js';
import { batcherStats, configureBatching, predictBatched } from '../../src/nn/batcher.js';
import { runCancellable } from '../../src/util/cancellation.js';

const { tf } = await initTfjs('wasm');
afterEach(() => {
  configureBatching({ maxSize: 1 });
});

const model = tf.sequential({
  layers: [tf.layers.conv2d({ inputShape: [4, 4, 1], filters: 1, kernelSize: 1, kernelInitializer: 'ones' })],
});
const input = (v: number) => new Float32Array(16).fill(v);

/** A call made by a task whose cancellation flag is `flag.cancelled`. */
const call = (flag: { cancelled: boolean }, v: number) =>
  runCancellable(
    () => flag.cancelled,
    () => predictBatched(tf, model, input(v), [4, 4, 1]),
  );

describe('batched calls after cancel', () => {
  it('drops the cancelled call from its batch before it runs', async () => {
    configureBatching({ maxSize: 8, maxDelayMs: 30 });
    const before = batcherStats();
    const kept = { cancelled: false };
    const gone = { cancelled: false };
    const a = call(kept, 1);
    const b = call(gone, 2);
    const c = call(kept, 3);
    // Queued (the batch waits up to 30 ms for more): the second task is cancelled now.
    gone.cancelled = true;
    const [ra, rb, rc] = await Promise.allSettled([a, b, c]);
    expect(rb).toMatchObject({ status: 'rejected', reason: { name: 'AbortError' } });
    expect(ra.status === 'fulfilled' && Array.from(ra.value)).toEqual(Array(16).fill(1));
    expect(rc.status === 'fulfilled' && Array.from(rc.value)).toEqual(Array(16).fill(3));
    const after = batcherStats();
    expect(after.calls - before.calls).toBe(1);
    expect(after.items - before.items).toBe(2);
    expect(after.openQueues).toBe(before.openQueues);
  });

  it('a batch whose calls were all cancelled makes no network call', async () => {
    configureBatching({ maxSize: 8, maxDelayMs: 30 });
    const before = batcherStats();
    const flag = { cancelled: false };
    const calls = [call(flag, 1), call(flag, 2)];
    flag.cancelled = true;
    const settled = await Promise.allSettled(calls);
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected']);
    expect(batcherStats().calls).toBe(before.calls);
    expect(batcherStats().openQueues).toBe(before.openQueues);
  });
});
