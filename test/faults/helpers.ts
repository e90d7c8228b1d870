/**
 * Child processes for fault drills: free ports, a redis-server we may kill and restart, the real server entry
 * point, and a jobs worker process.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { freePort, repoRoot, waitFor } from '../helpers.js';

export const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

export { freePort };

export interface Child {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function track(child: ChildProcess): Child {
  let out = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/**
 * redis-server on `port`, persisting every write to an append-only file in `dir` (fsync always), so that a
 * SIGKILL followed by a restart on the same dir loses nothing that was acknowledged.
 */
export async function startRedis(port: number, dir: string): Promise<Child> {
  const c = track(
    spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );
  await waitFor(() => /Ready to accept connections/.test(c.output()), 10_000, 50);
  return c;
}

/** The real entry point (src/server.ts under tsx), listening on a free loopback port. */
export async function startServer(env: Record<string, string>): Promise<Child & { url: string }> {
  const port = await freePort();
  const c = track(
    spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/server.ts')], {
      cwd: repoRoot,
      env: {
        ...process.env,
        LOG_LEVEL: 'warn',
        PORT: String(port),
        HOST: '127.0.0.1',
        MODELS_REQUIRED: 'none',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (c.child.exitCode !== null) throw new Error(`server exited: ${c.output().slice(-2000)}`);
      try {
        return (await fetch(`${url}/readyz`)).status === 200;
      } catch {
        return false;
      }
    },
    90_000,
    200,
  );
  return { ...c, url };
}

/** A jobs worker process (src/worker.ts) on the redis backend; resolves once it takes jobs. */
export async function startJobWorker(
  env: Record<string, string>,
  /** The log line to wait for: by default the worker has connected to Redis and takes jobs. */
  until = 'job worker ready',
): Promise<Child> {
  const c = track(
    spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/worker.ts')], {
      cwd: repoRoot,
      env: {
        ...process.env,
        NODE_OPTIONS: '',
        JOBS_BACKEND: 'redis',
        WORKERS: '1',
        TFJS_BACKEND: 'wasm',
        LOG_LEVEL: 'info',
        MODELS_REQUIRED: 'none',
        WORKER_HEALTH_PORT: '0',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  await waitFor(() => c.output().includes(until), 60_000, 100);
  return c;
}
