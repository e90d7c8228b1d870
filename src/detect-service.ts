/**
 * Adversarial detection (EPS-AD) as the HTTP and GraphQL adapters use it: decode the images (sharp, in the calling
 * process), check them against the detector's domain (28x28, one grey channel), run the detector in the compute
 * pool, and shape the answer (src/schemas/detect.ts).
 *
 * Domain rules, so that a client never gets a score for an input the detector was not calibrated on:
 * - size: an image that is not 28x28 is refused (422, TW_UNPROCESSABLE, details.expected = [28, 28, 1]) unless the
 *   request says resize=true; it is then resized to 28x28 with sharp (Lanczos3, aspect ratio not kept) and the
 *   result carries resized: true;
 * - channels: grey images (and colour files whose three channels are equal, i.e. grey saved as RGB) are accepted;
 *   a real colour image is refused (422): converting it to grey would test a different image than the client sent.
 *   Alpha is dropped.
 * - count: 0 images is 400 (TW_VALIDATION); more than DETECT_MAX_IMAGES is 413 (TW_PROBLEM_TOO_LARGE).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import sharp from 'sharp';
import type { DetectTaskInput } from './compute/handlers/detect.js';
import type { ComputePool, RunOptions } from './compute/pool.js';
import type { Config } from './config.js';
import { fail } from './errors.js';
import { decodeImage } from './imaging/codec.js';
import type { DetectParams, DetectResponse } from './schemas/detect.js';

const SIDE = 28;

interface PreparedImage {
  data: Float32Array;
  width: number;
  height: number;
  resized: boolean;
}

/** One image as 28x28 grey [0, 1] values, or the coded error that says why not. */
export async function prepareDetectImage(
  cfg: Config,
  bytes: Buffer,
  index: number,
  resize: boolean,
): Promise<PreparedImage> {
  const decoded = await decodeImage(bytes, { maxPixels: cfg.MAX_IMAGE_PIXELS, mode: 'keep' });
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
  const bytes8 = Buffer.from(Uint8Array.from(grey, (v) => Math.round(Math.min(1, Math.max(0, v)) * 255)));
  const raw = await sharp(bytes8, { raw: { width, height, channels: 1 } })
    .resize(SIDE, SIDE, { fit: 'fill', kernel: 'lanczos3' })
    // sharp writes raw output as sRGB unless told otherwise.
    .toColourspace('b-w')
    .raw()
    .toBuffer();
  return { data: Float32Array.from(raw, (v) => v / 255), width, height, resized: true };
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
  opts: { detector: { name: string; version?: string }; run?: RunOptions },
): Promise<DetectResponse> {
  const t0 = performance.now();
  checkImageCount(cfg, images.length);
  const prepared = await Promise.all(
    images.map((bytes, i) =>
      prepareDetectImage(
        cfg,
        Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        i,
        params.resize,
      ),
    ),
  );
  const pixels = new Float32Array(prepared.length * SIDE * SIDE);
  for (const [i, p] of prepared.entries()) pixels.set(p.data, i * SIDE * SIDE);
  const tDecode = performance.now();
  const input: DetectTaskInput = {
    detector: opts.detector,
    images: pixels,
    count: prepared.length,
    timesteps: params.timesteps,
    seed: params.seed,
    fpr: params.fpr,
    permutations: params.permutations,
  };
  const result = await pool.run('detect.epsad', input, { ...opts.run, transferInput: true });
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
      decodeMs: tDecode - t0,
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
    const status = fastify.models.requireReady(params.model, params.version);
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
