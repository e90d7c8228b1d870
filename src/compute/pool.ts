/**
 * The compute pool as the main thread sees it: a bounded queue in front of piscina worker threads, deadlines,
 * cancellation, progress ports, and a crash of one worker failing only its own task.
 *
 * Tasks started inside `runAsJob` (every run of the memory jobs backend) go through a job lane: at most
 * `workers - reservedWorkers` of them hold a worker or a place in piscina's queue at once; the others wait in the
 * lane (their deadline running). So `reservedWorkers` workers are always left to synchronous requests, and a
 * synchronous task never queues behind more job tasks than the lane lets through.
 *
 * Borrowing (one task on several workers): a running task may start sub-tasks on workers that are idle at that
 * moment (HandlerContext.pool.borrow, over a port of its envelope), e.g. one large image's network windows. Only
 * idle workers are lent, never while a task waits for a worker, and a job's helpers hold job-lane slots like any
 * job task (so the reserved workers stay free); the workers publish the counts they need in a shared word pair
 * (`poolState`: [0] idle workers, [1] tasks waiting) so a helper stops taking work as soon as a task waits. A
 * helper runs under its parent's deadline and cancellation, its memory is admitted by `lendAdmission` (none lent
 * when it refuses), and its error is its parent's to throw (the parent's request fails with the helper's code).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { EventEmitter } from 'node:events';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  BroadcastChannel,
  MessageChannel,
  type MessagePort,
  type TransferListItem,
} from 'node:worker_threads';
import { context, type Span, SpanKind, trace } from '@opentelemetry/api';
import { Piscina } from 'piscina';
import { fail, reviveError, type SerializedError, TweedieError } from '../errors.js';
import { hasContext, injectContext, recordError, startSpan } from '../telemetry/tracing.js';
import type {
  TaskEnvelope,
  TaskInput,
  TaskKind,
  TaskOutcome,
  TaskResult,
  WorkerEvent,
  WorkerOptions,
} from './task-types.js';
import { collectTransferables } from './transfer.js';

export interface RunOptions {
  /** Deadline for this task, from submission (queue time included). */
  timeoutMs?: number;
  /** The caller's cancellation (client went away, job cancelled). */
  signal?: AbortSignal;
  onProgress?: (fraction: number, message: string) => void;
  /** Move input typed arrays to the worker instead of copying them (the caller must not reuse them). */
  transferInput?: boolean;
}

/** A running task's lending state (main thread): what its helpers inherit. */
interface Lender {
  isJob: boolean;
  /** Aborts with the parent task (deadline, cancellation) and when it settles. */
  signal: AbortSignal;
  /** Epoch ms by which the parent (and so every helper) must be done. */
  deadline: number;
  /** The parent's `compute <kind>` span as context: helpers are traced under it. */
  trace: ReturnType<typeof context.active>;
}

/** What a task's worker asks its pool on the borrow port (src/compute/worker.ts), and what it is answered. */
export type BorrowRequest = {
  type: 'borrow';
  id: number;
  kind: TaskKind;
  input: unknown;
  /** Helpers wanted (each runs `kind` with `input`). */
  count: number;
  /** Memory one helper needs besides its worker's own (admitted by lendAdmission). */
  bytesEach?: number;
};
export type BorrowReply =
  | { type: 'granted'; id: number; count: number }
  | { type: 'settled'; id: number; index: number; ok: true; result: unknown }
  | { type: 'settled'; id: number; index: number; ok: false; error: SerializedError };

export interface PoolStats {
  workers: number;
  queued: number;
  running: number;
  queueMax: number;
  completed: number;
  /** Workers job tasks may not occupy. */
  reservedWorkers: number;
  /** Job tasks holding a lane slot (running, or in piscina's queue). */
  jobTasks: number;
  /** Job tasks waiting for a lane slot. */
  jobTasksWaiting: number;
  /** Helper tasks lent to running tasks (on idle workers), since start. */
  lent: number;
}

const jobLane = new AsyncLocalStorage<true>();

/** Run `work` as a job: every pool task it starts (however deep) goes through the pool's job lane. */
export function runAsJob<T>(work: () => Promise<T>): Promise<T> {
  return jobLane.run(true, work);
}

export interface TaskEvent {
  kind: TaskKind;
  ms: number;
  outcome: 'ok' | 'error' | 'timeout' | 'cancelled' | 'crashed' | 'rejected';
}

/** A worker whose GPU device was lost (src/compute/worker.ts): it answered its tasks 503 and is being replaced. */
export type DeviceLostEvent = Omit<WorkerEvent, 'type'>;

let poolCount = 0;
/** How long a worker whose GPU device was lost is left to post its answers before it is stopped. */
const DEVICE_LOST_DRAIN_MS = 200;

export interface ComputePoolOptions {
  workers: number;
  queueMax: number;
  defaultTimeoutMs: number;
  worker: WorkerOptions;
  /** Per-worker heap cap, so a runaway task kills its worker, not the process. */
  maxOldGenerationSizeMb?: number;
  /** Workers kept for tasks not started by jobs (see runAsJob); at most workers - 1. Default 0. */
  reservedWorkers?: number;
  /** Tasks a worker runs at once (dynamic batching, src/nn/batcher.ts). Default 1. */
  concurrentTasksPerWorker?: number;
  /**
   * Workers are lent only while the host's 1-minute load average is below this many per core (an idle worker on an
   * oversubscribed host has no free core to run on: a split would only add work). 0 or unset: no check.
   */
  lendMaxLoadPerCore?: number;
  /**
   * With concurrentTasksPerWorker > 1: a cancelled task is answered at once, and its worker (with the other tasks on
   * it) is stopped only if the task still runs this many ms later. Default 5000.
   */
  cancelGraceMs?: number;
}

interface LaneWaiter {
  wake: () => void;
  fail: (err: unknown) => void;
}

function workerEntry(): { filename: string; execArgv: string[] } {
  // Compiled (dist/*.js): run the JS worker. From source (tests, tsx): a bootstrap installs tsx's loader in the
  // worker thread first (a `--import tsx` execArgv does not reach worker threads on Node 20).
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts')) {
    return { filename: self.replace(/pool\.ts$/, 'worker-dev.mjs'), execArgv: [] };
  }
  return { filename: self.replace(/pool\.js$/, 'worker.js'), execArgv: [] };
}

export class ComputePool extends EventEmitter {
  private readonly piscina: Piscina;
  private running = 0;
  private closed = false;
  readonly queueMax: number;
  readonly workers: number;
  readonly defaultTimeoutMs: number;
  readonly reservedWorkers: number;
  readonly concurrentTasksPerWorker: number;
  readonly cancelGraceMs: number;
  /** Heap cap of each worker thread (MB); undefined: Node's default. */
  readonly maxOldGenerationSizeMb: number | undefined;
  /** Job tasks allowed to hold a worker (or a place in piscina's queue) at once. */
  readonly jobSlots: number;
  private jobTasks = 0;
  private readonly laneWaiters: LaneWaiter[] = [];
  /** What the workers tell besides their answers (a lost GPU device): emitted as 'deviceLost'. */
  private readonly events: BroadcastChannel;
  /** Shared with the workers: [0] workers idle now, [1] tasks waiting for a worker (see the module note). */
  private readonly poolState = new Int32Array(new SharedArrayBuffer(8));
  private lent = 0;
  /**
   * Admits the memory of helper tasks (bytes): the function that gives it back, or null when it does not fit now
   * (then fewer helpers, or none, are lent). Unset: no limit.
   */
  lendAdmission: ((bytes: number) => (() => void) | null) | null = null;
  /** See ComputePoolOptions.lendMaxLoadPerCore. */
  readonly lendMaxLoadPerCore: number;
  /** The host's load per core (1-minute load average / cores); replaceable in tests. */
  hostLoadPerCore: () => number = () => loadavg()[0] / Math.max(1, availableParallelism());

  constructor(opts: ComputePoolOptions) {
    super();
    this.queueMax = opts.queueMax;
    this.workers = opts.workers;
    this.reservedWorkers = Math.max(0, Math.min(opts.reservedWorkers ?? 0, opts.workers - 1));
    this.jobSlots = Math.max(1, opts.workers - this.reservedWorkers);
    this.defaultTimeoutMs = opts.defaultTimeoutMs;
    this.concurrentTasksPerWorker = Math.max(1, opts.concurrentTasksPerWorker ?? 1);
    this.cancelGraceMs = opts.cancelGraceMs ?? 5000;
    this.maxOldGenerationSizeMb = opts.maxOldGenerationSizeMb || undefined;
    this.lendMaxLoadPerCore = opts.lendMaxLoadPerCore ?? 0;
    const entry = workerEntry();
    const eventsChannel = `tweedie-compute-${process.pid}-${++poolCount}`;
    this.events = new BroadcastChannel(eventsChannel);
    this.events.onmessage = (message) => {
      const event = (message as { data?: WorkerEvent }).data;
      if (event?.type === 'gpu-device-lost') {
        const { type: _type, ...lost } = event;
        this.emit('deviceLost', lost satisfies DeviceLostEvent);
        // Its tasks were answered 503 as it posted this (their answers follow within microtasks); what reaches it
        // meanwhile is refused. Stopped a moment later, it is replaced by piscina like a crashed worker.
        setTimeout(() => {
          const thread = this.piscina.threads.find((t) => t.threadId === lost.threadId);
          void thread?.terminate();
        }, DEVICE_LOST_DRAIN_MS).unref();
      }
    };
    this.events.unref();
    this.piscina = new Piscina({
      filename: entry.filename,
      execArgv: entry.execArgv,
      minThreads: opts.workers,
      maxThreads: opts.workers,
      // Workers hold loaded models: never let idle ones go.
      idleTimeout: 2 ** 31 - 1,
      concurrentTasksPerWorker: this.concurrentTasksPerWorker,
      workerData: { options: { ...opts.worker, eventsChannel, poolState: this.poolState } },
      resourceLimits: this.maxOldGenerationSizeMb
        ? { maxOldGenerationSizeMb: this.maxOldGenerationSizeMb }
        : undefined,
    });
    // A worker dying is reported per task; the pool-level event must not crash the process.
    this.piscina.on('error', (err: unknown) => this.emit('workerError', err));
    this.publishState();
  }

  stats(): PoolStats {
    return {
      workers: this.piscina.threads.length,
      queued: this.piscina.queueSize,
      // In flight minus waiting (in piscina's queue or the job lane) = on a worker now.
      running: this.busy(),
      queueMax: this.queueMax,
      completed: this.piscina.completed,
      reservedWorkers: this.reservedWorkers,
      jobTasks: this.jobTasks,
      jobTasksWaiting: this.laneWaiters.length,
      lent: this.lent,
    };
  }

  /**
   * Workers a running task may borrow now: idle ones, none while any task waits for a worker or while the host is
   * loaded (lendMaxLoadPerCore).
   */
  private idleWorkers(): number {
    if (this.closed || this.concurrentTasksPerWorker > 1) return 0;
    if (this.piscina.queueSize > 0 || this.laneWaiters.length > 0) return 0;
    const idle = Math.max(0, this.workers - this.busy());
    if (idle > 0 && this.lendMaxLoadPerCore > 0 && this.hostLoadPerCore() >= this.lendMaxLoadPerCore)
      return 0;
    return idle;
  }

  /** Publishes the idle and waiting counts to the workers (after every change of the tasks in flight). */
  private publishState() {
    Atomics.store(this.poolState, 0, this.idleWorkers());
    Atomics.store(this.poolState, 1, this.piscina.queueSize + this.laneWaiters.length);
  }

  /**
   * Lends idle workers to a running task: starts `count` helpers (at most the idle workers, the job-lane slots free
   * when the parent is a job, and what lendAdmission admits), answers how many, then each helper's outcome.
   */
  private lend(lender: Lender, port: MessagePort, request: BorrowRequest) {
    let count = Math.min(Math.max(0, Math.floor(request.count)), this.idleWorkers());
    if (lender.isJob) count = Math.min(count, this.jobSlots - this.jobTasks);
    if (Date.now() >= lender.deadline || lender.signal.aborted) count = 0;
    let releaseMemory: (() => void) | null = null;
    while (count > 0 && request.bytesEach && this.lendAdmission) {
      releaseMemory = this.lendAdmission(count * request.bytesEach);
      if (releaseMemory) break;
      count--;
    }
    const post = (reply: BorrowReply) => {
      try {
        port.postMessage(reply);
      } catch {
        // The parent's port is closed (it settled): nobody is left to tell.
      }
    };
    post({ type: 'granted', id: request.id, count });
    let pending = count;
    for (let index = 0; index < count; index++) {
      this.lent++;
      const run = () =>
        this.run(request.kind, request.input as never, {
          signal: lender.signal,
          timeoutMs: Math.max(1, lender.deadline - Date.now()),
        });
      // A helper is in its parent's lane: a job's helper takes a job slot (free, as counted above).
      const started = context.with(lender.trace, () =>
        lender.isJob ? jobLane.run(true, run) : jobLane.exit(run),
      );
      started
        .then(
          (result) => post({ type: 'settled', id: request.id, index, ok: true, result }),
          (err: unknown) => {
            const error =
              err instanceof TweedieError ? err.toJSON() : fail('INTERNAL', 'A helper task failed').toJSON();
            post({ type: 'settled', id: request.id, index, ok: false, error });
          },
        )
        .finally(() => {
          if (--pending === 0) releaseMemory?.();
        });
    }
  }

  /** Tasks on a worker now. */
  private busy(): number {
    return Math.max(0, this.running - this.piscina.queueSize - this.laneWaiters.length);
  }

  /** Take a job-lane slot, waiting (FIFO) while the job tasks allowed are all out; rejects when `signal` aborts. */
  private async acquireJobSlot(signal: AbortSignal): Promise<void> {
    if (this.jobTasks < this.jobSlots && this.laneWaiters.length === 0) {
      this.jobTasks++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const leave = () => {
        const at = this.laneWaiters.indexOf(waiter);
        if (at >= 0) this.laneWaiters.splice(at, 1);
        this.publishState();
        signal.removeEventListener('abort', onAbort);
      };
      const onAbort = () => {
        leave();
        reject(new Error('aborted while waiting for a job slot'));
      };
      const waiter: LaneWaiter = {
        // The slot is handed over by releaseJobSlot (jobTasks stays counted).
        wake: () => {
          leave();
          resolve();
        },
        fail: (err) => {
          leave();
          reject(err);
        },
      };
      this.laneWaiters.push(waiter);
      this.publishState();
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private releaseJobSlot() {
    const next = this.laneWaiters[0];
    if (next) next.wake();
    else this.jobTasks--;
  }

  /** Tasks waiting for a worker. */
  get queueDepth(): number {
    return this.piscina.queueSize;
  }

  /** True when every worker is busy and the queue is at its limit. */
  isFull(): boolean {
    return (
      this.busy() >= this.workers * this.concurrentTasksPerWorker && this.piscina.queueSize >= this.queueMax
    );
  }

  /**
   * Run one task. Traced as `compute <kind>` (queue wait included) under the caller's active span, with a child
   * `worker <kind>` for its execution as timed in the worker thread; the envelope carries the trace context.
   */
  async run<K extends TaskKind>(kind: K, input: TaskInput<K>, opts: RunOptions = {}): Promise<TaskResult<K>> {
    const span = startSpan(`compute ${kind}`, SpanKind.INTERNAL, {
      'tw.task.kind': kind,
      'tw.task.job': jobLane.getStore() === true,
    });
    try {
      return await this.runTraced(kind, input, opts, span);
    } catch (err) {
      recordError(span, err);
      throw err;
    } finally {
      span.end();
    }
  }

  private async runTraced<K extends TaskKind>(
    kind: K,
    input: TaskInput<K>,
    opts: RunOptions,
    span: Span,
  ): Promise<TaskResult<K>> {
    const started = Date.now();
    const report = (outcome: TaskEvent['outcome']) =>
      this.emit('task', { kind, ms: Date.now() - started, outcome } satisfies TaskEvent);
    if (this.closed) {
      report('rejected');
      throw fail('SHUTTING_DOWN');
    }
    if (this.isFull()) {
      report('rejected');
      throw fail('QUEUE_FULL', `The compute queue is full (${this.queueMax} waiting); retry later`, {
        retryAfter: 1,
      });
    }
    if (opts.signal?.aborted) {
      report('cancelled');
      // A caller that aborts with a coded error (shutdown) gets that error back.
      if (opts.signal.reason instanceof TweedieError) throw opts.signal.reason;
      throw fail('DEADLINE_EXCEEDED', 'The request was cancelled before it started');
    }

    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs;
    const controller = new AbortController();
    let reason: 'timeout' | 'cancelled' | null = null;
    const timer = setTimeout(() => {
      reason = 'timeout';
      controller.abort();
    }, timeoutMs);
    const onCallerAbort = () => {
      reason ??= 'cancelled';
      controller.abort();
    };
    opts.signal?.addEventListener('abort', onCallerAbort, { once: true });

    let channel: MessageChannel | undefined;
    const envelope: TaskEnvelope = { kind, input };
    if (hasContext(span)) envelope.trace = injectContext(trace.setSpan(context.active(), span));
    const transferList: TransferListItem[] = opts.transferInput ? collectTransferables(input) : [];
    if (opts.onProgress) {
      channel = new MessageChannel();
      const onProgress = opts.onProgress;
      channel.port1.on('message', (m: { fraction: number; message: string }) =>
        onProgress(m.fraction, m.message),
      );
      channel.port1.unref();
      envelope.progressPort = channel.port2 as MessagePort;
      transferList.push(channel.port2);
    }

    const isJob = jobLane.getStore() === true;
    // Idle workers may be lent to this task (one worker per task: with several, none is ever idle to lend).
    let borrowChannel: MessageChannel | undefined;
    const lendController = new AbortController();
    if (this.workers > 1 && this.concurrentTasksPerWorker === 1) {
      borrowChannel = new MessageChannel();
      const lender: Lender = {
        isJob,
        signal: AbortSignal.any([controller.signal, lendController.signal]),
        deadline: started + timeoutMs,
        trace: trace.setSpan(context.active(), span),
      };
      const port = borrowChannel.port1;
      port.on('message', (m: BorrowRequest) => {
        if (m?.type === 'borrow') this.lend(lender, port, m);
      });
      port.unref();
      envelope.borrowPort = borrowChannel.port2 as MessagePort;
      transferList.push(borrowChannel.port2);
    }
    let holdsSlot = false;
    this.running++;
    try {
      if (isJob && !this.closed) {
        await this.acquireJobSlot(controller.signal);
        holdsSlot = true;
      }
      if (this.closed) throw fail('SHUTTING_DOWN');
      const task = this.runOnPiscina(envelope, transferList, controller.signal);
      this.publishState();
      const outcome = (await task) as TaskOutcome;
      if (outcome.timing && span.isRecording()) {
        const { start, end, threadId } = outcome.timing;
        startSpan(
          `worker ${kind}`,
          SpanKind.INTERNAL,
          { 'tw.task.kind': kind, 'thread.id': threadId },
          trace.setSpan(context.active(), span),
          start,
        ).end(end);
      }
      if (!outcome.ok) {
        report('error');
        throw reviveError(outcome.error);
      }
      report('ok');
      return outcome.result as TaskResult<K>;
    } catch (err) {
      if (err instanceof TweedieError) throw err;
      if (reason === 'timeout') {
        report('timeout');
        throw fail('DEADLINE_EXCEEDED', `The task did not finish within ${timeoutMs} ms`);
      }
      if (reason === 'cancelled') {
        report('cancelled');
        if (opts.signal?.reason instanceof TweedieError) throw opts.signal.reason;
        throw fail('DEADLINE_EXCEEDED', 'The task was cancelled by its caller');
      }
      if (this.closed) {
        report('rejected');
        throw fail('SHUTTING_DOWN');
      }
      // The worker died (exit, out of memory): piscina replaces it; only this task fails.
      report('crashed');
      throw fail('WORKER_CRASHED', undefined, {
        details: { internal: err instanceof Error ? err.message : String(err) },
      });
    } finally {
      if (holdsSlot) this.releaseJobSlot();
      this.running--;
      this.publishState();
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onCallerAbort);
      channel?.port1.close();
      // Helpers still running when their parent settled (it failed, or its worker died) stop with it.
      lendController.abort();
      borrowChannel?.port1.close();
    }
  }

  /**
   * piscina.run. Alone on its worker (the default), a task is cancelled through piscina: a queued one is dropped, a
   * running one stops its worker. piscina runs a task that has an abort signal alone on its worker, so with several
   * tasks per worker (dynamic batching) none is passed: the caller is answered at once, the task is flagged in a
   * shared word of its envelope (a worker skips a flagged task it has not started; a running one stops at its next
   * chunk, src/util/cancellation.ts), and its worker (with the other tasks on it) is terminated only if the task
   * still runs cancelGraceMs later (a handler stuck in one long call).
   */
  private runOnPiscina(envelope: TaskEnvelope, transferList: TransferListItem[], signal: AbortSignal) {
    if (this.concurrentTasksPerWorker <= 1) {
      return this.piscina.run(envelope, { signal, transferList: transferList as never });
    }
    // [0]: 1 once cancelled; [1]: the id of the thread running the task (0 until it starts).
    const control = new Int32Array(new SharedArrayBuffer(8));
    let graceTimer: NodeJS.Timeout | undefined;
    const task = this.piscina.run({ ...envelope, control }, { transferList: transferList as never });
    task.catch(() => {}).finally(() => clearTimeout(graceTimer));
    return new Promise<unknown>((resolve, reject) => {
      const onAbort = () => {
        Atomics.store(control, 0, 1);
        reject(new Error('task cancelled'));
        graceTimer = setTimeout(() => {
          const threadId = Atomics.load(control, 1);
          const thread = threadId ? this.piscina.threads.find((t) => t.threadId === threadId) : undefined;
          void thread?.terminate();
        }, this.cancelGraceMs);
        graceTimer.unref();
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      task.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** Stop taking tasks; wait up to graceMs for running ones, then terminate the workers. */
  async close(graceMs = 10_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const waiter of [...this.laneWaiters]) waiter.fail(fail('SHUTTING_DOWN'));
    const deadline = Date.now() + graceMs;
    while (this.running > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await this.piscina.destroy();
    this.events.close();
  }
}
