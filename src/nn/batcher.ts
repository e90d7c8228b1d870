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
 * A call whose task is cancelled while it waits is dropped from its batch before the batch runs.
 *
 * Memory: with a budget (`memoryBudgetBytes`), each call is admitted before it runs against an estimate of the
 * device memory it needs, measured once per model and worker with tf.profile at two small sizes (peak bytes above
 * what was allocated, linear in the number of pixels: 160-168 bytes per pixel for the Noise2Score network at 32,
 * 64 and 128 px). A measurement never takes the device beyond the budget itself (measureWithinBudget: smaller
 * sizes on the way, or a conservative bound from the largest size that fits, measured again at the next use).
 * The other models are admitted the same way, each measured for its own use (a MemoryProbe):
 * RED-Diff once per run for one whole step at its padded shape, EPS-AD once per request for its largest batch of
 * perturbations and for the deep kernel's features and MMD of its images (admitDeviceUses). Measured on wasm
 * (`npx tsx bench/device-memory.ts`), bytes per input pixel: Noise2Score windows 168, MID windows (4 channels) 112,
 * a RED-Diff step of either DDPM U-Net 492, the EPS-AD score network 456 per perturbed 32x32 copy's pixel; the
 * EPS-AD deep kernel and MMD is quadratic in its images (a pooled (reference + n)^2 kernel: 5.8 MB for 2 images,
 * 17.5 MB for 256, 88 MB for 1024), measured at three sizes (MemoryProbe.quadratic); the same on webgpu (lavapipe,
 * `--backend webgpu`): TF.js counts tensor bytes, not the backend's buffers. A call whose estimate plus its model's weights exceeds the budget can never run: 413
 * TW_GPU_MEMORY_EXCEEDED. One that does not fit beside what is resident and what the calls in flight reserved:
 * 503 TW_GPU_MEMORY_BUSY with Retry-After. Nothing is allocated for a refused call, so the worker never runs into
 * the device's out-of-memory failure for work it admitted alone.
 */
import { fail } from '../errors.js';
import {
  checkCancelled,
  currentCancellation,
  runCancellable,
  TaskCancelledError,
} from '../util/cancellation.js';

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
  /** Peak bytes of one call above what was allocated before it: fixed + perPixel x p (+ perPixelSquared x p^2). */
  fixed: number;
  perPixel: number;
  /** Zero but for a quadratic probe. */
  perPixelSquared: number;
  /** A bound from the sizes the budget let the probe reach (boundPeak), not its fit: measured again next time. */
  partial?: boolean;
}

/**
 * How one use of a model is measured: `run` makes one call on zeros of an input shape [n, h, w, c] (whatever it
 * returns is freed after), at the two `shapes` (default [1, 32, 32, c] and [1, 64, 64, c]); its peak bytes above
 * what was allocated before are taken as linear in n x h x w between and beyond them. The default probe is one
 * `model.predict` (Noise2Score, MID); RED-Diff measures a whole step (the eps U-Net, the data gradient and Adam's
 * moments), EPS-AD a batch of perturbations and its deep-kernel features and MMD (src/operations/*\/task.ts).
 */
export interface MemoryProbe {
  /** Names the use: one model may be measured for several (cached per model, name and channels). */
  name: string;
  /** The shapes measured: two (linear), or three when `quadratic`. */
  shapes?: (channels: number) => number[][];
  /**
   * The peak grows as the square of the inputs (a kernel matrix between all of them, EPS-AD's MMD): measured at three
   * shapes, fixed + perPixel x p + perPixelSquared x p^2 for p = n x h x w input pixels.
   */
  quadratic?: boolean;
  run: (shape: number[]) => unknown;
}

/** One `model.predict` on a single input [n, h, w, c]: the default probe. */
function predictProbe(tf: Tf, model: LayersModel): MemoryProbe {
  return {
    name: 'predict',
    run: (shape) => {
      const x = tf.zeros(shape);
      const y = model.predict(x) as Tensor;
      x.dispose();
      return y;
    },
  };
}

const memoryModels = new WeakMap<object, Map<string, Promise<MemoryModel>>>();
/** Bytes reserved by admitted calls that have not finished. */
let reserved = 0;

/**
 * The measurement running now: tf.profile keeps one profile per thread (one flag, one kernel list, one result), so
 * measurements run one at a time (a probe never admits: it would wait for itself).
 */
let profiling: Promise<unknown> = Promise.resolve();

function peakBytes(tf: Tf, probe: MemoryProbe, shape: number[]): Promise<number> {
  const measured = profiling.then(() => profiledPeakBytes(tf, probe, shape));
  profiling = measured.catch(() => undefined);
  return measured;
}

async function profiledPeakBytes(tf: Tf, probe: MemoryProbe, shape: number[]): Promise<number> {
  let before = 0;
  let failure: { error: unknown } | undefined;
  const profile = await tf.profile(async () => {
    before = tf.memory().numBytes;
    // A probe that throws must not escape tf.profile: TF.js would leave profiling on for the thread, recording
    // (and timing) every later kernel of every task in a list that only grows.
    try {
      const out = await probe.run(shape);
      return out instanceof tf.Tensor || Array.isArray(out) ? (out as Tensor) : undefined;
    } catch (error) {
      failure = { error };
      return undefined;
    }
  });
  tf.dispose(profile.result as Tensor);
  if (failure) throw failure.error;
  // peakBytes counts every tensor alive (other models' weights too): keep what this call added. It is sampled
  // after each kernel: a probe that ran none (-Infinity) is counted by what it made.
  const peak = Number.isFinite(profile.peakBytes) ? profile.peakBytes : before + profile.newBytes;
  return peak - before;
}

const pixelsOf = (shape: number[]) => shape[0] * shape[1] * shape[2];

/**
 * The peak bytes as a function of input pixels p through the measured points [p, bytes] (ascending p): a line
 * through two, a parabola through three (a parabola that bends down is taken as the line through its ends, which
 * does not underestimate beyond them). Never negative terms: a negative one is taken as zero (over-estimating).
 */
export function fitPeak(points: [number, number][]): Omit<MemoryModel, 'weights'> {
  const [p1, b1] = points[0];
  const [p3, b3] = points[points.length - 1];
  let perPixelSquared = 0;
  let perPixel = (b3 - b1) / (p3 - p1);
  if (points.length === 3) {
    const [p2, b2] = points[1];
    const curvature = ((b3 - b2) / (p3 - p2) - (b2 - b1) / (p2 - p1)) / (p3 - p1);
    if (curvature > 0) {
      perPixelSquared = curvature;
      perPixel = (b2 - b1) / (p2 - p1) - curvature * (p1 + p2);
    }
  }
  perPixel = Math.max(0, perPixel);
  const fixed = Math.max(0, b1 - perPixel * p1 - perPixelSquared * p1 * p1);
  return { fixed, perPixel, perPixelSquared };
}

/** Most extra (smaller) probe sizes measured on the way to one of a probe's shapes under a budget. */
export const MAX_PROBE_STEPS = 6;
/** A step towards a probe shape must grow its pixels at least this much, else the measurement stops there. */
const MIN_PROBE_GROWTH = 1.25;

/**
 * An upper bound of the peak at p pixels for p >= p0, from the peak b0 measured at p0: the peaks are taken, as
 * fitPeak does, as fixed + perPixel p (+ perPixelSquared p^2 for a quadratic probe) with no negative term, so
 * b(p) <= b0 (p / p0)^k, k = 2 (quadratic) or 1.
 */
const peakBound = ([p0, b0]: [number, number], p: number, k: number) => b0 * (p / p0) ** k;

/**
 * Measures the probe's shapes (ascending), each only once its peak is sure to fit in the memory budget (if any)
 * beside what is resident and reserved: the probe itself must not take the device beyond the budget it guards (a
 * tiny GPU_MEMORY_BUDGET_MB, EPS-AD's 512 images). When a shape's bound (peakBound from the last size measured)
 * does not fit, smaller sizes of it (fewer inputs n, its h, w and c) are measured on the way, each within the
 * bound, at most MAX_PROBE_STEPS of them; a shape that cannot be reached ends the measurement. With a budget large
 * enough, exactly the probe's shapes are measured, as without one.
 */
async function measureWithinBudget(
  tf: Tf,
  probe: MemoryProbe,
  shapes: number[][],
): Promise<{ wanted: [number, number][]; reached: number; largest: [number, number] }> {
  const wanted: [number, number][] = [];
  const k = probe.quadratic ? 2 : 1;
  let last: { shape: number[]; point: [number, number] } | undefined;
  const measure = async (shape: number[]) => {
    const point: [number, number] = [pixelsOf(shape), await peakBytes(tf, probe, shape)];
    last = { shape, point };
    return point;
  };
  for (const shape of shapes) {
    for (let step = 0; last && options.memoryBudgetBytes !== undefined; step++) {
      const room = options.memoryBudgetBytes - tf.memory().numBytes - reserved;
      const p = pixelsOf(shape);
      if (peakBound(last.point, p, k) <= room) break;
      // The most pixels whose bound fits, as inputs of the shape's size (only n shrinks).
      const [p0, b0] = last.point;
      const [n, h, w, c] = shape;
      const sameInput = last.shape[1] === h && last.shape[2] === w && last.shape[3] === c;
      const fits = room > 0 ? Math.floor((p0 * (room / b0) ** (1 / k)) / (h * w)) : 0;
      const smaller = Math.min(n - 1, fits);
      if (!sameInput || step >= MAX_PROBE_STEPS || smaller * h * w < MIN_PROBE_GROWTH * p0)
        return { wanted, reached: wanted.length, largest: last.point };
      await measure([smaller, h, w, c]);
    }
    wanted.push(await measure(shape));
  }
  return { wanted, reached: wanted.length, largest: last?.point ?? [1, 0] };
}

/**
 * The memory model of a probe not measured up to its shapes (the budget stopped it), from its largest measured
 * point [p0, b0]: fixed b0, plus b0 (p / p0)^2 (quadratic) or b0 p / p0: above the peak at every size (peakBound
 * beyond p0; at most b0 below it), at most twice it at and beyond p0.
 */
export function boundPeak([p0, b0]: [number, number], quadratic: boolean): Omit<MemoryModel, 'weights'> {
  return quadratic
    ? { fixed: b0, perPixel: 0, perPixelSquared: b0 / (p0 * p0) }
    : { fixed: b0, perPixel: b0 / p0, perPixelSquared: 0 };
}

/** The device-memory model of one use of `model` (measured once per model, probe and thread; channels c). */
function memoryModel(tf: Tf, model: LayersModel, channels: number, probe: MemoryProbe): Promise<MemoryModel> {
  let byProbe = memoryModels.get(model);
  if (!byProbe) {
    byProbe = new Map();
    memoryModels.set(model, byProbe);
  }
  const key = `${probe.name}:${channels}`;
  let m = byProbe.get(key);
  if (!m) {
    const cache = byProbe;
    // Shared by every task that needs this use: measured outside the cancellation scope of the task that happened
    // to start it, so that its cancel (a probe that runs a RED-Diff step checks it) fails no other task waiting here.
    const measure = async (): Promise<MemoryModel> => {
      const shapes = probe.shapes?.(channels) ?? [
        [1, 32, 32, channels],
        [1, 64, 64, channels],
      ];
      const wanted = probe.quadratic ? 3 : 2;
      if (shapes.length !== wanted)
        throw new RangeError(
          `memory probe '${probe.name}' gives ${shapes.length} shapes, expected ${wanted}`,
        );
      const points = await measureWithinBudget(tf, probe, shapes);
      const weights = model.countParams() * 4;
      if (points.reached === shapes.length) return { weights, ...fitPeak(points.wanted) };
      return { weights, ...boundPeak(points.largest, probe.quadratic === true), partial: true };
    };
    m = runCancellable(() => false, measure);
    cache.set(key, m);
    // A failed measurement, or a partial one (the room then may have been taken by other work), is not kept.
    m.then(
      (model) => model.partial && cache.delete(key),
      () => cache.delete(key),
    );
  }
  return m;
}

/** Estimated device bytes of one call of `model` on a [n, h, w, c] input (measured model; see the module note). */
export async function estimateDeviceBytes(
  tf: Tf,
  model: LayersModel,
  shape: number[],
  probe: MemoryProbe = predictProbe(tf, model),
): Promise<number> {
  const m = await memoryModel(tf, model, shape[3], probe);
  const p = pixelsOf(shape);
  return Math.ceil(m.fixed + m.perPixel * p + m.perPixelSquared * p * p);
}

/** Bytes per input pixel of one use of a model, as measured in this thread (benchmarks and docs record them). */
export async function measuredBytesPerPixel(
  tf: Tf,
  model: LayersModel,
  channels: number,
  probe: MemoryProbe = predictProbe(tf, model),
): Promise<{ fixed: number; perPixel: number; perPixelSquared: number; weights: number }> {
  const { partial: _partial, ...m } = await memoryModel(tf, model, channels, probe);
  return m;
}

const MB = 1024 * 1024;

/** One use of a model a task will make: its input shape [n, h, w, c] and how it is measured (default: predict). */
export interface DeviceUse {
  model: LayersModel;
  shape: number[];
  probe?: MemoryProbe;
}

/**
 * Admits one call of `model` on `shape` under the memory budget (if any) and returns the bytes reserved for it
 * (release them with releaseDeviceMemory once its tensors are freed). Throws 413 when the call can never fit,
 * 503 with Retry-After when it does not fit now. No budget: reserves nothing.
 */
export async function admitDeviceMemory(
  tf: Tf,
  model: LayersModel,
  shape: number[],
  probe?: MemoryProbe,
  advice?: string,
): Promise<number> {
  return admitDeviceUses(tf, [{ model, shape, probe }], advice);
}

/**
 * Admits a task that makes the `uses` one after the other (EPS-AD: the score network's batches, then the deep
 * kernel): it needs every model's weights, and the largest of the uses' peaks, reserved until it releases them.
 */
export async function admitDeviceUses(
  tf: Tf,
  uses: readonly DeviceUse[],
  advice = 'Send a smaller image, or use a smaller tile size',
): Promise<number> {
  const budget = options.memoryBudgetBytes;
  if (budget === undefined || uses.length === 0) return 0;
  let need = 0;
  let weights = 0;
  let largest = uses[0];
  const models = new Set<LayersModel>();
  for (const use of uses) {
    const probe = use.probe ?? predictProbe(tf, use.model);
    const bytes = await estimateDeviceBytes(tf, use.model, use.shape, probe);
    if (bytes > need) {
      need = bytes;
      largest = use;
    }
    if (!models.has(use.model)) {
      models.add(use.model);
      weights += (await memoryModel(tf, use.model, use.shape[3], probe)).weights;
    }
  }
  const [n, h, w] = largest.shape;
  const label = n > 1 ? `${n} inputs of ${h}x${w}` : `a ${h}x${w} input`;
  if (weights + need > budget) {
    stats.refused++;
    throw fail(
      'GPU_MEMORY_EXCEEDED',
      `The network needs about ${(need / MB).toFixed(1)} MB of device memory for ${label} (weights ${(weights / MB).toFixed(1)} MB): more than this worker's GPU_MEMORY_BUDGET_MB (${(budget / MB).toFixed(0)} MB). ${advice}`,
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
  /** The cancellation test of the task that queued the call (read when its batch leaves). */
  cancelled: () => boolean;
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
  // A call whose task was cancelled while it waited is dropped before the batch runs (its task gets the
  // cancellation): it neither takes a place in the batch nor costs a network call.
  const live: Waiting[] = [];
  for (const item of queue.items) {
    if (item.cancelled()) item.reject(new TaskCancelledError());
    else live.push(item);
  }
  queue.items = live;
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
      q.items.push({ data, cancelled: currentCancellation(), resolve, reject });
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
