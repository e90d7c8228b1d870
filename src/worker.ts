/**
 * Entry point of a job worker process (`npm run worker`, JOBS_BACKEND=redis): the same code base and compute pool
 * as the API, taking jobs from the BullMQ queue in Redis instead of answering HTTP. Scale these separately from
 * the API pods (deploy/k8s/worker-*.yaml). Probes and metrics on WORKER_HEALTH_PORT (src/jobs/worker-health.ts).
 * SIGTERM/SIGINT: stop taking jobs (readiness turns 503 "draining"), let running ones finish within
 * WORKER_DRAIN_MS, put the others back in the queue, exit 0.
 */
import { pino } from 'pino';
import { ConfigError, loadConfig } from './config.js';
import { startJobWorker } from './jobs/redis-worker.js';
import { WorkerHealth } from './jobs/worker-health.js';
// Every operation that can run as a job (registered on import).
import './operations/index.js';
import { initTracing, shutdownTracing } from './telemetry/tracing.js';

async function main() {
  let cfg: ReturnType<typeof loadConfig>;
  try {
    cfg = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tweedie-worker: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const log = pino({ level: cfg.LOG_LEVEL, base: { pid: process.pid, role: 'worker' } });
  await initTracing({ serviceName: 'tweedie-worker' });
  let health: WorkerHealth | undefined;
  // Called before the worker waits on Redis: the probes answer while it connects (readiness says why not yet).
  const handle = await startJobWorker(cfg, log, (h) => {
    if (cfg.WORKER_HEALTH_PORT <= 0) return;
    const probes = new WorkerHealth(cfg, h, log);
    health = probes;
    probes.listen(cfg.WORKER_HEALTH_PORT).then(
      (port) => {
        log.info({ port }, 'worker health listening (/livez, /readyz, /metrics)');
        void probes.start();
      },
      (err) => {
        process.stderr.write(
          `tweedie-worker: health port: ${err instanceof Error ? err.message : String(err)}\n`,
        );
        process.exit(1);
      },
    );
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, drainMs: cfg.WORKER_DRAIN_MS }, 'shutting down: draining');
    if (health) health.draining = true;
    const hardStop = setTimeout(() => process.exit(1), cfg.WORKER_DRAIN_MS + 10_000);
    hardStop.unref();
    try {
      await handle.close(cfg.WORKER_DRAIN_MS);
      await health?.close();
      await shutdownTracing().catch(() => {});
      process.exit(0);
    } catch (err) {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err) => {
  process.stderr.write(
    `tweedie-worker: failed to start: ${err instanceof Error ? err.stack : String(err)}\n`,
  );
  process.exit(1);
});
