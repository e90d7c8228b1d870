/**
 * Entry point: parse the configuration (exit 1 naming the bad variable), build the app, listen, and shut down
 * gracefully on SIGTERM/SIGINT: readiness turns 503 at once, in-flight requests finish within the grace period,
 * workers are terminated, exit 0.
 */
import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { initTracing, shutdownTracing } from './telemetry/tracing.js';

async function main() {
  let cfg: ReturnType<typeof loadConfig>;
  try {
    cfg = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tweedie: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  // OTEL_* variables: off unless OTEL_TRACES_EXPORTER names an exporter (src/telemetry/tracing.ts).
  await initTracing({ serviceName: 'tweedie' });
  const app = await buildApp(cfg);

  closeWithGrace({ delay: cfg.SHUTDOWN_GRACE_MS + 5000 }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'fatal error, shutting down');
    else app.log.info({ signal }, 'shutting down');
    app.lifecycle.beginShutdown();
    await app.close();
    await shutdownTracing().catch(() => {});
  });

  await app.listen({ port: cfg.PORT, host: cfg.HOST });
}

main().catch((err) => {
  process.stderr.write(`tweedie: failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
