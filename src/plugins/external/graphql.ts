/**
 * GraphQL with mercurius, schema-first from /schema.graphql. Depth limit from config; GraphiQL only when enabled.
 * The error formatter maps our coded errors to `extensions.code` (and never leaks internals of 5xx).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { GraphQLError, GraphQLScalarType } from 'graphql';
import mercurius, { type IResolvers, type MercuriusContext } from 'mercurius';
import type { Config } from '../../config.js';
import { toTweedieError } from '../app/errors.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Find schema.graphql from src/ (dev) or dist/src/ (built). */
export function schemaPath(): string {
  for (const rel of ['../../../schema.graphql', '../../../../schema.graphql']) {
    const p = path.resolve(here, rel);
    try {
      readFileSync(p);
      return p;
    } catch {
      /* try the next */
    }
  }
  throw new Error('schema.graphql not found');
}

function formatOne(error: GraphQLError) {
  const original = error.originalError;
  // Errors raised by graphql-js itself (syntax, unknown field) have no original error.
  if (!original || original instanceof GraphQLError) {
    return {
      message: error.message,
      locations: error.locations,
      path: error.path,
      extensions: { code: 'TW_GRAPHQL_VALIDATION' },
    };
  }
  const te = toTweedieError(original);
  const server = te.statusCode >= 500;
  return {
    message: server && te.code === 'TW_INTERNAL' ? 'Internal server error' : te.message,
    locations: error.locations,
    path: error.path,
    extensions: {
      code: te.code,
      statusCode: te.statusCode,
      ...(te.details !== undefined && !server ? { details: te.details } : {}),
    },
  };
}

export default fp(
  async function graphqlPlugin(
    fastify: FastifyInstance,
    opts: { config: Config; resolvers: IResolvers<unknown, MercuriusContext>[] },
  ) {
    const schema = readFileSync(schemaPath(), 'utf8');
    const merged: Record<string, unknown> = {};
    for (const r of opts.resolvers) {
      for (const [type, fields] of Object.entries(r)) {
        // Scalars are class instances: keep them whole; object types merge field by field.
        merged[type] =
          fields instanceof GraphQLScalarType
            ? fields
            : { ...((merged[type] as object | undefined) ?? {}), ...(fields as object) };
      }
    }
    await fastify.register(mercurius, {
      schema,
      resolvers: merged as IResolvers,
      graphiql: opts.config.GRAPHIQL,
      queryDepth: opts.config.GRAPHQL_DEPTH_LIMIT,
      path: '/graphql',
      // Subscriptions over WebSocket (jobProgress).
      subscription: true,
      errorFormatter: (execution, ctx) => {
        const errors = (execution.errors ?? []).flatMap((e) => {
          const inner = (e.originalError as { errors?: unknown[] } | undefined)?.errors;
          if (Array.isArray(inner)) {
            // Validation and depth-limit failures: a list of graphql errors, all client errors.
            return inner.map((x) => ({
              message: (x as Error).message,
              extensions: { code: 'TW_GRAPHQL_VALIDATION' },
            }));
          }
          return [formatOne(e)];
        });
        // A request that never executed (syntax, unknown field, depth limit) is the client's error: 400.
        const onlyValidation = (execution.errors ?? []).every((e) => {
          const o = e.originalError as { errors?: unknown[] } | undefined;
          return !o || o instanceof GraphQLError || Array.isArray(o.errors);
        });
        const statusCode = execution.data
          ? 200
          : ((execution as { statusCode?: number }).statusCode ??
            (onlyValidation && errors.length ? 400 : 200));
        if (ctx?.reply) {
          for (const e of execution.errors ?? []) {
            const te = e.originalError ? toTweedieError(e.originalError) : null;
            if (te && te.statusCode >= 500)
              ctx.reply.log.error({ err: e.originalError }, 'graphql resolver failed');
          }
        }
        return { statusCode, response: { data: execution.data ?? null, errors } };
      },
    });
  },
  { name: 'graphql', dependencies: ['compute', 'models'] },
);
