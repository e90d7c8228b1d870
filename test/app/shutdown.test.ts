/**
 * Closing when the grace period ends: requests still in flight (computing, or still sending their body) are answered
 * 503 TW_SHUTTING_DOWN, their connections closed, close() finishes just after the grace period, and the in-memory
 * jobs that were lost are logged with their ids. (test/faults/sigterm.test.ts drills the same on the real server.)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { Writable } from 'node:stream';
import lightMyRequest, { type InjectOptions } from 'light-my-request';
import { expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { testConfig } from '../../src/config.js';
import { makeApp, tinyModelsDir, waitFor } from '../helpers.js';

const GRACE_MS = 800;

/** A JSON POST on a connection of its own (no keep-alive pool): see the note on the long request below. */
function post(port: number, path: string, body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

it('answers what is still in flight 503 TW_SHUTTING_DOWN when the grace period ends, and logs lost jobs', async () => {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  const cfg = testConfig({
    WORKERS: 2,
    ENABLE_TEST_TASKS: true,
    MODELS_DIR: tinyModelsDir(),
    TFJS_BACKEND: 'wasm',
    SHUTDOWN_GRACE_MS: GRACE_MS,
    LOG_LEVEL: 'warn',
  });
  const app = await buildApp(cfg, { level: 'warn', stream });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  await waitFor(() => app.compute.up, 60_000);
  await app.models.settled; // its warm-up tasks are not the ones counted below

  // A client that never finishes sending its body.
  const slow = net.connect(port, '127.0.0.1');
  slow.on('error', () => {}); // a reset shows as a missing 503 below
  let slowAnswer = '';
  slow.on('data', (d) => {
    slowAnswer += d;
  });
  const slowClosed = new Promise<void>((resolve) => slow.once('close', () => resolve()));
  slow.write(
    'POST /v1/_test/busy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ms":',
  );
  // Two jobs (one runs, one waits) and a long synchronous request on a connection of its own, so that the test
  // does not depend on how a client's keep-alive pool reuses connections.
  const jobs: string[] = [];
  for (let i = 0; i < 2; i++) {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      payload: { operation: 'test.busy', input: { ms: 20_000 } },
    });
    expect(r.statusCode).toBe(202);
    jobs.push(r.json().id);
  }
  const busy = post(port, '/v1/_test/busy', { ms: 20_000 });
  await waitFor(() => app.compute.pool.stats().running === 2, 10_000, 10);

  const t0 = performance.now();
  const closed = app.close();
  const answer = await busy;
  expect(answer.status).toBe(503);
  expect(JSON.parse(answer.body).error.code).toBe('TW_SHUTTING_DOWN');
  await closed;
  await slowClosed;
  const ms = performance.now() - t0;
  expect(slowAnswer).toMatch(/^HTTP\/1\.1 503 /);
  expect(slowAnswer, slowAnswer).toContain('TW_SHUTTING_DOWN');
  expect(ms).toBeGreaterThanOrEqual(GRACE_MS - 50);
  expect(ms).toBeLessThan(GRACE_MS + 1500);

  const lost = lines.find((l) => String(l.msg).includes('in-memory jobs'));
  expect(lost, JSON.stringify(lines)).toBeDefined();
  expect([...((lost?.lostJobs ?? []) as string[])].sort()).toEqual([...jobs].sort());
  console.log(
    `shutdown: in-flight answered 503 and closed ${Math.round(ms)} ms after close() (grace ${GRACE_MS})`,
  );
}, 60_000);

it('refuses new requests while draining with a coded 503 (probes still answer)', async () => {
  const app = await makeApp({ SHUTDOWN_GRACE_MS: 5000 });
  await app.models.settled;
  const inflight = app.inject({ method: 'POST', url: '/v1/_test/busy', payload: { ms: 1500 } });
  await waitFor(() => app.compute.pool.stats().running === 1, 30_000, 10);
  const closed = app.close();
  await waitFor(() => app.lifecycle.shuttingDown, 5000, 1);
  // app.inject refuses once closing starts; a request on a connection still open reaches the router like this.
  const viaRouter = (opts: InjectOptions) => lightMyRequest(app.routing, opts);
  const refused = await viaRouter({ method: 'POST', url: '/v1/_test/busy', payload: { ms: 1 } });
  expect(refused.statusCode).toBe(503);
  expect(refused.json().error.code).toBe('TW_SHUTTING_DOWN');
  const ready = await viaRouter({ method: 'GET', url: '/readyz' });
  expect(ready.statusCode).toBe(503);
  expect(ready.json().status).toBe('shutting_down');
  expect((await inflight).statusCode).toBe(200);
  await closed;
}, 60_000);
