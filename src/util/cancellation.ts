/**
 * Cancellation of the task that runs now, seen from anywhere in its call tree: the compute worker runs each task
 * inside `runCancellable(isCancelled, ...)` (isCancelled reads the shared flag the main thread sets when it cancels
 * the task, src/compute/pool.ts), and the long loops of the domain code call `checkCancelled()` between chunks
 * (batched network calls, forEachInChunks, RED-Diff steps, EPS-AD batches, OT iterations), so that a cancelled
 * task ends at its next chunk instead of running on beside the other tasks of its worker. The flag is read with
 * Atomics, not through an event, so it is seen even when the task never yields to the event loop.
 *
 * Outside a cancellable scope (tests, trainers, benchmarks) `checkCancelled()` does nothing.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

const scope = new AsyncLocalStorage<() => boolean>();

/** Thrown by checkCancelled; named AbortError, so it is a cancellation wherever errors are mapped. */
export class TaskCancelledError extends Error {
  override name = 'AbortError';
  constructor() {
    super('The task was cancelled');
  }
}

/** Runs `work` (and everything it awaits) with `isCancelled` as the cancellation test of checkCancelled(). */
export function runCancellable<T>(isCancelled: () => boolean, work: () => T): T {
  return scope.run(isCancelled, work);
}

/** True when the task that runs this code has been cancelled. */
export function isCancelled(): boolean {
  return scope.getStore()?.() === true;
}

/**
 * The cancellation test of the task that runs this code (never true outside a cancellable scope), to be read later
 * from code that no longer runs in the task's scope (a batch that a timer flushes, src/nn/batcher.ts).
 */
export function currentCancellation(): () => boolean {
  return scope.getStore() ?? (() => false);
}

/** Throws TaskCancelledError when the task that runs this code has been cancelled. */
export function checkCancelled(): void {
  if (isCancelled()) throw new TaskCancelledError();
}

let cancelledTasks = 0;

/** Counts a task that ended after it was cancelled while it ran (the compute worker calls it). */
export function noteCancelledTask(): void {
  cancelledTasks++;
}

/** Tasks of this thread that ended after being cancelled while they ran (system.info reports it). */
export function cancelledTaskCount(): number {
  return cancelledTasks;
}
