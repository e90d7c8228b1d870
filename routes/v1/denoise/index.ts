/**
 * POST /v1/denoise: the image as a raw `image/*` body or a multipart upload (field `image`), parameters in the
 * query string (or multipart fields). Answers the denoised image, or JSON with `output=json`.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Config } from '../../../src/config.js';
import { denoiseJson, denoiseService } from '../../../src/denoise-service.js';
import { fail } from '../../../src/errors.js';
import { prefersAsync, replyWithJob } from '../../../src/jobs/http.js';
import type { ImageUploadDoc } from '../../../src/plugins/external/swagger.js';
import { denoiseParams } from '../../../src/schemas/denoise.js';
import { readImageRequest } from '../../_image-input.js';

const routes: FastifyPluginAsyncZod<{ config: Config }> = async (fastify, opts) => {
  const service = denoiseService(fastify, opts.config);

  fastify.post(
    '/',
    {
      config: {
        imageUpload: {
          files: [{ name: 'image', required: true, description: 'The noisy image (PNG, JPEG, WebP, TIFF)' }],
        } satisfies ImageUploadDoc,
      },
      schema: {
        tags: ['denoise'],
        summary: 'Denoise an image (Noise2Score: Gaussian, Poisson, Gamma noise; level given or auto)',
        description:
          'Send the image as a raw image/* body (PNG, JPEG, WebP, TIFF) or multipart/form-data with a file field ' +
          '`image`. Answers the denoised image (format from `format` or Accept; PNG by default) with headers ' +
          'x-noise-level, x-noise-level-estimated and x-model; `output=json` answers JSON with the image in base64. ' +
          '`method=mid` removes real camera noise (model mid-rgb, learned without clean/noisy pairs): `masks` random ' +
          "masks are averaged (default: the model's measured default, header x-masks), `seed` fixes them; " +
          '`ensemble` (1, 2, 4, 8) averages the Noise2Score score over that many flips of the image (header ' +
          'x-ensemble): better, at that many times the network time (bench/RESULTS.md); ' +
          '`noise`/`level` do not apply. Grey images are replicated to RGB and the output is the mean of the three ' +
          'output channels; an alpha channel is dropped (the answer is opaque).',
        querystring: denoiseParams,
      },
    },
    async (request, reply) => {
      const { image, fields } = await readImageRequest(request, ['image'], {
        maxPixels: opts.config.MAX_IMAGE_PIXELS,
      });
      const bytes = image.get('image');
      if (!bytes)
        throw fail('VALIDATION', 'No image: send an image/* body or a multipart file field "image"');
      const params = denoiseParams.parse({ ...request.query, ...fields });
      // As a job: `async=true` (query or field) or `Prefer: respond-async`; the bytes are stored, not base64.
      if (
        fields.async === 'true' ||
        (request.query as { async?: string }).async === 'true' ||
        prefersAsync(request)
      ) {
        service.checkModel(params);
        return replyWithJob(fastify, request, reply, 'denoise', {
          image: bytes,
          params,
          accept: request.headers.accept,
        });
      }
      const out = await service.denoise(reply, bytes, params, request.headers.accept);
      reply.header('x-noise-level', String(out.level));
      reply.header('x-noise-level-estimated', String(out.levelEstimated));
      reply.header('x-model', out.model);
      if (out.masks !== undefined) reply.header('x-masks', String(out.masks));
      if (out.ensemble !== undefined) reply.header('x-ensemble', String(out.ensemble));
      reply.header('x-timing-total-ms', out.timings.totalMs.toFixed(1));
      if (params.output === 'json') return denoiseJson(out);
      return reply.type(out.contentType).send(out.bytes);
    },
  );
};

export default routes;
