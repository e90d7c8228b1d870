/**
 * The Redis lists KEDA counts (deploy/k8s/worker-scaledobject.yaml) are the ones BullMQ really keeps, in the
 * version the lockfile installs: waiting jobs in the list `bull:<queue>:wait`, running ones in `bull:<queue>:active`.
 * KEDA's redis scaler runs LLEN on a list, so the keys must be lists holding exactly those jobs. A real Redis (a
 * redis-server started here, or TEST_REDIS_URL) and a real BullMQ queue and worker.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { repoRoot, waitFor } from '../helpers.js';

const hasRedis = Boolean(process.env.TEST_REDIS_URL) || spawnSync('redis-server', ['--version']).status === 0;
if (!hasRedis) console.warn('SKIPPED test/deploy/keda-lists.test.ts: redis-server is not on PATH');

const docs = (file: string): any[] =>
  parseAllDocuments(readFileSync(path.join(repoRoot, 'deploy/k8s', file), 'utf8')).map((d) => d.toJS());
const configuredQueue = docs('configmap.yaml')[0].data.JOBS_QUEUE_NAME as string;
const scaledObject = docs('worker-scaledobject.yaml').find((d) => d.kind === 'ScaledObject');
const listNames = (scaledObject.spec.triggers as { metadata: { listName: string } }[]).map(
  (t) => t.metadata.listName,
);

describe.skipIf(!hasRedis)('the BullMQ lists KEDA counts', () => {
  let redis: ChildProcess | undefined;
  let url: string;
  beforeAll(async () => {
    if (process.env.TEST_REDIS_URL) {
      url = process.env.TEST_REDIS_URL;
      return;
    }
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    redis = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    url = `redis://127.0.0.1:${port}`;
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {}); // refused until redis-server listens
    await waitFor(
      () =>
        probe.connect().then(
          () => true,
          () => false,
        ),
      10_000,
      50,
    );
    probe.disconnect();
  }, 15_000);
  afterAll(() => {
    redis?.kill();
  });

  it('hold the waiting jobs in :wait and the running ones in :active, as lists', async () => {
    // The manifest's lists, for a queue of this test's own.
    const queueName = `keda-${process.pid}-${Date.now()}`;
    const [waitKey, activeKey] = ['wait', 'active'].map((suffix) => {
      const name = listNames.find((l) => l.endsWith(`:${suffix}`));
      expect(name, `a trigger on bull:${configuredQueue}:${suffix}`).toBe(
        `bull:${configuredQueue}:${suffix}`,
      );
      return (name as string).replace(`bull:${configuredQueue}:`, `bull:${queueName}:`);
    });
    const client = new Redis(url, { maxRetriesPerRequest: null });
    const queue = new Queue(queueName, { connection: client });
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const worker = new Worker(queueName, () => gate, {
      connection: client.duplicate(),
      concurrency: 2,
      autorun: false,
    });
    try {
      await queue.addBulk([1, 2, 3].map((n) => ({ name: 'job', data: { n } })));
      expect(await client.type(waitKey)).toBe('list');
      expect(await client.llen(waitKey)).toBe(3);
      expect(await client.llen(activeKey)).toBe(0);

      void worker.run();
      // Two running (the worker's concurrency), one still waiting: KEDA sees 1 + 2, keeps workers for both.
      await waitFor(async () => (await client.llen(activeKey)) === 2, 10_000);
      expect(await client.type(activeKey)).toBe('list');
      expect(await client.llen(waitKey)).toBe(1);

      release();
      await waitFor(async () => (await queue.getCompletedCount()) === 3, 10_000);
      expect(await client.llen(waitKey)).toBe(0);
      expect(await client.llen(activeKey)).toBe(0);
    } finally {
      release();
      await worker.close();
      await queue.obliterate({ force: true }).catch(() => {});
      await queue.close();
      client.disconnect();
    }
  }, 30_000);
});
