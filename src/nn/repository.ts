/**
 * The model repository: `models/<name>/<version>/{manifest.json, model.json, weight shards}`.
 *
 * Two halves:
 * - scanning (`scanModelRepository`, `resolveModel`) reads only JSON and file sizes and imports no TF.js, so the
 *   main thread can list models and report broken ones (with a reason, never by throwing);
 * - loading (`getModel`, `loadModelFromEntry`, `warmupModel`) runs in worker threads with the worker's TF.js
 *   instance passed in, and keeps one loaded copy of each model per worker.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { GraphModel, LayersModel, Tensor } from '@tensorflow/tfjs';
import { runtimeModelTier } from './backend.js';
import { fileSystemIO, inspectModelFiles } from './fs-io.js';
import { registerCustomLayerClasses } from './layers.js';
import { MODEL_ID_PATTERN, type ModelManifest, type ModelTier, parseModelManifest } from './manifest.js';
import { extraSection, warmupSection } from './manifest-sections.js';

type Tf = typeof import('@tensorflow/tfjs');
export type AnyModel = LayersModel | GraphModel;

export const MANIFEST_FILE = 'manifest.json';

export interface ModelEntry {
  name: string;
  version: string;
  /** Absolute path of the version folder. */
  dir: string;
  /** Present when the folder holds a valid, loadable-looking model. */
  manifest?: ModelManifest;
  /** Why the folder was rejected (exactly one of manifest / error is set). */
  error?: string;
  /** The model's folder could not be listed (an I/O error, not an empty folder): its versions are unknown. */
  unreadable?: boolean;
}

export type ModelErrorCode = 'MODEL_NOT_FOUND' | 'MODEL_INVALID' | 'MODEL_LOAD_FAILED';

export class ModelLoadError extends Error {
  constructor(
    readonly code: ModelErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ModelLoadError';
  }
}

/** Orders versions so that 'v10' > 'v9' and '1.10' > '1.9' (digit runs compare as numbers). */
export function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true, sensitivity: 'base' });
}

async function listDirectories(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  // Dot-folders (.git, .DS_Store's siblings, editors' temp dirs) are not models.
  return entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort(compareVersions);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Validates one version folder; never throws. */
export async function inspectModelVersion(
  modelsDir: string,
  name: string,
  version: string,
): Promise<ModelEntry> {
  const dir = path.resolve(modelsDir, name, version);
  const entry: ModelEntry = { name, version, dir };
  if (!MODEL_ID_PATTERN.test(name)) return { ...entry, error: `invalid model name '${name}'` };
  if (!MODEL_ID_PATTERN.test(version)) return { ...entry, error: `invalid model version '${version}'` };
  let manifestJson: unknown;
  try {
    manifestJson = JSON.parse(await readFile(path.join(dir, MANIFEST_FILE), 'utf8'));
  } catch (error) {
    const missing = (error as { code?: string }).code === 'ENOENT';
    return {
      ...entry,
      error: missing ? `${MANIFEST_FILE} is missing` : `${MANIFEST_FILE}: ${describe(error)}`,
    };
  }
  const parsed = parseModelManifest(manifestJson);
  if (!parsed.ok) return { ...entry, error: `${MANIFEST_FILE} is invalid: ${parsed.error}` };
  const manifest = parsed.manifest;
  if (manifest.name !== name || manifest.version !== version) {
    return {
      ...entry,
      error: `${MANIFEST_FILE} says ${manifest.name}@${manifest.version} but the folder is ${name}/${version}`,
    };
  }
  try {
    const files = await inspectModelFiles(dir);
    if (files.format !== manifest.format) {
      return {
        ...entry,
        error: `manifest format '${manifest.format}' but model.json is a ${files.format} model`,
      };
    }
  } catch (error) {
    return { ...entry, error: describe(error) };
  }
  return { ...entry, manifest };
}

/** Every `<name>/<version>` folder under modelsDir, valid or not, sorted by name then version. */
export async function scanModelRepository(modelsDir: string): Promise<ModelEntry[]> {
  const root = path.resolve(modelsDir);
  const entries: ModelEntry[] = [];
  for (const name of await listDirectories(root)) {
    if (!MODEL_ID_PATTERN.test(name)) {
      entries.push({ name, version: '', dir: path.join(root, name), error: `invalid model name '${name}'` });
      continue;
    }
    const versions = await listDirectories(path.join(root, name)).catch((err: unknown) => {
      const why = err instanceof Error ? err.message : String(err);
      entries.push({
        name,
        version: '',
        dir: path.join(root, name),
        error: `cannot read: ${why}`,
        unreadable: true,
      });
      return null;
    });
    if (versions === null) continue;
    if (versions.length === 0) {
      entries.push({ name, version: '', dir: path.join(root, name), error: 'no version folders' });
    }
    for (const version of versions) entries.push(await inspectModelVersion(root, name, version));
  }
  return entries;
}

/**
 * The entry for name@version, or, when version is omitted, the default version of name (preferredVersion among its
 * valid versions for the backend's `tier`, 'cpu' when not given).
 * An explicitly requested version is returned even if invalid, so the caller can report its error.
 */
export function resolveModel(
  entries: ModelEntry[],
  name: string,
  version?: string,
  tier: ModelTier = 'cpu',
): ModelEntry | undefined {
  if (version !== undefined) return entries.find((e) => e.name === name && e.version === version);
  return preferredVersion(
    entries.filter((e) => e.name === name && e.manifest),
    tier,
  );
}

/**
 * The default among versions of one model: the highest version of the preferred tier; else the highest 'cpu'
 * version (every backend runs it); else the highest of any tier (a GPU-only model on a CPU backend is slow, not
 * wrong). The tier of a version is its manifest's (absent: 'cpu').
 */
export function preferredVersion<T extends { version: string; manifest?: { tier?: ModelTier } }>(
  versions: T[],
  tier: ModelTier,
): T | undefined {
  const highest = (list: T[]) =>
    list.reduce<T | undefined>(
      (best, v) => (!best || compareVersions(v.version, best.version) > 0 ? v : best),
      undefined,
    );
  const tierOf = (v: T) => v.manifest?.tier ?? 'cpu';
  return (
    highest(versions.filter((v) => tierOf(v) === tier)) ??
    highest(versions.filter((v) => tierOf(v) === 'cpu')) ??
    highest(versions)
  );
}

// --- worker side ------------------------------------------------------------------------------------------------

type CustomLayerRegistrar = (tf: Tf) => void;
const customLayerRegistrars = new Set<CustomLayerRegistrar>();

/**
 * Adds a hook that registers custom layer classes (tf.serialization.registerClass) before any model is loaded.
 * Hooks run before every load, so they must be idempotent. Returns a function that removes the hook.
 */
export function registerCustomLayers(registrar: CustomLayerRegistrar): () => void {
  customLayerRegistrars.add(registrar);
  return () => customLayerRegistrars.delete(registrar);
}

/** Loads the model files of a validated entry with the fs IOHandler (no tfjs-node, no fetch). */
export async function loadModelFromEntry<M extends AnyModel = LayersModel>(
  tf: Tf,
  dir: string,
  manifest: ModelManifest,
): Promise<M> {
  // Every model family's custom layers (src/nn/layers.ts), then any hook's.
  registerCustomLayerClasses(tf);
  for (const register of customLayerRegistrars) register(tf);
  const handler = fileSystemIO(dir);
  try {
    const model =
      manifest.format === 'graph' ? await tf.loadGraphModel(handler) : await tf.loadLayersModel(handler);
    return model as M;
  } catch (error) {
    throw new ModelLoadError(
      'MODEL_LOAD_FAILED',
      `model ${manifest.name}@${manifest.version} failed to load: ${describe(error)}`,
    );
  }
}

export interface LoadedModel<M extends AnyModel = LayersModel> {
  name: string;
  version: string;
  dir: string;
  manifest: ModelManifest;
  /** A LayersModel or GraphModel according to manifest.format; the type parameter is the caller's assertion. */
  model: M;
}

const modelCache = new Map<string, Promise<LoadedModel<AnyModel>>>();

async function findEntry(modelsDir: string, name: string, version?: string): Promise<ModelEntry> {
  if (!MODEL_ID_PATTERN.test(name))
    throw new ModelLoadError('MODEL_NOT_FOUND', `invalid model name '${name}'`);
  if (version !== undefined && !MODEL_ID_PATTERN.test(version)) {
    throw new ModelLoadError('MODEL_NOT_FOUND', `invalid model version '${version}'`);
  }
  const versions = await listDirectories(path.resolve(modelsDir, name)).catch(() => [] as string[]);
  const entries = await Promise.all(versions.map((v) => inspectModelVersion(modelsDir, name, v)));
  const entry = resolveModel(entries, name, version, runtimeModelTier());
  if (!entry) {
    const what = version === undefined ? `model '${name}' has no valid version` : `model ${name}@${version}`;
    throw new ModelLoadError('MODEL_NOT_FOUND', `${what} not found in ${path.resolve(modelsDir)}`);
  }
  if (!entry.manifest) {
    throw new ModelLoadError('MODEL_INVALID', `model ${name}@${entry.version} is invalid: ${entry.error}`);
  }
  return entry;
}

/**
 * Versions that failed to load in this worker when they were picked as a model's latest: work that names no version
 * falls back to the newest version that loads instead of failing at each call (a broken version dropped into the
 * repository must not take version-less jobs down; the main thread's registry keeps it out of the synchronous routes).
 * Cleared with the model cache.
 */
const failedLatest = new Set<string>();

/**
 * The loaded model name@version (latest valid version when omitted), loaded once per worker and per TF.js
 * instance. A failed load is not cached, so a fixed model folder can be retried by name@version. Without a version,
 * the latest is looked up on disk at each call (a few small reads), so a version added to the repository since (hot
 * reload) is used by work that names none, such as jobs, without restarting the worker; a latest version that fails
 * to load is skipped for the next newest (see failedLatest).
 */
export async function getModel<M extends AnyModel = LayersModel>(
  tf: Tf,
  modelsDir: string,
  name: string,
  version?: string,
): Promise<LoadedModel<M>> {
  if (version !== undefined) return loadVersion<M>(tf, modelsDir, name, version);
  for (;;) {
    const resolved = (await findEntry(modelsDir, name)).version;
    const key = cacheKey(modelsDir, name, resolved);
    if (failedLatest.has(key)) {
      const fallback = await newestLoadable(modelsDir, name);
      if (!fallback) return loadVersion<M>(tf, modelsDir, name, resolved); // nothing else: report its own error
      try {
        return await loadVersion<M>(tf, modelsDir, name, fallback);
      } catch (err) {
        failedLatest.add(cacheKey(modelsDir, name, fallback));
        throw err;
      }
    }
    try {
      return await loadVersion<M>(tf, modelsDir, name, resolved);
    } catch (err) {
      if (err instanceof ModelLoadError && err.code === 'MODEL_NOT_FOUND') throw err;
      failedLatest.add(key);
      if (!(await newestLoadable(modelsDir, name))) throw err;
    }
  }
}

const cacheKey = (modelsDir: string, name: string, version: string) =>
  `${path.resolve(modelsDir)}\0${name}\0${version}`;

/** The newest valid version of `name` that has not failed to load in this worker, if any. */
async function newestLoadable(modelsDir: string, name: string): Promise<string | undefined> {
  const versions = await listDirectories(path.resolve(modelsDir, name)).catch(() => [] as string[]);
  const entries = await Promise.all(versions.map((v) => inspectModelVersion(modelsDir, name, v)));
  const usable = entries.filter((e) => e.manifest && !failedLatest.has(cacheKey(modelsDir, name, e.version)));
  return resolveModel(usable, name, undefined, runtimeModelTier())?.version;
}

function loadVersion<M extends AnyModel>(
  tf: Tf,
  modelsDir: string,
  name: string,
  version: string,
): Promise<LoadedModel<M>> {
  const key = cacheKey(modelsDir, name, version);
  let loading = modelCache.get(key);
  if (!loading) {
    loading = (async () => {
      const entry = await findEntry(modelsDir, name, version);
      const manifest = entry.manifest!;
      const model = await loadModelFromEntry<AnyModel>(tf, entry.dir, manifest);
      return { name, version: entry.version, dir: entry.dir, manifest, model };
    })();
    modelCache.set(key, loading);
    loading.catch(() => modelCache.delete(key));
  }
  return loading as Promise<LoadedModel<M>>;
}

/**
 * Forgets name@version in this worker (hot reload: the version folder is gone) and disposes its weights. True
 * when it was cached.
 */
export async function forgetModel(modelsDir: string, name: string, version: string): Promise<boolean> {
  const key = cacheKey(modelsDir, name, version);
  const cached = modelCache.get(key);
  if (!cached) return false;
  modelCache.delete(key);
  const loaded = await cached.catch(() => undefined);
  loaded?.model.dispose();
  return true;
}

const cacheCleanups = new Set<() => Promise<void> | void>();

/**
 * Registers work for clearModelCache(): caches built on top of this worker's models (tensors derived from them)
 * are freed with them. Registering the same function twice keeps one.
 */
export function onModelCacheClear(cleanup: () => Promise<void> | void): void {
  cacheCleanups.add(cleanup);
}

/** Disposes every cached model of this worker, and what onModelCacheClear() registered (tests, hot reload). */
export async function clearModelCache(): Promise<void> {
  for (const cleanup of cacheCleanups) await cleanup();
  const pending = [...modelCache.values()];
  modelCache.clear();
  failedLatest.clear();
  for (const result of await Promise.allSettled(pending)) {
    if (result.status === 'fulfilled') result.value.model.dispose();
  }
}

/** Default spatial size for free dimensions during warm-up: divisible by the usual down-sampling factors. */
const WARMUP_SPATIAL = 32;

/** A small concrete input shape from the manifest: batch 1, free spatial dims WARMUP_SPATIAL (or extra.warmupSize). */
export function warmupShape(manifest: ModelManifest): number[] {
  const spatial = extraSection(warmupSection, manifest).warmupSize ?? WARMUP_SPATIAL;
  const last = manifest.inputShape.length - 1;
  return manifest.inputShape.map((dim, i) => {
    if (dim !== null) return dim;
    if (i === 0) return 1;
    if (i === last) return manifest.channels;
    return spatial;
  });
}

/**
 * Runs one inference on zeros so kernels are set up and weights packed before the first request; every tensor it
 * creates is disposed. Returns the output shapes and the time taken.
 */
export async function warmupModel(
  tf: Tf,
  model: AnyModel,
  manifest: ModelManifest,
): Promise<{ inputShape: number[]; outputShapes: number[][]; ms: number }> {
  const started = performance.now();
  const inputShape = warmupShape(manifest);
  const input = tf.zeros(inputShape);
  try {
    let output: Tensor | Tensor[] | Record<string, Tensor>;
    try {
      output = model.predict(input) as Tensor | Tensor[];
    } catch (error) {
      // Graph models with control flow only run asynchronously.
      if (!('executeAsync' in model) || !/executeAsync/.test(describe(error))) throw error;
      output = (await model.executeAsync(input)) as Tensor | Tensor[];
    }
    const outputs: Tensor[] =
      output instanceof tf.Tensor ? [output] : Array.isArray(output) ? output : Object.values(output);
    try {
      for (const t of outputs) await t.data();
      return { inputShape, outputShapes: outputs.map((t) => t.shape), ms: performance.now() - started };
    } finally {
      tf.dispose(outputs);
    }
  } finally {
    input.dispose();
  }
}
