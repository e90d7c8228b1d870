/**
 * GraphQL `denoise`: the same parameters and service as POST /v1/denoise, with the image in base64.
 */
import type { FastifyInstance } from 'fastify';
import type { IResolvers, MercuriusContext } from 'mercurius';
import type { Config } from '../config.js';
import { denoiseJson, denoiseService } from '../denoise-service.js';
import { fail } from '../errors.js';
import { denoiseParams } from '../schemas/denoise.js';

export function denoiseResolvers(cfg: Config) {
  return (app: FastifyInstance): IResolvers<unknown, MercuriusContext> => {
    const service = denoiseService(app, cfg);
    return {
      Query: {
        denoise: async (_r: unknown, args: { input: Record<string, unknown> }, ctx: MercuriusContext) => {
          const { image, level, method, noise, ...rest } = args.input;
          const b64 = String(image);
          if (b64.length > (cfg.BODY_LIMIT_BYTES * 4) / 3 + 4) {
            throw fail(
              'BODY_TOO_LARGE',
              `The image is larger than BODY_LIMIT_BYTES = ${cfg.BODY_LIMIT_BYTES}`,
            );
          }
          const bytes = Buffer.from(b64, 'base64');
          const params = denoiseParams.parse(
            Object.fromEntries(
              Object.entries({
                ...rest,
                method: typeof method === 'string' ? method.toLowerCase() : undefined,
                noise: typeof noise === 'string' ? noise.toLowerCase() : undefined,
                level: level ?? 'auto',
                output: 'json',
              }).filter(([, v]) => v !== null && v !== undefined),
            ),
          );
          return denoiseJson(await service.denoise(ctx.reply, bytes, params));
        },
      },
    };
  };
}
