/**
 * Tasks that exist only for tests and fault drills (ENABLE_TEST_TASKS=true): they let a test keep every worker
 * busy, crash a worker, or make a handler throw a coded error, through the same path as real work.
 */
import { threadId } from 'node:worker_threads';
import { ERROR_CATALOGUE, TweedieError } from '../../errors.js';
import { reportDeviceLoss } from '../../gpu/device.js';
import { shareItems, takeItems } from '../shared-work.js';
import type { TaskInput } from '../task-types.js';
import type { HandlerContext } from './context.js';

export async function busy(input: { ms: number; sleep?: boolean }, ctx: HandlerContext) {
  const start = Date.now();
  if (input.sleep) {
    // Waits without holding the thread, as a task awaiting a GPU read-back does.
    await new Promise((resolve) => setTimeout(resolve, input.ms));
    return { ms: Date.now() - start, threadId };
  }
  // Busy-wait in slices so the worker really is occupied (like a solver), reporting progress as it goes.
  while (Date.now() - start < input.ms) {
    const sliceEnd = Math.min(start + input.ms, Date.now() + 50);
    while (Date.now() < sliceEnd) {
      /* spin */
    }
    ctx.progress((Date.now() - start) / input.ms, 'busy');
  }
  return { ms: Date.now() - start, threadId };
}

export function crash(input: { mode: 'exit' | 'oom' }): never {
  if (input.mode === 'oom') {
    // Boxed numbers live on the V8 heap (typed arrays would not count against the worker's heap cap).
    const hoard: number[][] = [];
    for (;;) hoard.push(Array.from({ length: 1 << 20 }, (_, i) => i + 0.5));
  }
  process.exit(70);
}

export function failWith(input: { code: string; message: string }): never {
  const spec = Object.values(ERROR_CATALOGUE).find((s) => s.code === input.code) ?? ERROR_CATALOGUE.INTERNAL;
  throw new TweedieError(spec, input.message);
}

/** Reports a lost GPU device in this worker just after answering (the loss Dawn reports, without a real device). */
export function gpuLost(input: { reason: string }) {
  setTimeout(() => reportDeviceLoss(input.reason), 0);
  return { threadId };
}

/** Item of test.share: a busy-wait of `ms`. */
function shareItem(ms: number) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    /* spin */
  }
}

/** Spreads busy items over this worker and borrowed idle ones (src/compute/shared-work.ts). */
export async function share(input: TaskInput<'test.share'>, ctx: HandlerContext) {
  const threads = new Int32Array(new SharedArrayBuffer(4 * input.items));
  const { local, helpers } = await shareItems(ctx.pool, {
    count: input.items,
    helpers: input.helpers,
    kind: 'test.share-part',
    bytesEach: input.bytesEach,
    input: (shared) => ({ ...shared, threads, ms: input.ms, failCode: input.helperFails }),
    local: (index) => {
      shareItem(input.ms);
      threads[index] = threadId;
    },
  });
  return { threads: Array.from(threads), helpers, local, threadId };
}

/** A helper of test.share: fails its first item with `failCode` when asked. */
export async function sharePart(input: TaskInput<'test.share-part'>, ctx: HandlerContext) {
  const ran = await takeItems(
    input.next,
    input.count,
    (index) => {
      if (input.failCode) failWith({ code: input.failCode, message: `helper item ${index} failed` });
      shareItem(input.ms);
      input.threads[index] = threadId;
    },
    () => (ctx.pool?.waitingTasks() ?? 0) > 0,
  );
  return { ran };
}
