/**
 * GraphQL `detectAdversarial`: the same parameters and service as POST /v1/detect/adversarial, with the images in
 * base64 (one or more).
 */
import type { FastifyInstance } from 'fastify';
import type { IResolvers, MercuriusContext } from 'mercurius';
import type { Config } from '../config.js';
import { detectService } from '../detect-service.js';
import { fail } from '../errors.js';
import { detectParams } from '../schemas/detect.js';

export function detectResolvers(cfg: Config) {
  return (app: FastifyInstance): IResolvers<unknown, MercuriusContext> => {
    const service = detectService(app, cfg);
    return {
      Query: {
        detectAdversarial: async (
          _r: unknown,
          args: { input: Record<string, unknown> },
          ctx: MercuriusContext,
        ) => {
          const { images, ...rest } = args.input;
          const list = Array.isArray(images) ? images.map(String) : [];
          if (list.length > cfg.DETECT_MAX_IMAGES)
            throw fail(
              'PROBLEM_TOO_LARGE',
              `${list.length} images; at most ${cfg.DETECT_MAX_IMAGES} per request (DETECT_MAX_IMAGES)`,
              { details: { count: list.length, max: cfg.DETECT_MAX_IMAGES } },
            );
          for (const text of list)
            if (text.length > (cfg.BODY_LIMIT_BYTES * 4) / 3 + 4)
              throw fail(
                'BODY_TOO_LARGE',
                `An image is larger than BODY_LIMIT_BYTES = ${cfg.BODY_LIMIT_BYTES}`,
              );
          const params = detectParams.parse(
            Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== null && v !== undefined)),
          );
          return service.detect(
            ctx.reply,
            list.map((b64) => Buffer.from(b64, 'base64')),
            params,
          );
        },
      },
    };
  };
}
