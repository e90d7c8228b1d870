/**
 * Tasks that exist only for tests and fault drills (ENABLE_TEST_TASKS=true): they let a test keep every worker
 * busy, crash a worker, or make a handler throw a coded error, through the same path as real work.
 */
import { threadId } from 'node:worker_threads';
import { ERROR_CATALOGUE, TweedieError } from '../../errors.js';
import type { HandlerContext } from './context.js';

export async function busy(input: { ms: number }, ctx: HandlerContext) {
  const start = Date.now();
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
