/**
 * Test helpers: a real app over the real worker pool, configured for tests (test tasks enabled, quiet logs).
 */
import { cpSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { buildApp } from '../src/app.js';
import { type Config, testConfig } from '../src/config.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

let tinyRepo: string | undefined;
/** A model repository holding only the tiny required model, so app tests do not pay for loading big models. */
export function tinyModelsDir(): string {
  if (!tinyRepo) {
    tinyRepo = mkdtempSync(path.join(os.tmpdir(), 'tweedie-models-'));
    cpSync(path.join(repoRoot, 'models', 'gaussian-blur'), path.join(tinyRepo, 'gaussian-blur'), {
      recursive: true,
    });
  }
  return tinyRepo;
}

export async function makeApp(overrides: Partial<Config> = {}) {
  const cfg = testConfig({
    WORKERS: 1,
    ENABLE_TEST_TASKS: true,
    MODELS_DIR: tinyModelsDir(),
    TFJS_BACKEND: 'wasm',
    ...overrides,
  });
  const app = await buildApp(cfg);
  await app.ready();
  return app;
}

/** Wait until a condition holds (polling), or fail after timeoutMs. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 30_000, stepMs = 25) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

/** Polls GET `location` (a job) until it has ended (succeeded, failed or cancelled); returns its last view. */
export async function waitForJob(
  app: { inject: Awaited<ReturnType<typeof makeApp>>['inject'] },
  location: string,
  timeoutMs = 30_000,
): Promise<{ state: string; [key: string]: unknown }> {
  let view: { state: string; [key: string]: unknown } = { state: '' };
  await waitFor(async () => {
    view = (await app.inject({ method: 'GET', url: location })).json();
    return ['succeeded', 'failed', 'cancelled'].includes(view.state);
  }, timeoutMs);
  return view;
}

/**
 * For a request that should have become a job: checks the 202 and its Location, waits for the job to succeed and
 * returns GET <location>/result.
 */
export async function jobResult(
  app: { inject: Awaited<ReturnType<typeof makeApp>>['inject'] },
  accepted: { statusCode: number; body: string; headers: Record<string, unknown> },
) {
  expect(accepted.statusCode, accepted.body).toBe(202);
  const location = accepted.headers.location as string;
  expect(location).toMatch(/^\/v1\/jobs\//);
  const view = await waitForJob(app, location);
  expect(view.state, JSON.stringify(view)).toBe('succeeded');
  return app.inject({ method: 'GET', url: `${location}/result` });
}

/**
 * A multipart/form-data request body: text fields first, then PNG files, each [field name, file name, bytes]
 * (a field name may repeat). Returns the headers and payload for app.inject.
 */
export function multipartForm(files: [string, string, Buffer][], fields: Record<string, string> = {}) {
  const boundary = '----tweedie-test';
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields))
    parts.push(
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`),
    );
  for (const [name, filename, bytes] of files)
    parts.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${filename}"\r\nContent-Type: image/png\r\n\r\n`,
      ),
      bytes,
      Buffer.from('\r\n'),
    );
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    payload: Buffer.concat(parts),
  };
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for a child server: Redis, the service, a health port). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
