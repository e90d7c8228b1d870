/**
 * Every environment variable the service reads, in one zod schema, parsed once at start.
 * An invalid value stops the process with a message naming the variable (see server.ts).
 */
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('production'),
  PORT: int(0, 65535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  MODELS_DIR: z.string().min(1).default('models'),
  TFJS_BACKEND: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
  /** Compute worker threads; 0 means "one per available core". */
  WORKERS: int(0, 256).default(0),
  /** Tasks waiting for a worker beyond which requests are refused with 503. */
  QUEUE_MAX: int(0, 100_000).default(64),
  /** Heap cap per compute worker (MB): a runaway task kills its own worker (500), not the process. 0 = Node's default. */
  WORKER_MAX_HEAP_MB: int(0, 1_000_000).default(4096),
  REQUEST_TIMEOUT_MS: int(100, 3_600_000).default(30_000),
  /** Upper bound for a per-request `timeoutMs` override. */
  REQUEST_TIMEOUT_MAX_MS: int(100, 3_600_000).default(300_000),
  BODY_LIMIT_BYTES: int(1024, 1024 * 1024 * 1024).default(32 * 1024 * 1024),
  MAX_IMAGE_PIXELS: int(1, 1_000_000_000).default(16 * 1024 * 1024),
  /** Largest n*m of an optimal transport problem, and largest point dimension. */
  OT_MAX_ENTRIES: int(1, 1_000_000_000).default(25_000_000),
  OT_MAX_DIM: int(1, 100_000).default(1024),
  /**
   * Largest n (and m) of an online (matrix-free) Sinkhorn problem: point clouds whose n*m exceeds OT_MAX_ENTRIES
   * run online, with memory O((n + m) d) instead of n*m; time still grows as n*m per iteration.
   */
  OT_ONLINE_MAX_POINTS: int(1, 10_000_000).default(100_000),
  /** Most images one POST /v1/detect/adversarial (or GraphQL detectAdversarial) may test at once. */
  DETECT_MAX_IMAGES: int(1, 4096).default(64),
  /** Tile size (pixels per side) for model inference on large images. */
  TILE_SIZE: int(64, 8192).default(512),
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
  /** Jobs running at once in one process (memory backend, or one `npm run worker`); 0 means one per compute worker. */
  JOBS_CONCURRENCY: int(0, 1024).default(0),
  /** How long finished jobs (state and result) are kept. */
  JOB_TTL_MS: int(1000, 30 * 24 * 3_600_000).default(3_600_000),
  /** Deadline of one job run. */
  JOB_TIMEOUT_MS: int(100, 7 * 24 * 3_600_000).default(3_600_000),
  /** BullMQ lock: a worker silent for this long is presumed dead and its job is given to another worker. */
  JOBS_LOCK_MS: int(500, 600_000).default(30_000),
  /** Times a job may be picked up again after its worker died before it is failed. */
  JOBS_MAX_STALLED: int(0, 100).default(2),
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
  return { ...loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent' }), ...overrides };
}

export function resolvedWorkers(cfg: Config): number {
  return cfg.WORKERS > 0 ? cfg.WORKERS : Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
}

export function resolvedModelsDir(cfg: Config): string {
  return path.resolve(cfg.MODELS_DIR);
}
