/**
 * Every environment variable the service reads, in one zod schema, parsed once at start.
 * An invalid value stops the process with a message naming the variable (see server.ts).
 */
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { containerCpuLimit, containerMemoryLimit, deriveWorkerHeapMb } from './util/cgroup.js';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('production'),
  PORT: int(0, 65535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  /**
   * The `servers` URL of the OpenAPI document: the public base URL clients use (behind an ingress, say
   * https://tweedie.example.com). Unset: '/', the server that serves the document.
   */
  OPENAPI_SERVER_URL: z.string().url().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  MODELS_DIR: z.string().min(1).default('models'),
  /**
   * TF.js backend per compute worker (src/nn/backend.ts). 'auto': tfjs-node-gpu (if installed) > webgpu on a
   * hardware adapter > tfjs-node > wasm > cpu. 'webgpu' also accepts a software adapter (lavapipe), falling back
   * to wasm when no device can be created.
   */
  TFJS_BACKEND: z.enum(['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu']).default('auto'),
  /** Compute worker threads; 0 means "one per available core". */
  WORKERS: int(0, 256).default(0),
  /** Tasks waiting for a worker beyond which requests are refused with 503. */
  QUEUE_MAX: int(0, 100_000).default(64),
  /**
   * Heap cap per compute worker (MB): a runaway task kills its own worker (500 TW_WORKER_CRASHED), not the process.
   * Unset (the default): derived from the container's memory limit (cgroup), so that every worker reaches its cap
   * before the container reaches its limit: (limit - WORKER_HEAP_RESERVE_MB) / workers, at least 128; 4096 when the
   * process has no memory limit. A number overrides it; 0 = no cap (Node's default). See src/util/cgroup.ts.
   */
  WORKER_MAX_HEAP_MB: int(0, 1_000_000).optional(),
  /**
   * Memory (MB) of the container left out of the derived worker heap caps: the main thread, native memory (decoded
   * images, the wasm backend's memory, native tensors), the workers' young generations. Unused when
   * WORKER_MAX_HEAP_MB is set.
   */
  WORKER_HEAP_RESERVE_MB: int(0, 1_000_000).default(512),
  REQUEST_TIMEOUT_MS: int(100, 3_600_000).default(30_000),
  /** Upper bound for a per-request `timeoutMs` override. */
  REQUEST_TIMEOUT_MAX_MS: int(100, 3_600_000).default(300_000),
  /**
   * Most time a client has to send a whole request (line, headers and body): past it 408 TW_REQUEST_TIMEOUT and the
   * connection is closed. It covers receipt only, not the work that follows (that is REQUEST_TIMEOUT_MS).
   */
  HTTP_REQUEST_TIMEOUT_MS: int(1000, 3_600_000).default(60_000),
  BODY_LIMIT_BYTES: int(1024, 1024 * 1024 * 1024).default(32 * 1024 * 1024),
  /**
   * Largest JSON answer (bytes) a request may get: beyond it 413 TW_RESPONSE_TOO_LARGE (ask for less, e.g. a sparse
   * plan or none, or run the work as a job: a job's result is downloaded as a stream and is not capped).
   */
  MAX_RESPONSE_BYTES: int(1024, 512 * 1024 * 1024).default(64 * 1024 * 1024),
  MAX_IMAGE_PIXELS: int(1, 1_000_000_000).default(16 * 1024 * 1024),
  /** Largest n*m of an optimal transport problem, and largest point dimension. */
  OT_MAX_ENTRIES: int(1, 1_000_000_000).default(25_000_000),
  OT_MAX_DIM: int(1, 100_000).default(1024),
  /**
   * Where online Sinkhorn computes its soft-min: `auto` on a hardware WebGPU adapter when there is one, else the CPU
   * (wasm SIMD); `cpu`; or `webgpu` (any adapter, software ones included: a 422 when there is none).
   */
  OT_ONLINE_BACKEND: z.enum(['auto', 'cpu', 'webgpu']).default('auto'),
  /**
   * Largest n (and m) of an online (matrix-free) Sinkhorn problem: point clouds whose n*m exceeds OT_MAX_ENTRIES
   * run online, with memory O((n + m) d) instead of n*m; time still grows as n*m per iteration.
   */
  OT_ONLINE_MAX_POINTS: int(1, 10_000_000).default(100_000),
  /**
   * Threads one online Sinkhorn problem uses on the CPU, its compute worker's included (helper threads share the
   * clouds and split the rows of every sweep). 0 (default): the cores within a worker's share, available cores /
   * compute workers (at least 1; cores: the fewer of the host's and the container's CPU limit); 1: the worker's thread
   * only. Problems under 1M pairs per thread use fewer.
   */
  OT_ONLINE_THREADS: int(0, 256).default(0),
  /** Most images one POST /v1/detect/adversarial (or GraphQL detectAdversarial) may test at once. */
  DETECT_MAX_IMAGES: int(1, 4096).default(64),
  /**
   * Largest input (width x height, from its header) that POST /v1/detect/adversarial resizes with resize=true; the
   * detector sees 28x28, so anything far larger is refused (413) before a pixel is decoded. Default 512x512.
   */
  DETECT_MAX_PIXELS: int(784, 1_000_000_000).default(512 * 512),
  /**
   * Memory budget (bytes) of decoded images in flight: the sum of width x height x channels x 4 (float32) of every
   * image admitted and not yet finished, on every path (REST, GraphQL, jobs), judged from the headers before any
   * decoding. A synchronous request beyond it gets 503 TW_QUEUE_FULL with Retry-After; a job waits for room; an
   * image that alone exceeds it gets 413 TW_IMAGE_TOO_LARGE. Default 1 GiB (four 4096x4096 RGBA images).
   */
  IMAGE_MEMORY_BUDGET_BYTES: int(1024, Number.MAX_SAFE_INTEGER).default(1024 * 1024 * 1024),
  /** Tile size (pixels per side) for model inference on large images. */
  TILE_SIZE: int(64, 8192).default(512),
  /**
   * One Noise2Score image on several compute workers: an image of at least this many pixels (width x height) is cut
   * into at least as many windows as there are idle workers plus its own, and the windows' network passes run on
   * those workers at once (blended as on one worker; the idle ones are borrowed only while no task waits, and only
   * on the single-threaded wasm and cpu backends; MID: its mask passes, for images up to TILE_SIZE). 0 turns it
   * off. Default 65536 (256x256), from the window plans (planScoreWindows, 2 workers): each worker computes 0.625 of
   * the one-window pixels at 512x512, 0.75 at 256x256 and 0.83 at 192x192, where little is left to gain over the
   * hand-over; the shared build machine had no free core to measure the gain on (bench/RESULTS.md, denoise-split).
   */
  SPLIT_MIN_PIXELS: int(0, Number.MAX_SAFE_INTEGER).default(65536),
  /**
   * Idle compute workers are lent to a running request (SPLIT_MIN_PIXELS) only while the host's 1-minute load
   * average per core is below this: an idle worker on an oversubscribed host has no free core to run on, and a split
   * would only add work (measured in bench/RESULTS.md, denoise-time). 0: no check.
   */
  SPLIT_MAX_LOAD: z.coerce.number().min(0).max(1000).default(1),
  /**
   * Dynamic batching (src/nn/batcher.ts): most network calls of one model and one input shape stacked into one
   * call, from concurrent requests on a worker and from the windows and masks of one image. Unset: 8 when the
   * worker runs TF.js on a hardware WebGPU adapter, else 1 (off: on wasm a batch saves nothing). Setting it also
   * lets each worker take that many tasks at once (WORKER_CONCURRENT_TASKS), so that requests can meet in a batch.
   */
  BATCH_MAX_SIZE: int(1, 256).optional(),
  /** Most time (ms) the first call of a batch waits for others before the batch runs anyway. */
  BATCH_MAX_DELAY_MS: int(0, 1000).default(2),
  /**
   * Tasks a compute worker runs at once (piscina's concurrentTasksPerWorker): they interleave at their awaits,
   * which is what lets concurrent requests share a GPU batch. Unset: BATCH_MAX_SIZE when set, else 1.
   */
  WORKER_CONCURRENT_TASKS: int(1, 256).optional(),
  /**
   * With WORKER_CONCURRENT_TASKS above 1, a cancelled or timed-out task is answered at once and stops at its next
   * chunk (src/util/cancellation.ts); its worker (and the other tasks on it) is stopped only if the task is still
   * running this many ms later (stuck inside one call).
   */
  WORKER_CANCEL_GRACE_MS: int(0, 600_000).default(5000),
  /**
   * Device-memory budget of each compute worker (MB) for model calls, judged before a call runs from an estimate
   * measured per model (src/nn/batcher.ts): a call that can never fit gets 413 TW_GPU_MEMORY_EXCEEDED, one that does
   * not fit now 503 TW_GPU_MEMORY_BUSY with Retry-After. Unset (the default): no limit.
   */
  GPU_MEMORY_BUDGET_MB: int(1, 10_000_000).optional(),
  GRAPHQL_DEPTH_LIMIT: int(1, 100).default(8),
  GRAPHIQL: bool.default(false),
  /** Seconds to let in-flight requests finish after SIGTERM/SIGINT. */
  SHUTDOWN_GRACE_MS: int(0, 600_000).default(10_000),
  PRESSURE_MAX_EVENT_LOOP_DELAY_MS: int(0, 60_000).default(1000),
  PRESSURE_SAMPLE_INTERVAL_MS: int(10, 60_000).default(1000),
  /** Event-loop utilisation (0..1) beyond which work is refused; 0 = off. */
  PRESSURE_MAX_EVENT_LOOP_UTILIZATION: z.coerce.number().min(0).max(1).default(0),
  PRESSURE_MAX_HEAP_BYTES: int(0, Number.MAX_SAFE_INTEGER).default(0),
  PRESSURE_MAX_RSS_BYTES: int(0, Number.MAX_SAFE_INTEGER).default(0),
  /** Where jobs live: `memory` (in this process, lost on restart) or `redis` (BullMQ; `npm run worker` runs them). */
  JOBS_BACKEND: z.enum(['memory', 'redis']).default('memory'),
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  /** BullMQ queue name (also the Redis key prefix `bull:<name>:*` that KEDA watches). */
  JOBS_QUEUE_NAME: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/)
    .default('tweedie-jobs'),
  /** Jobs waiting to start beyond which submissions are refused with 503. */
  JOBS_QUEUE_MAX: int(1, 1_000_000).default(256),
  /**
   * Jobs running at once in one process (memory backend, or one `npm run worker`); 0 means one per compute worker
   * not reserved for synchronous requests (JOBS_RESERVED_WORKERS).
   */
  JOBS_CONCURRENCY: int(0, 1024).default(0),
  /**
   * Compute workers that job tasks may never occupy, kept for synchronous requests: job tasks hold at most
   * WORKERS - JOBS_RESERVED_WORKERS workers at once (at least 1). Unset: 1 when there are 2 workers or more, else 0.
   * Applies to the API process (memory backend); a redis `npm run worker` runs only jobs and reserves none.
   */
  JOBS_RESERVED_WORKERS: int(0, 256).optional(),
  /** Active (queued + running) jobs one API key (or, with keys off, one client address) may have; beyond: 429. 0 = off. */
  JOBS_MAX_PER_KEY: int(0, 1_000_000).default(8),
  /** Finished jobs kept per API key (or client address) in the memory backend; the oldest are forgotten first. */
  JOBS_MAX_FINISHED_PER_KEY: int(1, 1_000_000).default(32),
  /** Result bytes (estimated) of the finished jobs kept per API key (or client address), memory backend; oldest go first. */
  JOBS_MAX_RESULT_BYTES_PER_KEY: int(1024, Number.MAX_SAFE_INTEGER).default(64 * 1024 * 1024),
  /** Finished jobs the redis backend keeps in BullMQ (all keys together; the oldest go first), beside JOB_TTL_MS. */
  JOBS_REDIS_MAX_FINISHED: int(1, 10_000_000).default(1000),
  /**
   * Largest estimated cost (ms) of a request that becomes a job automatically because it would not finish within
   * its deadline (restore, denoise, detect); above it the request is refused with 413 (ask for a job with async=true).
   */
  JOBS_AUTO_MAX_COST_MS: int(1000, 7 * 24 * 3_600_000).default(600_000),
  /** How long finished jobs (state and result) are kept. */
  JOB_TTL_MS: int(1000, 30 * 24 * 3_600_000).default(3_600_000),
  /** Deadline of one job run. */
  JOB_TIMEOUT_MS: int(100, 7 * 24 * 3_600_000).default(3_600_000),
  /** BullMQ lock: a worker silent for this long is presumed dead and its job is given to another worker. */
  JOBS_LOCK_MS: int(500, 600_000).default(30_000),
  /** Times a job may be picked up again after its worker died before it is failed. */
  JOBS_MAX_STALLED: int(0, 100).default(2),
  /**
   * Times a job is run again after a transient failure (TW_GPU_MEMORY_BUSY, TW_GPU_DEVICE_LOST, TW_MODEL_NOT_READY,
   * TW_QUEUE_FULL: src/jobs/common.ts) before that failure is its answer; 0 fails it at once.
   */
  JOBS_TRANSIENT_RETRIES: int(0, 100).default(3),
  /** First wait before such a retry when the error names none (Retry-After); doubled per attempt, at most 60 s. */
  JOBS_RETRY_DELAY_MS: int(1, 600_000).default(1000),
  /**
   * Port of a job worker's (`npm run worker`) own /livez, /readyz and /metrics; 0 turns it off. The API process
   * does not use it (its probes are on PORT).
   */
  WORKER_HEALTH_PORT: int(0, 65535).default(9090),
  /**
   * How long a job worker, on SIGTERM, waits for its running jobs after it stopped taking new ones; the jobs still
   * running then are put back in the queue for another worker, and the process exits 0. Keep it below the pod's
   * terminationGracePeriodSeconds.
   */
  WORKER_DRAIN_MS: int(0, 24 * 3_600_000).default(60_000),
  /**
   * A job worker's liveness (/livez on WORKER_HEALTH_PORT) fails when its event loop was blocked this long since the
   * previous probe (BullMQ could not renew its locks), or when a job runs past JOB_TIMEOUT_MS plus a minute (wedged).
   */
  WORKER_LIVENESS_MAX_LAG_MS: int(100, 600_000).default(10_000),
  /**
   * Models that must be loaded and warmed before /readyz answers 200 (their default version): `defaults` (every
   * model that is some route's default, src/nn/default-models.ts), `none`, or comma-separated names. Models whose
   * manifest says `required: true` are required in any case.
   */
  MODELS_REQUIRED: z
    .string()
    .regex(
      /^\s*(defaults|none|[a-z0-9][a-z0-9._-]{0,63}(\s*,\s*[a-z0-9][a-z0-9._-]{0,63})*)\s*$/,
      'defaults, none or comma-separated model names',
    )
    .default('defaults'),
  /** Rescan MODELS_DIR every MODELS_WATCH_INTERVAL_MS and serve what changed (as POST /v1/models/reload does). */
  MODELS_WATCH: bool.default(false),
  /** Period of the MODELS_WATCH rescan (it reads manifests and file sizes only, and loads only new versions). */
  MODELS_WATCH_INTERVAL_MS: int(100, 24 * 3_600_000).default(30_000),
  /** API keys, comma-separated. When set (or API_KEYS_FILE is), every route but /livez, /readyz, /metrics needs `Authorization: Bearer <key>`. */
  API_KEYS: z.string().optional(),
  /** A file with one API key per line (a mounted Kubernetes secret); blank lines and `#` comments are skipped. */
  API_KEYS_FILE: z.string().min(1).optional(),
  /** Requests per key (or per client address without keys) per window; 0 turns rate limiting off. */
  RATE_LIMIT_MAX: int(0, 100_000_000).default(6000),
  RATE_LIMIT_WINDOW_MS: int(100, 24 * 3_600_000).default(60_000),
  /** Origins allowed by CORS, comma-separated (`*` for any); empty: CORS off (no Access-Control-* headers). */
  CORS_ORIGINS: z.string().default(''),
  /** Most field selections (aliases and fragment spreads expanded) one GraphQL operation may ask for. */
  GRAPHQL_MAX_SELECTIONS: int(1, 100_000).default(200),
  /** Most lexical tokens in one GraphQL document: parsing stops there (large inputs belong in variables). */
  GRAPHQL_MAX_TOKENS: int(100, 1_000_000).default(10_000),
  /** Largest POST /graphql body (document and variables, base64 images included); larger is 413. */
  GRAPHQL_BODY_LIMIT_BYTES: int(1024, 1024 * 1024 * 1024).default(16 * 1024 * 1024),
  /** Largest GraphQL document (the `query` text; inputs such as images belong in variables); larger is 413. */
  GRAPHQL_MAX_DOCUMENT_BYTES: int(1024, 1024 * 1024 * 1024).default(1024 * 1024),
  /** Largest GraphQL WebSocket message (a subscription and its variables); larger closes the socket with 1009. */
  GRAPHQL_WS_MAX_MESSAGE_BYTES: int(1024, 16 * 1024 * 1024).default(64 * 1024),
  /** Most compute fields (otPlan, denoise, submitJob, ...) one GraphQL operation may ask for, aliases included. */
  GRAPHQL_MAX_COMPUTE_FIELDS: int(1, 1000).default(4),
  /** Most bulk fields (a job's result, a plan's arrays, base64 images) one GraphQL operation may ask for. */
  GRAPHQL_MAX_HEAVY_FIELDS: int(1, 1000).default(8),
  GRAPHQL_INTROSPECTION: bool.default(true),
  /** Tasks used only by tests and fault drills (sleep, crash, leak checks). Never enable in production. */
  ENABLE_TEST_TASKS: bool.default(false),
});

export type Config = z.output<typeof configSchema>;

export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Parse an environment (process.env by default) into a Config; throws ConfigError naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Empty strings mean "unset" (as in `PORT= npm start`).
  const cleaned: Record<string, string> = {};
  for (const key of Object.keys(configSchema.shape)) {
    const v = env[key];
    if (v !== undefined && v !== '') cleaned[key] = v;
  }
  const parsed = configSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => {
        const name = String(i.path[0] ?? '?');
        return `${name}=${JSON.stringify(cleaned[name] ?? '')}: ${i.message}`;
      }),
    );
  }
  return parsed.data;
}

/** Config for tests and scripts: defaults plus overrides, no environment. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  // Tests load only the models they use: none is required unless a test says so.
  return { ...loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', MODELS_REQUIRED: 'none' }), ...overrides };
}

export function resolvedWorkers(cfg: Config): number {
  return cfg.WORKERS > 0 ? cfg.WORKERS : Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
}

/**
 * Threads of one online Sinkhorn problem on the CPU: OT_ONLINE_THREADS, or the cores per compute worker, the
 * cores being the fewer of the host's and the container's CPU limit (cpuLimit; by default from the cgroup).
 */
export function resolvedOnlineThreads(cfg: Config, cpuLimit: number | null = containerCpuLimit()): number {
  if (cfg.OT_ONLINE_THREADS > 0) return cfg.OT_ONLINE_THREADS;
  const host = Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  const cores = cpuLimit === null ? host : Math.min(host, Math.max(1, Math.floor(cpuLimit)));
  return Math.max(1, Math.floor(cores / resolvedWorkers(cfg)));
}

/** Compute workers kept for synchronous requests (JOBS_RESERVED_WORKERS, or 1 when there are 2 workers or more). */
export function resolvedReservedWorkers(cfg: Config): number {
  const workers = resolvedWorkers(cfg);
  const wanted = cfg.JOBS_RESERVED_WORKERS ?? (workers >= 2 ? 1 : 0);
  return Math.max(0, Math.min(wanted, workers - 1));
}

/**
 * Heap cap (MB) of each compute worker, or undefined for none (Node's default): WORKER_MAX_HEAP_MB when set (0 = none),
 * else derived from the container's memory limit (limitBytes; by default read from the cgroup at first use).
 */
export function resolvedWorkerHeapMb(
  cfg: Config,
  limitBytes: number | null = containerMemoryLimit(),
): number | undefined {
  if (cfg.WORKER_MAX_HEAP_MB !== undefined) return cfg.WORKER_MAX_HEAP_MB || undefined;
  return deriveWorkerHeapMb({
    limitBytes,
    workers: resolvedWorkers(cfg),
    reserveMb: cfg.WORKER_HEAP_RESERVE_MB,
  });
}

/** Tasks each compute worker runs at once: WORKER_CONCURRENT_TASKS, else BATCH_MAX_SIZE, else 1. */
export function resolvedConcurrentTasks(cfg: Config): number {
  return cfg.WORKER_CONCURRENT_TASKS ?? cfg.BATCH_MAX_SIZE ?? 1;
}

export function resolvedModelsDir(cfg: Config): string {
  return path.resolve(cfg.MODELS_DIR);
}
