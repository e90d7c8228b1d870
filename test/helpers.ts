/**
 * Test helpers: a real app over the real worker pool, configured for tests (test tasks enabled, quiet logs).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../src/app.js';
import { type Config, testConfig } from '../src/config.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export async function makeApp(overrides: Partial<Config> = {}) {
  const cfg = testConfig({
    WORKERS: 1,
    ENABLE_TEST_TASKS: true,
    MODELS_DIR: path.join(repoRoot, 'models'),
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
