import type { TaskInput, TaskKind, TaskResult, WorkerOptions } from '../task-types.js';

/** What a handler receives besides its input. */
export interface HandlerContext {
  options: WorkerOptions;
  /** Report progress (fraction in [0,1], short message); cheap, may be called often. */
  progress: (fraction: number, message: string) => void;
  /** Lazily initialised TF.js (loading it costs time; OT tasks never need it). */
  tfjs: () => ReturnType<typeof import('../../nn/backend.js').initTfjs>;
}

/** The handler of a task kind: its input and result are the task table's. */
export type Handler<K extends TaskKind> = (
  input: TaskInput<K>,
  ctx: HandlerContext,
) => Promise<TaskResult<K>> | TaskResult<K>;
