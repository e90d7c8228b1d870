/**
 * The model repository as the service sees it: scan `MODELS_DIR` at start, warm each valid model in the compute
 * pool in the background (never blocking listen), and keep a state per model: loading | ready | failed | invalid.
 * Requests for a model that is not ready are refused with a coded error naming its state.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { type Config, resolvedModelsDir, resolvedWorkers } from '../../config.js';
import { fail } from '../../errors.js';
import { type ModelManifest, requireModelTask } from '../../nn/manifest.js';
import { scanModelRepository } from '../../nn/repository.js';

export type ModelState = 'loading' | 'ready' | 'failed' | 'invalid';

export interface ModelStatus {
  name: string;
  version: string;
  state: ModelState;
  required: boolean;
  /** Why it failed or is invalid. */
  reason?: string;
  manifest?: ModelManifest;
  loadMs?: number;
  /** True for the version served when a request names no version. */
  isDefault: boolean;
}

export interface ModelRegistry {
  list(): ModelStatus[];
  get(name: string, version?: string): ModelStatus | undefined;
  /**
   * The status of a model that must be ready for a request; throws the coded error otherwise. With `task`, the
   * manifest's task must be one of them (422 TW_UNPROCESSABLE otherwise; see ROUTE_MODEL_TASKS).
   */
  requireReady(name: string, version?: string, opts?: { task: readonly string[]; use: string }): ModelStatus;
  /** True when every model marked `required` is ready. */
  requiredReady(): { ok: boolean; waiting: string[]; failed: string[] };
  /** Resolves when the initial scan and warm-up are done (tests). */
  settled: Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    models: ModelRegistry;
  }
}

function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, undefined, { numeric: true });
}

export default fp(
  async function modelsPlugin(fastify: FastifyInstance, opts: { config: Config }) {
    const cfg = opts.config;
    const statuses = new Map<string, ModelStatus>();
    const key = (name: string, version: string) => `${name}@${version}`;

    const registry: ModelRegistry = {
      list: () =>
        [...statuses.values()].sort(
          (a, b) => a.name.localeCompare(b.name) || compareVersions(a.version, b.version),
        ),
      get(name, version) {
        if (version) return statuses.get(key(name, version));
        // The default version; when no version of the name is valid, the highest one (so errors can say why).
        const all = [...statuses.values()].filter((s) => s.name === name);
        return all.find((s) => s.isDefault) ?? all.sort((a, b) => compareVersions(b.version, a.version))[0];
      },
      requireReady(name, version, opts) {
        const s = registry.get(name, version);
        if (!s) {
          const known = [...new Set([...statuses.values()].map((m) => m.name))].join(', ') || 'none';
          throw fail(
            'MODEL_NOT_FOUND',
            `No model '${name}${version ? `@${version}` : ''}' (known: ${known})`,
          );
        }
        if (s.state !== 'ready') {
          throw fail(
            'MODEL_NOT_READY',
            `Model '${s.name}@${s.version}' is ${s.state}${s.reason ? `: ${s.reason}` : ''}`,
            {
              details: { name: s.name, version: s.version, state: s.state, reason: s.reason },
              retryAfter: s.state === 'loading' ? 5 : undefined,
            },
          );
        }
        if (opts) requireModelTask(s, opts.task, opts.use);
        return s;
      },
      requiredReady() {
        const waiting: string[] = [];
        const failed: string[] = [];
        for (const s of statuses.values()) {
          if (!s.required) continue;
          if (s.state === 'loading') waiting.push(key(s.name, s.version));
          else if (s.state !== 'ready') failed.push(key(s.name, s.version));
        }
        return { ok: waiting.length === 0 && failed.length === 0, waiting, failed };
      },
      settled: Promise.resolve(),
    };
    fastify.decorate('models', registry);

    const dir = resolvedModelsDir(cfg);
    const entries = await scanModelRepository(dir).catch((err: unknown) => {
      fastify.log.error({ err, dir }, 'model repository scan failed');
      return [];
    });
    // The default version of a name is its highest valid version.
    const latest = new Map<string, string>();
    for (const e of entries) {
      if (!e.manifest) continue;
      const cur = latest.get(e.name);
      if (!cur || compareVersions(e.version, cur) > 0) latest.set(e.name, e.version);
    }
    for (const e of entries) {
      statuses.set(key(e.name, e.version), {
        name: e.name,
        version: e.version,
        state: e.manifest ? 'loading' : 'invalid',
        required: e.manifest?.required ?? false,
        reason: e.error,
        manifest: e.manifest,
        isDefault: latest.get(e.name) === e.version,
      });
    }

    // Warm every valid model in the background. Running one warm-up per worker at once spreads them over the
    // threads, so the first real request does not pay the load.
    const workers = resolvedWorkers(cfg);
    registry.settled = (async () => {
      for (const s of statuses.values()) {
        if (s.state !== 'loading') continue;
        const t0 = Date.now();
        try {
          await Promise.all(
            Array.from({ length: workers }, () =>
              fastify.compute.pool.run(
                'model.warmup',
                { name: s.name, version: s.version },
                { timeoutMs: 300_000 },
              ),
            ),
          );
          s.state = 'ready';
          s.loadMs = Date.now() - t0;
          fastify.log.info({ model: key(s.name, s.version), ms: s.loadMs }, 'model ready');
        } catch (err) {
          s.state = 'failed';
          s.reason = err instanceof Error ? err.message : String(err);
          const details = (err as { details?: { internal?: string } }).details;
          if (details?.internal) s.reason = `${s.reason}: ${details.internal}`;
          fastify.log.error({ model: key(s.name, s.version), reason: s.reason }, 'model failed to load');
        }
      }
    })();
  },
  { name: 'models', dependencies: ['compute'] },
);
