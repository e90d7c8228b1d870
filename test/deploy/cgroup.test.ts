/**
 * Heap caps derived from the container's memory limit (src/util/cgroup.ts): the cgroup limit read from fake cgroup
 * trees (v2, v1, nested groups, "no limit"), the derivation, the config's encoding (unset = derived, a number
 * overrides, 0 = none), and the cap reaching both compute pools: the API's and a redis job worker's.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, resolvedWorkerHeapMb, testConfig } from '../../src/config.js';
import { startJobWorker } from '../../src/jobs/redis-worker.js';
import {
  deriveWorkerHeapMb,
  MIN_DERIVED_HEAP_MB,
  readCgroupMemoryLimit,
  UNLIMITED_HEAP_MB,
} from '../../src/util/cgroup.js';
import { makeApp, tinyModelsDir } from '../helpers.js';

const GiB = 1024 ** 3;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fake cgroup mount: { 'memory.max': '...', 'kubepods/pod1/memory.max': '...' }. */
function fakeCgroup(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'tweedie-cgroup-'));
  dirs.push(root);
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), `${text}\n`);
  }
  return root;
}

describe('container memory limit (cgroup)', () => {
  it('reads cgroup v2 memory.max; "max" is no limit', () => {
    expect(
      readCgroupMemoryLimit({ root: fakeCgroup({ 'memory.max': String(2 * GiB) }), selfCgroup: '0::/\n' }),
    ).toBe(2 * GiB);
    expect(
      readCgroupMemoryLimit({ root: fakeCgroup({ 'memory.max': 'max' }), selfCgroup: '0::/\n' }),
    ).toBeNull();
  });

  it('follows /proc/self/cgroup into a nested v2 group and takes the smallest limit up to the root', () => {
    const root = fakeCgroup({
      'memory.max': 'max',
      'kubepods/pod1/memory.max': String(3 * GiB),
      'kubepods/pod1/ctr/memory.max': 'max',
    });
    expect(readCgroupMemoryLimit({ root, selfCgroup: '0::/kubepods/pod1/ctr\n' })).toBe(3 * GiB);
  });

  it('reads cgroup v1 memory.limit_in_bytes; the huge "unlimited" value is no limit', () => {
    const v1 = '4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n';
    const limited = fakeCgroup({ 'memory/docker/abc/memory.limit_in_bytes': String(512 * 1024 * 1024) });
    expect(readCgroupMemoryLimit({ root: limited, selfCgroup: v1 })).toBe(512 * 1024 * 1024);
    const unlimited = fakeCgroup({
      'memory/memory.limit_in_bytes': '9223372036854771712',
      'memory/docker/abc/memory.limit_in_bytes': '9223372036854771712',
    });
    expect(readCgroupMemoryLimit({ root: unlimited, selfCgroup: v1 })).toBeNull();
  });

  it('is null without a cgroup filesystem, or with garbage in it', () => {
    expect(
      readCgroupMemoryLimit({ root: path.join(os.tmpdir(), 'no-such-cgroup-root'), selfCgroup: '' }),
    ).toBeNull();
    expect(
      readCgroupMemoryLimit({ root: fakeCgroup({ 'memory.max': 'lots' }), selfCgroup: '0::/' }),
    ).toBeNull();
  });
});

describe('derived worker heap cap', () => {
  it('shares the limit less the reserve among the workers, with a floor, and 4096 MB without a limit', () => {
    expect(deriveWorkerHeapMb({ limitBytes: 2 * GiB, workers: 2, reserveMb: 512 })).toBe(768);
    expect(deriveWorkerHeapMb({ limitBytes: 8 * GiB, workers: 2, reserveMb: 512 })).toBe(3840);
    expect(deriveWorkerHeapMb({ limitBytes: 512 * 1024 * 1024, workers: 8, reserveMb: 512 })).toBe(
      MIN_DERIVED_HEAP_MB,
    );
    expect(deriveWorkerHeapMb({ limitBytes: null, workers: 2, reserveMb: 512 })).toBe(UNLIMITED_HEAP_MB);
    // The point of it: every worker at its cap, plus the reserve, still fits in the container.
    for (const workers of [1, 2, 3, 4, 7]) {
      const cap = deriveWorkerHeapMb({ limitBytes: 4 * GiB, workers, reserveMb: 512 });
      expect(workers * cap + 512).toBeLessThanOrEqual(4096);
    }
  });

  it('is derived when WORKER_MAX_HEAP_MB is unset; a number overrides it, 0 means no cap', () => {
    expect(loadConfig({}).WORKER_MAX_HEAP_MB).toBeUndefined();
    const derived = testConfig({ WORKERS: 2 });
    expect(resolvedWorkerHeapMb(derived, 2 * GiB)).toBe(768);
    expect(resolvedWorkerHeapMb({ ...derived, WORKER_HEAP_RESERVE_MB: 1024 }, 2 * GiB)).toBe(512);
    expect(resolvedWorkerHeapMb(derived, null)).toBe(UNLIMITED_HEAP_MB);
    expect(resolvedWorkerHeapMb(testConfig({ WORKERS: 2, WORKER_MAX_HEAP_MB: 300 }), 2 * GiB)).toBe(300);
    expect(resolvedWorkerHeapMb(testConfig({ WORKERS: 2, WORKER_MAX_HEAP_MB: 0 }), 2 * GiB)).toBeUndefined();
  });

  it('reaches the API’s compute pool', async () => {
    const app = await makeApp({ WORKERS: 1, WORKER_MAX_HEAP_MB: undefined });
    try {
      expect(app.compute.pool.maxOldGenerationSizeMb).toBe(resolvedWorkerHeapMb(testConfig({ WORKERS: 1 })));
      expect(app.compute.pool.maxOldGenerationSizeMb).toBeGreaterThanOrEqual(MIN_DERIVED_HEAP_MB);
    } finally {
      await app.close();
    }
  });

  const hasRedis =
    Boolean(process.env.TEST_REDIS_URL) || spawnSync('redis-server', ['--version']).status === 0;
  it.skipIf(!hasRedis)(
    'reaches a redis job worker’s compute pool too (it had no cap at all)',
    async () => {
      let redis: ReturnType<typeof spawn> | undefined;
      let url = process.env.TEST_REDIS_URL;
      if (!url) {
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
      }
      const cfg = testConfig({
        JOBS_BACKEND: 'redis',
        REDIS_URL: url,
        JOBS_QUEUE_NAME: `heap-${process.pid}`,
        WORKERS: 1,
        WORKER_MAX_HEAP_MB: 200,
        MODELS_DIR: tinyModelsDir(),
        TFJS_BACKEND: 'wasm',
      });
      try {
        let handle: Awaited<ReturnType<typeof startJobWorker>> | undefined;
        for (let i = 0; !handle; i++) {
          try {
            handle = await startJobWorker(cfg, pino({ level: 'silent' }));
          } catch (err) {
            if (i > 40) throw err;
            await new Promise((r) => setTimeout(r, 50));
          }
        }
        expect(handle.pool.maxOldGenerationSizeMb).toBe(200);
        await handle.close(1000);
      } finally {
        redis?.kill();
      }
    },
    30_000,
  );
});
