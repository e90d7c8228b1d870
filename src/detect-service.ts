/**
 * Adversarial detection (EPS-AD) as the HTTP and GraphQL adapters use it: screen the images' headers (format, size,
 * DETECT_MAX_PIXELS, memory budget) on the main thread, then decode them, check them against the detector's domain
 * (28x28, one grey channel) and run the detector in the compute pool (src/compute/handlers/detect.ts), and shape
 * the answer (src/schemas/detect.ts).
 *
 * Domain rules, so that a client never gets a score for an input the detector was not calibrated on:
 * - size: an image that is not 28x28 is refused (422, TW_UNPROCESSABLE, details.expected = [28, 28, 1]) unless the
 *   request says resize=true (and then at most DETECT_MAX_PIXELS, 413 beyond, judged from the header before any
 *   decoding); it is then resized to 28x28 with sharp (Lanczos3, aspect ratio not kept) and the result carries
 *   resized: true;
 * - channels: grey images (and colour files whose three channels are equal, i.e. grey saved as RGB) are accepted;
 *   a real colour image is refused (422): converting it to grey would test a different image than the client sent.
 *   Alpha is dropped.
 * - count: 0 images is 400 (TW_VALIDATION); more than DETECT_MAX_IMAGES is 413 (TW_PROBLEM_TOO_LARGE).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { DetectTaskInput } from './compute/handlers/detect.js';
import type { ComputePool, RunOptions } from './compute/pool.js';
import type { Config } from './config.js';
import { fail } from './errors.js';
import { type Admission, decodedBytes, imageBudgetFor } from './imaging/budget.js';
import { screenImage } from './imaging/codec.js';
import { ROUTE_MODEL_TASKS } from './nn/manifest.js';
import type { DetectParams, DetectResponse } from './schemas/detect.js';

const SIDE = 28;

/**
 * What the headers tell before any pixel is decoded (the synchronous route, GraphQL, and the async route before
 * it queues a job all pass here): each image is one we read (415/400/413 as src/imaging/codec.ts screenImage says),
 * 28x28 unless resize=true, and with resize=true not far above the detector's size (DETECT_MAX_PIXELS, 413).
 * Returns the bytes the decoded images will take (the memory budget's unit).
 */
export async function screenDetectImages(
  cfg: Config,
  images: Uint8Array[],
  resize: boolean,
): Promise<number> {
  let total = 0;
  for (const [index, bytes] of images.entries()) {
    const { width, height, header } = await screenImage(
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      cfg.MAX_IMAGE_PIXELS,
    );
    const channels = header.channels ?? 4;
    if (width !== SIDE || height !== SIDE) {
      if (!resize)
        throw fail(
          'UNPROCESSABLE',
          `image ${index} is ${width}x${height}; the detector expects ${SIDE}x${SIDE}x1 (send resize=true to resize it)`,
          // The shape as the detector would see it (grey): colour is judged after decoding, in the worker.
          { details: { index, expected: [SIDE, SIDE, 1], got: [height, width, 1] } },
        );
      if (width * height > cfg.DETECT_MAX_PIXELS)
        throw fail(
          'IMAGE_TOO_LARGE',
          `image ${index} is ${width}x${height} (${width * height} pixels); with resize=true the detector takes at most DETECT_MAX_PIXELS = ${cfg.DETECT_MAX_PIXELS} (it sees ${SIDE}x${SIDE})`,
          {
            details: { index, width, height, pixels: width * height, maxPixels: cfg.DETECT_MAX_PIXELS },
          },
        );
    }
    total += decodedBytes(width, height, channels);
  }
  return total;
}

export function checkImageCount(cfg: Config, count: number): void {
  if (count === 0)
    throw fail(
      'VALIDATION',
      'No image: send an image/* body, multipart file fields "image", or JSON {"images": [...]}',
    );
  const max = cfg.DETECT_MAX_IMAGES;
  if (count > max)
    throw fail('PROBLEM_TOO_LARGE', `${count} images; at most ${max} per request (DETECT_MAX_IMAGES)`, {
      details: { count, max },
    });
}

/**
 * Decode, check and test the images in the compute pool, and shape the answer: the part of a detection that needs
 * no Fastify (the synchronous route and the `detect` job both run it). The detector's own checks (calibrated fpr
 * and T*) run again in the handler, so a job whose detector changed since submission still gets a coded error.
 */
export async function detectPipeline(
  pool: ComputePool,
  cfg: Config,
  images: Uint8Array[],
  params: DetectParams,
  opts: {
    detector: { name: string; version?: string };
    run?: RunOptions;
    /** Beyond the image memory budget: refuse at once (requests, default) or wait for room (jobs). */
    admission?: Admission;
  },
): Promise<DetectResponse> {
  const t0 = performance.now();
  checkImageCount(cfg, images.length);
  const bytes = await screenDetectImages(cfg, images, params.resize);
  const release = await imageBudgetFor(pool, cfg).reserve(bytes, {
    admission: opts.admission,
    signal: opts.run?.signal,
  });
  try {
    return await detectScreened(pool, cfg, images, params, opts, t0);
  } finally {
    release();
  }
}

async function detectScreened(
  pool: ComputePool,
  cfg: Config,
  images: Uint8Array[],
  params: DetectParams,
  opts: { detector: { name: string; version?: string }; run?: RunOptions },
  t0: number,
): Promise<DetectResponse> {
  const tDecode = performance.now();
  // Decoded, checked (grey) and resized in the worker (src/compute/handlers/detect.ts).
  const input: DetectTaskInput = {
    detector: opts.detector,
    encoded: images,
    resize: params.resize,
    maxPixels: cfg.MAX_IMAGE_PIXELS,
    count: images.length,
    timesteps: params.timesteps,
    seed: params.seed,
    fpr: params.fpr,
    permutations: params.permutations,
  };
  const result = await pool.run('detect.epsad', input, { ...opts.run });
  const prepared = result.prepared ?? [];
  return {
    detector: `${result.detector.name}@${result.detector.version}`,
    scoreModel: `${result.scoreModel.name}@${result.scoreModel.version}`,
    timesteps: result.timesteps,
    seed: params.seed,
    fpr: params.fpr,
    threshold: result.threshold,
    count: prepared.length,
    results: prepared.map((p, i) => ({
      index: i,
      score: result.scores[i],
      threshold: result.threshold,
      adversarial: result.scores[i] > result.threshold,
      pValue: result.pValues[i],
      resized: p.resized,
      width: p.width,
      height: p.height,
    })),
    batch: result.batch ? { ...result.batch, adversarial: result.batch.pValue < params.fpr } : null,
    timings: {
      decodeMs: tDecode - t0 + result.timings.decodeMs,
      epsMs: result.timings.epsMs,
      kernelMs: result.timings.kernelMs,
      computeMs: result.timings.totalMs,
      totalMs: performance.now() - t0,
    },
  };
}

export function detectService(fastify: FastifyInstance, cfg: Config) {
  /**
   * The checks that need only the request and the detector's manifest, before any decoding or compute (and
   * before a job is queued): image count, detector ready, calibrated fpr and T*. Returns the detector.
   */
  const check = (count: number, params: DetectParams) => {
    checkImageCount(cfg, count);
    const status = fastify.models.requireReady(params.model, params.version, {
      task: ROUTE_MODEL_TASKS.detect,
      use: 'adversarial detection (EPS-AD)',
    });
    const extra = (status.manifest?.extra ?? {}) as { calibratedFprs?: number[]; timesteps?: number };
    if (extra.calibratedFprs && !extra.calibratedFprs.some((f) => Math.abs(f - params.fpr) < 1e-9))
      throw fail(
        'UNPROCESSABLE',
        `fpr ${params.fpr} is not calibrated for ${status.name}@${status.version} (calibrated: ${extra.calibratedFprs.join(', ')})`,
        { details: { calibratedFprs: extra.calibratedFprs } },
      );
    if (
      params.timesteps !== undefined &&
      extra.timesteps !== undefined &&
      params.timesteps !== extra.timesteps
    )
      throw fail(
        'UNPROCESSABLE',
        `${status.name}@${status.version} is calibrated for timesteps (T*) = ${extra.timesteps} only, got ${params.timesteps}`,
        { details: { calibratedTimesteps: [extra.timesteps] } },
      );
    return { name: status.name, version: status.version };
  };
  return {
    check,
    async detect(reply: FastifyReply, images: Buffer[], params: DetectParams): Promise<DetectResponse> {
      const detector = check(images.length, params);
      return fastify.compute.withRequest(reply, params.timeoutMs, (run) =>
        detectPipeline(fastify.compute.pool, cfg, images, params, { detector, run }),
      );
    },
  };
}
