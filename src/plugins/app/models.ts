/**
 * The model repository as the service sees it: scan `MODELS_DIR` at start, warm each valid model in the compute
 * pool in the background (never blocking listen), and keep a state per model: loading | ready | failed | invalid.
 * Requests for a model that is not ready are refused with a coded error naming its state.
 *
 * Required models (MODELS_REQUIRED, plus those whose manifest says `required`) hold readiness until their default
 * version is ready. `reload()` (POST /v1/models/reload, or MODELS_WATCH) rescans the repository: new versions are
 * loaded and warmed in the compute workers first and only then become the default (requests never wait for them),
 * versions whose folder is gone are dropped and freed in the workers. A version is immutable: changed files in an
 * existing version folder are not reloaded (publish a new version).
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { type Config, resolvedModelsDir, resolvedWorkers } from '../../config.js';
import { fail } from '../../errors.js';
import { backendModelTier } from '../../nn/backend.js';
import { requiredModelNames } from '../../nn/default-models.js';
import { type ModelManifest, type ModelTier, requireModelTask } from '../../nn/manifest.js';
import { type ModelEntry, preferredVersion, scanModelRepository } from '../../nn/repository.js';

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

/** The model's tier (its manifest's; 'cpu' when it has none). */
export function modelTier(m: ModelStatus): ModelTier {
  return m.manifest?.tier ?? 'cpu';
}

export interface ModelRegistry {
  list(): ModelStatus[];
  /** The tier whose versions are the defaults: 'gpu' once the compute workers report a GPU backend, else 'cpu'. */
  tier(): ModelTier;
  get(name: string, version?: string): ModelStatus | undefined;
  /**
   * The status of a model that must be ready for a request; throws the coded error otherwise. With `task`, the
   * manifest's task must be one of them (422 TW_UNPROCESSABLE otherwise; see ROUTE_MODEL_TASKS).
   */
  requireReady(name: string, version?: string, opts?: { task: readonly string[]; use: string }): ModelStatus;
  /** True when every model marked `required` is ready; `missing`: required names with no valid version. */
  requiredReady(): { ok: boolean; waiting: string[]; failed: string[]; missing: string[] };
  /** Rescans MODELS_DIR, warms new versions, then switches defaults to them; one reload at a time. */
  reload(): Promise<ModelReloadReport>;
  /** Resolves when the initial scan and warm-up are done (tests). */
  settled: Promise<void>;
}

export interface ModelReloadReport {
  /** name@version of versions new to the registry (or fixed), and the state they reached. */
  added: { model: string; state: ModelState; reason?: string }[];
  /** name@version whose folder is gone (freed in the workers). */
  removed: string[];
  /** The default version of each name after the reload. */
  defaults: Record<string, string>;
  ms: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    models: ModelRegistry;
  }
}

/** A version just found in the repository: loading when it looks valid, invalid with the reason otherwise. */
function freshStatus(e: ModelEntry): ModelStatus {
  return {
    name: e.name,
    version: e.version,
    state: e.manifest ? 'loading' : 'invalid',
    required: false,
    reason: e.error,
    manifest: e.manifest,
    isDefault: false,
  };
}

function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, undefined, { numeric: true });
}

export default fp(
  async function modelsPlugin(fastify: FastifyInstance, opts: { config: Config }) {
    const cfg = opts.config;
    const statuses = new Map<string, ModelStatus>();
    /** Versions added by a reload and not warmed yet: not eligible as default until ready. */
    const fresh = new Set<ModelStatus>();
    /** Versions added by a reload that failed to load: never the default (the previous one stays). */
    const rejected = new Set<ModelStatus>();
    const key = (name: string, version: string) => `${name}@${version}`;
    const requiredNames = requiredModelNames(cfg.MODELS_REQUIRED);

    /** The backend's tier (backendModelTier): 'cpu' until the compute workers have said which backend they run. */
    let tier: ModelTier = 'cpu';
    /**
     * The default of each name is its highest valid version of the backend's tier, else its highest 'cpu' one, else
     * its highest one (preferredVersion), not counting reloaded ones still warming.
     */
    const assignDefaults = () => {
      const candidates = new Map<string, ModelStatus[]>();
      for (const s of statuses.values()) {
        if (!s.manifest || fresh.has(s) || rejected.has(s)) continue;
        candidates.set(s.name, [...(candidates.get(s.name) ?? []), s]);
      }
      const chosen = new Set<ModelStatus>();
      for (const list of candidates.values()) {
        const pick = preferredVersion(list, tier);
        if (pick) chosen.add(pick);
      }
      for (const s of statuses.values()) {
        s.isDefault = chosen.has(s);
        // A reloaded version that failed is not served, so it does not hold readiness either.
        s.required =
          !rejected.has(s) &&
          ((s.manifest?.required ?? false) || (s.isDefault && requiredNames.includes(s.name)));
      }
    };

    const registry: ModelRegistry = {
      tier: () => tier,
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
        const missing = requiredNames.filter(
          (name) => ![...statuses.values()].some((s) => s.name === name && s.isDefault),
        );
        return { ok: waiting.length + failed.length + missing.length === 0, waiting, failed, missing };
      },
      settled: Promise.resolve(),
      reload: async () => {
        throw new Error('not started');
      },
    };
    fastify.decorate('models', registry);

    const dir = resolvedModelsDir(cfg);
    const scan = () =>
      scanModelRepository(dir).catch((err: unknown) => {
        fastify.log.error({ err, dir }, 'model repository scan failed');
        return [];
      });
    for (const e of await scan()) statuses.set(key(e.name, e.version), freshStatus(e));
    assignDefaults();
    // The workers say which backend they run in the background: on a GPU backend the gpu-tier versions become the
    // defaults then (every version is warmed either way, so the switch waits for nothing).
    void fastify.compute.started.then(() => {
      const next = backendModelTier(fastify.compute.info ?? { backend: null });
      if (next === tier) return;
      tier = next;
      assignDefaults();
      fastify.log.info({ tier }, 'model defaults follow the backend tier');
    });

    // Warm models in the background. Running one warm-up per worker at once spreads them over the threads, so
    // the first real request does not pay the load.
    const workers = resolvedWorkers(cfg);
    const warm = async (list: ModelStatus[]) => {
      for (const s of list) {
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
    };
    registry.settled = warm([...statuses.values()].filter((s) => s.state === 'loading'));

    let chain: Promise<unknown> = registry.settled;
    registry.reload = () => {
      const run = async (): Promise<ModelReloadReport> => {
        const t0 = Date.now();
        // A repository that cannot be read now (a network volume's hiccup) is an error, not "every model is gone":
        // the reload fails and the registry stays as it is. A model folder that cannot be listed keeps its versions.
        const entries = await scanModelRepository(dir).catch((err: unknown) => {
          fastify.log.error({ err, dir }, 'model repository scan failed; the registry is unchanged');
          throw fail('NOT_READY', 'The model repository cannot be read now; nothing changed. Retry later', {
            retryAfter: 5,
          });
        });
        const unreadable = new Set(entries.filter((e) => e.unreadable).map((e) => e.name));
        const seen = new Set(entries.map((e) => key(e.name, e.version)));
        for (const s of statuses.values()) if (unreadable.has(s.name)) seen.add(key(s.name, s.version));
        const added: ModelStatus[] = [];
        for (const e of entries) {
          const k = key(e.name, e.version);
          const cur = statuses.get(k);
          // Known and valid (ready, loading or failed at load): versions are immutable, keep it.
          if (cur && (cur.manifest || !e.manifest)) continue;
          const s = freshStatus(e);
          statuses.set(k, s);
          added.push(s);
          if (e.manifest) fresh.add(s);
        }
        const removed = [...statuses.values()].filter((s) => !seen.has(key(s.name, s.version)));
        for (const s of removed) {
          statuses.delete(key(s.name, s.version));
          rejected.delete(s);
        }
        assignDefaults();
        await warm(added.filter((s) => s.state === 'loading'));
        for (const s of added) fresh.delete(s);
        // Switch: a warmed version becomes the default now; one that failed stays out of the way.
        for (const s of added) if (s.state === 'failed') rejected.add(s);
        assignDefaults();
        // Free what is gone in every worker (one unload per worker, spread as warm-ups are).
        for (const s of removed) {
          if (s.state !== 'ready') continue;
          await Promise.allSettled(
            Array.from({ length: workers }, () =>
              fastify.compute.pool.run('model.unload', { name: s.name, version: s.version }),
            ),
          );
        }
        const report: ModelReloadReport = {
          added: added.map((s) => ({
            model: key(s.name, s.version),
            state: s.state,
            ...(s.reason ? { reason: s.reason } : {}),
          })),
          removed: removed.map((s) => key(s.name, s.version)),
          defaults: Object.fromEntries(
            registry
              .list()
              .filter((s) => s.isDefault)
              .map((s) => [s.name, s.version]),
          ),
          ms: Date.now() - t0,
        };
        const changed = report.added.length + report.removed.length > 0;
        fastify.log[changed ? 'info' : 'debug'](report, 'model repository reloaded');
        return report;
      };
      const next = chain.then(run, run);
      chain = next.catch(() => {});
      return next;
    };

    if (cfg.MODELS_WATCH) {
      // Polling rather than fs.watch: inotify does not see changes made by another node on a network volume (a
      // PVC shared by replicas), and a scan reads only manifests and file sizes. A version caught mid-copy is
      // invalid at one poll and picked up, valid, at the next.
      let polling = false;
      const timer = setInterval(() => {
        if (polling) return;
        polling = true;
        registry
          .reload()
          .catch((err: unknown) => fastify.log.error({ err }, 'model reload failed'))
          .finally(() => {
            polling = false;
          });
      }, cfg.MODELS_WATCH_INTERVAL_MS);
      timer.unref();
      fastify.addHook('onClose', async () => clearInterval(timer));
    }
  },
  { name: 'models', dependencies: ['compute'] },
);
