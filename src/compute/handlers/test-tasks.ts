/**
 * Tasks that exist only for tests and fault drills (ENABLE_TEST_TASKS=true): they let a test keep every worker
 * busy, crash a worker, or make a handler throw a coded error, through the same path as real work.
 */
import { threadId } from 'node:worker_threads';
import { ERROR_CATALOGUE, TweedieError } from '../../errors.js';
import { reportDeviceLoss } from '../../gpu/device.js';
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
