/**
 * The table of operations that can run as jobs. An operation registers itself once (name, zod input schema, how
 * to run it on the compute pool, optionally how to send its result), and then works on both backends: the API
 * process validates and enqueues it, and whichever process runs jobs (the API itself with the memory backend, or
 * `npm run worker` with Redis) looks it up here by name. Built-in operations are listed in ./operations/index.ts;
 * a new domain adds its module there so that the worker process loads it too.
 */
import type { FastifyReply } from 'fastify';
import type { ZodType } from 'zod';
import type { ComputePool } from '../compute/pool.js';
import type { Config } from '../config.js';
import { fail } from '../errors.js';

/** What an operation may use while it runs: the compute pool and the configuration (no HTTP, no Fastify). */
export interface JobRuntime {
  pool: ComputePool;
  config: Config;
}

export interface JobRunContext {
  /** Aborted when the job is cancelled, times out, or its worker shuts down. Pass it to `pool.run`. */
  signal: AbortSignal;
  /** Report progress (fraction in [0, 1]); pass it to `pool.run` as `onProgress`. */
  onProgress: (fraction: number, message: string) => void;
  /** Deadline of this run in ms (JOB_TIMEOUT_MS): pass it to `pool.run` as `timeoutMs`. */
  timeoutMs: number;
}

/** What a submission's checks may consult (src/operations/spec.ts adds the model registry). */
export interface JobCheckContext {
  config: Config;
}

export interface JobOperation<Input = any, Result = any> {
  /** Public name, e.g. `ot.plan` (what clients put in `{ operation }`). */
  name: string;
  /** Validates the submitted input (same schema as the operation's synchronous route). */
  inputSchema: ZodType<Input>;
  /**
   * Checks at submission time, before anything is queued (size limits, models); may answer a resolved input,
   * which is what is queued.
   */
  check?: (ctx: JobCheckContext, input: Input) => Input | undefined | Promise<Input | undefined>;
  /**
   * The work. The result must be plain JSON values, Buffers/Uint8Arrays (stored as bytes, not base64) or both:
   * it is kept in memory or in Redis until the TTL.
   */
  run: (runtime: JobRuntime, input: Input, ctx: JobRunContext) => Promise<Result>;
  /** How `GET /v1/jobs/:id/result` answers (an image for image operations); JSON of the result when absent. */
  resultToResponse?: (result: Result, reply: FastifyReply) => unknown;
  /** Only available when ENABLE_TEST_TASKS is on. */
  testOnly?: boolean;
}

const operations = new Map<string, JobOperation>();

export function registerJobOperation<I, R>(op: JobOperation<I, R>): JobOperation<I, R> {
  if (operations.has(op.name) && operations.get(op.name) !== op) {
    throw new Error(`job operation '${op.name}' is registered twice`);
  }
  operations.set(op.name, op as JobOperation);
  return op;
}

export function listJobOperations(config?: Pick<Config, 'ENABLE_TEST_TASKS'>): JobOperation[] {
  return [...operations.values()].filter((op) => !op.testOnly || config?.ENABLE_TEST_TASKS);
}

/** The operation by name, or a 400 naming the operations that exist. */
export function jobOperation(name: string, config: Pick<Config, 'ENABLE_TEST_TASKS'>): JobOperation {
  const op = operations.get(name);
  if (!op || (op.testOnly && !config.ENABLE_TEST_TASKS)) {
    throw fail('VALIDATION', `Unknown job operation '${name}'`, {
      details: { operation: name, known: listJobOperations(config).map((o) => o.name) },
    });
  }
  return op;
}

/** Validate an input against its operation (400 with the zod issues): what a worker does before running it. */
export function parseJobInput(op: JobOperation, input: unknown): unknown {
  return op.inputSchema.parse(input);
}

/** At submission: validate the input and run the operation's own checks; answers the input to queue. */
export async function checkJobInput(
  op: JobOperation,
  input: unknown,
  ctx: JobCheckContext,
): Promise<unknown> {
  const parsed = parseJobInput(op, input);
  return (await op.check?.(ctx, parsed)) ?? parsed;
}
