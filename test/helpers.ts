/**
 * Test helpers: a real app over the real worker pool, configured for tests (test tasks enabled, quiet logs).
 */
import { cpSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
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
