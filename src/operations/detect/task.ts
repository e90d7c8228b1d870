/**
 * EPS-AD detection in a worker: decode the images when they came encoded (each checked grey, and resized to 28x28
 * when the request allows it; the main thread only screened their headers), load the detector (phi through the model repository, then detector.json and the
 * float16 reference set from its folder; cached per worker) and its score model, compute the EPS of the images,
 * score each one against the reference, and test the batch as a whole when it has two images or more.
 */

import sharp from 'sharp';
import { type EpsAdDetector, loadEpsAdDetector } from '../../adversarial/detector.js';
import { ddpmEpsNetwork, EPS_BATCH_SIZE, epsMemoryProbe } from '../../adversarial/eps.js';
import { epsInChunks } from '../../adversarial/pipeline.js';
import { schedulerFor } from '../../diffusion/scheduler.js';
import { fail } from '../../errors.js';
import { decodeImage } from '../../imaging/codec.js';
import { admitDeviceUses, releaseDeviceMemory } from '../../nn/batcher.js';
import { ROUTE_MODEL_TASKS, requireModelTask } from '../../nn/manifest.js';
import { diffusionSection, extraSection } from '../../nn/manifest-sections.js';
import { getModel, onModelCacheClear } from '../../nn/repository.js';
import '../../compute/handlers/layers.js';
import type { HandlerContext } from '../../compute/handlers/context.js';

type LayersModel = import('@tensorflow/tfjs').LayersModel;

export interface DetectTaskInput {
  /** Version omitted: the latest valid version in the repository. */
  detector: { name: string; version?: string };
  /** count x 28 x 28 grey values in [0, 1] (the detector's image shape, checked by the caller); or `encoded`. */
  images?: Float32Array;
  /** The image files, decoded and checked here (prepareDetectImage). */
  encoded?: Uint8Array[];
  /** With `encoded`: resize an image that is not 28x28 (otherwise 422). */
  resize?: boolean;
  /** With `encoded`: the pixel limit of each file. */
  maxPixels?: number;
  count: number;
  /** T*; omitted: the detector's own. */
  timesteps?: number;
  seed: number;
  fpr: number;
  permutations: number;
}

export interface DetectTaskResult {
  detector: { name: string; version: string };
  scoreModel: { name: string; version: string };
  timesteps: number;
  threshold: number;
  scores: number[];
  pValues: number[];
  batch: { statistic: number; pValue: number; permutations: number; count: number } | null;
  /** With `encoded`: each image's size as sent and whether it was resized. */
  prepared?: { resized: boolean; width: number; height: number }[];
  timings: { loadMs: number; decodeMs: number; epsMs: number; kernelMs: number; totalMs: number };
}

const SIDE = 28;

export interface PreparedImage {
  data: Float32Array;
  width: number;
  height: number;
  resized: boolean;
}

/**
 * One image as 28x28 grey [0, 1] values, or the coded error that says why not. Runs in the worker: decoding,
 * the colour check and the resize never block the event loop.
 */
export async function prepareDetectImage(
  maxPixels: number,
  bytes: Uint8Array,
  index: number,
  resize: boolean,
): Promise<PreparedImage> {
  const decoded = await decodeImage(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), {
    maxPixels,
    mode: 'keep',
  });
  const { width, height, channels, data } = decoded.image;
  const where = `image ${index}`;
  if (channels !== 1) {
    // Grey saved as RGB(A) is still grey; anything with distinct channels is colour.
    for (let p = 0; p < width * height; p++) {
      const r = data[p * channels];
      if (data[p * channels + 1] !== r || data[p * channels + 2] !== r)
        throw fail(
          'UNPROCESSABLE',
          `${where} is a colour image; the detector takes grey ${SIDE}x${SIDE} images (1 channel)`,
          { details: { index, expected: [SIDE, SIDE, 1], got: [height, width, channels] } },
        );
    }
  }
  const grey = new Float32Array(width * height);
  for (let p = 0; p < grey.length; p++) grey[p] = data[p * channels];
  if (width === SIDE && height === SIDE) return { data: grey, width, height, resized: false };
  if (!resize)
    throw fail(
      'UNPROCESSABLE',
      `${where} is ${width}x${height}; the detector expects ${SIDE}x${SIDE}x1 (send resize=true to resize it)`,
      { details: { index, expected: [SIDE, SIDE, 1], got: [height, width, 1] } },
    );
  const bytes8 = Buffer.allocUnsafe(grey.length);
  for (let p = 0; p < grey.length; p++) bytes8[p] = Math.round(Math.min(1, Math.max(0, grey[p])) * 255);
  const raw = await sharp(bytes8, { raw: { width, height, channels: 1 } })
    .resize(SIDE, SIDE, { fit: 'fill', kernel: 'lanczos3' })
    // sharp writes raw output as sRGB unless told otherwise.
    .toColourspace('b-w')
    .raw()
    .toBuffer();
  const out = new Float32Array(raw.length);
  for (let p = 0; p < raw.length; p++) out[p] = raw[p] / 255;
  return { data: out, width, height, resized: true };
}

/**
 * One EpsAdDetector per loaded phi model (the repository caches phi per worker; this caches the rest: the
 * reference set and its features, as tensors), freed when the repository's cache is cleared.
 */
const detectors = new Map<LayersModel, Promise<EpsAdDetector>>();
onModelCacheClear(async () => {
  const pending = [...detectors.values()];
  detectors.clear();
  for (const result of await Promise.allSettled(pending)) {
    if (result.status === 'fulfilled') result.value.dispose();
  }
});

/** Images per EPS chunk: progress granularity (each is T* network evaluations). */
const CHUNK = 16;

export async function detect(input: DetectTaskInput, ctx: HandlerContext): Promise<DetectTaskResult> {
  const started = performance.now();
  const { tf } = await ctx.tfjs();
  const loaded = await getModel(tf, ctx.options.modelsDir, input.detector.name, input.detector.version);
  requireModelTask(loaded, ROUTE_MODEL_TASKS.detect, 'adversarial detection (EPS-AD)');
  let pending = detectors.get(loaded.model);
  if (!pending) {
    pending = loadEpsAdDetector(tf, loaded.dir, loaded.model);
    detectors.set(loaded.model, pending);
    pending.catch(() => detectors.delete(loaded.model));
  }
  const detector = await pending;
  const { config } = detector;
  const timesteps = input.timesteps ?? config.timesteps;
  if (timesteps !== config.timesteps)
    throw fail(
      'UNPROCESSABLE',
      `${loaded.name}@${loaded.version} is calibrated for timesteps (T*) = ${config.timesteps} only, got ${timesteps}`,
      { details: { calibratedTimesteps: [config.timesteps] } },
    );
  let threshold: number;
  try {
    threshold = detector.threshold(input.fpr);
  } catch {
    throw fail('UNPROCESSABLE', `fpr ${input.fpr} is not calibrated for ${loaded.name}@${loaded.version}`, {
      details: { calibratedFprs: config.calibration.fprs },
    });
  }
  const [height, width, channels] = config.imageShape;
  const tDecode0 = performance.now();
  let images = input.images;
  let prepared: PreparedImage[] | undefined;
  if (input.encoded) {
    const encoded = input.encoded;
    prepared = [];
    for (const [i, bytes] of encoded.entries())
      prepared.push(
        await prepareDetectImage(input.maxPixels ?? SIDE * SIDE, bytes, i, input.resize ?? false),
      );
    images = new Float32Array(prepared.length * SIDE * SIDE);
    for (const [i, p] of prepared.entries()) images.set(p.data, i * SIDE * SIDE);
  }
  const decodeMs = performance.now() - tDecode0;
  if (!images || images.length !== input.count * height * width * channels)
    throw fail('VALIDATION', `expected ${input.count} images of ${height}x${width}x${channels} values`);
  const scoreModel = await getModel(
    tf,
    ctx.options.modelsDir,
    config.scoreModel.name,
    config.scoreModel.version,
  );
  // Built once per model from its manifest's schedule section.
  const schedule = schedulerFor(
    scoreModel.manifest,
    extraSection(diffusionSection, scoreModel.manifest).schedule,
  );
  const tLoad = performance.now();

  // Admitted under GPU_MEMORY_BUDGET_MB (src/nn/batcher.ts): the score network's largest batch of perturbations,
  // then the deep kernel on all the images, one after the other.
  const side = detector.epsSide;
  const reservedBytes = await admitDeviceUses(
    tf,
    [
      {
        model: scoreModel.model,
        shape: [Math.min(EPS_BATCH_SIZE, Math.min(CHUNK, input.count) * timesteps), side, side, channels],
        probe: epsMemoryProbe(tf, scoreModel.model),
      },
      { model: loaded.model, shape: [input.count, side, side, channels], probe: detector.memoryProbe() },
    ],
    'Send fewer images',
  );
  let eps: Float32Array;
  let tEps: number;
  let scores: number[];
  let batch: Awaited<ReturnType<EpsAdDetector['batchTest']>> | null;
  try {
    eps = await epsInChunks(tf, ddpmEpsNetwork(tf, scoreModel.model), schedule, images, input.count, {
      timesteps,
      seed: input.seed,
      chunk: CHUNK,
      side: width,
      onChunk: (done, total) => ctx.progress((0.9 * done) / total, `EPS of ${done}/${total} images`),
    });
    tEps = performance.now();
    scores = Array.from(await detector.scores(eps, input.count));
    batch =
      input.count >= 2
        ? await detector.batchTest(eps, input.count, { permutations: input.permutations, seed: input.seed })
        : null;
  } finally {
    releaseDeviceMemory(reservedBytes);
  }
  const tKernel = performance.now();
  return {
    detector: { name: loaded.name, version: loaded.version },
    scoreModel: { name: scoreModel.name, version: scoreModel.version },
    timesteps,
    threshold,
    scores,
    pValues: scores.map((s) => detector.pValue(s)),
    batch: batch
      ? {
          statistic: batch.statistic,
          pValue: batch.pValue,
          permutations: batch.permutations,
          count: batch.count,
        }
      : null,
    ...(prepared
      ? { prepared: prepared.map(({ resized, width: w, height: h }) => ({ resized, width: w, height: h })) }
      : {}),
    timings: {
      loadMs: tLoad - started - decodeMs,
      decodeMs,
      epsMs: tEps - tLoad,
      kernelMs: tKernel - tEps,
      totalMs: performance.now() - started,
    },
  };
}
