/**
 * POST /v1/restore (and its alias POST /v1/inpaint, registered with `task: 'inpaint'`): RED-Diff restoration with a
 * diffusion prior. The image as a raw `image/*` body or a multipart upload (file fields `image` and, for
 * inpainting, `mask`), parameters in the query string or multipart fields. Answers the restored image, or JSON with
 * `output=json`; `async=true` (or `Prefer: respond-async`) makes it a job.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Config } from '../../../src/config.js';
import { fail } from '../../../src/errors.js';
import { checkAutomaticJobCost, prefersAsync, replyWithJob } from '../../../src/jobs/http.js';
import type { ImageUploadDoc } from '../../../src/plugins/external/swagger.js';
import { estimateRestoreMs, imageSize, restoreJson, restoreService } from '../../../src/restore-service.js';
import { MAX_RESTORE_STEPS, restoreParams } from '../../../src/schemas/restore.js';
import { readImageRequest } from '../../_image-input.js';

const routes: FastifyPluginAsyncZod<{ config: Config; task?: 'inpaint' }> = async (fastify, opts) => {
  const service = restoreService(fastify, opts.config);
  const alias = opts.task;

  fastify.post(
    '/',
    {
      config: {
        imageUpload: {
          files: [
            {
              name: 'image',
              required: true,
              description: 'The grey image (measurement, or clean with simulate=true)',
            },
            {
              name: 'mask',
              description: 'Inpainting mask, image size: white = missing (unless maskMissing=black)',
            },
          ],
        } satisfies ImageUploadDoc,
      },
      schema: {
        tags: ['restore'],
        summary: alias
          ? 'Inpaint a grey image with a diffusion prior (RED-Diff); alias of POST /v1/restore?task=inpaint'
          : 'Restore a grey image with a diffusion prior (RED-Diff): inpaint, super-resolution, deblur, denoise',
        description:
          'Send the image as a raw image/* body or multipart/form-data with a file field `image` (and `mask` for ' +
          'inpainting: white = missing unless maskMissing=black; or maskRatio with seed, or box=x,y,w,h). The image ' +
          'is the measurement (holes, low resolution, blur, noise) unless simulate=true (then it is the clean ' +
          'reference, degraded by the service, and JSON reports PSNR against it). Colour is converted to grey. A ' +
          "side that is not a multiple of the model's down-sampling factor (8 for ddpm-fashion-mnist) is padded by " +
          `reflection and cropped back. steps <= ${MAX_RESTORE_STEPS}. A request whose estimated cost exceeds its deadline (timeoutMs or the default) becomes a job (202, header x-async-reason), up to JOBS_AUTO_MAX_COST_MS (413 above it). Answers the image (headers x-model, ` +
          'x-residual = ||y - H x|| / ||y||, x-steps); output=json adds residual, PSNR, parameters and timings.',
        querystring: restoreParams,
      },
    },
    async (request, reply) => {
      const { image, fields } = await readImageRequest(request, ['image', 'mask'], {
        maxPixels: opts.config.MAX_IMAGE_PIXELS,
      });
      const bytes = image.get('image');
      if (!bytes)
        throw fail('VALIDATION', 'No image: send an image/* body or a multipart file field "image"');
      const merged: Record<string, unknown> = { ...(request.query as Record<string, unknown>), ...fields };
      if (alias) {
        if (merged.task !== undefined && merged.task !== alias)
          throw fail('VALIDATION', `POST /v1/inpaint is task=inpaint (got task=${String(merged.task)})`);
        merged.task = alias;
      }
      const params = restoreParams.parse(merged);
      const mask = image.get('mask');
      // A job when asked (async=true, Prefer: respond-async), or when the estimated cost exceeds the deadline.
      const size = await imageSize(bytes);
      const estimatedMs = size && estimateRestoreMs(params, size.width, size.height);
      const deadlineMs = fastify.compute.deadlineFor(params.timeoutMs);
      const tooLong = estimatedMs !== undefined && estimatedMs > deadlineMs;
      const asked = params.async === 'true' || prefersAsync(request);
      // A job of its own accord only up to JOBS_AUTO_MAX_COST_MS (413 beyond).
      if (tooLong && !asked) checkAutomaticJobCost(opts.config, estimatedMs, deadlineMs);
      if (asked || tooLong) {
        // Refused now, as the synchronous path would, rather than accepted as a job that can only fail.
        service.requirePrior(params, size);
        if (tooLong) reply.header('x-async-reason', 'estimated cost exceeds the request deadline');
        return replyWithJob(fastify, request, reply, 'restore', {
          image: bytes,
          ...(mask ? { mask } : {}),
          params,
          accept: request.headers.accept,
        });
      }
      const out = await service.restore(reply, bytes, mask, params, request.headers.accept);
      reply.header('x-model', out.model);
      reply.header('x-residual', out.residual.toExponential(3));
      reply.header('x-steps', String(params.steps));
      reply.header('x-timing-total-ms', out.timings.totalMs.toFixed(1));
      if (params.output === 'json') return restoreJson(out);
      return reply.type(out.contentType).send(out.bytes);
    },
  );
};

export default routes;
