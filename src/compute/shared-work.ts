/**
 * Independent items of one task spread over its worker and idle workers it borrows (HandlerContext.pool): the items
 * sit behind a shared counter (a SharedArrayBuffer word), and every participant takes the next one until none is
 * left, so a slow or late helper never holds the others back. A helper stops taking items as soon as a task waits
 * for a worker (the parent, which never stops, does the rest), so borrowing never delays other requests by more
 * than one item. Results go where the items say (shared buffers); the caller combines them in item order, so the
 * answer does not depend on who computed what.
 */
import type { PoolAccess } from './handlers/context.js';
import type { TaskInput, TaskKind } from './task-types.js';

/** A fresh shared item counter (the next item to take). */
export function sharedCounter(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4));
}

/**
 * Takes items from `next` (shared) until `count` are taken or `stop()` (checked before each) says to stop; runs
 * each. Returns how many this caller ran. A failing item marks every item taken, so the other participants stop.
 */
export async function takeItems(
  next: Int32Array,
  count: number,
  work: (index: number) => Promise<void> | void,
  stop: () => boolean = () => false,
): Promise<number> {
  let ran = 0;
  while (!stop()) {
    const index = Atomics.add(next, 0, 1);
    if (index >= count) break;
    try {
      await work(index);
    } catch (err) {
      Atomics.store(next, 0, count);
      throw err;
    }
    ran++;
  }
  return ran;
}

/** The input every helper of shareItems gets: the caller's, with the shared counter and the item count. */
export interface SharedItems {
  next: Int32Array;
  count: number;
}

/**
 * Runs `count` items: here (`local`) and on up to `helpers` idle workers, each running `kind` with
 * `input(shared)`, whose handler must take items with takeItems(shared.next, shared.count, ..., () =>
 * ctx.pool.waitingTasks() > 0). Waits for every helper before returning (or throwing), so no helper outlives the
 * task; the first failure (here, or a helper's coded error) is thrown. Returns the items run here and the helpers.
 */
export async function shareItems<K extends TaskKind>(
  pool: PoolAccess | undefined,
  opts: {
    count: number;
    helpers: number;
    kind: K;
    input: (shared: SharedItems) => TaskInput<K>;
    /** Memory one helper needs (admitted by the pool before it lends). */
    bytesEach?: number;
    local: (index: number) => Promise<void> | void;
  },
): Promise<{ local: number; helpers: number }> {
  const shared: SharedItems = { next: sharedCounter(), count: opts.count };
  const wanted = Math.min(opts.helpers, opts.count - 1);
  const borrowed =
    pool && wanted > 0
      ? await pool.borrow(opts.kind, opts.input(shared), wanted, { bytesEach: opts.bytesEach })
      : [];
  let local = 0;
  let failure: { err: unknown } | null = null;
  try {
    local = await takeItems(shared.next, opts.count, opts.local);
  } catch (err) {
    failure = { err };
  }
  const settled = await Promise.allSettled(borrowed);
  if (failure) throw failure.err;
  for (const outcome of settled) if (outcome.status === 'rejected') throw outcome.reason;
  // This worker never stops taking items, so every item was taken (and, all helpers settled, run).
  return { local, helpers: borrowed.length };
}
