/**
 * The compute pool's options from the configuration, one place for the API's pool (src/plugins/app/compute.ts)
 * and a job worker's (src/jobs/redis-worker.ts): each adds only its default deadline (and the API its reserved
 * workers).
 */
import {
  type Config,
  resolvedConcurrentTasks,
  resolvedModelsDir,
  resolvedOnlineThreads,
  resolvedWorkerHeapMb,
  resolvedWorkers,
} from '../config.js';
import { imageBudgetFor } from '../imaging/budget.js';
import type { ComputePool, ComputePoolOptions } from './pool.js';

export function computePoolOptions(
  cfg: Config,
): Omit<ComputePoolOptions, 'defaultTimeoutMs' | 'reservedWorkers'> {
  return {
    workers: resolvedWorkers(cfg),
    queueMax: cfg.QUEUE_MAX,
    // A heap cap per worker: a runaway task fails alone instead of the container being OOM-killed.
    maxOldGenerationSizeMb: resolvedWorkerHeapMb(cfg),
    worker: {
      modelsDir: resolvedModelsDir(cfg),
      tfjsBackend: cfg.TFJS_BACKEND,
      enableTestTasks: cfg.ENABLE_TEST_TASKS,
      tileSize: cfg.TILE_SIZE,
      otOnlineBackend: cfg.OT_ONLINE_BACKEND,
      otMaxEntries: cfg.OT_MAX_ENTRIES,
      otOnlineThreads: resolvedOnlineThreads(cfg),
      batchMaxSize: cfg.BATCH_MAX_SIZE,
      batchMaxDelayMs: cfg.BATCH_MAX_DELAY_MS,
      gpuMemoryBudgetMb: cfg.GPU_MEMORY_BUDGET_MB,
      splitMinPixels: cfg.SPLIT_MIN_PIXELS,
    },
    concurrentTasksPerWorker: resolvedConcurrentTasks(cfg),
    lendMaxLoadPerCore: cfg.SPLIT_MAX_LOAD,
    cancelGraceMs: cfg.WORKER_CANCEL_GRACE_MS,
  };
}

/**
 * Helper tasks lent to a running request (one image on several workers) count in the image memory budget of the
 * pool (IMAGE_MEMORY_BUDGET_BYTES, src/imaging/budget.ts): fewer helpers, or none, when their memory does not fit.
 */
export function admitLending(pool: ComputePool, cfg: Config): void {
  pool.lendAdmission = (bytes) => imageBudgetFor(pool, cfg).tryReserve(bytes);
}
