/**
 * The scale-out jobs backend (JOBS_BACKEND=redis): BullMQ queues on Redis. The API process only enqueues and
 * reads state; `npm run worker` processes (src/worker.ts, ./redis-worker.ts) take the jobs and run them on their
 * own compute pools. BullMQ owns queueing, locks and stalled-job recovery; this module maps its job records to
 * our job view, and adds what BullMQ has no notion of: idempotency keys, bytes stored as bytes, cancellation of
 * queued and running jobs, and a TTL that holds even when no other job finishes (BullMQ's `removeOnComplete.age`
 * only cleans up when another job completes).
 */
import { randomUUID } from 'node:crypto';
import { type Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { fail } from '../errors.js';
import type { TraceCarrier } from '../telemetry/tracing.js';
import { joinBlobs, splitBlobs } from './blobs.js';
import { idempotencyConflict, queueFull, submissionFingerprint } from './common.js';
import { cancelledError } from './memory.js';
import {
  isTerminal,
  type JobBackend,
  type JobError,
  type JobResult,
  type JobState,
  type JobView,
  type SubmitOptions,
  type SubmitOutcome,
} from './types.js';

/** What a BullMQ job carries (bytes are in a separate hash; see blobs.ts). */
export interface QueuedJobData {
  operation: string;
  input: unknown;
  blobs: number;
  /** The submission's W3C trace context: the worker's run is a child span of it (absent when none). */
  trace?: TraceCarrier;
  /**
   * Runs put off after a transient failure so far (JOBS_TRANSIENT_RETRIES). Not BullMQ's attemptsStarted, which
   * also counts a pickup after a dead worker or a shutdown's re-queue.
   */
  transientRetries?: number;
}

/** Our Redis keys beside BullMQ's `bull:<queue>:*`. */
export function jobKeys(queueName: string) {
  const base = `tw:${queueName}`;
  return {
    idempotency: (key: string) => `${base}:idem:${key}`,
    /** The submitting API key's owner id (absent when keys are off). */
    owner: (id: string) => `${base}:owner:${id}`,
    /** Ids of a client's jobs that may still be active (JOBS_MAX_PER_KEY); finished ones are pruned on sight. */
    active: (client: string) => `${base}:active:${client}`,
    inputBlobs: (id: string) => `${base}:blob:${id}:in`,
    resultBlobs: (id: string) => `${base}:blob:${id}:out`,
    /** Set when a client cancels; the worker checks it before starting and is told over `cancelChannel`. */
    cancelRequested: (id: string) => `${base}:cancel:${id}`,
    /** A job cancelled while queued is removed from BullMQ; this remembers it (as a view) until the TTL. */
    tombstone: (id: string) => `${base}:tombstone:${id}`,
    cancelChannel: `${base}:cancel`,
  };
}

/** Job errors travel in BullMQ's `failedReason` (a string): a prefix marks ours. */
const ERROR_PREFIX = 'TWJOB:';
export const encodeJobError = (e: JobError) => `${ERROR_PREFIX}${JSON.stringify(e)}`;

export function decodeJobError(reason: string | undefined, attempts: number): JobError {
  if (reason?.startsWith(ERROR_PREFIX)) {
    try {
      return JSON.parse(reason.slice(ERROR_PREFIX.length)) as JobError;
    } catch {
      /* fall through */
    }
  }
  // BullMQ's own reasons, such as "job stalled more than allowable limit": its worker kept dying.
  return {
    code: 'TW_WORKER_CRASHED',
    statusCode: 500,
    message: `The job was given up after ${attempts} attempt(s): ${reason ?? 'unknown reason'}`,
  };
}

export async function readBlobs(client: Redis, key: string, count: number): Promise<Buffer[]> {
  if (count === 0) return [];
  const fields = await client.hgetallBuffer(key);
  return Array.from({ length: count }, (_, i) => fields[String(i)]);
}

export async function writeBlobs(client: Redis, key: string, blobs: Buffer[], ttlMs: number) {
  if (blobs.length === 0) return;
  const fields: Record<string, Buffer> = {};
  blobs.forEach((b, i) => {
    fields[String(i)] = b;
  });
  await client.multi().hset(key, fields).pexpire(key, ttlMs).exec();
}

/** How long a request waits for Redis to (re)connect before it is refused. */
const CONNECT_WAIT_MS = 2000;

const iso = (t: number | undefined | null) => (t ? new Date(t).toISOString() : null);

export class RedisJobBackend implements JobBackend {
  readonly kind = 'redis' as const;
  readonly queue: Queue<QueuedJobData>;
  private readonly keys: ReturnType<typeof jobKeys>;
  private readonly ttlMs: number;
  private readonly redis: Redis;

  /** The last connection error, for readiness reports. */
  private lastError: string | undefined;

  constructor(private readonly cfg: Config) {
    this.redis = new Redis(cfg.REDIS_URL, { maxRetriesPerRequest: null });
    this.redis.on('error', (err: Error) => {
      this.lastError = err.message;
    });
    this.redis.on('ready', () => {
      this.lastError = undefined;
      this.outage = false;
    });
    this.queue = new Queue<QueuedJobData>(cfg.JOBS_QUEUE_NAME, { connection: this.redis });
    // Connection errors surface on each call as errors; the event must not crash the process.
    this.queue.on('error', () => {});
    this.keys = jobKeys(cfg.JOBS_QUEUE_NAME);
    this.ttlMs = cfg.JOB_TTL_MS;
  }

  /**
   * The connection, once it is usable. ioredis queues commands while it reconnects (and, with
   * maxRetriesPerRequest: null, which BullMQ needs, forever): a request during a Redis outage would hang. Wait a
   * moment for a reconnect (startup, a blip), then refuse with 503 + Retry-After; nothing is half-written.
   */
  private async client() {
    if (this.redis.status !== 'ready') {
      // Once a wait has failed, the outage is known: refuse at once until Redis is back (the pod stays ready for
      // synchronous routes, so job requests keep coming and must not each wait).
      if (this.outage || !(await this.waitForReconnect())) {
        throw fail('NOT_READY', 'The jobs store (Redis) is unreachable; retry later', {
          retryAfter: 5,
          details: { redis: this.redis.status },
        });
      }
    }
    return this.redis;
  }

  /** One shared wait per outage: concurrent requests share a single 'ready' listener and timer. */
  private reconnectWait: Promise<boolean> | undefined;
  /** Set when a reconnect wait timed out; cleared when the connection is ready again. */
  private outage = false;

  private waitForReconnect(): Promise<boolean> {
    this.reconnectWait ??= new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.redis.off('ready', onReady);
        this.outage = this.redis.status !== 'ready';
        resolve(false);
      }, CONNECT_WAIT_MS);
      const onReady = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.redis.once('ready', onReady);
    }).finally(() => {
      this.reconnectWait = undefined;
    });
    return this.reconnectWait;
  }

  readiness() {
    if (this.redis.status === 'ready') return { ready: true };
    return {
      ready: false,
      reason: `jobs store (Redis) ${this.redis.status}${this.lastError ? `: ${this.lastError}` : ''}`,
    };
  }

  async submit(operation: string, input: unknown, opts: SubmitOptions = {}): Promise<SubmitOutcome> {
    const client = await this.client();
    const id = randomUUID();
    let idemKey: string | undefined;
    if (opts.idempotencyKey) {
      const fingerprint = submissionFingerprint(operation, input);
      // Per owner: one client's key never replays (or blocks) another client's job.
      idemKey = this.keys.idempotency(
        opts.owner ? `${opts.owner}:${opts.idempotencyKey}` : opts.idempotencyKey,
      );
      // Claim the key for this new id; if someone holds it, that submission wins (same body) or we refuse.
      for (let tries = 0; tries < 3; tries++) {
        const claimed = await client.set(
          idemKey,
          `${fingerprint} ${id}`,
          'PX',
          this.ttlMs + this.cfg.JOB_TIMEOUT_MS,
          'NX',
        );
        if (claimed === 'OK') break;
        const held = await client.get(idemKey);
        if (!held) continue;
        const [heldFingerprint, heldId] = held.split(' ');
        if (heldFingerprint !== fingerprint) throw idempotencyConflict(opts.idempotencyKey);
        const earlier = await this.get(heldId);
        if (earlier) return { view: earlier, replayed: true };
        // The earlier job has expired: the key is free again.
        await client.del(idemKey);
      }
    }
    const activeKey = this.keys.active(
      opts.owner !== undefined ? `key:${opts.owner}` : `addr:${opts.client ?? ''}`,
    );
    try {
      const waiting = await this.queue.getJobCountByTypes('wait', 'paused', 'prioritized', 'delayed');
      if (waiting >= this.cfg.JOBS_QUEUE_MAX) throw queueFull(this.cfg.JOBS_QUEUE_MAX);
      await this.checkQuota(client, activeKey);
      const { json, blobs } = splitBlobs(input);
      // Input bytes live as long as the job can: waiting + running + TTL.
      await writeBlobs(client, this.keys.inputBlobs(id), blobs, this.ttlMs + this.cfg.JOB_TIMEOUT_MS * 2);
      if (opts.owner) {
        await client.set(this.keys.owner(id), opts.owner, 'PX', this.ttlMs + this.cfg.JOB_TIMEOUT_MS * 2);
      }
      const job = await this.queue.add(
        operation,
        {
          operation,
          input: json,
          blobs: blobs.length,
          ...(opts.trace?.traceparent ? { trace: opts.trace } : {}),
        },
        {
          jobId: id,
          attempts: 1,
          // Finished records (results) go after the TTL, or sooner once JOBS_REDIS_MAX_FINISHED newer ones exist.
          removeOnComplete: { age: Math.ceil(this.ttlMs / 1000), count: this.cfg.JOBS_REDIS_MAX_FINISHED },
          removeOnFail: { age: Math.ceil(this.ttlMs / 1000), count: this.cfg.JOBS_REDIS_MAX_FINISHED },
        },
      );
      if (this.cfg.JOBS_MAX_PER_KEY > 0) {
        await client
          .multi()
          .sadd(activeKey, id)
          .pexpire(activeKey, this.cfg.JOB_TIMEOUT_MS * 2)
          .exec();
      }
      return { view: this.view(job, 'queued'), replayed: false };
    } catch (err) {
      if (idemKey) await client.del(idemKey);
      throw err;
    }
  }

  /**
   * JOBS_MAX_PER_KEY: the client's jobs still queued or running, counted from its set of ids (finished, cancelled
   * and expired ones are dropped from it here). Two submissions racing may both pass: the quota is a bound on
   * abuse, not an exact count.
   */
  private async checkQuota(client: Redis, activeKey: string) {
    const max = this.cfg.JOBS_MAX_PER_KEY;
    if (max === 0) return;
    const ids = await client.smembers(activeKey);
    if (ids.length < max) return;
    let active = 0;
    for (const id of ids) {
      const state = await this.queue.getJobState(id);
      if (state === 'completed' || state === 'failed' || state === 'unknown')
        await client.srem(activeKey, id);
      else active++;
    }
    if (active >= max) {
      throw fail(
        'JOB_QUOTA',
        `This client already has ${active} jobs queued or running (JOBS_MAX_PER_KEY = ${max}); wait for one to finish or cancel one`,
        { retryAfter: 5, details: { active, max } },
      );
    }
  }

  async ownerOf(id: string): Promise<string | undefined | null> {
    const owner = await (await this.client()).get(this.keys.owner(id));
    if (owner !== null) return owner;
    // No owner stored: a job submitted with keys off (or whose owner record outlived its TTL: then nobody owns it).
    return (await this.get(id)) ? undefined : null;
  }

  async get(id: string): Promise<JobView | null> {
    const found = await this.load(id);
    return found?.view ?? null;
  }

  async result(id: string): Promise<JobResult | null> {
    const found = await this.load(id);
    if (!found) return null;
    if (found.view.state !== 'succeeded' || !found.job) return { view: found.view };
    const value = found.job.returnvalue as { json: unknown; blobs: number } | null;
    if (!value) return { view: found.view, result: null };
    const blobs = await readBlobs(await this.client(), this.keys.resultBlobs(id), value.blobs);
    return { view: found.view, result: joinBlobs(value.json, blobs) };
  }

  async cancel(id: string): Promise<JobView | null> {
    const found = await this.load(id);
    if (!found) return null;
    const { view, job } = found;
    if (isTerminal(view.state) || !job) return view;
    const client = await this.client();
    await client.set(this.keys.cancelRequested(id), '1', 'PX', this.ttlMs + this.cfg.JOB_TIMEOUT_MS);
    if (view.state === 'queued') {
      try {
        await job.remove();
        const cancelled: JobView = {
          ...view,
          state: 'cancelled',
          finishedAt: new Date().toISOString(),
          expiresAt: new Date(Date.now() + this.ttlMs).toISOString(),
          error: cancelledError(),
        };
        await client.set(this.keys.tombstone(id), JSON.stringify(cancelled), 'PX', this.ttlMs);
        await client.del(this.keys.inputBlobs(id));
        return cancelled;
      } catch {
        // A worker took it meanwhile (it is locked): cancel it as a running job.
      }
    }
    await client.publish(this.keys.cancelChannel, id);
    return (await this.get(id)) ?? view;
  }

  watch(id: string, signal?: AbortSignal): AsyncIterable<JobView> {
    // Polling keeps the API stateless (any API pod can serve any subscription); 4 reads a second is cheap.
    const self = this;
    return (async function* poll() {
      let last = '';
      while (!signal?.aborted) {
        const view = await self.get(id);
        if (!view) return;
        const text = JSON.stringify(view);
        if (text !== last) {
          last = text;
          yield view;
        }
        if (isTerminal(view.state)) return;
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
  }

  async counts() {
    await this.client();
    const c = await this.queue.getJobCounts('wait', 'prioritized', 'delayed', 'active');
    return { queued: (c.wait ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0), running: c.active ?? 0 };
  }

  async close() {
    await this.queue.close();
    await this.redis.quit().catch(() => {});
    return undefined; // jobs live in Redis: nothing is lost with this process
  }

  /** The BullMQ job and our view of it; null when unknown or past its TTL. */
  private async load(id: string): Promise<{ view: JobView; job?: Job<QueuedJobData> } | null> {
    await this.client();
    // The state first, then the record: a job that finishes between the two reads is then seen as running (the
    // next read sees it finished), never as finished with the record of a running job (no reason, no end time).
    const bullState = await this.queue.getJobState(id);
    const job = bullState === 'unknown' ? undefined : await this.queue.getJob(id);
    if (!job) {
      const tomb = await (await this.client()).get(this.keys.tombstone(id));
      return tomb ? { view: JSON.parse(tomb) as JobView } : null;
    }
    const state: JobState =
      bullState === 'completed'
        ? 'succeeded'
        : bullState === 'failed'
          ? decodeJobError(job.failedReason, job.attemptsStarted).code === cancelledError().code
            ? 'cancelled'
            : 'failed'
          : bullState === 'active'
            ? 'running'
            : 'queued';
    if (job.finishedOn && Date.now() >= job.finishedOn + this.ttlMs) {
      // Past its TTL: forget it now rather than when BullMQ next cleans up.
      await job.remove().catch(() => {});
      return null;
    }
    return { view: this.view(job, state), job };
  }

  private view(job: Job<QueuedJobData>, state: JobState): JobView {
    const raw = job.progress as { fraction?: number; message?: string } | number;
    const progress =
      state === 'succeeded'
        ? { fraction: 1, message: 'done' }
        : typeof raw === 'object' && raw !== null
          ? { fraction: raw.fraction ?? 0, message: raw.message ?? '' }
          : { fraction: 0, message: state === 'running' ? 'started' : 'queued' };
    const finished = state === 'succeeded' || state === 'failed' || state === 'cancelled';
    return {
      id: String(job.id),
      state,
      operation: job.data.operation,
      progress,
      createdAt: iso(job.timestamp) ?? new Date().toISOString(),
      startedAt: iso(job.processedOn),
      finishedAt: finished ? iso(job.finishedOn) : null,
      expiresAt: finished && job.finishedOn ? iso(job.finishedOn + this.ttlMs) : null,
      attempts: job.attemptsStarted ?? 0,
      ...(state === 'failed' || state === 'cancelled'
        ? { error: decodeJobError(job.failedReason, job.attemptsStarted) }
        : {}),
    };
  }
}
