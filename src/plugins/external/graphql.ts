/**
 * GraphQL with mercurius, schema-first from /schema.graphql. Depth limit from config; GraphiQL only when enabled.
 * Documents are bounded before anything is built from them: the body (GRAPHQL_BODY_LIMIT_BYTES), the document's
 * bytes (GRAPHQL_MAX_DOCUMENT_BYTES), the tokens the parser reads (GRAPHQL_MAX_TOKENS), and, before graphql-js
 * validation runs, what each operation would ask for with aliases and fragments expanded: field selections, compute
 * fields and bulk fields (GRAPHQL_MAX_SELECTIONS, GRAPHQL_MAX_COMPUTE_FIELDS, GRAPHQL_MAX_HEAVY_FIELDS). The same
 * checks and validation rules guard subscriptions over WebSocket, whose messages are bounded too
 * (GRAPHQL_WS_MAX_MESSAGE_BYTES). Parsed documents are not cached (mercurius' caches would keep every distinct document, valid or
 * not, with its tree). Introspection can be turned off; CSRF prevention refuses "simple" requests a browser could
 * forge. The error formatter maps our coded errors to `extensions.code` (and never leaks internals of 5xx), and an
 * operation that failed as a whole for lack of capacity or over a limit answers its HTTP status (503, 504, 413,
 * 429) as REST does.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import {
  type DocumentNode,
  type FragmentDefinitionNode,
  GraphQLError,
  GraphQLScalarType,
  type GraphQLSchema,
  Kind,
  type SelectionSetNode,
  TokenKind,
  type ValidationRule,
} from 'graphql';
import mercurius, { type IResolvers, type MercuriusContext } from 'mercurius';
import type { Config } from '../../config.js';
import { fail } from '../../errors.js';
import { toTweedieError } from '../app/errors.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * The graphql instance mercurius uses (its CommonJS build). Validation rules check `instanceof` against schema
 * types, so they must come from the same copy: a bundler or test runner resolving `graphql` to its ESM build would
 * otherwise fail with "Cannot use GraphQLNonNull from another module or realm".
 */
const graphqlOfMercurius = createRequire(import.meta.url)('graphql') as typeof import('graphql');

/** The WebSocket plugin mercurius registers for subscriptions (its own copy), so that we can register it first. */
const websocketOfMercurius = createRequire(createRequire(import.meta.url).resolve('mercurius'))(
  '@fastify/websocket',
) as FastifyPluginAsync<{ options: { maxPayload: number } }>;

/** Find schema.graphql from src/ (dev) or dist/src/ (built). */
export function schemaPath(): string {
  // src/plugins/external, dist/src/plugins/external, or a bundle in .gpu/node-run (bench/gpu/pack.sh).
  for (const rel of ['../../../schema.graphql', '../../../../schema.graphql', '../../schema.graphql']) {
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
 * Root fields that start compute work besides the operations' own fields: `submitJob` queues any operation's job.
 * The operations' Query fields come from their specs (src/operations/graphql.ts, `operationComputeFields`) through
 * the plugin's `computeFields` option. GraphQL runs sibling root fields of a query in parallel, so each alias is one
 * more task: at most GRAPHQL_MAX_COMPUTE_FIELDS per operation.
 */
export const JOB_COMPUTE_FIELDS: readonly string[] = ['submitJob'];

/**
 * Fields that can carry a bulk payload, serialised in full at each occurrence (twelve aliases of one job's
 * `result` are twelve copies): Job.result, OtPlan.data/rows/cols/values, DenoiseResult.image, RestoreResult.image
 * and RestoreResult.trace. At most GRAPHQL_MAX_HEAVY_FIELDS per operation.
 */
export const HEAVY_FIELDS: ReadonlySet<string> = new Set([
  'result',
  'data',
  'rows',
  'cols',
  'values',
  'image',
  'trace',
]);

/** What an operation (or a fragment) would ask for once aliases and fragment spreads are expanded. */
export interface SelectionCost {
  /** Field selections. */
  selections: number;
  /** Occurrences of compute fields (DocumentLimits.computeFields). */
  compute: number;
  /** Occurrences of HEAVY_FIELDS. */
  heavy: number;
}

/**
 * The cost of each operation of `document` (by name, '' for an anonymous one) and of each fragment definition
 * (by `fragment <name>`), with fragment spreads expanded wherever they are spread (memoised per fragment, so a
 * chain of fragments that doubles at each step is counted, not walked). Aliases count as the separate selections
 * they are. Cycles (invalid anyway) count zero. Linear in the document: it runs before graphql-js validation,
 * some of whose rules are quadratic.
 */
export function selectionCosts(
  document: DocumentNode,
  computeFields: ReadonlySet<string> = new Set(),
): Map<string, SelectionCost> {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const def of document.definitions) {
    if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
  }
  const memo = new Map<string, SelectionCost>();
  const visiting = new Set<string>();
  const add = (to: SelectionCost, c: SelectionCost) => {
    to.selections += c.selections;
    to.compute += c.compute;
    to.heavy += c.heavy;
  };
  const fragmentCost = (name: string): SelectionCost | undefined => {
    if (!memo.has(name)) {
      if (visiting.has(name)) return undefined;
      visiting.add(name);
      memo.set(name, cost(fragments.get(name)?.selectionSet));
      visiting.delete(name);
    }
    return memo.get(name);
  };
  const cost = (set: SelectionSetNode | undefined): SelectionCost => {
    const total: SelectionCost = { selections: 0, compute: 0, heavy: 0 };
    for (const sel of set?.selections ?? []) {
      if (sel.kind === Kind.FIELD) {
        const name = sel.name.value;
        total.selections += 1;
        if (computeFields.has(name)) total.compute += 1;
        if (HEAVY_FIELDS.has(name)) total.heavy += 1;
        add(total, cost(sel.selectionSet));
      } else if (sel.kind === Kind.INLINE_FRAGMENT) add(total, cost(sel.selectionSet));
      else {
        const c = fragmentCost(sel.name.value);
        if (c) add(total, c);
      }
    }
    return total;
  };
  const costs = new Map<string, SelectionCost>();
  for (const def of document.definitions) {
    if (def.kind === Kind.OPERATION_DEFINITION) costs.set(def.name?.value ?? '', cost(def.selectionSet));
    else if (def.kind === Kind.FRAGMENT_DEFINITION)
      costs.set(`fragment ${def.name.value}`, fragmentCost(def.name.value) ?? cost(undefined));
  }
  return costs;
}

/** Field selections each operation of `document` would resolve (see selectionCosts). */
export function countSelections(document: DocumentNode): Map<string, number> {
  const counts = new Map<string, number>();
  for (const [name, c] of selectionCosts(document)) {
    if (!name.startsWith('fragment ')) counts.set(name, c.selections);
  }
  return counts;
}

export interface DocumentLimits {
  maxSelections: number;
  maxComputeFields: number;
  /** The root fields that start compute work (JOB_COMPUTE_FIELDS and the operations' fields). */
  computeFields: ReadonlySet<string>;
  maxHeavyFields: number;
  maxTokens: number;
}

export const limitsOf = (cfg: Config, computeFields: readonly string[] = []): DocumentLimits => ({
  maxSelections: cfg.GRAPHQL_MAX_SELECTIONS,
  maxComputeFields: cfg.GRAPHQL_MAX_COMPUTE_FIELDS,
  computeFields: new Set([...JOB_COMPUTE_FIELDS, ...computeFields]),
  maxHeavyFields: cfg.GRAPHQL_MAX_HEAVY_FIELDS,
  maxTokens: cfg.GRAPHQL_MAX_TOKENS,
});

const tooComplex = (message: string, extensions: Record<string, unknown>) =>
  new graphqlOfMercurius.GraphQLError(message, {
    extensions: { code: 'TW_GRAPHQL_TOO_COMPLEX', ...extensions },
  });

/** graphql-js' message when `parseOptions.maxTokens` stops the parser (sic: "more that"). */
const tooManyTokens = /^Syntax Error: Document contains more tha[nt] \d+ tokens/;

/** The coded error for a document over GRAPHQL_MAX_TOKENS. */
const tokensError = (max: number) =>
  tooComplex(
    `The document has more than ${max} tokens; at most ${max} are allowed (GRAPHQL_MAX_TOKENS). Pass large inputs as variables`,
    { limit: 'GRAPHQL_MAX_TOKENS', max },
  );

/**
 * The limits a parsed document breaks, before graphql-js validation (and before anything runs): per operation,
 * field selections, compute fields and bulk fields; per fragment definition, field selections (a fragment
 * nobody spreads is still validated).
 */
export function limitErrors(document: DocumentNode, limits: DocumentLimits): GraphQLError[] {
  const errors: GraphQLError[] = [];
  for (const [name, c] of selectionCosts(document, limits.computeFields)) {
    const fragment = name.startsWith('fragment ');
    const what = fragment ? `Fragment '${name.slice(9)}'` : `Operation${name ? ` '${name}'` : ''}`;
    if (c.selections > limits.maxSelections) {
      errors.push(
        tooComplex(
          `${what} selects ${c.selections} fields; at most ${limits.maxSelections} are allowed (GRAPHQL_MAX_SELECTIONS)`,
          { limit: 'GRAPHQL_MAX_SELECTIONS', selections: c.selections, max: limits.maxSelections },
        ),
      );
    }
    if (fragment) continue;
    if (c.compute > limits.maxComputeFields) {
      errors.push(
        tooComplex(
          `${what} asks for ${c.compute} compute fields (${[...limits.computeFields].join(', ')}, aliases included); at most ${limits.maxComputeFields} are allowed (GRAPHQL_MAX_COMPUTE_FIELDS). Send several requests, or submit jobs`,
          { limit: 'GRAPHQL_MAX_COMPUTE_FIELDS', count: c.compute, max: limits.maxComputeFields },
        ),
      );
    }
    if (c.heavy > limits.maxHeavyFields) {
      errors.push(
        tooComplex(
          `${what} asks for ${c.heavy} bulk fields (${[...HEAVY_FIELDS].join(', ')}, aliases included); at most ${limits.maxHeavyFields} are allowed (GRAPHQL_MAX_HEAVY_FIELDS)`,
          { limit: 'GRAPHQL_MAX_HEAVY_FIELDS', count: c.heavy, max: limits.maxHeavyFields },
        ),
      );
    }
  }
  return errors;
}

/** Tokens of a parsed document (comments excluded, as the parser counts them), counting no further than `max + 1`. */
function tokenCount(document: DocumentNode, max: number): number {
  let n = 0;
  for (let t = document.loc?.startToken.next; t && t.kind !== TokenKind.EOF && n <= max; t = t.next) {
    if (t.kind !== TokenKind.COMMENT) n++;
  }
  return n;
}

/** What mercurius throws for a document that fails validation: our formatter reads `errors` (400). */
const validationFailure = (errors: readonly GraphQLError[]) =>
  Object.assign(new Error('Graphql validation error'), { errors, statusCode: 400 });

/**
 * The checks of the HTTP path for a subscription document over WebSocket, where mercurius parses without
 * `maxTokens` and runs no validation rule at all (only the depth limit): a document that is not GraphQL text, the
 * token limit, our limits, then graphql-js' rules and ours. Throws the first error (the WebSocket protocol carries
 * one), with its code.
 */
export function checkSubscriptionDocument(
  schema: GraphQLSchema,
  document: DocumentNode,
  limits: DocumentLimits,
  rules: readonly ValidationRule[],
): void {
  if (!document?.loc) {
    throw new graphqlOfMercurius.GraphQLError('query must be a string holding a GraphQL document', {
      extensions: { code: 'TW_GRAPHQL_VALIDATION' },
    });
  }
  if (tokenCount(document, limits.maxTokens) > limits.maxTokens) throw tokensError(limits.maxTokens);
  const refused = limitErrors(document, limits);
  if (refused.length) throw refused[0];
  const invalid = graphqlOfMercurius.validate(schema, document, [
    ...graphqlOfMercurius.specifiedRules,
    ...rules,
  ]);
  if (invalid.length) {
    const first = invalid[0];
    throw new graphqlOfMercurius.GraphQLError(first.message, {
      nodes: first.nodes,
      extensions: { ...first.extensions, code: first.extensions?.code ?? 'TW_GRAPHQL_VALIDATION' },
    });
  }
}

/** Statuses an operation that failed as a whole answers with (else 200 with `errors`). */
const WHOLE_FAILURE_STATUSES: ReadonlySet<number> = new Set([413, 429, 503, 504]);

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
    opts: {
      config: Config;
      resolvers: IResolvers<unknown, MercuriusContext>[];
      sdl?: string[];
      /** Query fields that start compute work, besides JOB_COMPUTE_FIELDS (src/operations/graphql.ts). */
      computeFields?: readonly string[];
    },
  ) {
    // /schema.graphql, plus what operations that bring their own SDL add (src/operations/graphql.ts).
    const schema = [readFileSync(schemaPath(), 'utf8'), ...(opts.sdl ?? [])].join('\n');
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
      // The document and its variables: bounded apart from REST uploads (BODY_LIMIT_BYTES).
      route.bodyLimit = opts.config.GRAPHQL_BODY_LIMIT_BYTES;
      const guard = async (request: { body?: unknown; query?: unknown }) => {
        for (const part of [request.body, request.query]) {
          const q = (part as { query?: unknown } | null | undefined)?.query;
          if (!part || typeof part !== 'object' || q === undefined || q === null) continue;
          if (typeof q !== 'string' || jsonLike.test(q)) {
            throw new graphqlOfMercurius.GraphQLError('query must be a string holding a GraphQL document', {
              extensions: { code: 'TW_GRAPHQL_VALIDATION' },
            });
          }
          // The lexer reads string literals and comments a character at a time (an 8 MB literal: 250 ms of event
          // loop) and the token limit does not see them: bound the document's bytes; inputs go in variables.
          const bytes = Buffer.byteLength(q);
          if (bytes > opts.config.GRAPHQL_MAX_DOCUMENT_BYTES) {
            throw fail(
              'BODY_TOO_LARGE',
              `The GraphQL document has ${bytes} bytes; at most ${opts.config.GRAPHQL_MAX_DOCUMENT_BYTES} are allowed (GRAPHQL_MAX_DOCUMENT_BYTES). Pass large inputs (images, matrices) as variables`,
              { details: { bytes, max: opts.config.GRAPHQL_MAX_DOCUMENT_BYTES } },
            );
          }
        }
      };
      const existing = route.preValidation;
      route.preValidation = existing
        ? [guard, ...(Array.isArray(existing) ? existing : [existing])]
        : [guard];
    });
    // mercurius parses a subscription document with no token limit before any hook of ours runs, and registers
    // the WebSocket plugin with 1 MiB messages (a 0.65 MB document blocked the event loop 0.8-1.2 s). Registered here
    // first, it bounds each message (ws closes the socket with 1009 beyond); mercurius then uses this one.
    if (!fastify.hasDecorator('websocketServer')) {
      await fastify.register(websocketOfMercurius, {
        options: { maxPayload: opts.config.GRAPHQL_WS_MAX_MESSAGE_BYTES },
      });
    }
    const limits = limitsOf(opts.config, opts.computeFields);
    const rules = opts.config.GRAPHQL_INTROSPECTION
      ? []
      : [graphqlOfMercurius.NoSchemaIntrospectionCustomRule];
    await fastify.register(mercurius, {
      schema,
      resolvers: merged as IResolvers,
      graphiql: opts.config.GRAPHIQL,
      queryDepth: opts.config.GRAPHQL_DEPTH_LIMIT,
      path: '/graphql',
      validationRules: rules,
      // The parser stops after GRAPHQL_MAX_TOKENS tokens: a 7.9 MB document of 400k aliases is refused after
      // reading its first tokens instead of being parsed and validated whole (seconds of blocked event loop).
      graphql: { parseOptions: { maxTokens: limits.maxTokens } },
      // No document cache. mercurius keeps the last 1024 distinct valid and 1024 invalid documents with their
      // parsed trees, whatever their size (five invalid 1.9 MB documents held 600 MB of heap); it cannot be told to
      // skip large or invalid ones. Parsing and validating a typical document costs well under a millisecond.
      cache: false,
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
            // Our own limits carry a more precise code; keep it. The parser's token limit is one of ours.
            return inner.map((x) => {
              const error = tooManyTokens.test((x as Error).message) ? tokensError(limits.maxTokens) : x;
              return {
                message: (error as Error).message,
                extensions: {
                  ...(error as GraphQLError).extensions,
                  code:
                    ((error as GraphQLError).extensions?.code as string | undefined) ??
                    'TW_GRAPHQL_VALIDATION',
                },
              };
            });
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
        // Executed, and failed as a whole (`data: null`) for lack of capacity or time, or for a limit: the queue was
        // full (503), a deadline passed (504), the input is over a limit (413) or the client over its quota (429).
        // Answered with that status, as REST does, so clients and proxies retry or back off instead of reading a 200.
        const unavailable = errors
          .map((e) => (e.extensions as { statusCode?: number }).statusCode)
          .find((status) => status !== undefined && WHOLE_FAILURE_STATUSES.has(status));
        const statusCode = execution.data
          ? 200
          : ((execution as { statusCode?: number }).statusCode ??
            (onlyValidation && errors.length
              ? 400
              : refusedStatus && refusedStatus >= 400
                ? refusedStatus
                : (unavailable ?? 200)));
        if (ctx?.reply) {
          for (const e of execution.errors ?? []) {
            const te = e.originalError ? toTweedieError(e.originalError) : null;
            if (te && te.statusCode >= 500)
              ctx.reply.log.error({ err: e.originalError }, 'graphql resolver failed');
            if (
              te?.retryAfter !== undefined &&
              (statusCode === 503 || statusCode === 429) &&
              !ctx.reply.hasHeader('retry-after')
            )
              ctx.reply.header('retry-after', String(te.retryAfter));
          }
        }
        return { statusCode, response: { data: execution.data ?? null, errors } };
      },
    });
    // Our limits, after parsing and before graphql-js validation (some of whose rules are quadratic in the
    // document): a document over them is refused without being validated.
    fastify.graphql.addHook('preValidation', async (_schema, document) => {
      const refused = limitErrors(document, limits);
      if (refused.length) throw validationFailure(refused);
    });
    // Subscriptions over WebSocket: mercurius validates nothing there but the depth; apply the same checks.
    fastify.graphql.addHook('preSubscriptionExecution', async (schema, document) => {
      checkSubscriptionDocument(schema, document, limits, rules);
    });
  },
  { name: 'graphql', dependencies: ['compute', 'models'] },
);
