/**
 * GraphQL `restore`: the same parameters and service as POST /v1/restore, with the image and mask in base64.
 * `async: true` submits a job and answers its id instead (the image is then at GET /v1/jobs/{id}/result).
 */
import type { FastifyInstance } from 'fastify';
import type { IResolvers, MercuriusContext } from 'mercurius';
import type { Config } from '../config.js';
import { fail } from '../errors.js';
import { restoreJson, restoreService } from '../restore-service.js';
import { restoreParams } from '../schemas/restore.js';

const TASKS: Record<string, string> = {
  INPAINT: 'inpaint',
  SUPER_RESOLUTION: 'super-resolution',
  DEBLUR: 'deblur',
  DENOISE: 'denoise',
};

export function restoreResolvers(cfg: Config) {
  return (app: FastifyInstance): IResolvers<unknown, MercuriusContext> => {
    const service = restoreService(app, cfg);
    const decode = (b64: unknown, what: string): Buffer | undefined => {
      if (b64 === null || b64 === undefined) return undefined;
      const text = String(b64);
      if (text.length > (cfg.BODY_LIMIT_BYTES * 4) / 3 + 4)
        throw fail('BODY_TOO_LARGE', `The ${what} is larger than BODY_LIMIT_BYTES = ${cfg.BODY_LIMIT_BYTES}`);
      return Buffer.from(text, 'base64');
    };
    return {
      Query: {
        restore: async (_r: unknown, args: { input: Record<string, unknown> }, ctx: MercuriusContext) => {
          const { image, mask, task, async: asJob, ...rest } = args.input;
          const bytes = decode(image, 'image') as Buffer;
          const maskBytes = decode(mask, 'mask');
          const params = restoreParams.parse(
            Object.fromEntries(
              Object.entries({
                ...rest,
                task: typeof task === 'string' ? (TASKS[task] ?? task) : undefined,
                output: 'json',
              }).filter(([, v]) => v !== null && v !== undefined),
            ),
          );
          if (asJob === true) {
            const outcome = await app.jobs.submit(
              'restore',
              { image: bytes, ...(maskBytes ? { mask: maskBytes } : {}), params },
              // The job belongs to the caller's API key (404 for other keys).
              { owner: ctx.apiKeyOwner, client: ctx.reply.request.ip },
            );
            return { jobId: outcome.view.id };
          }
          return { ...restoreJson(await service.restore(ctx.reply, bytes, maskBytes, params)), jobId: null };
        },
      },
    };
  };
}
