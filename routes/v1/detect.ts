/**
 * POST /v1/detect/adversarial: EPS-AD adversarial-input detection for the Fashion-MNIST classifier's domain.
 * One image as a raw `image/*` body; one or several as multipart file fields named `image` (repeated); or JSON
 * `{"images": ["<base64>", ...], ...params}`. Parameters in the query string, multipart text fields or the JSON body.
 * The answer (src/schemas/detect.ts `detectResponse`) has one entry per image and, for two images or more, the
 * two-sample test of the batch against the reference set.
 */
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Config } from '../../src/config.js';
import { detectService, screenDetectImages } from '../../src/detect-service.js';
import { fail } from '../../src/errors.js';
import { prefersAsync, replyWithJob } from '../../src/jobs/http.js';
import type { ImageUploadDoc } from '../../src/plugins/external/swagger.js';
import { detectJsonBody, detectResponse, detectRouteParams } from '../../src/schemas/detect.js';
import { multipartFieldValue, readImageRequest, readMultipart } from '../_image-input.js';

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

const routes: FastifyPluginAsyncZod<{ config: Config }> = async (fastify, opts) => {
  const cfg = opts.config;
  const service = detectService(fastify, cfg);

  fastify.post(
    '/adversarial',
    {
      config: {
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
        } satisfies ImageUploadDoc,
      },
      schema: {
        tags: ['detect'],
        summary: 'Is this input adversarial? EPS-AD (expected perturbation score + deep-kernel MMD)',
        description:
          'Tests 28x28 grey images (the domain of classifier-fashion-mnist) with the eps-ad-fashion-mnist detector. ' +
          'Send one image as a raw image/* body, one or several as multipart/form-data file fields named `image` ' +
          `(repeated), or JSON {"images": ["<base64>", ...]} with the parameters as JSON fields; at most ` +
          `DETECT_MAX_IMAGES (${cfg.DETECT_MAX_IMAGES}) images. Each image gets a score (biased MMD^2 between the ` +
          'reference EPS set and its EPS), the threshold calibrated on held-out clean images at `fpr`, `adversarial` ' +
          '(score > threshold) and a conformal p-value; two images or more are also tested as a batch (permutation ' +
          'p-value). Errors: no image 400 TW_VALIDATION; too many 413 TW_PROBLEM_TOO_LARGE; not 28x28 (without ' +
          'resize=true), colour, uncalibrated fpr or timesteps 422 TW_UNPROCESSABLE (details.expected = [28, 28, 1]); ' +
          'undecodable 400 TW_IMAGE_INVALID; other formats 415; detector not loaded 503 TW_MODEL_NOT_READY. ' +
          'With async=true (query, field or JSON) or `Prefer: respond-async` the test runs as a job: 202 with ' +
          'Location /v1/jobs/<id>, and GET /v1/jobs/<id>/result answers this JSON.',
        querystring: detectRouteParams,
        response: { 200: detectResponse },
      },
    },
    async (request, reply) => {
      const query = request.query as Record<string, unknown>;
      let images: Buffer[];
      let raw: Record<string, unknown>;
      if (request.isMultipart()) {
        const read = await readMultipart(() =>
          readMultipartImages(request, cfg.DETECT_MAX_IMAGES, cfg.BODY_LIMIT_BYTES),
        );
        images = read.images;
        raw = { ...query, ...read.fields };
      } else if (isPlainObject(request.body)) {
        const body = detectJsonBody.partial({ images: true }).parse({ ...query, ...request.body });
        const list = body.images ?? [];
        if (list.length > cfg.DETECT_MAX_IMAGES)
          throw fail(
            'PROBLEM_TOO_LARGE',
            `${list.length} images; at most ${cfg.DETECT_MAX_IMAGES} per request (DETECT_MAX_IMAGES)`,
            { details: { count: list.length, max: cfg.DETECT_MAX_IMAGES } },
          );
        images = list.map((b64) => Buffer.from(b64, 'base64'));
        raw = { ...query, ...request.body };
        delete raw.images;
      } else {
        const read = await readImageRequest(request, ['image']);
        const bytes = read.image.get('image');
        images = bytes ? [bytes] : [];
        raw = { ...query };
      }
      const { async: asJob, ...params } = detectRouteParams.parse(raw);
      // As a job: `async=true` (query, field or JSON body) or `Prefer: respond-async`; checked before queueing.
      if (asJob || prefersAsync(request)) {
        const detector = service.check(images.length, params);
        // Screened as the synchronous path screens them (format, size, bombs), not accepted to fail later.
        await screenDetectImages(cfg, images, params.resize);
        return replyWithJob(fastify, request, reply, 'detect', {
          images,
          params: { ...params, model: detector.name, version: detector.version },
        });
      }
      const out = await service.detect(reply, images, params);
      reply.header('x-model', out.detector);
      return out;
    },
  );
};

export default routes;
