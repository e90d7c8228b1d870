/**
 * The real entry point as a child process: configuration errors stop it with a message naming the variable;
 * SIGTERM drains in-flight requests, readiness turns 503 during the drain, and the process exits 0.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, repoRoot, tinyModelsDir, waitFor } from '../helpers.js';

function start(env: Record<string, string>): {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/server.ts')], {
    cwd: repoRoot,
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exit };
}

describe('server process', () => {
  it('exits non-zero with a readable message on an invalid variable', async () => {
    const p = start({ PORT: 'not-a-port' });
    const code = await p.exit;
    expect(code).not.toBe(0);
    expect(p.output()).toContain('PORT="not-a-port"');
  });

  it('drains in-flight requests on SIGTERM, reports not ready, and exits 0', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const p = start({
      PORT: String(port),
      HOST: '127.0.0.1',
      WORKERS: '1',
      ENABLE_TEST_TASKS: 'true',
      SHUTDOWN_GRACE_MS: '8000',
      TFJS_BACKEND: 'wasm',
      MODELS_DIR: tinyModelsDir(),
      MODELS_REQUIRED: 'none',
    });
    try {
      await waitFor(
        async () => {
          try {
            return (await fetch(`${base}/readyz`)).status === 200;
          } catch {
            return false;
          }
        },
        60_000,
        200,
      );
      const inflight = fetch(`${base}/v1/_test/busy`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ms: 1500 }),
      });
      await new Promise((r) => setTimeout(r, 300));
      p.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 100));
      // While draining, new requests are refused (503) or the listener is already closed: never a hang.
      const during = await fetch(`${base}/readyz`)
        .then((r) => r.status)
        .catch(() => 'closed');
      expect([503, 'closed']).toContain(during);
      const res = await inflight;
      expect(res.status).toBe(200);
      expect(((await res.json()) as { ms: number }).ms).toBeGreaterThanOrEqual(1500);
      const code = await p.exit;
      expect(code, p.output().slice(-3000)).toBe(0);
    } finally {
      p.child.kill('SIGKILL');
    }
  });
});
