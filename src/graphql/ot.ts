/**
 * GraphQL resolvers for optimal transport: map the GraphQL input onto the REST request shape and validate it with
 * the same zod schema, then call the same service as the REST routes.
 */
import type { FastifyInstance } from 'fastify';
import type { IResolvers, MercuriusContext } from 'mercurius';
import type { Config } from '../config.js';
import { otService } from '../ot-service.js';
import { mongeGapRequest, otPlanRequest, sinkhornDivergenceRequest } from '../schemas/ot.js';

type Gql = Record<string, unknown>;

const lower = (v: unknown) => (typeof v === 'string' ? v.toLowerCase() : v);
/** Drop GraphQL nulls so zod defaults apply. */
function defined(o: Gql): Gql {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined));
}

export function otPlanInputToRequest(input: Gql) {
  const { solver, params, plan, threshold, topK, potentials, errorHistory, cost, scaling, ...rest } = input;
  return otPlanRequest.parse(
    defined({
      ...rest,
      cost: lower(cost),
      scaling: lower(scaling),
      solver: { ...((params as Gql | null) ?? {}), solver: lower(solver) },
      output: defined({ plan: lower(plan), threshold, topK, potentials, errorHistory }),
    }),
  );
}

export function otResolvers(cfg: Config) {
  return (app: FastifyInstance): IResolvers<unknown, MercuriusContext> => {
    const ot = otService(app, cfg);
    return {
      Query: {
        otPlan: async (_r: unknown, args: { input: Gql }, ctx: MercuriusContext) =>
          ot.plan(ctx.reply, otPlanInputToRequest(args.input), true),
        otDistance: async (_r: unknown, args: { input: Gql }, ctx: MercuriusContext) =>
          ot.plan(ctx.reply, otPlanInputToRequest(args.input), false),
        sinkhornDivergence: async (_r: unknown, args: { input: Gql }, ctx: MercuriusContext) =>
          ot.divergence(
            ctx.reply,
            sinkhornDivergenceRequest.parse(defined({ ...args.input, cost: lower(args.input.cost) })),
          ),
        mongeGap: async (_r: unknown, args: { input: Gql }, ctx: MercuriusContext) =>
          ot.mongeGap(
            ctx.reply,
            mongeGapRequest.parse(defined({ ...args.input, cost: lower(args.input.cost) })),
          ),
      },
    };
  };
}
