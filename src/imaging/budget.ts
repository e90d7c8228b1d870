/**
 * Admission of images by the memory their decoded pixels will take, judged from the headers before any pixel is
 * decoded. Every image pipeline (denoise, restore, detect: REST, GraphQL and jobs alike) reserves
 * width x height x channels x 4 bytes (float32) per image for as long as the request runs, and gives it back when it
 * settles; the sum of reservations never exceeds IMAGE_MEMORY_BUDGET_BYTES. A synchronous request beyond the budget
 * is refused at once (503 TW_QUEUE_FULL, Retry-After); a job waits for room (its caller's signal still cancels it).
 * One budget per compute pool (any object: the budget is keyed by it): the pool is what every path of one process
 * shares.
 */
import type { Config } from '../config.js';
import { fail } from '../errors.js';

/** Bytes of an image decoded to float32 (the layout FloatImage holds). */
export function decodedBytes(width: number, height: number, channels: number): number {
  return width * height * Math.max(1, Math.min(4, channels)) * 4;
}

export type Admission = 'refuse' | 'wait';

export class ImageMemoryBudget {
  private used = 0;
  private readonly waiters: { bytes: number; grant: () => void }[] = [];

  constructor(readonly limit: number) {}

  /** Bytes reserved now. */
  get inUse(): number {
    return this.used;
  }

  /**
   * Reserve `bytes`; returns the function that gives them back (idempotent). 'refuse' throws 503 when there is no
   * room now; 'wait' queues (first come, first served) until there is, or until `signal` aborts.
   */
  async reserve(
    bytes: number,
    opts: { admission?: Admission; signal?: AbortSignal } = {},
  ): Promise<() => void> {
    if (bytes > this.limit)
      throw fail(
        'IMAGE_TOO_LARGE',
        `The image(s) need ${bytes} bytes decoded; the limit is IMAGE_MEMORY_BUDGET_BYTES = ${this.limit}`,
        { details: { decodedBytes: bytes, budgetBytes: this.limit } },
      );
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.used -= bytes;
      this.drain();
    };
    // A request is admitted whenever its image fits now: jobs waiting for room (first come, first served among
    // themselves) must not shut synchronous traffic out. A job waits behind the jobs already waiting.
    const admission = opts.admission ?? 'refuse';
    if ((admission === 'refuse' || this.waiters.length === 0) && this.used + bytes <= this.limit) {
      this.used += bytes;
      return release;
    }
    if (admission === 'refuse')
      throw fail(
        'QUEUE_FULL',
        `Not enough image memory now (${this.used} of ${this.limit} bytes in use, ${bytes} needed); retry later`,
        {
          retryAfter: 1,
          details: {
            reason: 'image-memory',
            decodedBytes: bytes,
            inUseBytes: this.used,
            budgetBytes: this.limit,
          },
        },
      );
    const signal = opts.signal;
    if (signal?.aborted) throw fail('DEADLINE_EXCEEDED', 'The task was cancelled by its caller');
    await new Promise<void>((resolve, reject) => {
      const waiter = {
        bytes,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        this.drain();
        reject(fail('DEADLINE_EXCEEDED', 'The task was cancelled by its caller'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
    return release;
  }

  /**
   * Reserve `bytes` only if they fit now and nobody waits for room: the function that gives them back, else null.
   * For work that is optional (helper tasks lent to a running request, src/compute/pool.ts).
   */
  tryReserve(bytes: number): (() => void) | null {
    if (this.waiters.length > 0 || this.used + bytes > this.limit) return null;
    this.used += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= bytes;
      this.drain();
    };
  }

  private drain(): void {
    while (this.waiters.length > 0 && this.used + this.waiters[0].bytes <= this.limit) {
      const next = this.waiters.shift() as (typeof this.waiters)[number];
      this.used += next.bytes;
      next.grant();
    }
  }
}

const budgets = new WeakMap<object, ImageMemoryBudget>();

/** The budget of the process's compute pool (created on first use from cfg.IMAGE_MEMORY_BUDGET_BYTES). */
export function imageBudgetFor(pool: object, cfg: Config): ImageMemoryBudget {
  let budget = budgets.get(pool);
  if (!budget) {
    budget = new ImageMemoryBudget(cfg.IMAGE_MEMORY_BUDGET_BYTES);
    budgets.set(pool, budget);
  }
  return budget;
}
