/**
 * The job-taking side of the redis backend, run by `npm run worker` (src/worker.ts): a BullMQ Worker whose
 * processor runs registered operations on this process's compute pool. The heavy work runs in the pool's worker
 * threads, so the event loop stays free to renew BullMQ's lock; a process that dies (SIGKILL, OOM, node lost)
 * stops renewing it, and after JOBS_LOCK_MS another worker's stalled-job check puts the job back in the queue
 * (at most JOBS_MAX_STALLED times, then it fails with a reason). A clean shutdown (SIGTERM) lets running jobs
 * finish within the grace period and puts back in the queue those that do not.
 */
import { DelayedError, type Job, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ComputePool } from '../compute/pool.js';
import { admitLending, computePoolOptions } from '../compute/pool-options.js';
import type { Config } from '../config.js';
import { inJobRun, traceIdOf } from '../telemetry/tracing.js';
import { joinBlobs, splitBlobs } from './blobs.js';
import { toJobError, transientRetryDelayMs } from './common.js';
import { cancelledError } from './memory.js';
import { encodeJobError, jobKeys, type QueuedJobData, readBlobs, writeBlobs } from './redis.js';
import { jobOperation, parseJobInput } from './registry.js';

export interface JobWorkerHandle {
  worker: Worker<QueuedJobData>;
  pool: ComputePool;
  /** True while the Redis connection is usable (readiness). */
  redisReady(): boolean;
  /** Stop taking jobs; finish running ones within graceMs, re-queue the rest; close the pool and connections. */
  close(graceMs: number): Promise<void>;
}

const SHUTDOWN_REASON = 'worker shutting down';

export async function startJobWorker(
  cfg: Config,
  log: Logger,
  /** Called before the worker takes its first job (probes and metrics attach their listeners here). */
  beforeRun?: (handle: Omit<JobWorkerHandle, 'close'>) => void,
): Promise<JobWorkerHandle> {
  const pool = new ComputePool({
    ...computePoolOptions(cfg),
    defaultTimeoutMs: cfg.JOB_TIMEOUT_MS,
  });
  admitLending(pool, cfg);
  pool.on('workerError', (err) => log.error({ err }, 'compute worker error'));
  const keys = jobKeys(cfg.JOBS_QUEUE_NAME);
  const client = new Redis(cfg.REDIS_URL, { maxRetriesPerRequest: null });
  client.on('error', (err) => log.error({ err }, 'redis error'));
  const runtime = { pool, config: cfg };
  let shuttingDown = false;

  // A job's log lines carry the trace id of the request that submitted it.
  const jobLog = (job: Job<QueuedJobData>) => {
    const traceId = traceIdOf(job.data.trace);
    return traceId ? log.child({ trace_id: traceId }) : log;
  };

  const processor = async (job: Job<QueuedJobData>, token?: string, signal?: AbortSignal) => {
    const log = jobLog(job);
    const id = String(job.id);
    if (await client.exists(keys.cancelRequested(id))) {
      throw new UnrecoverableError(encodeJobError(cancelledError()));
    }
    log.info({ jobId: id, operation: job.data.operation, attempt: job.attemptsStarted }, 'job started');
    let lastProgress = 0;
    const onProgress = (fraction: number, message: string) => {
      const now = Date.now();
      if (now - lastProgress < 200 && fraction < 1) return;
      lastProgress = now;
      job.updateProgress({ fraction, message }).catch(() => {});
    };
    const abort = new AbortController();
    signal?.addEventListener('abort', () => abort.abort(), { once: true });
    try {
      const op = jobOperation(job.data.operation, cfg);
      const blobs = await readBlobs(client, keys.inputBlobs(id), job.data.blobs);
      const input = parseJobInput(op, joinBlobs(job.data.input, blobs));
      const result = await inJobRun(op.name, id, job.data.trace, () =>
        op.run(runtime, input, { signal: abort.signal, onProgress, timeoutMs: cfg.JOB_TIMEOUT_MS }),
      );
      const { json, blobs: out } = splitBlobs(result);
      await writeBlobs(client, keys.resultBlobs(id), out, cfg.JOB_TTL_MS);
      await client.del(keys.inputBlobs(id));
      log.info({ jobId: id, operation: job.data.operation, pid: process.pid }, 'job completed');
      return { json, blobs: out.length };
    } catch (err) {
      if (abort.signal.aborted && shuttingDown && token) {
        // Not finished within the grace period: back to the queue for another worker, not failed.
        await job.moveToWait(token);
        log.warn({ jobId: id }, 'job re-queued at shutdown');
        throw new WaitingError();
      }
      const cancelled = abort.signal.aborted && (await client.exists(keys.cancelRequested(id)));
      const jobError = cancelled ? cancelledError() : toJobError(err);
      // The run that just failed, counted among this job's transient failures only (a pickup after a dead worker
      // is not one).
      const attempt = (job.data.transientRetries ?? 0) + 1;
      const delay =
        cancelled || shuttingDown || !token
          ? null
          : transientRetryDelayMs(err, attempt, cfg.JOBS_TRANSIENT_RETRIES, cfg.JOBS_RETRY_DELAY_MS);
      if (delay !== null && token) {
        // "Not now" (device memory taken, device lost, model being swapped in): run it again later, on any worker.
        const message = `retrying in ${Math.ceil(delay / 1000)} s after ${jobError.code} (retry ${attempt} of ${cfg.JOBS_TRANSIENT_RETRIES})`;
        try {
          await job.updateData({ ...job.data, transientRetries: attempt });
          // The input and the owner must outlive the next run as they did the first: their expiry starts again.
          const keep = cfg.JOB_TTL_MS + cfg.JOB_TIMEOUT_MS * 2 + delay;
          await client.multi().pexpire(keys.inputBlobs(id), keep).pexpire(keys.owner(id), keep).exec();
          await job.updateProgress({ fraction: 0, message }).catch(() => {});
          await job.moveToDelayed(Date.now() + delay, token);
        } catch (moveErr) {
          // The lock or Redis went away meanwhile: the failure is the job's answer, with its code.
          log.error({ jobId: id, err: moveErr }, 'could not put the job off for a retry');
          throw new UnrecoverableError(encodeJobError(jobError));
        }
        log.warn({ jobId: id, code: jobError.code, delayMs: delay, attempt }, 'job will be retried');
        throw new DelayedError();
      }
      log.info({ jobId: id, code: jobError.code }, cancelled ? 'job cancelled' : 'job failed');
      // Our failures are answers (bad input, deadline, solver error): retrying would give the same one.
      throw new UnrecoverableError(encodeJobError(jobError));
    }
  };

  const worker: Worker<QueuedJobData> = new Worker<QueuedJobData>(cfg.JOBS_QUEUE_NAME, processor, {
    connection: client,
    concurrency: cfg.JOBS_CONCURRENCY > 0 ? cfg.JOBS_CONCURRENCY : pool.workers,
    lockDuration: cfg.JOBS_LOCK_MS,
    stalledInterval: cfg.JOBS_LOCK_MS,
    maxStalledCount: cfg.JOBS_MAX_STALLED,
    autorun: false,
  });
  worker.on('error', (err) => log.error({ err }, 'bullmq worker error'));
  worker.on('failed', (job, err) => {
    if (job && !err.message.startsWith('TWJOB:'))
      log.warn({ jobId: job.id, reason: err.message }, 'job failed');
  });

  // The probes come up before anything waits on Redis: a worker whose Redis is down (or not up yet) is alive and
  // says "not ready: Redis is not connected", rather than answering no probe and being restarted for nothing.
  const redisReady = () => client.status === 'ready';
  beforeRun?.({ worker, pool, redisReady });

  // Cancellation of running jobs: the API publishes the id; whichever worker holds it aborts it.
  const subscriber = client.duplicate();
  subscriber.on('error', (err) => log.error({ err }, 'redis subscriber error'));
  await subscriber.subscribe(keys.cancelChannel);
  subscriber.on('message', (_channel: string, id: string) => {
    if (worker.cancelJob(id, 'cancelled by client')) log.info({ jobId: id }, 'cancelling running job');
  });

  await worker.waitUntilReady();
  void worker.run();
  log.info(
    { queue: cfg.JOBS_QUEUE_NAME, concurrency: worker.concurrency, pid: process.pid },
    'job worker ready',
  );

  return {
    worker,
    pool,
    redisReady,
    async close(graceMs: number) {
      // Stop fetching now; running jobs get graceMs, then are aborted and re-queued (processor, above).
      const closing = worker.close();
      const timer = setTimeout(() => {
        shuttingDown = true;
        worker.cancelAllJobs(SHUTDOWN_REASON);
      }, graceMs);
      await closing;
      clearTimeout(timer);
      await subscriber.quit().catch(() => {});
      await client.quit().catch(() => {});
      await pool.close(1000);
    },
  };
}
