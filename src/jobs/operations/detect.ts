/**
 * Adversarial detection (EPS-AD) as a job, for batches that take longer than a request should: the images travel
 * as bytes (not base64), progress is the EPS computation's, and the result is the JSON answer of the synchronous
 * route (src/schemas/detect.ts `detectResponse`). Submitted by POST /v1/detect/adversarial with `async=true` or
 * `Prefer: respond-async`.
 */
import { z } from 'zod';
import { checkImageCount, detectPipeline } from '../../detect-service.js';
import { detectParams } from '../../schemas/detect.js';
import { registerJobOperation } from '../registry.js';

export const detectJob = registerJobOperation({
  name: 'detect',
  inputSchema: z.object({
    images: z.array(z.instanceof(Uint8Array)).describe('The image files, as bytes'),
    params: detectParams.prefault({}),
  }),
  check: (config, input) => checkImageCount(config, input.images.length),
  run: (rt, input, ctx) =>
    detectPipeline(rt.pool, rt.config, input.images, input.params, {
      detector: { name: input.params.model, version: input.params.version },
      run: { signal: ctx.signal, onProgress: ctx.onProgress, timeoutMs: ctx.timeoutMs },
      // A job waits for image memory rather than failing.
      admission: 'wait',
    }),
});
