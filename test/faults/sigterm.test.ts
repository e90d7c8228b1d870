/**
 * Fault drill: SIGTERM while the real server process is under load (more requests in flight than workers, so some
 * wait in the compute queue). Every request in flight at the signal finishes with 200; requests after it are
 * refused (503, or the connection is refused once the listener closes), quickly, never hung; readiness is 503;
 * the process exits 0 within the grace period. Work longer than the grace period is answered 503 TW_SHUTTING_DOWN
 * when it ends, the process still exits 0, and the in-memory jobs lost are logged by id.
 */
import { describe, expect, it } from 'vitest';
import { tinyModelsDir } from '../helpers.js';
import { startServer } from './helpers.js';

const GRACE_MS = 8000;

describe('SIGTERM under load', () => {
  it('finishes what is in flight, refuses new work, and exits 0 within the grace period', async () => {
    const server = await startServer({
      WORKERS: '2',
      QUEUE_MAX: '16',
      ENABLE_TEST_TASKS: 'true',
      SHUTDOWN_GRACE_MS: String(GRACE_MS),
      TFJS_BACKEND: 'wasm',
      MODELS_DIR: tinyModelsDir(),
      RATE_LIMIT_MAX: '0',
    });
    try {
      const post = (ms: number) =>
        fetch(`${server.url}/v1/_test/busy`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ ms }),
        });
      // 6 tasks of 700 ms on 2 workers: 2 running, 4 queued, about 2.1 s of work in all.
      const inflight = Array.from({ length: 6 }, () => post(700));
      const ot = fetch(`${server.url}/v1/ot/plan`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ x: [[0], [1]], y: [[1], [2]], solver: { solver: 'emd' } }),
      });
      await new Promise((r) => setTimeout(r, 300));
      const signalled = performance.now();
      server.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 150));

      // New work after the signal: refused, quickly.
      for (const path of ['/v1/_test/busy', '/readyz']) {
        const t0 = performance.now();
        const outcome = await fetch(`${server.url}${path}`, {
          method: path === '/readyz' ? 'GET' : 'POST',
          headers: { 'content-type': 'application/json' },
          body: path === '/readyz' ? undefined : JSON.stringify({ ms: 10 }),
        })
          .then((r) => r.status)
          .catch(() => 'connection refused');
        expect([503, 'connection refused'], `${path}: ${outcome}`).toContain(outcome);
        expect(performance.now() - t0).toBeLessThan(5000); // refused, not left hanging until the grace period
      }

      const answers = await Promise.all([...inflight, ot]);
      for (const r of answers) expect(r.status, await r.clone().text()).toBe(200);
      const code = await server.exited;
      const exitMs = performance.now() - signalled;
      expect(code, server.output().slice(-3000)).toBe(0);
      expect(exitMs).toBeLessThan(GRACE_MS + 2000);
      console.log(
        `SIGTERM under load: ${answers.length} in-flight requests answered 200, exit 0 after ${Math.round(exitMs)} ms`,
      );
    } finally {
      server.child.kill('SIGKILL');
    }
  }, 120_000);

  it('answers work still running when the grace period ends 503 TW_SHUTTING_DOWN, logs lost jobs, exits 0', async () => {
    const grace = 1500;
    const server = await startServer({
      WORKERS: '2',
      ENABLE_TEST_TASKS: 'true',
      SHUTDOWN_GRACE_MS: String(grace),
      TFJS_BACKEND: 'wasm',
      MODELS_DIR: tinyModelsDir(),
      RATE_LIMIT_MAX: '0',
    });
    try {
      // The long request first, on a fresh connection (not one reused just after a response).
      const long = fetch(`${server.url}/v1/_test/busy`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ms: 60_000 }),
      });
      const job = await fetch(`${server.url}/v1/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ operation: 'test.busy', input: { ms: 60_000 } }),
      });
      expect(job.status).toBe(202);
      const jobId = ((await job.json()) as { id: string }).id;
      await new Promise((r) => setTimeout(r, 300));
      const signalled = performance.now();
      server.child.kill('SIGTERM');
      const answer = await long;
      expect(answer.status).toBe(503);
      expect(((await answer.json()) as { error: { code: string } }).error.code).toBe('TW_SHUTTING_DOWN');
      const code = await server.exited;
      const exitMs = performance.now() - signalled;
      expect(code, server.output().slice(-3000)).toBe(0);
      expect(exitMs).toBeLessThan(grace + 2000);
      expect(server.output()).toMatch(new RegExp(`in-memory jobs.*${jobId}|${jobId}.*in-memory jobs`));
      console.log(
        `SIGTERM past the grace period: 503 TW_SHUTTING_DOWN, exit 0 after ${Math.round(exitMs)} ms`,
      );
    } finally {
      server.child.kill('SIGKILL');
    }
  }, 120_000);
});
