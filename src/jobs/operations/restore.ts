/**
 * Restoration (RED-Diff) as a job: the image and mask travel as bytes (not base64), progress is RED-Diff's step
 * count, and the result is the encoded image, served by GET /v1/jobs/:id/result in its own content type (metadata
 * in headers, as the synchronous route), or with `output=json` the synchronous route's JSON (trace strip included).
 */
import { z } from 'zod';
import { restoreJson, restorePipeline } from '../../restore-service.js';
import { restoreParams } from '../../schemas/restore.js';
import { registerJobOperation } from '../registry.js';

export interface RestoreJobResult {
  bytes: Uint8Array;
  contentType: string;
  width: number;
  height: number;
  task: string;
  model: string;
  residual: number;
  psnr: number | null;
  steps: number;
  /** `output=json`: the result answers the synchronous route's JSON. Absent in results stored before: image. */
  output?: 'image' | 'json';
  /** The JSON answer's fields other than the two images (which are kept as bytes). */
  json?: Omit<ReturnType<typeof restoreJson>, 'image' | 'trace'>;
  /** `trace` > 0: the PNG strip of intermediate estimates and their steps. */
  trace?: { png: Uint8Array; steps: number[] } | null;
}

export const restoreJob = registerJobOperation({
  name: 'restore',
  inputSchema: z.object({
    image: z.instanceof(Uint8Array).describe('The image file bytes'),
    mask: z.instanceof(Uint8Array).optional().describe('Inpainting: the mask image bytes'),
    params: restoreParams.prefault({}),
    accept: z.string().optional(),
  }),
  run: async (rt, input, ctx): Promise<RestoreJobResult> => {
    const out = await restorePipeline(rt.pool, rt.config, input.image, input.mask, input.params, {
      model: { name: input.params.model, version: input.params.version },
      accept: input.accept,
      run: { signal: ctx.signal, onProgress: ctx.onProgress, timeoutMs: ctx.timeoutMs },
      // A job waits for image memory rather than failing.
      admission: 'wait',
    });
    const { image: _image, trace: _trace, ...json } = restoreJson(out);
    return {
      output: input.params.output,
      json,
      trace: out.trace,
      bytes: out.bytes,
      contentType: out.contentType,
      width: out.image.width,
      height: out.image.height,
      task: out.task,
      model: out.model,
      residual: out.residual,
      psnr: out.psnr !== null && Number.isFinite(out.psnr) ? out.psnr : null,
      steps: input.params.steps,
    };
  },
  resultToResponse: (result, reply) => {
    if (result.output === 'json' && result.json) {
      const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
      return reply.send({
        image: base64(result.bytes),
        ...result.json,
        trace: result.trace ? { image: base64(result.trace.png), steps: result.trace.steps } : null,
      });
    }
    return reply
      .header('x-model', result.model)
      .header('x-residual', result.residual.toExponential(3))
      .header('x-steps', String(result.steps))
      .type(result.contentType)
      .send(Buffer.from(result.bytes));
  },
});
