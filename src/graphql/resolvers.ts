/**
 * GraphQL resolvers: thin adapters over the same services as the REST routes. Each domain adds its resolvers
 * to `resolverModules` (see ot.ts etc.); the schema is /schema.graphql.
 */
import type { FastifyInstance } from 'fastify';
import { GraphQLScalarType, Kind, type ValueNode } from 'graphql';
import type { IResolvers, MercuriusContext } from 'mercurius';
import { healthReport } from '../health.js';
import { type ModelStatus, modelTier } from '../plugins/app/models.js';

function modelView(m: ModelStatus) {
  return {
    name: m.name,
    version: m.version,
    state: m.state,
    required: m.required,
    isDefault: m.isDefault,
    tier: modelTier(m),
    reason: m.reason ?? null,
    task: m.manifest?.task ?? null,
    loadMs: m.loadMs ?? null,
    manifest: m.manifest ?? null,
  };
}

function literal(node: ValueNode): unknown {
  switch (node.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return node.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(node.value);
    case Kind.OBJECT:
      return Object.fromEntries(node.fields.map((f) => [f.name.value, literal(f.value)]));
    case Kind.LIST:
      return node.values.map(literal);
    default:
      return null;
  }
}

/** Arbitrary JSON (manifests, solver parameters). */
export const JSONScalar = new GraphQLScalarType({
  name: 'JSON',
  description: 'Any JSON value',
  serialize: (v) => v,
  parseValue: (v) => v,
  parseLiteral: literal,
});

export function coreResolvers(app: FastifyInstance): IResolvers<unknown, MercuriusContext> {
  return {
    JSON: JSONScalar,
    Query: {
      health: () => {
        const h = healthReport(app);
        return {
          status: h.status,
          ready: h.ready,
          backend: h.backend,
          workers: h.compute.workers,
          queueDepth: h.compute.queued,
          reasons: h.reasons,
          degraded: h.degraded,
          uptimeSeconds: h.uptimeSeconds,
        };
      },
      models: () => app.models.list().map(modelView),
      model: (_root: unknown, args: { name: string; version?: string }) => {
        const m = app.models.get(args.name, args.version ?? undefined);
        return m ? modelView(m) : null;
      },
    },
  };
}
