/**
 * The GraphQL Query fields of every operation, derived from its spec: the field's `input` argument becomes the
 * operation's input (validated by the same zod schema as REST and jobs), then the work runs now, or is queued as a
 * job (the field answers its id) when the field can answer one and the caller sets `async`, or when the estimated
 * cost exceeds the deadline, as REST does. Same checks, same errors as REST.
 */
import type { FastifyInstance } from 'fastify';
import type { IResolvers, MercuriusContext } from 'mercurius';
import type { Config } from '../config.js';
import type { AnyOperation } from './index.js';
import { AUTOMATIC_JOB_REASON, jobDecision, runForRequest } from './run.js';

/** The operations served over GraphQL with this configuration (test operations only with ENABLE_TEST_TASKS). */
const served = (specs: readonly AnyOperation[], cfg: Config) =>
  specs.filter((s) => s.graphql && (!s.testOnly || cfg.ENABLE_TEST_TASKS));

/**
 * The Query fields that start compute work (a pool task or a job), one per operation served over GraphQL: each
 * counts toward GRAPHQL_MAX_COMPUTE_FIELDS (src/plugins/external/graphql.ts), so a new operation is bounded too.
 */
export function operationComputeFields(specs: readonly AnyOperation[], cfg: Config): string[] {
  return served(specs, cfg).map((s) => s.graphql?.field as string);
}

export function operationResolvers(specs: readonly AnyOperation[], cfg: Config) {
  return (app: FastifyInstance): IResolvers<unknown, MercuriusContext> => {
    const Query: Record<string, unknown> = {};
    for (const spec of served(specs, cfg)) {
      const gql = spec.graphql;
      if (!gql) continue;
      Query[gql.field] = async (
        _root: unknown,
        args: { input: Record<string, unknown> },
        ctx: MercuriusContext,
      ) => {
        const raw = gql.toInput(args.input, cfg);
        const input = spec.input.parse(raw.input);
        // As over REST: a job when asked (`async: true`), or of its own accord when the estimated cost exceeds the
        // deadline; only fields that can answer a job id (`accepted`) become jobs.
        const decision = gql.accepted
          ? await jobDecision(app, cfg, spec, input, raw.async)
          : { job: false, automatic: false };
        if (decision.job && gql.accepted) {
          if (decision.automatic) ctx.reply.header('x-async-reason', AUTOMATIC_JOB_REASON);
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
  return served(specs, cfg)
    .filter((s) => s.graphql?.sdl)
    .map((s) => s.graphql?.sdl as string);
}
