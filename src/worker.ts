/**
 * Entry point of a job worker process (`npm run worker`, JOBS_BACKEND=redis): the same code base and compute pool
 * as the API, taking jobs from the BullMQ queue in Redis instead of answering HTTP. Scale these separately from
 * the API pods (deploy/k8s/worker-*.yaml). SIGTERM/SIGINT: stop taking jobs, finish or re-queue running ones
 * within SHUTDOWN_GRACE_MS, exit 0.
 */
import { pino } from 'pino';
import { ConfigError, loadConfig } from './config.js';
import { startJobWorker } from './jobs/redis-worker.js';
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
  const handle = await startJobWorker(cfg, log);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const hardStop = setTimeout(() => process.exit(1), cfg.SHUTDOWN_GRACE_MS + 10_000);
    hardStop.unref();
    try {
      await handle.close(cfg.SHUTDOWN_GRACE_MS);
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
