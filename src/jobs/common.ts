/**
 * Pieces both backends share: the idempotency fingerprint of a submission, and errors turned into job errors.
 */
import { createHash } from 'node:crypto';
import { toTweedieError } from '../error-mapping.js';
import { fail, type TweedieError } from '../errors.js';
import type { JobError } from './types.js';

/** JSON with sorted keys and bytes as their hash, so equal submissions give equal strings whatever the key order. */
function canonical(value: unknown, hash: ReturnType<typeof createHash>): void {
  if (value instanceof Uint8Array) {
    hash.update(`b${value.byteLength}:`);
    hash.update(value);
  } else if (ArrayBuffer.isView(value)) {
    canonical(Array.from(value as unknown as ArrayLike<number>), hash);
  } else if (Array.isArray(value)) {
    hash.update('[');
    for (const v of value) {
      canonical(v, hash);
      hash.update(',');
    }
    hash.update(']');
  } else if (value && typeof value === 'object') {
    hash.update('{');
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v === undefined) continue;
      hash.update(JSON.stringify(k));
      hash.update(':');
      canonical(v, hash);
      hash.update(',');
    }
    hash.update('}');
  } else {
    hash.update(JSON.stringify(value ?? null));
  }
}

/** sha256 of operation + input: what an Idempotency-Key is bound to. */
export function submissionFingerprint(operation: string, input: unknown): string {
  const hash = createHash('sha256');
  hash.update(operation);
  hash.update('\n');
  canonical(input, hash);
  return hash.digest('hex');
}

export function idempotencyConflict(key: string): TweedieError {
  return fail('CONFLICT', `Idempotency-Key '${key}' was already used with a different request`, {
    details: { idempotencyKey: key },
  });
}

/** What a client may see of a failure: coded errors as they are, anything else as a generic internal error. */
export function toJobError(err: unknown): JobError {
  const te = toTweedieError(err);
  const internal = te.statusCode >= 500 && te.code === 'TW_INTERNAL';
  return {
    code: te.code,
    statusCode: te.statusCode,
    message: internal ? 'Internal error while running the job' : te.message,
    ...(te.details !== undefined && !internal && !(te.details as { internal?: unknown }).internal
      ? { details: te.details }
      : {}),
  };
}

/**
 * Failures that say "not now" rather than "not this input": the device memory is taken by other work, the GPU device
 * was lost (its worker is being replaced), a model is being swapped in, the compute queue is full. A job that meets
 * one is run again after a delay instead of failing for good; every other failure is the job's answer.
 */
export const TRANSIENT_JOB_CODES: ReadonlySet<string> = new Set([
  'TW_GPU_MEMORY_BUSY',
  'TW_GPU_DEVICE_LOST',
  'TW_MODEL_NOT_READY',
  'TW_QUEUE_FULL',
]);

/** The longest wait before a transient failure's retry, however many attempts came before. */
export const MAX_RETRY_DELAY_MS = 60_000;

/**
 * When a job that failed on its `attempt`-th run (1-based) should run again, in ms, or null when it should fail now:
 * a transient code (TRANSIENT_JOB_CODES) and fewer than `retries` retries so far. The delay is the error's
 * Retry-After (else `baseDelayMs`), doubled at each further attempt, at most MAX_RETRY_DELAY_MS.
 */
export function transientRetryDelayMs(
  err: unknown,
  attempt: number,
  retries: number,
  baseDelayMs: number,
): number | null {
  if (attempt > retries) return null;
  const te = toTweedieError(err);
  if (!TRANSIENT_JOB_CODES.has(te.code)) return null;
  const base = te.retryAfter !== undefined && te.retryAfter > 0 ? te.retryAfter * 1000 : baseDelayMs;
  return Math.min(MAX_RETRY_DELAY_MS, base * 2 ** Math.max(0, attempt - 1));
}

export function queueFull(queueMax: number): TweedieError {
  return fail('QUEUE_FULL', `The job queue is full (${queueMax} waiting); retry later`, { retryAfter: 5 });
}

/** An async iterator fed by push(): the bridge from events (progress, state) to GraphQL subscriptions. */
export function pushIterator<T>(onClose: () => void) {
  const buffered: T[] = [];
  let waiting: ((r: IteratorResult<T>) => void) | null = null;
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    onClose();
    waiting?.({ value: undefined, done: true });
    waiting = null;
  };
  const iterator: AsyncIterableIterator<T> = {
    next() {
      if (buffered.length > 0) return Promise.resolve({ value: buffered.shift() as T, done: false });
      if (done) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => {
        waiting = resolve;
      });
    },
    return() {
      finish();
      return Promise.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return {
    iterator,
    push(value: T) {
      if (done) return;
      if (waiting) {
        const w = waiting;
        waiting = null;
        w({ value, done: false });
      } else buffered.push(value);
    },
    /** End after what was pushed has been read. */
    end() {
      if (done) return;
      if (buffered.length === 0) finish();
      else {
        done = true;
        onClose();
      }
    },
  };
}
