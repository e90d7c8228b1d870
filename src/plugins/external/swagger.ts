/**
 * OpenAPI from the zod schemas (fastify-type-provider-zod's transform), Swagger UI at /docs, the document at
 * /openapi.json.
 *
 * Image routes read their body themselves (a raw image/* body or multipart/form-data, routes/_image-input.ts), so
 * they have no `body` schema to validate with; they describe the upload in their route config instead
 * (`config.imageUpload`, see ImageUploadDoc), and the transform turns that into the operation's requestBody: a
 * multipart form with binary file fields (what Swagger UI's "Try it out" needs to offer a file picker) and the
 * raw image/* body. The description is for the document only; nothing validates against it.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';

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

export default fp(
  async function swaggerPlugin(fastify: FastifyInstance, opts: { version: string }) {
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
