/**
 * Test-only job operations (ENABLE_TEST_TASKS): a busy task that reports progress, and one whose result is bytes,
 * so tests can drive cancellation, progress, worker death and binary results through the real job path.
 */
import { z } from 'zod';
import { fail } from '../errors.js';
import { registerJobOperation } from './registry.js';

export const testBusyJob = registerJobOperation({
  name: 'test.busy',
  testOnly: true,
  inputSchema: z.object({ ms: z.number().int().min(0).max(600_000) }),
  run: async (rt, input, ctx) => {
    const out = await rt.pool.run('test.busy', input, {
      signal: ctx.signal,
      onProgress: ctx.onProgress,
      timeoutMs: ctx.timeoutMs,
    });
    // The process that ran it: the redis tests use it to tell which worker finished the job.
    return { ...out, pid: process.pid };
  },
});

/** Echo bytes back reversed: checks that binary inputs and results travel as bytes on both backends. */
export const testBytesJob = registerJobOperation({
  name: 'test.bytes',
  testOnly: true,
  inputSchema: z.object({ bytes: z.instanceof(Uint8Array), label: z.string() }),
  run: async (_rt, input) => ({ label: input.label, reversed: Buffer.from(input.bytes).reverse() }),
  resultToResponse: (result, reply) => reply.type('application/octet-stream').send(result.reversed),
});

/** Calls of test.flaky so far, per key, in this process. */
const flakyCalls = new Map<string, number>();

/**
 * Fails with `code` on its first `failures` runs (counted per `key` in this process), then answers how many runs it
 * took: drives the retry of transient failures (and the absence of one for other failures) on both backends.
 */
export const testFlakyJob = registerJobOperation({
  name: 'test.flaky',
  testOnly: true,
  inputSchema: z.object({
    key: z.string().min(1).max(64),
    failures: z.number().int().min(0).max(100),
    code: z.enum(['GPU_MEMORY_BUSY', 'GPU_DEVICE_LOST', 'MODEL_NOT_READY', 'VALIDATION']),
  }),
  run: async (_rt, input) => {
    const calls = (flakyCalls.get(input.key) ?? 0) + 1;
    flakyCalls.set(input.key, calls);
    if (calls <= input.failures) throw fail(input.code, `test.flaky: failure ${calls} of ${input.failures}`);
    return { calls, pid: process.pid };
  },
});
