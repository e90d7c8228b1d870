/**
 * The decoded-bytes budget (src/imaging/budget.ts) on its own: refusal with 503 for requests, first-come waiting
 * for jobs, cancellation of a waiter, 413 for what could never fit, and idempotent release.
 */
import { describe, expect, it } from 'vitest';
import { TweedieError } from '../../src/errors.js';
import { decodedBytes, ImageMemoryBudget } from '../../src/imaging/budget.js';

const codeOf = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return err instanceof TweedieError ? `${err.statusCode} ${err.code}` : String(err);
  }
};

describe('ImageMemoryBudget', () => {
  it('counts float32 bytes per channel, alpha included', () => {
    expect(decodedBytes(4096, 4096, 3)).toBe(4096 * 4096 * 3 * 4);
    expect(decodedBytes(10, 10, 2)).toBe(800);
  });

  it('refuses a request beyond the budget (503 with Retry-After) and admits it again once bytes are given back', async () => {
    const budget = new ImageMemoryBudget(100);
    const a = await budget.reserve(60);
    const refused = budget.reserve(60);
    await expect(refused).rejects.toMatchObject({ code: 'TW_QUEUE_FULL', statusCode: 503, retryAfter: 1 });
    a();
    a(); // idempotent
    expect(budget.inUse).toBe(0);
    const b = await budget.reserve(60);
    expect(budget.inUse).toBe(60);
    b();
  });

  it('refuses with 413 what alone exceeds the budget, even for a job', async () => {
    const budget = new ImageMemoryBudget(100);
    expect(await codeOf(budget.reserve(101, { admission: 'wait' }))).toBe('413 TW_IMAGE_TOO_LARGE');
  });

  it('lets jobs wait in order, and a cancelled waiter leaves the queue', async () => {
    const budget = new ImageMemoryBudget(100);
    const first = await budget.reserve(80);
    const order: string[] = [];
    const controller = new AbortController();
    const cancelled = budget.reserve(50, { admission: 'wait', signal: controller.signal });
    const tracked = async (name: string, p: Promise<() => void>) => {
      const release = await p;
      order.push(name);
      return release;
    };
    const job1 = tracked('job1', budget.reserve(30, { admission: 'wait' }));
    const job2 = tracked('job2', budget.reserve(20, { admission: 'wait' }));
    // A request that fits is admitted even while jobs wait (synchronous traffic is never shut out by a waiting
    // job); one that does not fit is refused at once.
    const request = await budget.reserve(10);
    expect(budget.inUse).toBe(90);
    expect(await codeOf(budget.reserve(20))).toBe('503 TW_QUEUE_FULL');
    request();
    controller.abort();
    expect(await codeOf(cancelled)).toBe('504 TW_DEADLINE_EXCEEDED');
    // With the cancelled waiter gone, 30 still does not fit next to 80: both jobs wait for the release.
    expect(order).toEqual([]);
    first();
    const [r1, r2] = await Promise.all([job1, job2]);
    expect(order).toEqual(['job1', 'job2']);
    expect(budget.inUse).toBe(50);
    r1();
    r2();
    expect(budget.inUse).toBe(0);
  });
});
