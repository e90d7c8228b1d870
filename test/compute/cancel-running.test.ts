/**
 * With several tasks per worker (batching on), a task cancelled while it runs is answered at once and also stops
 * running at its next chunk (src/util/cancellation.ts), so its co-tenant gets the worker back well before
 * WORKER_CANCEL_GRACE_MS, and no worker is terminated for it.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComputePool } from '../../src/compute/pool.js';
import { MAX_RESTORE_STEPS } from '../../src/operations/restore/schema.js';
import { repoRoot } from '../helpers.js';

// 64x64 (not the prior's 28x28): 20-40 ms a step here, so that MAX_RESTORE_STEPS run for 20 s or more.
const SIDE = 64;
const restore = (steps: number) => ({
  model: { name: 'ddpm-fashion-mnist' },
  image: {
    data: Float32Array.from({ length: SIDE * SIDE }, (_, i) => (i % SIDE) / SIDE),
    width: SIDE,
    height: SIDE,
  },
  operator: { kind: 'identity' as const },
  simulate: false,
  sigmaY: 0.05,
  steps,
  lambda: 0.1,
  lr: 0.25,
  init: 'pinv' as const,
  seed: 1,
  trace: 0,
});

describe('a running task that is cancelled, with two tasks per worker', () => {
  let pool: ComputePool;
  beforeAll(() => {
    pool = new ComputePool({
      workers: 1,
      queueMax: 8,
      defaultTimeoutMs: 300_000,
      concurrentTasksPerWorker: 2,
      // Far beyond the test: the cancelled task must stop by itself, not with its worker.
      cancelGraceMs: 300_000,
      worker: {
        modelsDir: path.join(repoRoot, 'models'),
        tfjsBackend: 'wasm',
        enableTestTasks: true,
        tileSize: 256,
      },
    });
  });
  afterAll(() => pool?.close(0));

  it('stops at its next RED-Diff step; its co-tenant succeeds on the same worker', async () => {
    // Loads the model and measures a step on this machine.
    const warm = await pool.run('restore.reddiff', restore(20));
    const msPerStep = warm.timings.msPerStep;
    const before = await pool.run('system.info', {});

    // As long as a task may run (more steps are refused: the schedule has 1000 timesteps), 20 s or more
    // uncancelled (the RED-Diff loop never yields to the event loop, so its co-tenant waits for it).
    const steps = MAX_RESTORE_STEPS;
    const controller = new AbortController();
    let progressed = false;
    const long = pool.run('restore.reddiff', restore(steps), {
      signal: controller.signal,
      onProgress: () => {
        progressed = true;
      },
    });
    long.catch(() => {});
    const deadline = Date.now() + 60_000;
    while (!progressed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(progressed).toBe(true);
    const coTenant = pool.run('restore.reddiff', restore(5));
    const cancelledAt = Date.now();
    controller.abort();
    await expect(long).rejects.toMatchObject({ code: 'TW_DEADLINE_EXCEEDED' });
    const result = await coTenant;
    const waited = Date.now() - cancelledAt;
    expect(result.width).toBe(SIDE);
    // The cancelled task ran at most one more step, then the co-tenant ran its 5: far less than the 95% of its
    // steps the cancelled task had left.
    expect(waited).toBeLessThan(2000 + 50 * msPerStep);
    const after = await pool.run('system.info', {});
    // Same worker thread: nothing was terminated; the task ended as cancelled.
    expect(after.threadId).toBe(before.threadId);
    expect(after.cancelledTasks).toBe((before.cancelledTasks ?? 0) + 1);
  }, 120_000);
});
