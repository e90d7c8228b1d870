/**
 * A task cancelled while it runs stops at its next chunk (src/util/cancellation.ts): every long loop of the domain
 * code checks the running task's flag between chunks. Counted here in-process: network calls made after the flag
 * is raised, in RED-Diff steps, batched network calls (Noise2Score windows, MID masks), EPS-AD batches and OT.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { expectedPerturbationScore } from '../../src/adversarial/eps.js';
import type { EpsModel } from '../../src/diffusion/eps-model.js';
import { identityOperator } from '../../src/diffusion/operators.js';
import { redDiffRestore } from '../../src/diffusion/red-diff.js';
import { linearSchedule } from '../../src/diffusion/schedule.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { batcherStats, forEachInChunks, predictBatched } from '../../src/nn/batcher.js';
import { sinkhorn } from '../../src/ot/sinkhorn.js';
import { checkCancelled, isCancelled, runCancellable } from '../../src/util/cancellation.js';

const schedule = linearSchedule({ timesteps: 100 });

/** An eps model that counts its calls and cancels the task at call `cancelAt`. */
function countingEps(tf: Tf, flag: { cancelled: boolean }, cancelAt: number) {
  const counter = { calls: 0 };
  const model: EpsModel = (x) => {
    counter.calls++;
    if (counter.calls === cancelAt) flag.cancelled = true;
    return tf.zerosLike(x);
  };
  return { model, counter };
}

describe('checkCancelled', () => {
  let tf: Tf;
  beforeAll(async () => {
    ({ tf } = await initTfjs('wasm'));
  });

  it('does nothing outside a cancellable task, and throws an AbortError inside a cancelled one', async () => {
    expect(isCancelled()).toBe(false);
    expect(() => checkCancelled()).not.toThrow();
    const flag = { cancelled: false };
    await runCancellable(
      () => flag.cancelled,
      async () => {
        checkCancelled();
        await new Promise((r) => setTimeout(r, 1));
        flag.cancelled = true;
        // Seen across awaits, from the task's whole call tree.
        expect(() => checkCancelled()).toThrow(expect.objectContaining({ name: 'AbortError' }));
      },
    );
    // Not from outside it.
    expect(isCancelled()).toBe(false);
  });

  it('RED-Diff stops at the step after the one during which it was cancelled', async () => {
    const flag = { cancelled: false };
    const { model, counter } = countingEps(tf, flag, 3);
    const y = tf.zeros([1, 8, 8, 1]) as import('@tensorflow/tfjs').Tensor4D;
    const op = identityOperator(8, 8);
    const tensorsBefore = tf.memory().numTensors;
    const run = runCancellable(
      () => flag.cancelled,
      () => redDiffRestore(tf, model, schedule, op, y, { steps: 50, lambda: 0.1 }),
    );
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(counter.calls).toBe(3);
    // Its iterate and moments are freed.
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    y.dispose();
  });

  it('EPS-AD makes no network call after the batch during which it was cancelled', async () => {
    const flag = { cancelled: false };
    const { model, counter } = countingEps(tf, flag, 2);
    const images = {
      data: new Float32Array(4 * 4 * 4).fill(0.5),
      count: 4,
      height: 4,
      width: 4,
      channels: 1,
    };
    const run = runCancellable(
      () => flag.cancelled,
      () => expectedPerturbationScore(tf, model, schedule, images, { timesteps: 5, batchSize: 2, pad: 0 }),
    );
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(counter.calls).toBe(2);
  });

  it('batched network calls (Noise2Score windows, MID masks) stop at the next chunk', async () => {
    const flag = { cancelled: false };
    const model = tf.sequential({
      layers: [tf.layers.conv2d({ inputShape: [null, null, 1], filters: 1, kernelSize: 1 })],
    });
    const before = batcherStats().calls;
    let done = 0;
    const windows = Array.from({ length: 10 }, () => new Float32Array(16));
    const run = runCancellable(
      () => flag.cancelled,
      () =>
        forEachInChunks(
          windows,
          2,
          (w) => predictBatched(tf, model, w, [4, 4, 1]),
          () => {
            done++;
            if (done === 4) flag.cancelled = true;
          },
        ),
    );
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    // Two chunks of two windows ran; none after the flag.
    expect(batcherStats().calls - before).toBe(4);
    // A call made directly by a cancelled task does not reach the network either.
    await expect(
      runCancellable(
        () => true,
        () => predictBatched(tf, model, windows[0], [4, 4, 1]),
      ),
    ).rejects.toMatchObject({ name: 'AbortError' });
    expect(batcherStats().calls - before).toBe(4);
    model.dispose();
  });

  it('an OT solver stops between its iterations', () => {
    const n = 20;
    const a = new Float64Array(n).fill(1 / n);
    const C = {
      n,
      m: n,
      data: Float64Array.from({ length: n * n }, (_, k) => ((k % n) - Math.floor(k / n)) ** 2),
    };
    let checks = 0;
    const solve = () =>
      runCancellable(
        () => ++checks > 2,
        () => sinkhorn(a, a, C, 0.01, { maxIter: 100_000, tol: 0 }),
      );
    expect(solve).toThrow(expect.objectContaining({ name: 'AbortError' }));
    expect(checks).toBe(3);
  });
});
