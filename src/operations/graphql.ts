/**
 * The GraphQL Query fields of every operation, derived from its spec: the field's `input` argument becomes the
 * operation's input (validated by the same zod schema as REST and jobs), then the work runs now, or is queued as a
 * job when the field offers `async` and the caller sets it. Same checks, same errors as REST.
 */
import type { FastifyInstance } from 'fastify';
import type { IResolvers, MercuriusContext } from 'mercurius';
import type { Config } from '../config.js';
import type { AnyOperation } from './index.js';
import { runForRequest } from './run.js';

export function operationResolvers(specs: readonly AnyOperation[], cfg: Config) {
  return (app: FastifyInstance): IResolvers<unknown, MercuriusContext> => {
    const Query: Record<string, unknown> = {};
    for (const spec of specs) {
      const gql = spec.graphql;
      if (!gql || (spec.testOnly && !cfg.ENABLE_TEST_TASKS)) continue;
      Query[gql.field] = async (
        _root: unknown,
        args: { input: Record<string, unknown> },
        ctx: MercuriusContext,
      ) => {
        const raw = gql.toInput(args.input, cfg);
        const input = spec.input.parse(raw.input);
        if (raw.async && gql.accepted) {
          const outcome = await app.jobs.submit(spec.id, input, {
            // The job belongs to the caller's API key (404 for other keys).
            owner: ctx.apiKeyOwner,
            client: ctx.reply.request.ip,
          });
          return gql.accepted(outcome.view);
        }
        const result = await runForRequest(app, cfg, spec, input, ctx.reply, 'graphql');
        return gql.answer ? gql.answer(result) : result;
      };
    }
    return { Query } as IResolvers<unknown, MercuriusContext>;
  };
}

/** The SDL the operations bring besides /schema.graphql (test operations, when enabled). */
export function operationSdl(specs: readonly AnyOperation[], cfg: Config): string[] {
  return specs
    .filter((s) => s.graphql?.sdl && (!s.testOnly || cfg.ENABLE_TEST_TASKS))
    .map((s) => s.graphql?.sdl as string);
}
