/**
 * Dynamic batching and the device-memory budget of one compute worker (per thread: module state is per thread).
 *
 * Every single-input image network call of the serving code (Noise2Score windows, MID masks and windows) goes
 * through `predictBatched(tf, model, data, [h, w, c])`. Calls for the same model and the same window shape that
 * arrive within `maxDelayMs` of the first one waiting (from concurrent requests on this worker, or from the windows
 * and masks of one image, which the callers issue `batchParallelism()` at a time) are stacked into one
 * [n, h, w, c] tensor and run as one network call, Triton's dynamic batching: a batch leaves as soon as it holds
 * `maxSize` calls, or when the oldest call has waited `maxDelayMs`. On a GPU a batch of 8 costs about as much as
 * 3 single calls; on wasm it saves nothing, so batching is off there by default (`maxSize` 1: every call runs at
 * once, alone, exactly as before). Outputs are the same as one-by-one calls (the networks are per-sample: tested).
 *
 * Memory: with a budget (`memoryBudgetBytes`), each call is admitted before it runs against an estimate of the
 * device memory it needs, measured once per model and worker with tf.profile at two small sizes (peak bytes above
 * what was allocated, linear in the number of pixels: 160-168 bytes per pixel for the Noise2Score network at 32,
 * 64 and 128 px). A call whose estimate plus its model's weights exceeds the budget can never run: 413
 * TW_GPU_MEMORY_EXCEEDED. One that does not fit beside what is resident and what the calls in flight reserved:
 * 503 TW_GPU_MEMORY_BUSY with Retry-After. Nothing is allocated for a refused call, so the worker never runs into
 * the device's out-of-memory failure for work it admitted alone.
 */
import { fail } from '../errors.js';
import { checkCancelled } from '../util/cancellation.js';

type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type LayersModel = import('@tensorflow/tfjs').LayersModel;

export interface BatchingOptions {
  /** Most calls per network call; 1 = no batching. */
  maxSize: number;
  /** Most time (ms) the first call of a batch waits for others. */
  maxDelayMs: number;
  /** Device-memory budget of this worker (bytes); undefined = no limit. */
  memoryBudgetBytes?: number;
}

const DEFAULTS: BatchingOptions = { maxSize: 1, maxDelayMs: 2 };
let options: BatchingOptions = { ...DEFAULTS };

/** Batch size used on a hardware GPU when BATCH_MAX_SIZE is unset (the measured H200 sweet spot: 8 x 512^2). */
export const GPU_DEFAULT_BATCH_SIZE = 8;

/**
 * Sets this thread's batching and memory options. `maxSize` undefined: GPU_DEFAULT_BATCH_SIZE on a hardware GPU
 * (TF.js webgpu on a hardware adapter), else 1.
 */
export function configureBatching(
  opts: Partial<Omit<BatchingOptions, 'maxSize'>> & { maxSize?: number },
  runtime?: { backend: string; adapter?: { software: boolean } },
): BatchingOptions {
  const onGpu = runtime?.backend === 'webgpu' && runtime.adapter?.software === false;
  options = {
    maxSize: Math.max(1, Math.floor(opts.maxSize ?? (onGpu ? GPU_DEFAULT_BATCH_SIZE : 1))),
    maxDelayMs: Math.max(0, opts.maxDelayMs ?? DEFAULTS.maxDelayMs),
    memoryBudgetBytes: opts.memoryBudgetBytes,
  };
  return { ...options };
}

export function batchingOptions(): BatchingOptions {
  return { ...options };
}

/**
 * How many network calls of one image a caller should have in flight at once (its windows and masks): the batch
 * size, so that one large image fills a batch; 1 when batching is off (calls one after the other, as before).
 */
export function batchParallelism(): number {
  return options.maxSize;
}

export interface BatcherStats {
  /** Network calls made (one per batch). */
  calls: number;
  /** Inputs run (calls x batch sizes). */
  items: number;
  /** Largest batch so far. */
  maxBatch: number;
  /** Calls refused by the memory budget. */
  refused: number;
  /** Batch queues open now (one per model and input shape with calls waiting). */
  openQueues: number;
}

const stats: BatcherStats = { calls: 0, items: 0, maxBatch: 0, refused: 0, openQueues: 0 };

export function batcherStats(): BatcherStats {
  return { ...stats };
}

// --- memory estimate and admission -------------------------------------------------------------------------------

interface MemoryModel {
  /** Bytes of the model's weights. */
  weights: number;
  /** Peak bytes of one call above what was allocated before it: fixed + perPixel x (n x h x w). */
  fixed: number;
  perPixel: number;
}

const memoryModels = new WeakMap<object, Promise<MemoryModel>>();
/** Bytes reserved by admitted calls that have not finished. */
let reserved = 0;

async function peakBytes(tf: Tf, model: LayersModel, shape: number[]): Promise<number> {
  let before = 0;
  const profile = await tf.profile(() => {
    before = tf.memory().numBytes;
    const x = tf.zeros(shape);
    const y = model.predict(x) as Tensor;
    x.dispose();
    return y;
  });
  tf.dispose(profile.result as Tensor);
  // peakBytes counts every tensor alive (other models' weights too): keep what this call added.
  return profile.peakBytes - before;
}

/** The device-memory model of `model` (measured once per model and thread at 32 and 64 px, channels c). */
function memoryModel(tf: Tf, model: LayersModel, channels: number): Promise<MemoryModel> {
  let m = memoryModels.get(model);
  if (!m) {
    m = (async () => {
      const small = await peakBytes(tf, model, [1, 32, 32, channels]);
      const large = await peakBytes(tf, model, [1, 64, 64, channels]);
      const perPixel = Math.max(0, (large - small) / (64 * 64 - 32 * 32));
      const fixed = Math.max(0, small - perPixel * 32 * 32);
      const weights = model.countParams() * 4;
      return { weights, fixed, perPixel };
    })();
    memoryModels.set(model, m);
    m.catch(() => memoryModels.delete(model));
  }
  return m;
}

/** Estimated device bytes of one call of `model` on a [n, h, w, c] input (measured model; see the module note). */
export async function estimateDeviceBytes(tf: Tf, model: LayersModel, shape: number[]): Promise<number> {
  const [n, h, w, c] = shape;
  const m = await memoryModel(tf, model, c);
  return Math.ceil(m.fixed + m.perPixel * n * h * w);
}

const MB = 1024 * 1024;

/**
 * Admits one call of `model` on `shape` under the memory budget (if any) and returns the bytes reserved for it
 * (release them with releaseDeviceMemory once its tensors are freed). Throws 413 when the call can never fit,
 * 503 with Retry-After when it does not fit now. No budget: reserves nothing.
 */
export async function admitDeviceMemory(tf: Tf, model: LayersModel, shape: number[]): Promise<number> {
  const budget = options.memoryBudgetBytes;
  if (budget === undefined) return 0;
  const need = await estimateDeviceBytes(tf, model, shape);
  const { weights } = await memoryModel(tf, model, shape[3]);
  const label = `a ${shape.slice(1, 3).join('x')} input`;
  if (weights + need > budget) {
    stats.refused++;
    throw fail(
      'GPU_MEMORY_EXCEEDED',
      `The network needs about ${(need / MB).toFixed(1)} MB of device memory for ${label} (weights ${(weights / MB).toFixed(1)} MB): more than this worker's GPU_MEMORY_BUDGET_MB (${(budget / MB).toFixed(0)} MB). Send a smaller image, or use a smaller tile size`,
      { details: { neededBytes: need + weights, budgetBytes: budget } },
    );
  }
  // What is resident (loaded models, other tensors alive) plus what admitted calls still reserve; the calls in
  // flight are counted twice (their tensors and their reservation), which errs on the safe side.
  const resident = tf.memory().numBytes;
  if (resident + reserved + need > budget) {
    stats.refused++;
    throw fail(
      'GPU_MEMORY_BUSY',
      `The worker's device memory is taken by other work (about ${((resident + reserved) / MB).toFixed(1)} MB of ${(budget / MB).toFixed(0)} MB); retry shortly`,
      { retryAfter: 1, details: { neededBytes: need, inUseBytes: resident + reserved, budgetBytes: budget } },
    );
  }
  reserved += need;
  return need;
}

export function releaseDeviceMemory(bytes: number): void {
  reserved = Math.max(0, reserved - bytes);
}

// --- the batcher -------------------------------------------------------------------------------------------------

interface Waiting {
  data: Float32Array;
  resolve: (out: Float32Array) => void;
  reject: (err: unknown) => void;
}

interface Queue {
  items: Waiting[];
  timer: NodeJS.Timeout | null;
}

/** Queues per model, then per input shape "h,w,c". */
const queues = new WeakMap<object, Map<string, Queue>>();

async function runNetwork(
  tf: Tf,
  model: LayersModel,
  data: Float32Array,
  shape: number[],
): Promise<Float32Array> {
  const y = tf.tidy(
    () => model.predict(tf.tensor4d(data, shape as [number, number, number, number])) as Tensor,
  );
  stats.calls++;
  stats.items += shape[0];
  stats.maxBatch = Math.max(stats.maxBatch, shape[0]);
  try {
    return (await y.data()) as Float32Array;
  } finally {
    y.dispose();
  }
}

function flush(tf: Tf, model: LayersModel, key: string, shape: number[], queue: Queue): void {
  if (queue.timer) clearTimeout(queue.timer);
  queue.timer = null;
  const batch = queue.items.splice(0, options.maxSize);
  if (queue.items.length > 0) schedule(tf, model, key, shape, queue);
  // An emptied queue is dropped (a new one is made on the next call of this shape): one per image size would pile up.
  else if (queues.get(model)?.delete(key)) stats.openQueues--;
  if (batch.length === 0) return;
  const per = batch[0].data.length;
  const stacked = new Float32Array(per * batch.length);
  batch.forEach((item, i) => {
    stacked.set(item.data, i * per);
  });
  runNetwork(tf, model, stacked, [batch.length, ...shape]).then(
    (out) => {
      const outPer = out.length / batch.length;
      batch.forEach((item, i) => {
        item.resolve(out.slice(i * outPer, (i + 1) * outPer));
      });
    },
    (err) => {
      for (const item of batch) item.reject(err);
    },
  );
}

function schedule(tf: Tf, model: LayersModel, key: string, shape: number[], queue: Queue): void {
  if (queue.items.length >= options.maxSize) {
    flush(tf, model, key, shape, queue);
  } else if (!queue.timer) {
    queue.timer = setTimeout(() => flush(tf, model, key, shape, queue), options.maxDelayMs);
  }
}

/**
 * The network's output for one input [h, w, c] (`data` row-major, interleaved channels), run alone or batched with
 * other calls of the same model and shape (see the module note); admitted under the memory budget first.
 */
export async function predictBatched(
  tf: Tf,
  model: LayersModel,
  data: Float32Array,
  shape: [number, number, number],
): Promise<Float32Array> {
  if (data.length !== shape[0] * shape[1] * shape[2]) {
    throw new RangeError(`input has ${data.length} values, expected ${shape.join('x')}`);
  }
  // A cancelled task makes no more network calls (src/util/cancellation.ts): it neither fills batches nor
  // reserves device memory any longer.
  checkCancelled();
  const bytes = await admitDeviceMemory(tf, model, [1, ...shape]);
  try {
    if (options.maxSize <= 1) return await runNetwork(tf, model, data, [1, ...shape]);
    let byShape = queues.get(model);
    if (!byShape) {
      byShape = new Map();
      queues.set(model, byShape);
    }
    const key = shape.join(',');
    let queue = byShape.get(key);
    if (!queue) {
      queue = { items: [], timer: null };
      byShape.set(key, queue);
      stats.openQueues++;
    }
    const q = queue;
    return await new Promise<Float32Array>((resolve, reject) => {
      q.items.push({ data, resolve, reject });
      schedule(tf, model, key, shape, q);
    });
  } finally {
    releaseDeviceMemory(bytes);
  }
}

/**
 * Runs `fn` over `items` with at most `parallel` calls in flight, in chunks, and hands each result to `use` in
 * item order (so sums accumulate in the same order whatever the parallelism). parallel 1: one after the other.
 */
export async function forEachInChunks<I, R>(
  items: readonly I[],
  parallel: number,
  fn: (item: I, index: number) => Promise<R>,
  use: (result: R, item: I, index: number) => void,
): Promise<void> {
  const step = Math.max(1, Math.floor(parallel));
  for (let start = 0; start < items.length; start += step) {
    checkCancelled();
    const chunk = items.slice(start, start + step);
    const results = await Promise.all(chunk.map((item, i) => fn(item, start + i)));
    for (let i = 0; i < results.length; i++) use(results[i], chunk[i], start + i);
  }
}
