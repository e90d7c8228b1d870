/**
 * The embedded jobs backend (JOBS_BACKEND=memory, the default): jobs live in this process and run on its compute
 * pool, at most `concurrency` at once, with at most `queueMax` waiting. Nothing survives a restart: a client that
 * needs that runs the redis backend.
 *
 * Per client (the API key's owner id, or the address with keys off): at most `maxActivePerKey` jobs queued or
 * running (429 TW_JOB_QUOTA beyond), and at most `maxFinishedPerKey` finished jobs holding at most
 * `maxResultBytesPerKey` of results; beyond either, the oldest finished jobs of that client are forgotten (404), so
 * finished results cannot pile up in the heap until their TTL. The job that just finished is always kept.
 * Job runs execute inside `runAsJob`, so the pool counts their tasks against the workers jobs may use.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { runAsJob } from '../compute/pool.js';
import { ERROR_CATALOGUE, fail } from '../errors.js';
import { inJobRun, type TraceCarrier } from '../telemetry/tracing.js';
import {
  idempotencyConflict,
  pushIterator,
  queueFull,
  submissionFingerprint,
  toJobError,
  transientRetryDelayMs,
} from './common.js';
import { type JobRuntime, jobOperation } from './registry.js';
import {
  isTerminal,
  type JobBackend,
  type JobError,
  type JobState,
  type JobView,
  type SubmitOptions,
} from './types.js';

export interface MemoryBackendOptions {
  queueMax: number;
  concurrency: number;
  ttlMs: number;
  timeoutMs: number;
  /** Queued + running jobs per client; 0 = no limit. */
  maxActivePerKey?: number;
  /** Finished jobs kept per client (oldest forgotten first). */
  maxFinishedPerKey?: number;
  /** Estimated result bytes of the finished jobs kept per client (oldest forgotten first). */
  maxResultBytesPerKey?: number;
  /** Runs again after a transient failure (JOBS_TRANSIENT_RETRIES; default 0: none). */
  transientRetries?: number;
  /** First wait before such a run when the error names none (JOBS_RETRY_DELAY_MS; default 1000). */
  retryDelayMs?: number;
  /** For tests: a clock to expire jobs without waiting. */
  now?: () => number;
}

interface MemoryJob {
  id: string;
  operation: string;
  input: unknown;
  state: JobState;
  progress: { fraction: number; message: string };
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  attempts: number;
  error?: JobError;
  result?: unknown;
  controller?: AbortController;
  cancelRequested: boolean;
  idempotencyKey?: string;
  owner?: string;
  /** Whose quota the job counts against: the owner, else the client address. */
  quotaKey: string;
  /** Estimated bytes of the result (0 until it succeeded). */
  resultBytes: number;
  /** The submission's trace context: the run is a child span of it. */
  trace?: TraceCarrier;
  /** Set while the job waits to run again after a transient failure (it is queued but not in `waiting`). */
  retryTimer?: NodeJS.Timeout;
}

/** What one client holds: its active jobs, and its finished ones oldest first with their result bytes. */
interface ClientJobs {
  active: number;
  finished: Set<MemoryJob>;
  resultBytes: number;
}

export class MemoryJobBackend implements JobBackend {
  readonly kind = 'memory' as const;
  private readonly jobs = new Map<string, MemoryJob>();
  private readonly waiting: MemoryJob[] = [];
  private running = 0;
  /** Jobs waiting out a retry delay (queued, not in `waiting`). */
  private delayed = 0;
  private readonly idempotency = new Map<string, { fingerprint: string; id: string }>();
  private readonly clients = new Map<string, ClientJobs>();
  private readonly changes = new EventEmitter();
  private readonly sweeper: NodeJS.Timeout;
  private readonly now: () => number;
  private closed = false;

  constructor(
    private readonly runtime: JobRuntime,
    private readonly opts: MemoryBackendOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.changes.setMaxListeners(0);
    this.sweeper = setInterval(() => this.sweep(), Math.min(opts.ttlMs, 60_000));
    this.sweeper.unref();
  }

  async submit(operation: string, input: unknown, opts: SubmitOptions = {}) {
    if (this.closed) throw fail('SHUTTING_DOWN');
    const fingerprint = opts.idempotencyKey ? submissionFingerprint(operation, input) : '';
    // Idempotency keys are per owner: one client's key never replays (or blocks) another client's job.
    const idempotencyKey = opts.idempotencyKey && `${opts.owner ?? ''}\0${opts.idempotencyKey}`;
    if (opts.idempotencyKey && idempotencyKey) {
      const seen = this.idempotency.get(idempotencyKey);
      const earlier = seen && this.live(seen.id);
      if (seen && earlier) {
        if (seen.fingerprint !== fingerprint) throw idempotencyConflict(opts.idempotencyKey);
        return { view: this.view(earlier), replayed: true };
      }
    }
    // Jobs waiting out a retry delay hold their place (and their input) as queued ones do.
    if (this.waiting.length + this.delayed >= this.opts.queueMax) throw queueFull(this.opts.queueMax);
    const quotaKey = opts.owner !== undefined ? `key:${opts.owner}` : `addr:${opts.client ?? ''}`;
    const client = this.client(quotaKey);
    const maxActive = this.opts.maxActivePerKey ?? 0;
    if (maxActive > 0 && client.active >= maxActive) {
      throw fail(
        'JOB_QUOTA',
        `This client already has ${client.active} jobs queued or running (JOBS_MAX_PER_KEY = ${maxActive}); wait for one to finish or cancel one`,
        { retryAfter: 5, details: { active: client.active, max: maxActive } },
      );
    }
    const job: MemoryJob = {
      id: randomUUID(),
      operation,
      input,
      state: 'queued',
      progress: { fraction: 0, message: 'queued' },
      createdAt: this.now(),
      startedAt: null,
      finishedAt: null,
      attempts: 0,
      cancelRequested: false,
      idempotencyKey,
      owner: opts.owner,
      quotaKey,
      resultBytes: 0,
      trace: opts.trace,
    };
    client.active++;
    this.jobs.set(job.id, job);
    if (idempotencyKey) this.idempotency.set(idempotencyKey, { fingerprint, id: job.id });
    this.waiting.push(job);
    const view = this.view(job);
    this.pump();
    return { view, replayed: false };
  }

  async ownerOf(id: string) {
    const job = this.live(id);
    return job ? job.owner : null;
  }

  async get(id: string) {
    const job = this.live(id);
    return job ? this.view(job) : null;
  }

  async result(id: string) {
    const job = this.live(id);
    if (!job) return null;
    return { view: this.view(job), ...(job.state === 'succeeded' ? { result: job.result } : {}) };
  }

  async cancel(id: string) {
    const job = this.live(id);
    if (!job) return null;
    if (job.state === 'queued') {
      const at = this.waiting.indexOf(job);
      if (at >= 0) this.waiting.splice(at, 1);
      this.stopRetryTimer(job);
      this.finish(job, 'cancelled', { error: cancelledError() });
    } else if (job.state === 'running') {
      job.cancelRequested = true;
      // The pool aborts the task (terminating its thread if it is mid-computation); run() then settles.
      job.controller?.abort();
    }
    return this.view(job);
  }

  watch(id: string, signal?: AbortSignal): AsyncIterable<JobView> {
    const event = `change:${id}`;
    const listener = (view: JobView) => {
      feed.push(view);
      if (isTerminal(view.state)) feed.end();
    };
    const onAbort = () => feed.end();
    const feed = pushIterator<JobView>(() => {
      this.changes.off(event, listener);
      signal?.removeEventListener('abort', onAbort);
    });
    const job = this.live(id);
    if (!job) {
      feed.end();
      return feed.iterator;
    }
    this.changes.on(event, listener);
    signal?.addEventListener('abort', onAbort, { once: true });
    listener(this.view(job));
    return feed.iterator;
  }

  readiness() {
    return { ready: true };
  }

  async counts() {
    return this.countsNow();
  }

  countsNow() {
    return {
      queued: this.waiting.length + this.delayed,
      running: this.running,
      concurrency: this.opts.concurrency,
    };
  }

  /**
   * Stop: queued jobs are cancelled (TW_SHUTTING_DOWN) and running ones aborted. Answers the ids of both: jobs that
   * live in this process only and are lost with it.
   */
  async close() {
    if (this.closed) return { lost: [] };
    this.closed = true;
    clearInterval(this.sweeper);
    const lost: string[] = [];
    for (const job of this.waiting.splice(0)) {
      lost.push(job.id);
      this.finish(job, 'cancelled', { error: shutdownError() });
    }
    for (const job of this.jobs.values()) {
      if (!this.stopRetryTimer(job)) continue;
      lost.push(job.id);
      this.finish(job, 'cancelled', { error: shutdownError() });
    }
    for (const job of this.jobs.values()) {
      if (job.state !== 'running') continue;
      lost.push(job.id);
      job.controller?.abort();
    }
    return { lost };
  }

  private client(key: string): ClientJobs {
    let client = this.clients.get(key);
    if (!client) {
      client = { active: 0, finished: new Set(), resultBytes: 0 };
      this.clients.set(key, client);
    }
    return client;
  }

  /** A job reached a terminal state: it stops counting as active and joins its client's finished jobs. */
  private retire(job: MemoryJob) {
    const client = this.client(job.quotaKey);
    client.active--;
    job.resultBytes = job.state === 'succeeded' ? estimateBytes(job.result) : 0;
    client.finished.add(job);
    client.resultBytes += job.resultBytes;
    const maxCount = this.opts.maxFinishedPerKey ?? Number.POSITIVE_INFINITY;
    const maxBytes = this.opts.maxResultBytesPerKey ?? Number.POSITIVE_INFINITY;
    for (const old of client.finished) {
      if (old === job || (client.finished.size <= maxCount && client.resultBytes <= maxBytes)) break;
      this.forget(old);
    }
  }

  /** The job if it exists and has not expired (expired jobs are dropped on sight). */
  private live(id: string): MemoryJob | undefined {
    const job = this.jobs.get(id);
    if (job && this.expired(job)) {
      this.forget(job);
      return undefined;
    }
    return job;
  }

  private expired(job: MemoryJob) {
    return job.finishedAt !== null && this.now() >= job.finishedAt + this.opts.ttlMs;
  }

  private forget(job: MemoryJob) {
    this.jobs.delete(job.id);
    const client = this.clients.get(job.quotaKey);
    if (client?.finished.delete(job)) {
      client.resultBytes -= job.resultBytes;
      if (client.active === 0 && client.finished.size === 0) this.clients.delete(job.quotaKey);
    }
    if (job.idempotencyKey && this.idempotency.get(job.idempotencyKey)?.id === job.id) {
      this.idempotency.delete(job.idempotencyKey);
    }
  }

  private sweep() {
    for (const job of this.jobs.values()) if (this.expired(job)) this.forget(job);
  }

  private pump() {
    while (!this.closed && this.running < this.opts.concurrency && this.waiting.length > 0) {
      const job = this.waiting.shift() as MemoryJob;
      void this.start(job);
    }
  }

  private async start(job: MemoryJob) {
    this.running++;
    job.state = 'running';
    job.startedAt = this.now();
    job.attempts++;
    job.progress = { fraction: 0, message: 'started' };
    job.controller = new AbortController();
    const signal = job.controller.signal;
    this.changed(job);
    try {
      const op = jobOperation(job.operation, this.runtime.config);
      // In the job lane: the pool keeps JOBS_RESERVED_WORKERS workers free of this run's tasks.
      const result = await inJobRun(job.operation, job.id, job.trace, () =>
        runAsJob(() =>
          op.run(this.runtime, job.input, {
            signal,
            timeoutMs: this.opts.timeoutMs,
            onProgress: (fraction, message) => {
              if (job.state !== 'running') return;
              job.progress = { fraction, message };
              this.changed(job);
            },
          }),
        ),
      );
      if (job.cancelRequested) this.finish(job, 'cancelled', { error: cancelledError() });
      else this.finish(job, 'succeeded', { result });
    } catch (err) {
      if (job.cancelRequested) this.finish(job, 'cancelled', { error: cancelledError() });
      else if (this.closed) this.finish(job, 'failed', { error: shutdownError('while the job was running') });
      else {
        const delay = transientRetryDelayMs(
          err,
          job.attempts,
          this.opts.transientRetries ?? 0,
          this.opts.retryDelayMs ?? 1000,
        );
        if (delay === null) this.finish(job, 'failed', { error: toJobError(err) });
        else this.retryLater(job, err, delay);
      }
    } finally {
      job.controller = undefined;
      // The input is not needed any more once the job has ended; results may be large enough already.
      if (isTerminal(job.state)) job.input = undefined;
      this.running--;
      this.pump();
    }
  }

  /** Back to the queue after `delayMs`, at its head (it waited its turn once already); the view says why. */
  private retryLater(job: MemoryJob, err: unknown, delayMs: number) {
    const { code } = toJobError(err);
    job.state = 'queued';
    job.progress = {
      fraction: 0,
      message: `retrying in ${Math.ceil(delayMs / 1000)} s after ${code} (retry ${job.attempts} of ${this.opts.transientRetries ?? 0})`,
    };
    this.delayed++;
    job.retryTimer = setTimeout(() => {
      job.retryTimer = undefined;
      this.delayed--;
      if (job.state !== 'queued' || this.closed) return;
      this.waiting.unshift(job);
      this.pump();
    }, delayMs);
    job.retryTimer.unref();
    this.changed(job);
  }

  /** Clears a pending retry; true when there was one. */
  private stopRetryTimer(job: MemoryJob): boolean {
    if (!job.retryTimer) return false;
    clearTimeout(job.retryTimer);
    job.retryTimer = undefined;
    this.delayed--;
    return true;
  }

  private finish(job: MemoryJob, state: JobState, outcome: { result?: unknown; error?: JobError }) {
    if (isTerminal(job.state)) return;
    job.state = state;
    job.finishedAt = this.now();
    if (state === 'succeeded') {
      job.result = outcome.result;
      job.progress = { fraction: 1, message: 'done' };
    }
    if (outcome.error) job.error = outcome.error;
    this.changed(job);
    this.retire(job);
  }

  private changed(job: MemoryJob) {
    this.changes.emit(`change:${job.id}`, this.view(job));
  }

  private view(job: MemoryJob): JobView {
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
    return {
      id: job.id,
      state: job.state,
      operation: job.operation,
      progress: { ...job.progress },
      createdAt: new Date(job.createdAt).toISOString(),
      startedAt: iso(job.startedAt),
      finishedAt: iso(job.finishedAt),
      expiresAt: iso(job.finishedAt === null ? null : job.finishedAt + this.opts.ttlMs),
      attempts: job.attempts,
      ...(job.error ? { error: job.error } : {}),
    };
  }
}

export function cancelledError(): JobError {
  const { code, statusCode, message } = ERROR_CATALOGUE.JOB_CANCELLED;
  return { code, statusCode, message };
}

function shutdownError(when = 'before the job started'): JobError {
  return { code: 'TW_SHUTTING_DOWN', statusCode: 503, message: `The service shut down ${when}` };
}

/**
 * Roughly how many bytes a job result holds in the heap: bytes for typed arrays and buffers, 8 per number, the
 * length of strings, plus a little per array slot and object key. Used only to bound what finished jobs keep.
 */
export function estimateBytes(value: unknown): number {
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (ArrayBuffer.isView(v)) total += v.byteLength;
    else if (v instanceof ArrayBuffer) total += v.byteLength;
    else if (typeof v === 'string') total += v.length;
    else if (Array.isArray(v)) {
      total += 8 * v.length;
      for (const x of v) if (typeof x === 'object' || typeof x === 'string') stack.push(x);
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        total += k.length + 8;
        if (typeof x === 'object' || typeof x === 'string') stack.push(x);
      }
    } else total += 8;
  }
  return total;
}
