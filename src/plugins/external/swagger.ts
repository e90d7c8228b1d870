/**
 * OpenAPI from the zod schemas (fastify-type-provider-zod's transform), Swagger UI at /docs, the document at
 * /openapi.json.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';

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
        if (!isZod) return { schema: doc.schema, url: doc.url };
        return jsonSchemaTransform(doc as Parameters<typeof jsonSchemaTransform>[0]);
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
