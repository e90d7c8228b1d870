import type { TaskInput, TaskKind, TaskResult, WorkerOptions } from '../task-types.js';

/** What a handler receives besides its input. */
export interface HandlerContext {
  options: WorkerOptions;
  /** Report progress (fraction in [0,1], short message); cheap, may be called often. */
  progress: (fraction: number, message: string) => void;
  /** Lazily initialised TF.js (loading it costs time; OT tasks never need it). */
  tfjs: () => ReturnType<typeof import('../../nn/backend.js').initTfjs>;
  /** The pool's idle workers, for independent sub-tasks of this task (see PoolAccess); absent outside a pool. */
  pool?: PoolAccess;
}

/**
 * What a running task may ask of its pool: idle workers to run sub-tasks on (src/compute/pool.ts, module note).
 * Used through shareItems (src/compute/shared-work.ts), which spreads independent items over this worker and the
 * helpers it gets.
 */
export interface PoolAccess {
  /** Workers of the pool idle now (0: none, or this task cannot borrow: one worker, or several tasks per worker). */
  idleWorkers(): number;
  /** Tasks waiting for a worker now: a helper stops taking work as soon as one does. */
  waitingTasks(): number;
  /**
   * Starts `kind` with `input` on up to `count` idle workers, under this task's deadline and cancellation; resolves
   * to the promises of the helpers started (none when no worker is idle, or their memory is not admitted). A
   * helper's failure rejects its promise with its coded error.
   */
  borrow<K extends TaskKind>(
    kind: K,
    input: TaskInput<K>,
    count: number,
    opts?: { bytesEach?: number },
  ): Promise<Promise<TaskResult<K>>[]>;
}

/** The handler of a task kind: its input and result are the task table's. */
export type Handler<K extends TaskKind> = (
  input: TaskInput<K>,
  ctx: HandlerContext,
) => Promise<TaskResult<K>> | TaskResult<K>;
