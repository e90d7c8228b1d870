/**
 * The app the cost benchmarks (bench/denoise/cost.ts, bench/detect-cost.ts) measure through: one compute worker,
 * the committed models, deadlines and the job threshold out of the way, no rate limit and no pressure guard (the
 * benchmark's own event loop is busy), on the given TF.js backend.
 */
import { buildApp } from '../src/app.js';
import { testConfig } from '../src/config.js';

export async function costBenchApp(backend: string) {
  const app = await buildApp(
    testConfig({
      WORKERS: 1,
      MODELS_DIR: 'models',
      TFJS_BACKEND: backend as 'wasm',
      REQUEST_TIMEOUT_MS: 600_000,
      REQUEST_TIMEOUT_MAX_MS: 600_000,
      JOBS_AUTO_MAX_COST_MS: 600_000,
      RATE_LIMIT_MAX: 0,
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
    }),
  );
  await app.ready();
  return app;
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
