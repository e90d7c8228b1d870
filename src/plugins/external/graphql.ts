/**
 * GraphQL with mercurius, schema-first from /schema.graphql. Depth limit from config; GraphiQL only when enabled.
 * A selection guard refuses operations that ask for too many fields (aliases and fragments expanded) before they
 * run; introspection can be turned off; CSRF prevention refuses "simple" requests a browser could forge.
 * The error formatter maps our coded errors to `extensions.code` (and never leaks internals of 5xx).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import {
  type ASTVisitor,
  type DocumentNode,
  type FragmentDefinitionNode,
  GraphQLError,
  GraphQLScalarType,
  Kind,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import mercurius, { type IResolvers, type MercuriusContext } from 'mercurius';
import type { Config } from '../../config.js';
import { toTweedieError } from '../app/errors.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * The graphql instance mercurius uses (its CommonJS build). Validation rules check `instanceof` against schema
 * types, so they must come from the same copy: a bundler or test runner resolving `graphql` to its ESM build would
 * otherwise fail with "Cannot use GraphQLNonNull from another module or realm".
 */
const graphqlOfMercurius = createRequire(import.meta.url)('graphql') as typeof import('graphql');

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

declare module 'mercurius' {
  interface MercuriusContext {
    /** Owner id of the caller's API key (see plugins/app/auth.ts); undefined when keys are off. */
    apiKeyOwner?: string;
  }
}

/**
 * Field selections each operation of `document` would resolve, with fragment spreads expanded wherever they are
 * spread (memoised per fragment, so a chain of fragments that doubles at each step is counted, not walked). Aliases
 * count as the separate selections they are. Cycles (invalid anyway) count zero.
 */
export function countSelections(document: DocumentNode): Map<string, number> {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const def of document.definitions) {
    if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
  }
  const memo = new Map<string, number>();
  const visiting = new Set<string>();
  const count = (set: SelectionSetNode | undefined): number => {
    let total = 0;
    for (const sel of set?.selections ?? []) {
      if (sel.kind === Kind.FIELD) total += 1 + count(sel.selectionSet);
      else if (sel.kind === Kind.INLINE_FRAGMENT) total += count(sel.selectionSet);
      else {
        const name = sel.name.value;
        if (!memo.has(name)) {
          if (visiting.has(name)) continue;
          visiting.add(name);
          memo.set(name, count(fragments.get(name)?.selectionSet));
          visiting.delete(name);
        }
        total += memo.get(name) ?? 0;
      }
    }
    return total;
  };
  const perOperation = new Map<string, number>();
  for (const def of document.definitions) {
    if (def.kind === Kind.OPERATION_DEFINITION)
      perOperation.set(def.name?.value ?? '', count(def.selectionSet));
  }
  return perOperation;
}

/** A validation rule (runs before execution) refusing operations with more than `max` selections. */
export function maxSelectionsRule(max: number): ValidationRule {
  return (context: ValidationContext): ASTVisitor => ({
    Document: {
      enter(document) {
        for (const [name, selections] of countSelections(document)) {
          if (selections > max) {
            context.reportError(
              new graphqlOfMercurius.GraphQLError(
                `Operation${name ? ` '${name}'` : ''} selects ${selections} fields; at most ${max} are allowed (GRAPHQL_MAX_SELECTIONS)`,
                { extensions: { code: 'TW_GRAPHQL_TOO_COMPLEX', selections, max } },
              ),
            );
          }
        }
      },
    },
  });
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
    // `query` must be GraphQL text. A number or boolean is coerced to a string by mercurius' body schema, and a
    // source that is not GraphQL but is JSON (`5`, `null`, `{}`, `[...]`) is read by mercurius as a pre-parsed
    // AST: either way graphql-js validation then meets something that is not a document (a TypeError, a 500).
    // Refuse both as the client errors they are; GraphQL text never starts like JSON does.
    const jsonLike = /^\s*(\[|\{\s*["}]|"|-?\d|(null|true|false)\s*$)/;
    fastify.addHook('onRoute', (route) => {
      if (route.url !== '/graphql') return;
      const guard = async (request: { body?: unknown; query?: unknown }) => {
        for (const part of [request.body, request.query]) {
          const q = (part as { query?: unknown } | null | undefined)?.query;
          if (!part || typeof part !== 'object' || q === undefined || q === null) continue;
          if (typeof q !== 'string' || jsonLike.test(q)) {
            throw new graphqlOfMercurius.GraphQLError('query must be a string holding a GraphQL document', {
              extensions: { code: 'TW_GRAPHQL_VALIDATION' },
            });
          }
        }
      };
      const existing = route.preValidation;
      route.preValidation = existing
        ? [guard, ...(Array.isArray(existing) ? existing : [existing])]
        : [guard];
    });
    await fastify.register(mercurius, {
      schema,
      resolvers: merged as IResolvers,
      graphiql: opts.config.GRAPHIQL,
      queryDepth: opts.config.GRAPHQL_DEPTH_LIMIT,
      path: '/graphql',
      validationRules: [
        maxSelectionsRule(opts.config.GRAPHQL_MAX_SELECTIONS),
        ...(opts.config.GRAPHQL_INTROSPECTION ? [] : [graphqlOfMercurius.NoSchemaIntrospectionCustomRule]),
      ],
      // Refuses GET/POST requests a browser sends cross-site without a preflight (plain forms, <img src>). A WebSocket
      // handshake (sec-websocket-key, which pages cannot set on other requests) is not such a request; the
      // subscription carries no cookies to abuse, since callers authenticate with a Bearer header.
      csrfPrevention: {
        requiredHeaders: ['x-mercurius-operation-name', 'mercurius-require-preflight', 'sec-websocket-key'],
      },
      // Who is calling: resolvers scope jobs to the caller's API key.
      context: (request) => ({ apiKeyOwner: request.apiKeyOwner }),
      // Subscriptions over WebSocket (jobProgress); the upgrade request carried the key.
      subscription: { context: (_socket, request) => ({ apiKeyOwner: request.apiKeyOwner }) },
      errorFormatter: (execution, ctx) => {
        const errors = (execution.errors ?? []).flatMap((e) => {
          const inner = (e.originalError as { errors?: unknown[] } | undefined)?.errors;
          if (Array.isArray(inner)) {
            // Validation and depth-limit failures: a list of graphql errors, all client errors.
            // Our own rules (selection guard) carry a more precise code; keep it.
            return inner.map((x) => ({
              message: (x as Error).message,
              extensions: {
                ...(x as GraphQLError).extensions,
                code: ((x as GraphQLError).extensions?.code as string | undefined) ?? 'TW_GRAPHQL_VALIDATION',
              },
            }));
          }
          return [formatOne(e)];
        });
        // A request that never executed (syntax, unknown field, depth limit) is the client's error: 400.
        const onlyValidation = (execution.errors ?? []).every((e) => {
          const o = e.originalError as { errors?: unknown[] } | undefined;
          return !o || o instanceof GraphQLError || Array.isArray(o.errors);
        });
        // Refused before execution (CSRF prevention, a hook such as under-pressure's 503): no `data` at all.
        const refusedStatus =
          execution.data === undefined && errors.length > 0
            ? (errors[0].extensions as { statusCode?: number }).statusCode
            : undefined;
        const statusCode = execution.data
          ? 200
          : ((execution as { statusCode?: number }).statusCode ??
            (onlyValidation && errors.length
              ? 400
              : refusedStatus && refusedStatus >= 400
                ? refusedStatus
                : 200));
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
