/**
 * Denoising as a job: the image travels as bytes (not base64), the result is the encoded image, served by
 * GET /v1/jobs/:id/result in its own content type (metadata in headers, as the synchronous route), or with
 * `output=json` the synchronous route's JSON.
 */
import { z } from 'zod';
import { denoiseJson, denoiseModelName, denoisePipeline } from '../../denoise-service.js';
import { denoiseParams } from '../../schemas/denoise.js';
import { registerJobOperation } from '../registry.js';

export interface DenoiseJobResult {
  bytes: Uint8Array;
  contentType: string;
  width: number;
  height: number;
  channels: number;
  noise: string;
  level: number;
  levelEstimated: boolean;
  model: string;
  /** `output=json`: the result answers the synchronous route's JSON. Absent in results stored before: image. */
  output?: 'image' | 'json';
  /** The JSON answer's fields other than the image (kept as bytes). */
  json?: Omit<ReturnType<typeof denoiseJson>, 'image'>;
}

export const denoiseJob = registerJobOperation({
  name: 'denoise',
  inputSchema: z.object({
    image: z.instanceof(Uint8Array).describe('The image file bytes'),
    params: denoiseParams.prefault({}),
    accept: z.string().optional(),
  }),
  check: (_config, input) => {
    denoiseModelName(input.params);
  },
  run: async (rt, input, ctx): Promise<DenoiseJobResult> => {
    const out = await denoisePipeline(rt.pool, rt.config, input.image, input.params, {
      model: { name: denoiseModelName(input.params), version: input.params.version },
      accept: input.accept,
      run: { signal: ctx.signal, onProgress: ctx.onProgress, timeoutMs: ctx.timeoutMs },
      // A job waits for image memory rather than failing.
      admission: 'wait',
    });
    const { image: _image, ...json } = denoiseJson(out);
    return {
      output: input.params.output,
      json,
      bytes: out.bytes,
      contentType: out.contentType,
      width: out.image.width,
      height: out.image.height,
      channels: out.image.channels,
      noise: out.noise,
      level: out.level,
      levelEstimated: out.levelEstimated,
      model: out.model,
    };
  },
  resultToResponse: (result, reply) => {
    if (result.output === 'json' && result.json)
      return reply.send({ image: Buffer.from(result.bytes).toString('base64'), ...result.json });
    return reply
      .header('x-noise-level', String(result.level))
      .header('x-noise-level-estimated', String(result.levelEstimated))
      .header('x-model', result.model)
      .type(result.contentType)
      .send(Buffer.from(result.bytes));
  },
});
