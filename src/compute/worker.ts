/**
 * Worker-thread entry of the compute pool (piscina). Every solver and model call runs here, never on the
 * event loop. Errors are returned as data ({ ok: false, error }) so that coded errors keep their code across the
 * thread boundary and no stack trace ever reaches a client.
 */
import { performance } from 'node:perf_hooks';
import { BroadcastChannel, type MessagePort, threadId, workerData } from 'node:worker_threads';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { fail, isSerializedError, reviveError, type SerializedError, TweedieError } from '../errors.js';
import { onDeviceLost } from '../gpu/device.js';
import { setOnlineThreads } from '../ot/online-threads.js';
import { noteCancelledTask, runCancellable } from '../util/cancellation.js';
import type { HandlerContext, PoolAccess } from './handlers/context.js';
import { handlers, isTestOnlyKind } from './handlers/index.js';
import type { BorrowReply, BorrowRequest } from './pool.js';
import type { TaskEnvelope, TaskOutcome, WorkerEvent, WorkerOptions } from './task-types.js';
import { collectTransferables } from './transfer.js';

const options: WorkerOptions = workerData?.options ?? {
  modelsDir: 'models',
  tfjsBackend: 'auto',
  enableTestTasks: false,
  tileSize: 256,
};
// One online Sinkhorn problem may use helper threads (OT_ONLINE_THREADS): the default CPU soft-min takes it from here.
setOnlineThreads(options.otOnlineThreads ?? 1);

let tfjsPromise: ReturnType<HandlerContext['tfjs']> | null = null;
function tfjs(): ReturnType<HandlerContext['tfjs']> {
  if (!tfjsPromise) {
    tfjsPromise = import('../nn/backend.js').then(async (m) => {
      const rt = await m.initTfjs(options.tfjsBackend);
      // Batching and the device-memory budget depend on the backend this worker got (src/nn/batcher.ts).
      const { configureBatching } = await import('../nn/batcher.js');
      configureBatching(
        {
          maxSize: options.batchMaxSize,
          maxDelayMs: options.batchMaxDelayMs,
          memoryBudgetBytes: options.gpuMemoryBudgetMb && options.gpuMemoryBudgetMb * 1024 * 1024,
        },
        rt,
      );
      return rt;
    });
    // A failed start is retried by the next task rather than cached forever.
    tfjsPromise.catch(() => {
      tfjsPromise = null;
    });
  }
  return tfjsPromise;
}

// --- a lost GPU device ------------------------------------------------------------------------------------------
// When the thread's WebGPU device is lost (src/gpu/device.ts onDeviceLost), everything on it is gone (the TF.js
// backend, the models' weights, the online Sinkhorn kernels) and a read-back may never resolve. The worker answers
// every task it runs 503 TW_GPU_DEVICE_LOST at once (and any that still reaches it) and tells its pool why; the
// pool then stops it (src/compute/pool.ts: an idle piscina worker blocks in Atomics.wait, so it cannot end itself
// on a timer), and piscina starts a replacement, which creates a new device or falls back as at start-up.

let deviceLost: TweedieError | null = null;
const lostWaiters = new Set<(err: TweedieError) => void>();
onDeviceLost((reason) => {
  if (deviceLost) return;
  deviceLost = fail(
    'GPU_DEVICE_LOST',
    `The compute worker's GPU device was lost (${reason}); the worker is being replaced, retry`,
    { retryAfter: 1, details: { reason } },
  );
  const event: WorkerEvent = { type: 'gpu-device-lost', threadId, reason, tasksFailed: lostWaiters.size };
  for (const reject of [...lostWaiters]) reject(deviceLost);
  if (options.eventsChannel) {
    const channel = new BroadcastChannel(options.eventsChannel);
    channel.postMessage(event);
    channel.close();
  }
});

/** The handler's promise, or 503 TW_GPU_DEVICE_LOST as soon as the device is lost, whichever comes first. */
function unlessDeviceLost<T>(work: Promise<T>): Promise<T> {
  let waiter: ((err: TweedieError) => void) | undefined;
  const lost = new Promise<never>((_, reject) => {
    // Lost while this task was starting (loading its handler): it fails too.
    if (deviceLost) return reject(deviceLost);
    waiter = reject;
    lostWaiters.add(reject);
  });
  return Promise.race([work, lost]).finally(() => {
    if (waiter) lostWaiters.delete(waiter);
  });
}

async function serialize(err: unknown): Promise<SerializedError> {
  if (err instanceof TweedieError) return err.toJSON();
  if (isSerializedError(err)) return err;
  // The domain libraries' typed errors (OtInputError, ModelLoadError ...), mapped by class; loaded on the failure
  // path only, so that a worker thread starts light.
  const { domainError } = await import('../domain-errors.js');
  const domain = domainError(err);
  if (domain) return domain.toJSON();
  // Unknown failure: the message is kept for the logs (main thread), the client sees only the code.
  const e = fail('INTERNAL', 'Internal error in compute worker', {
    details: { internal: err instanceof Error ? `${err.name}: ${err.message}` : String(err) },
  });
  return e.toJSON();
}

/** The task's access to its pool's idle workers, over its envelope's borrow port (none without one). */
function poolAccess(port: MessagePort | undefined): PoolAccess {
  const state = options.poolState;
  let nextId = 0;
  type Settled = BorrowReply & { type: 'settled' };
  /** Per borrow call: the granted count's resolver, then each helper's outcome (kept until it is awaited). */
  const calls = new Map<
    number,
    { granted: (count: number) => void; outcomes: Settled[]; wake?: () => void }
  >();
  port?.on('message', (reply: BorrowReply) => {
    const call = calls.get(reply.id);
    if (!call) return;
    if (reply.type === 'granted') call.granted(reply.count);
    else call.outcomes.push(reply);
    call.wake?.();
  });
  return {
    idleWorkers: () => (port && state ? Atomics.load(state, 0) : 0),
    waitingTasks: () => (state ? Atomics.load(state, 1) : 0),
    borrow: async (kind, input, count, opts = {}) => {
      if (!port || count < 1) return [];
      const id = ++nextId;
      const call: { granted: (count: number) => void; outcomes: Settled[]; wake?: () => void } = {
        granted: () => {},
        outcomes: [],
      };
      const granted = await new Promise<number>((resolve) => {
        call.granted = resolve;
        calls.set(id, call);
        port.postMessage({
          type: 'borrow',
          id,
          kind,
          input,
          count,
          bytesEach: opts.bytesEach,
        } satisfies BorrowRequest);
      });
      if (granted === 0) {
        calls.delete(id);
        return [];
      }
      // Each helper's promise settles with its outcome, in whatever order the outcomes come.
      const waiters = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
      const deliver = () => {
        for (const reply of call.outcomes.splice(0)) {
          const waiter = waiters.get(reply.index);
          waiters.delete(reply.index);
          if (!waiter) continue;
          if (reply.ok) waiter.resolve(reply.result);
          else waiter.reject(reviveError(reply.error));
        }
        if (waiters.size === 0) calls.delete(id);
      };
      const helpers = Array.from(
        { length: granted },
        (_, index) => new Promise((resolve, reject) => waiters.set(index, { resolve, reject })),
      );
      call.wake = deliver;
      deliver();
      return helpers as never;
    },
  };
}

/** Wall-clock time in ms with sub-ms precision (the span times recorded by the main thread). */
const epochMs = () => performance.timeOrigin + performance.now();

export default async function runTask(envelope: TaskEnvelope): Promise<TaskOutcome> {
  // A traced task is timed here, in the thread that runs it: the main thread records it as a `worker <kind>` span.
  const start = envelope.trace ? epochMs() : 0;
  const timed = (outcome: TaskOutcome): TaskOutcome =>
    envelope.trace ? { ...outcome, timing: { start, end: epochMs(), threadId } } : outcome;
  const port = envelope.progressPort;
  let lastPost = 0;
  const ctx: HandlerContext = {
    options,
    tfjs,
    pool: poolAccess(envelope.borrowPort),
    progress: (fraction, message) => {
      if (!port) return;
      const now = Date.now();
      // Throttle: progress messages are for humans and job status, not a firehose.
      if (now - lastPost < 100 && fraction < 1) return;
      lastPost = now;
      port.postMessage({ fraction: Math.max(0, Math.min(1, fraction)), message });
    },
  };
  try {
    if (deviceLost) throw deviceLost;
    const loader = Object.hasOwn(handlers, envelope.kind) ? handlers[envelope.kind] : undefined;
    if (!loader || (isTestOnlyKind(envelope.kind) && !options.enableTestTasks)) {
      throw fail('VALIDATION', `Unknown task kind '${String(envelope.kind)}'`);
    }
    // The envelope crossed a thread boundary untyped: the main thread's pool.run typed it by kind.
    const handler = (await loader()) as (input: unknown, ctx: HandlerContext) => unknown;
    const control = envelope.control;
    let result: unknown;
    if (control) {
      // Cancelled while it waited (for this worker, or for its turn on it): never started, and this thread is not
      // named for termination.
      if (Atomics.load(control, 0) === 1) throw fail('DEADLINE_EXCEEDED', 'The task was cancelled');
      Atomics.store(control, 1, threadId);
      // Cancelled while it runs: the handler's loops see the flag between chunks (checkCancelled) and end the task
      // there, freeing its slot, its batches and its memory reservation before the grace period runs out.
      try {
        result = await unlessDeviceLost(
          runCancellable(
            () => Atomics.load(control, 0) === 1,
            async () => handler(envelope.input, ctx),
          ),
        );
      } finally {
        if (Atomics.load(control, 0) === 1) noteCancelledTask();
      }
    } else {
      result = await unlessDeviceLost(Promise.resolve(handler(envelope.input, ctx)));
    }
    const outcome: TaskOutcome = timed({ ok: true, result });
    const buffers = collectTransferables(result);
    if (buffers.length === 0) return outcome;
    // Typed arrays in the result are moved to the main thread, not copied.
    return move({
      get [transferableSymbol]() {
        return buffers;
      },
      get [valueSymbol]() {
        return outcome;
      },
    } as never) as unknown as TaskOutcome;
  } catch (err) {
    // Serializing must not fail the task another way (it loads the domain-error mapping on demand).
    const error = await serialize(err).catch(() =>
      fail('INTERNAL', 'Internal error in compute worker').toJSON(),
    );
    return timed({ ok: false, error });
  } finally {
    port?.close();
    envelope.borrowPort?.close();
  }
}
