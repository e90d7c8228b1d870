/**
 * OpenAPI from the zod schemas (fastify-type-provider-zod's transform), Swagger UI at /docs, the document at
 * /openapi.json (and /docs/json).
 *
 * Every route passes an `onRoute` hook (routeDocs), so present and future routes get, without a line of their own:
 * - an `operationId`: `config.operationId` when the route gives one (two routes giving the same one fail at
 *   startup), else derived from the method and the URL (`POST /v1/ot/plan` -> `postV1OtPlan`, `{id}` -> `ById`),
 *   unique and stable;
 * - error responses: 4XX and 5XX with the shared `Error` response (our { error } shape, or RFC 9457 problem
 *   details for a client that prefers application/problem+json);
 * - 202 with the job (and Location) for a route that can answer a job: its body or query has an `async` field
 *   (src/jobs/http.ts's flag, the image routes' `async=true`) or its config says `answersJob: true`;
 * - security: the `bearerAuth` scheme (API keys), except the public routes (health, metrics, console).
 * The document also gets `servers` (OPENAPI_SERVER_URL, else '/': the server that serves it), its components
 * (schemas Error, Problem and Job; responses Error and JobAccepted; the security scheme), a summary for each
 * operation, only the path parameters its path has, and no one-member `anyOf` (a zod optional/nullable artefact).
 * `redocly lint` checks the result (test/plugins/openapi-contract.test.ts, redocly.yaml).
 *
 * Image routes read their body themselves (a raw image/* body or multipart/form-data, routes/_image-input.ts), so
 * they have no `body` schema to validate with; they describe the upload in their route config instead
 * (`config.imageUpload`, see ImageUploadDoc), and the transform turns that into the operation's requestBody: a
 * multipart form with binary file fields (what Swagger UI's "Try it out" needs to offer a file picker) and the
 * raw image/* body. The description is for the document only; nothing validates against it.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import { PUBLIC_ROUTES } from '../app/auth.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The OpenAPI operationId (default: derived from the method and the URL). */
    operationId?: string;
    /**
     * The route answers 202 with a job: 'always' (it answers nothing else), true (when asked), false (never);
     * unset: detected from an `async` field in its body or query.
     */
    answersJob?: boolean | 'always';
  }
}

/** One file field of an image route's multipart form. */
export interface ImageFileField {
  name: string;
  description: string;
  required?: boolean;
  /** The field may be repeated (several files). */
  multiple?: boolean;
}

/** How an image route takes its body (route config `imageUpload`), for the OpenAPI document. */
export interface ImageUploadDoc {
  files: ImageFileField[];
  /** A raw image/* body is also accepted (as the first file field). Default true. */
  raw?: boolean;
  /** An application/json body is also accepted: its JSON schema. */
  json?: Record<string, unknown>;
}

const binary = { type: 'string', format: 'binary' } as const;

/** The `body` schema (per content type) that @fastify/swagger turns into the requestBody. */
export function imageUploadBody(doc: ImageUploadDoc): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (const f of doc.files)
    properties[f.name] = f.multiple
      ? { type: 'array', items: binary, description: f.description }
      : { ...binary, description: f.description };
  const required = doc.files.filter((f) => f.required).map((f) => f.name);
  const content: Record<string, unknown> = {
    'multipart/form-data': {
      schema: {
        type: 'object',
        properties,
        ...(required.length > 0 && { required }),
        // The query parameters may also be sent as text fields of the form.
        additionalProperties: { type: 'string' },
      },
    },
  };
  if (doc.raw !== false)
    content['image/*'] = {
      schema: {
        ...binary,
        description: `The ${doc.files[0]?.name ?? 'image'} itself (PNG, JPEG, WebP, TIFF)`,
      },
    };
  if (doc.json) content['application/json'] = { schema: doc.json };
  return { content };
}

type Json = Record<string, unknown>;

/** What the onRoute hook learnt about one operation (by `METHOD /openapi/{path}`). */
interface RouteDoc {
  operationId: string;
  answersJob?: boolean | 'always';
  public: boolean;
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** A Fastify URL as an OpenAPI path: `:id` -> `{id}`, no trailing slash (as @fastify/swagger writes it). */
export function openapiPath(url: string): string {
  const p = url.replace(/:([A-Za-z0-9_]+)(\([^)]*\))?/g, '{$1}');
  return p.length > 1 ? p.replace(/\/+$/, '') : p;
}

/** `POST /v1/ot/sinkhorn-divergence` -> `postV1OtSinkhornDivergence`; `{id}` -> `ById`; `/` -> `getRoot`. */
export function deriveOperationId(method: string, url: string): string {
  const words = openapiPath(url)
    .split('/')
    .filter(Boolean)
    .flatMap((segment) => {
      const param = /^\{(.+)\}$/.exec(segment);
      const parts = (param ? param[1] : segment).split(/[^A-Za-z0-9]+/).filter(Boolean);
      return param ? ['By', ...parts] : parts;
    })
    .map((w) => w[0].toUpperCase() + w.slice(1));
  return method.toLowerCase() + (words.length ? words.join('') : 'Root');
}

/** The operationIds of routes as they are registered (one per method), unique; explicit ones must not collide. */
export class RouteDocs {
  readonly byOperation = new Map<string, RouteDoc>();
  private readonly explicit = new Set<string>();
  private readonly used = new Set<string>();

  add(route: Pick<RouteOptions, 'method' | 'url' | 'config' | 'schema'>): void {
    if ((route.schema as { hide?: boolean } | undefined)?.hide) return;
    const path = openapiPath(route.url);
    const config = (route.config ?? {}) as { operationId?: string; answersJob?: boolean | 'always' };
    // HEAD (Fastify adds one to each GET route, with its config) is not in the document.
    const methods = (Array.isArray(route.method) ? route.method : [route.method])
      .map((m) => m.toUpperCase())
      .filter((m) => m !== 'HEAD');
    for (const method of methods) {
      const key = `${method} ${path}`;
      if (this.byOperation.has(key)) continue;
      let operationId: string;
      if (config.operationId && methods.length === 1) {
        if (this.explicit.has(config.operationId))
          throw new Error(`operationId '${config.operationId}' is given to two routes (${key})`);
        if (this.used.has(config.operationId))
          throw new Error(
            `operationId '${config.operationId}' (${key}) is already derived for another route`,
          );
        operationId = config.operationId;
        this.explicit.add(operationId);
      } else {
        const base = deriveOperationId(method, route.url);
        operationId = base;
        for (let k = 2; this.used.has(operationId) || this.explicit.has(operationId); k++)
          operationId = `${base}${k}`;
      }
      this.used.add(operationId);
      this.byOperation.set(key, {
        operationId,
        answersJob: config.answersJob,
        public: PUBLIC_ROUTES.has(path) || path === '/' || path.startsWith('/console/'),
      });
    }
  }
}

/** Does this JSON schema (or any member of an allOf/anyOf/oneOf) have an `async` property? */
function hasAsyncField(schema: unknown): boolean {
  if (!schema || typeof schema !== 'object') return false;
  const s = schema as Json;
  if (s.properties && typeof s.properties === 'object' && 'async' in (s.properties as Json)) return true;
  return ['allOf', 'anyOf', 'oneOf'].some(
    (k) => Array.isArray(s[k]) && (s[k] as unknown[]).some(hasAsyncField),
  );
}

function answersJob(operation: Json, doc: RouteDoc | undefined): boolean | 'always' {
  if (doc?.answersJob !== undefined) return doc.answersJob;
  const params = (operation.parameters ?? []) as { name?: string; in?: string }[];
  if (params.some((p) => p.in === 'query' && p.name === 'async')) return true;
  const content = ((operation.requestBody as Json | undefined)?.content ?? {}) as Record<
    string,
    { schema?: unknown }
  >;
  return Object.values(content).some((c) => hasAsyncField(c.schema));
}

/** `{ anyOf: [X], ...rest }` -> `{ ...X, ...rest }` wherever it occurs (X not a $ref, whose siblings are ignored). */
function collapseSingleAnyOf(node: unknown): void {
  if (!node || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const x of node) collapseSingleAnyOf(x);
    return;
  }
  const o = node as Json;
  for (const v of Object.values(o)) collapseSingleAnyOf(v);
  const only = Array.isArray(o.anyOf) && o.anyOf.length === 1 ? (o.anyOf[0] as Json) : undefined;
  if (only && typeof only === 'object' && !('$ref' in only)) {
    delete o.anyOf;
    for (const [k, v] of Object.entries(only)) if (!(k in o)) o[k] = v;
  }
}

const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message', 'requestId'],
      properties: {
        code: { type: 'string', description: 'Stable code (TW_...)', example: 'TW_VALIDATION' },
        message: { type: 'string' },
        details: { description: 'Structured details (4xx; never internals)' },
        requestId: { type: 'string' },
      },
    },
  },
};

const problemSchema = {
  type: 'object',
  description: 'RFC 9457 problem details, for a client whose Accept prefers application/problem+json',
  required: ['type', 'title', 'status', 'detail', 'instance', 'code', 'requestId'],
  properties: {
    type: { type: 'string', format: 'uri', example: 'urn:tweedie:error:TW_VALIDATION' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    instance: { type: 'string', description: 'The path of the request' },
    code: { type: 'string' },
    details: {},
    requestId: { type: 'string' },
  },
};

const jobSchema = {
  type: 'object',
  required: ['id', 'state', 'operation', 'progress', 'createdAt'],
  properties: {
    id: { type: 'string' },
    state: { type: 'string', enum: ['queued', 'running', 'succeeded', 'failed', 'cancelled'] },
    operation: { type: 'string' },
    progress: {
      type: 'object',
      properties: { fraction: { type: 'number' }, message: { type: 'string' } },
    },
    createdAt: { type: 'string', format: 'date-time' },
    startedAt: { type: 'string', format: 'date-time', nullable: true },
    finishedAt: { type: 'string', format: 'date-time', nullable: true },
    expiresAt: { type: 'string', format: 'date-time', nullable: true },
    attempts: { type: 'integer' },
    error: { type: 'object', additionalProperties: true },
  },
};

/** Components, security, servers and per-operation additions (see the module comment). */
export function completeDocument(document: Json, docs: RouteDocs, serverUrl: string | undefined): Json {
  const components = (document.components ?? {}) as Json;
  components.schemas = {
    ...((components.schemas as Json) ?? {}),
    Error: errorSchema,
    Problem: problemSchema,
    Job: jobSchema,
  };
  components.responses = {
    ...((components.responses as Json) ?? {}),
    Error: {
      description: 'A coded error (see `code`); RFC 9457 problem details when Accept prefers them',
      content: {
        'application/json': { schema: { $ref: '#/components/schemas/Error' } },
        'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } },
      },
    },
    JobAccepted: {
      description:
        'Accepted: running as a job; poll Location (GET /v1/jobs/{id}), then GET /v1/jobs/{id}/result',
      headers: {
        Location: { description: '/v1/jobs/{id}', schema: { type: 'string' } },
      },
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Job' } } },
    },
  };
  components.securitySchemes = {
    ...((components.securitySchemes as Json) ?? {}),
    bearerAuth: {
      type: 'http',
      scheme: 'bearer',
      description: 'An API key (API_KEYS / API_KEYS_FILE); required when the server has keys configured',
    },
  };
  document.components = components;
  document.security = [{ bearerAuth: [] }];
  document.servers = [
    serverUrl ? { url: serverUrl } : { url: '/', description: 'The server that serves this document' },
  ];
  const used = new Set<string>();
  for (const [path, item] of Object.entries((document.paths ?? {}) as Record<string, Json>)) {
    for (const method of HTTP_METHODS) {
      const operation = item[method] as Json | undefined;
      if (!operation) continue;
      const doc = docs.byOperation.get(`${method.toUpperCase()} ${path}`);
      // A route registered before this plugin still gets a derived id.
      let id = doc?.operationId ?? deriveOperationId(method, path);
      for (let k = 2; used.has(id); k++) id = `${doc?.operationId ?? deriveOperationId(method, path)}${k}`;
      used.add(id);
      operation.operationId = id;
      operation.summary ??= `${method.toUpperCase()} ${path}`;
      if (doc?.public) operation.security = [];
      // Only the parameters of this path (a params schema shared by `/a/{x}` and `/a/{x}/b/{y}`).
      if (Array.isArray(operation.parameters)) {
        operation.parameters = (operation.parameters as { in?: string; name?: string }[]).filter(
          (p) => p.in !== 'path' || path.includes(`{${p.name}}`),
        );
      }
      const responses = (operation.responses ?? {}) as Json;
      const job = answersJob(operation, doc);
      if (job && !responses['202']) responses['202'] = { $ref: '#/components/responses/JobAccepted' };
      // @fastify/swagger's placeholder for a route without a response schema.
      if (job === 'always' && (responses['200'] as Json | undefined)?.description === 'Default Response')
        delete responses['200'];
      responses['4XX'] ??= { $ref: '#/components/responses/Error' };
      responses['5XX'] ??= { $ref: '#/components/responses/Error' };
      operation.responses = responses;
    }
  }
  collapseSingleAnyOf(document.paths);
  return document;
}

export default fp(
  async function swaggerPlugin(fastify: FastifyInstance, opts: { version: string; serverUrl?: string }) {
    const docs = new RouteDocs();
    fastify.addHook('onRoute', (route) => docs.add(route));
    await fastify.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'Tweedie',
          description:
            'Score-based image restoration (Noise2Score, MID, RED-Diff), adversarial detection (EPS-AD) and optimal transport.',
          version: opts.version,
        },
        tags: [
          { name: 'health', description: 'Liveness, readiness and metrics' },
          { name: 'models', description: 'The model repository' },
          { name: 'ot', description: 'Optimal transport' },
          { name: 'denoise', description: 'Image denoising' },
          { name: 'jobs', description: 'Asynchronous jobs' },
        ],
      },
      // Our routes carry zod schemas; mercurius' /graphql routes carry plain JSON schemas, which pass through.
      transform: (doc) => {
        const schema = doc.schema as Record<string, unknown> | undefined;
        const parts = schema
          ? ['body', 'querystring', 'params', 'headers'].map((k) => schema[k]).filter(Boolean)
          : [];
        const isZod = parts.every((p) => typeof p === 'object' && p !== null && '_zod' in p);
        const out = isZod
          ? jsonSchemaTransform(doc as Parameters<typeof jsonSchemaTransform>[0])
          : { schema: doc.schema, url: doc.url };
        const upload = (doc.route?.config as { imageUpload?: ImageUploadDoc } | undefined)?.imageUpload;
        if (!upload || !out.schema) return out;
        return { ...out, schema: { ...out.schema, body: imageUploadBody(upload) } };
      },
      transformObject: (documents) =>
        completeDocument(
          structuredClone((documents as { openapiObject: Json }).openapiObject),
          docs,
          opts.serverUrl,
        ),
    });
    await fastify.register(swaggerUi, {
      routePrefix: '/docs',
      staticCSP: true,
      // upgrade-insecure-requests would make a browser fetch the UI's own scripts over https from a plain-HTTP
      // cluster address, and fail; TLS is the ingress's job (SECURITY.md).
      transformStaticCSP: (header: string) => header.replace(/\s*upgrade-insecure-requests;?/, ''),
    });
    fastify.get('/openapi.json', { schema: { hide: true }, config: { pressureExempt: true } }, async () =>
      fastify.swagger(),
    );
  },
  { name: 'swagger' },
);
