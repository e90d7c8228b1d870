/**
 * The typed task table, as seen from the main thread: each task kind names its input and result types. The
 * service's own tasks are listed here; the operations' tasks are derived from their handlers
 * (src/compute/handlers/index.ts `operationTasks`), so a handler's signature is its task's type.
 */
import type { MessagePort } from 'node:worker_threads';
import type { SerializedError } from '../errors.js';
import type { HandlerContext } from './handlers/context.js';
import type { operationTasks } from './handlers/index.js';

export interface SystemTaskTable {
  /** Backend and tensor bookkeeping of the worker that ran it. */
  'system.info': { input: Record<string, never>; result: WorkerInfo };
  /** Load a model (if not cached in this worker) and run one inference on zeros. */
  'model.warmup': {
    input: { name: string; version: string };
    result: { name: string; version: string; backend: string; ms: number; numTensors: number };
  };
  /** Drop a model version from this worker's cache and free its weights (hot reload: the version is gone). */
  'model.unload': { input: { name: string; version: string }; result: { unloaded: boolean } };
  /** Run a model on a planar float image (tests and generic inference). */
  'model.infer': {
    input: { name: string; version?: string; data: Float32Array; shape: number[]; repeat?: number };
    result: { data: Float32Array; shape: number[]; numTensorsBefore: number; numTensorsAfter: number };
  };
  /**
   * Test-only tasks (ENABLE_TEST_TASKS): busy-wait (or, `sleep`, wait as a GPU read-back does), crash the worker,
   * throw a coded error, report a lost GPU device (as Dawn would) just after answering.
   */
  'test.busy': { input: { ms: number; sleep?: boolean }; result: { ms: number; threadId: number } };
  'test.gpu-lost': { input: { reason: string }; result: { threadId: number } };
  'test.crash': { input: { mode: 'exit' | 'oom' }; result: never };
  'test.fail': { input: { code: string; message: string }; result: never };
  /**
   * Spread `items` busy-waits of `ms` over this worker and up to `helpers` borrowed ones (shareItems); with
   * `helperFails` (an error code) each helper fails its first item with it. Answers which thread ran each item, and
   * how many helpers were lent.
   */
  'test.share': {
    input: { items: number; ms: number; helpers: number; bytesEach?: number; helperFails?: string };
    result: { threads: number[]; helpers: number; local: number; threadId: number };
  };
  /** A helper of test.share: takes items from the shared counter, records its thread id in `threads`. */
  'test.share-part': {
    input: {
      next: Int32Array;
      count: number;
      threads: Int32Array;
      ms: number;
      failCode?: string;
    };
    result: { ran: number };
  };
}

/** A handler's input and (awaited) result. */
type EntryOf<H> = H extends (input: infer I, ctx: HandlerContext) => infer R
  ? { input: I; result: Awaited<R> }
  : never;

/** The operations' tasks: input and result of each handler in `operationTasks`. */
export type OperationTaskTable = {
  [K in keyof typeof operationTasks]: EntryOf<Awaited<ReturnType<(typeof operationTasks)[K]>>>;
};

export type TaskTable = SystemTaskTable & OperationTaskTable;
export type TaskKind = keyof TaskTable;
export type TaskInput<K extends TaskKind> = TaskTable[K]['input'];
export type TaskResult<K extends TaskKind> = TaskTable[K]['result'];

export interface WorkerInfo {
  threadId: number;
  backend: string;
  native: boolean;
  numTensors: number;
  tried: { name: string; error?: string }[];
  /** Batching options and counters of this worker (src/nn/batcher.ts). */
  batching?: import('../nn/batcher.js').BatchingOptions & import('../nn/batcher.js').BatcherStats;
  /** Tasks of this worker that were cancelled while they ran and stopped at their next chunk (checkCancelled). */
  cancelledTasks?: number;
  /**
   * The WebGPU adapter: the one the 'webgpu' backend runs on, or the one found and refused (software, under 'auto').
   * Absent when no adapter was looked for or none was found.
   */
  adapter?: { vendor: string; architecture: string; device: string; description: string; software: boolean };
}

/** What crosses from the main thread to a worker. */
export interface TaskEnvelope {
  kind: TaskKind;
  input: unknown;
  /** Optional port on which the handler posts progress messages {fraction, message}. */
  progressPort?: MessagePort;
  /**
   * Port on which the handler borrows idle workers of its pool for sub-tasks (HandlerContext.pool.borrow; messages
   * BorrowRequest / BorrowReply of src/compute/pool.ts). Absent when the pool has none to lend (one worker).
   */
  borrowPort?: MessagePort;
  /**
   * The W3C trace context of the task's `compute <kind>` span, when the caller's work is traced (or carries an
   * incoming trace id): the worker then times its execution and answers `timing`.
   */
  trace?: { traceparent?: string; tracestate?: string };
  /**
   * With several tasks per worker (src/compute/pool.ts): a shared word pair, [0] set to 1 by the main thread when
   * the task is cancelled, [1] the id of the thread that runs it (set by the worker when it starts).
   */
  control?: Int32Array;
}

/** When the worker thread ran a traced task (epoch ms), recorded as the `worker <kind>` span on the main thread. */
export interface WorkerTiming {
  start: number;
  end: number;
  threadId: number;
}

/** What a worker sends back: either a result or a serialised error (never a thrown exception with a stack). */
export type TaskOutcome = ({ ok: true; result: unknown } | { ok: false; error: SerializedError }) & {
  timing?: WorkerTiming;
};

/** Options the main thread passes to the worker at start. */
export interface WorkerOptions {
  modelsDir: string;
  tfjsBackend: 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
  enableTestTasks: boolean;
  tileSize: number;
  /** Soft-min backend of online Sinkhorn: `auto` (a hardware WebGPU adapter, else the CPU), `cpu`, `webgpu`. */
  otOnlineBackend?: 'auto' | 'cpu' | 'webgpu';
  /** OT_MAX_ENTRIES: the most entries an online Sinkhorn sparse plan may hold (413 beyond). */
  otMaxEntries?: number;
  /** OT_ONLINE_THREADS, resolved: threads one online Sinkhorn problem uses on the CPU (default 1). */
  otOnlineThreads?: number;
  /** BATCH_MAX_SIZE (undefined: by backend), BATCH_MAX_DELAY_MS, GPU_MEMORY_BUDGET_MB: see src/nn/batcher.ts. */
  batchMaxSize?: number;
  batchMaxDelayMs?: number;
  gpuMemoryBudgetMb?: number;
  /**
   * One image split over several workers (SPLIT_MIN_PIXELS): images of at least this many pixels use the pool's
   * idle workers for their network windows; 0 or unset: never.
   */
  splitMinPixels?: number;
  /** Set by the pool: [0] its workers idle now, [1] its tasks waiting for a worker (src/compute/pool.ts). */
  poolState?: Int32Array;
  /**
   * Name of the BroadcastChannel on which a worker tells its pool about events that are not a task's answer (its
   * GPU device was lost: WorkerEvent). Unset: nothing is told.
   */
  eventsChannel?: string;
}

/** What a worker tells its pool on `eventsChannel`. */
export interface WorkerEvent {
  type: 'gpu-device-lost';
  threadId: number;
  reason: string;
  /** Tasks that were running on the worker (each answered 503 TW_GPU_DEVICE_LOST). */
  tasksFailed: number;
}
