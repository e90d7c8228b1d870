/**
 * Limits of the redis backend, against a real redis-server (started here on a free loopback port, or
 * TEST_REDIS_URL): JOBS_MAX_PER_KEY (queued jobs count against their client, finished or cancelled ones stop
 * counting) and JOBS_REDIS_MAX_FINISHED (BullMQ keeps at most that many finished records). No job worker runs: the
 * jobs stay queued. Skipped, saying why, when redis-server is missing.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../../src/config.js';
import '../../src/operations/index.js';
import { RedisJobBackend } from '../../src/jobs/redis.js';
import { freePort, waitFor } from '../helpers.js';

const externalRedis = process.env.TEST_REDIS_URL;
const hasRedis = Boolean(externalRedis) || spawnSync('redis-server', ['--version']).status === 0;
if (!hasRedis) console.warn('SKIPPED test/jobs/redis-limits.test.ts: redis-server is not on PATH');

describe.skipIf(!hasRedis)('job limits, redis backend', () => {
  let redis: ChildProcess | undefined;
  let backend: RedisJobBackend;
  const input = { x: [[0], [1]], y: [[0.5], [1.5]], solver: { solver: 'emd' } };

  beforeAll(async () => {
    let url = externalRedis;
    if (!url) {
      const port = await freePort();
      url = `redis://127.0.0.1:${port}`;
      redis = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        { stdio: 'ignore' },
      );
    }
    backend = new RedisJobBackend(
      testConfig({
        JOBS_BACKEND: 'redis',
        REDIS_URL: url,
        JOBS_QUEUE_NAME: `quota-${randomUUID().slice(0, 8)}`,
        JOBS_MAX_PER_KEY: 2,
        JOBS_REDIS_MAX_FINISHED: 50,
      }),
    );
    await waitFor(
      async () =>
        backend
          .counts()
          .then(() => true)
          .catch(() => false),
      10_000,
      100,
    );
  }, 30_000);

  afterAll(async () => {
    await backend?.close();
    redis?.kill('SIGKILL');
  });

  it('refuses a third active job of one client with 429 TW_JOB_QUOTA; others and freed places are fine', async () => {
    const first = await backend.submit('ot.plan', input, { client: '10.1.0.1' });
    await backend.submit('ot.plan', input, { client: '10.1.0.1' });
    await expect(backend.submit('ot.plan', input, { client: '10.1.0.1' })).rejects.toMatchObject({
      code: 'TW_JOB_QUOTA',
      statusCode: 429,
      details: { active: 2, max: 2 },
    });
    // Another address, and the same address under an API key, are other clients.
    await backend.submit('ot.plan', input, { client: '10.1.0.2' });
    await backend.submit('ot.plan', input, { owner: 'some-key', client: '10.1.0.1' });
    // A cancelled job stops counting.
    await backend.cancel(first.view.id);
    const again = await backend.submit('ot.plan', input, { client: '10.1.0.1' });
    expect(again.view.state).toBe('queued');
  });

  it('asks BullMQ to keep at most JOBS_REDIS_MAX_FINISHED finished jobs, besides the TTL', async () => {
    const { view } = await backend.submit('ot.plan', input, { client: '10.1.0.3' });
    const job = await backend.queue.getJob(view.id);
    expect(job?.opts.removeOnComplete).toEqual({ age: 3600, count: 50 });
    expect(job?.opts.removeOnFail).toEqual({ age: 3600, count: 50 });
  });
});
