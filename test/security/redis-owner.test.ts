/**
 * Job ownership on the redis backend, against a real redis-server (started here on a free loopback port): the
 * owner is stored beside the job, other owners get 404 for it, and idempotency keys are scoped per owner.
 * No job worker runs: ownership is checked on queued jobs. Skipped, saying why, when redis-server is missing.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../../src/config.js';
import '../../src/operations/index.js';
import { RedisJobBackend } from '../../src/jobs/redis.js';
import { type JobService, jobService } from '../../src/jobs/service.js';
import { ownerIdOf } from '../../src/plugins/app/auth.js';
import { freePort, waitFor } from '../helpers.js';

const externalRedis = process.env.TEST_REDIS_URL;
const hasRedis = Boolean(externalRedis) || spawnSync('redis-server', ['--version']).status === 0;
if (!hasRedis) console.warn('SKIPPED test/security/redis-owner.test.ts: redis-server is not on PATH');

describe.skipIf(!hasRedis)('job ownership, redis backend', () => {
  let redis: ChildProcess | undefined;
  let backend: RedisJobBackend;
  let jobs: JobService;
  const alice = ownerIdOf('alice-key-0001');
  const bob = ownerIdOf('bob-key-0002');
  const input = { x: [[0], [1]], y: [[0.5], [1.5]], solver: { solver: 'emd' } };

  beforeAll(async () => {
    let url = externalRedis;
    if (!url) {
      const port = await freePort();
      url = `redis://127.0.0.1:${port}`;
      redis = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        {
          stdio: 'ignore',
        },
      );
    }
    const cfg = testConfig({
      JOBS_BACKEND: 'redis',
      REDIS_URL: url,
      JOBS_QUEUE_NAME: `owner-${randomUUID().slice(0, 8)}`,
    });
    backend = new RedisJobBackend(cfg);
    jobs = jobService(backend, cfg);
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

  it('shows a job to its owner only; others get 404 as for an unknown id', async () => {
    const { view } = await jobs.submit('ot.plan', input, { owner: alice });
    expect(await backend.ownerOf(view.id)).toBe(alice);
    expect((await jobs.get(view.id, alice)).id).toBe(view.id);
    for (const call of [
      () => jobs.get(view.id, bob),
      () => jobs.result(view.id, bob),
      () => jobs.cancel(view.id, bob),
    ]) {
      await expect(call()).rejects.toMatchObject({ code: 'TW_JOB_NOT_FOUND', statusCode: 404 });
    }
    // Without a key (keys off) the job is not visible either: it has an owner.
    await expect(jobs.get(view.id, undefined)).rejects.toMatchObject({ code: 'TW_JOB_NOT_FOUND' });
    // Bob's failed cancel did not touch it; Alice's does.
    expect((await jobs.get(view.id, alice)).state).toBe('queued');
    expect((await jobs.cancel(view.id, alice)).state).toBe('cancelled');
    expect(await backend.ownerOf(randomUUID())).toBeNull();
  });

  it('keeps jobs submitted without keys visible without keys', async () => {
    const { view } = await jobs.submit('ot.plan', input);
    expect(await backend.ownerOf(view.id)).toBeUndefined();
    expect((await jobs.get(view.id)).id).toBe(view.id);
    await expect(jobs.get(view.id, alice)).rejects.toMatchObject({ code: 'TW_JOB_NOT_FOUND' });
  });

  it('scopes idempotency keys per owner', async () => {
    const a1 = await jobs.submit('ot.plan', input, { owner: alice, idempotencyKey: 'k-1' });
    const b1 = await jobs.submit('ot.plan', input, { owner: bob, idempotencyKey: 'k-1' });
    const a2 = await jobs.submit('ot.plan', input, { owner: alice, idempotencyKey: 'k-1' });
    expect(b1.view.id).not.toBe(a1.view.id);
    expect(b1.replayed).toBe(false);
    expect(a2.view.id).toBe(a1.view.id);
    expect(a2.replayed).toBe(true);
  });
});
