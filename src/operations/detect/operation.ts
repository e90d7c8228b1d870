/**
 * The adversarial-detection operation (POST /v1/detect/adversarial, GraphQL `detectAdversarial`, job `detect`):
 * EPS-AD. Screen the images' headers (format, size, DETECT_MAX_PIXELS, memory budget) on the main thread, then
 * decode them, check them against the detector's domain (28x28, one grey channel) and run the detector in the
 * compute pool (src/operations/detect/task.ts), and shape the answer (src/operations/detect/schema.ts).
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
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ComputePool, RunOptions } from '../../compute/pool.js';
import type { Config } from '../../config.js';
import { fail } from '../../errors.js';
import { type Admission, decodedBytes, imageBudgetFor } from '../../imaging/budget.js';
import { screenImage } from '../../imaging/codec.js';
import { ROUTE_MODEL_TASKS } from '../../nn/manifest.js';
import { detectorSection, extraSection } from '../../nn/manifest-sections.js';
import { multipartFieldValue, readImageRequest, readMultipart } from '../image-request.js';
import { asyncRequested, defineOperation, splitAsync } from '../spec.js';
import {
  type DetectParams,
  type DetectResponse,
  detectJsonBody,
  detectParams,
  detectResponse,
  detectRouteParams,
} from './schema.js';
import type { DetectTaskInput } from './task.js';

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

/**
 * Milliseconds per image and timestep of EPS-AD on the wasm backend, from `npx tsx bench/detect-cost.ts` (one
 * compute worker, the committed detector, T* = 20, 2 cores shared with other jobs, load average 12-15; two runs): the
 * EPS stage took 8 to 51 ms per image and timestep (1 to 64 images; the perturbed copies run 64 to a network call).
 * The permutation test costs DETECT_MS_PER_PERMUTATION_PAIR per permutation and pooled pair ((reference + images)^2),
 * 3.2 and 10.4 ns measured; the rest of the kernel stage stayed under 1.5 s. Used only to decide when a request
 * becomes a job, from the upper end as for denoise (64 images at T* = 20, ~64 s, do): a GPU backend is much faster,
 * so on it the estimate errs towards jobs.
 */
export const DETECT_MS_PER_IMAGE_STEP = 50;
export const DETECT_MS_PER_PERMUTATION_PAIR = 1e-5;

/** T* and reference set of the committed detector (eps-ad-fashion-mnist@1), when the request names no T*. */
const DETECT_DEFAULT_TIMESTEPS = 20;
const DETECT_REFERENCE_COUNT = 300;

/** Estimated compute time of a detection of `count` images. */
export function estimateDetectMs(params: DetectParams, count: number): number {
  const timesteps = params.timesteps ?? DETECT_DEFAULT_TIMESTEPS;
  const pooled = DETECT_REFERENCE_COUNT + count;
  const permutations =
    count >= 2 ? params.permutations * pooled * pooled * DETECT_MS_PER_PERMUTATION_PAIR : 0;
  return count * timesteps * DETECT_MS_PER_IMAGE_STEP + permutations;
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
  // Decoded, checked (grey) and resized in the worker (src/operations/detect/task.ts).
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

/**
 * The checks that need only the request and the detector's manifest, before any decoding or compute (and before a
 * job is queued): image count, detector ready, calibrated fpr and T*. Returns the detector.
 */
function checkDetector(
  models: NonNullable<import('../spec.js').CheckContext['models']>,
  params: DetectParams,
): { name: string; version: string } {
  const status = models.requireReady(params.model, params.version, {
    task: ROUTE_MODEL_TASKS.detect,
    use: 'adversarial detection (EPS-AD)',
  });
  const extra = extraSection(detectorSection, status.manifest);
  if (extra.calibratedFprs && !extra.calibratedFprs.some((f) => Math.abs(f - params.fpr) < 1e-9))
    throw fail(
      'UNPROCESSABLE',
      `fpr ${params.fpr} is not calibrated for ${status.name}@${status.version} (calibrated: ${extra.calibratedFprs.join(', ')})`,
      { details: { calibratedFprs: extra.calibratedFprs } },
    );
  if (params.timesteps !== undefined && extra.timesteps !== undefined && params.timesteps !== extra.timesteps)
    throw fail(
      'UNPROCESSABLE',
      `${status.name}@${status.version} is calibrated for timesteps (T*) = ${extra.timesteps} only, got ${params.timesteps}`,
      { details: { calibratedTimesteps: [extra.timesteps] } },
    );
  return { name: status.name, version: status.version };
}

/** Multipart with any number of `image` file fields (readImageRequest keeps one file per field name). */
async function readMultipartImages(
  request: FastifyRequest,
  maxImages: number,
  maxTotalBytes: number,
): Promise<{ images: Buffer[]; fields: Record<string, string> }> {
  const images: Buffer[] = [];
  const fields: Record<string, string> = {};
  let totalBytes = 0;
  // One more file than allowed may arrive, so that an over-long batch gets our 413 rather than a parser error;
  // the parts limit leaves room for the parameter fields beside the files.
  for await (const part of request.parts({ limits: { files: maxImages + 1, parts: maxImages + 65 } })) {
    if (part.type === 'file') {
      if (part.fieldname !== 'image')
        throw fail('VALIDATION', `Unexpected file field '${part.fieldname}' (expected: image, repeated)`);
      if (images.length >= maxImages)
        throw fail('PROBLEM_TOO_LARGE', `more than ${maxImages} images per request (DETECT_MAX_IMAGES)`, {
          details: { max: maxImages },
        });
      const bytes = await part.toBuffer();
      // Each file is capped on its own; the sum is capped too, so that many files cannot buffer
      // DETECT_MAX_IMAGES x BODY_LIMIT_BYTES in memory.
      totalBytes += bytes.length;
      if (totalBytes > maxTotalBytes)
        throw fail(
          'BODY_TOO_LARGE',
          `the images add up to more than ${maxTotalBytes} bytes (BODY_LIMIT_BYTES)`,
          {
            details: { limit: maxTotalBytes },
          },
        );
      images.push(bytes);
    } else {
      fields[part.fieldname] = multipartFieldValue(part);
    }
  }
  return { images, fields };
}

function isPlainObject(body: unknown): body is Record<string, unknown> {
  return typeof body === 'object' && body !== null && !Buffer.isBuffer(body) && !Array.isArray(body);
}

function tooManyImages(count: number, max: number) {
  return fail('PROBLEM_TOO_LARGE', `${count} images; at most ${max} per request (DETECT_MAX_IMAGES)`, {
    details: { count, max },
  });
}

/** One image as a raw body, several as multipart `image` fields, or JSON {images: [base64...]}. */
async function readDetectRequest(request: FastifyRequest, cfg: Config) {
  const query = request.query as Record<string, unknown>;
  if (request.isMultipart()) {
    const read = await readMultipart(() =>
      readMultipartImages(request, cfg.DETECT_MAX_IMAGES, cfg.BODY_LIMIT_BYTES),
    );
    return { images: read.images, raw: { ...query, ...read.fields } };
  }
  if (isPlainObject(request.body)) {
    const body = detectJsonBody.partial({ images: true }).parse({ ...query, ...request.body });
    const list = body.images ?? [];
    if (list.length > cfg.DETECT_MAX_IMAGES) throw tooManyImages(list.length, cfg.DETECT_MAX_IMAGES);
    const raw: Record<string, unknown> = { ...query, ...request.body };
    delete raw.images;
    return { images: list.map((b64) => Buffer.from(b64, 'base64')), raw };
  }
  const read = await readImageRequest(request, ['image']);
  const bytes = read.image.get('image');
  return { images: bytes ? [bytes] : [], raw: { ...query } };
}

export const detectInput = z.object({
  images: z.array(z.instanceof(Uint8Array)).describe('The image files, as bytes'),
  params: detectParams.prefault({}),
});
export type DetectInput = z.output<typeof detectInput>;

export const detect = defineOperation<DetectInput, DetectResponse>({
  id: 'detect',
  tag: 'detect',
  input: detectInput,
  check: async (ctx, input) => {
    checkImageCount(ctx.config, input.images.length);
    if (!ctx.models) return undefined;
    const detector = checkDetector(ctx.models, input.params);
    // A job's images are screened as the request's are (format, size, bombs), not accepted to fail later.
    if (ctx.mode === 'job') await screenDetectImages(ctx.config, input.images, input.params.resize);
    return { ...input, params: { ...input.params, model: detector.name, version: detector.version } };
  },
  timeoutMs: (input) => input.params.timeoutMs,
  estimateMs: (input) => estimateDetectMs(input.params, input.images.length),
  run: (rt, input) =>
    detectPipeline(rt.pool, rt.config, input.images, input.params, {
      detector: { name: input.params.model, version: input.params.version },
      run: rt.run,
      admission: rt.admission,
    }),
  reply: (result, reply: FastifyReply) => {
    reply.header('x-model', result.detector);
    return result;
  },
  http: {
    routes: [
      {
        url: '/v1/detect/adversarial',
        summary: 'Is this input adversarial? EPS-AD (expected perturbation score + deep-kernel MMD)',
        description:
          'Tests 28x28 grey images (the domain of classifier-fashion-mnist) with the eps-ad-fashion-mnist detector. ' +
          'Send one image as a raw image/* body, one or several as multipart/form-data file fields named `image` ' +
          '(repeated), or JSON {"images": ["<base64>", ...]} with the parameters as JSON fields; at most ' +
          'DETECT_MAX_IMAGES images. Each image gets a score (biased MMD^2 between the ' +
          'reference EPS set and its EPS), the threshold calibrated on held-out clean images at `fpr`, `adversarial` ' +
          '(score > threshold) and a conformal p-value; two images or more are also tested as a batch (permutation ' +
          'p-value). Errors: no image 400 TW_VALIDATION; too many 413 TW_PROBLEM_TOO_LARGE; not 28x28 (without ' +
          'resize=true), colour, uncalibrated fpr or timesteps 422 TW_UNPROCESSABLE (details.expected = [28, 28, 1]); ' +
          'undecodable 400 TW_IMAGE_INVALID; other formats 415; detector not loaded 503 TW_MODEL_NOT_READY. ' +
          'With async=true (query, field or JSON) or `Prefer: respond-async` the test runs as a job: 202 with ' +
          'Location /v1/jobs/<id>, and GET /v1/jobs/<id>/result answers this JSON. A request whose estimated cost ' +
          '(images x timesteps) exceeds its deadline (timeoutMs or the default) becomes a job of its own accord ' +
          '(202, x-async-reason), unless async=false.',
      },
    ],
    schema: { querystring: detectRouteParams, response: { 200: detectResponse } },
    imageUpload: {
      files: [
        {
          name: 'image',
          required: true,
          multiple: true,
          description: 'The images to test (28x28 grey; repeat the field for several)',
        },
      ],
      json: {
        type: 'object',
        required: ['images'],
        properties: {
          images: {
            type: 'array',
            items: { type: 'string', format: 'byte' },
            description: 'The images, base64-encoded; the other parameters as JSON fields',
          },
        },
      },
    },
    read: async (request, cfg) => {
      const { images, raw } = await readDetectRequest(request, cfg);
      const { rest, flag } = splitAsync(raw);
      return { input: { images, params: rest }, async: asyncRequested(request, flag) };
    },
  },
  graphql: {
    field: 'detectAdversarial',
    toInput: (args, cfg) => {
      const { images, async: flag, ...rest } = args;
      const list = Array.isArray(images) ? images.map(String) : [];
      if (list.length > cfg.DETECT_MAX_IMAGES) throw tooManyImages(list.length, cfg.DETECT_MAX_IMAGES);
      for (const text of list)
        if (text.length > (cfg.BODY_LIMIT_BYTES * 4) / 3 + 4)
          throw fail('BODY_TOO_LARGE', `An image is larger than BODY_LIMIT_BYTES = ${cfg.BODY_LIMIT_BYTES}`);
      const params = Object.fromEntries(
        Object.entries(rest).filter(([, v]) => v !== null && v !== undefined),
      );
      return {
        input: { images: list.map((b64) => Buffer.from(b64, 'base64')), params },
        async: asyncRequested(undefined, flag ?? undefined),
      };
    },
    answer: (result) => ({ ...result, jobId: null }),
    accepted: (view) => ({ jobId: view.id }),
  },
});
