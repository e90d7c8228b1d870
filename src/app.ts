/**
 * The application as a Fastify plugin tree: external plugins, our services (compute pool, models, metrics),
 * the error handler, GraphQL, and the routes autoloaded from /routes. `buildApp` makes a configured instance
 * for the server and for tests.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance, type FastifyServerOptions, LogController } from 'fastify';
import fp from 'fastify-plugin';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { IResolvers, MercuriusContext } from 'mercurius';
import routes from '../routes/index.js';
import type { Config } from './config.js';
import { denoiseResolvers } from './graphql/denoise.js';
import { detectResolvers } from './graphql/detect.js';
import { jobResolvers } from './graphql/jobs.js';
import { otResolvers } from './graphql/ot.js';
import { coreResolvers } from './graphql/resolvers.js';
import { restoreResolvers } from './graphql/restore.js';
import authPlugin from './plugins/app/auth.js';
import computePlugin from './plugins/app/compute.js';
import errorsPlugin, { sendError, toTweedieError } from './plugins/app/errors.js';
import jobsPlugin from './plugins/app/jobs.js';
import lifecyclePlugin from './plugins/app/lifecycle.js';
import metricsPlugin from './plugins/app/metrics.js';
import modelsPlugin from './plugins/app/models.js';
import testRoutes from './plugins/app/test-routes.js';
import graphqlPlugin from './plugins/external/graphql.js';
import pressurePlugin from './plugins/external/pressure.js';
import securityPlugin from './plugins/external/security.js';
import swaggerPlugin from './plugins/external/swagger.js';

const here = path.dirname(fileURLToPath(import.meta.url));

export function packageVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      return JSON.parse(readFileSync(path.resolve(here, rel), 'utf8')).version as string;
    } catch {
      /* next */
    }
  }
  return '0.0.0';
}

/** GraphQL resolver maps contributed by each domain (each returns a partial resolver map). */
type ResolverFactory = (app: FastifyInstance) => IResolvers<unknown, MercuriusContext>;
function graphqlModules(cfg: Config): ResolverFactory[] {
  return [
    coreResolvers,
    otResolvers(cfg),
    denoiseResolvers(cfg),
    restoreResolvers(cfg),
    jobResolvers,
    detectResolvers(cfg),
  ];
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function fastifyOptions(cfg: Config, logger?: FastifyServerOptions['logger']): FastifyServerOptions {
  return {
    logger: logger ?? {
      level: cfg.LOG_LEVEL,
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'req.headers["x-api-key"]',
          'req.body',
          'res.body',
        ],
        censor: '[redacted]',
      },
      serializers: {
        // One line per request, no bodies (images stay out of logs).
        req: (req) => ({ method: req.method, url: req.url, remoteAddress: req.ip }),
      },
    },
    // We log one line per request ourselves (onResponse), with the outcome.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: cfg.BODY_LIMIT_BYTES,
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // Router refusals (a malformed percent-encoding, a path parameter over 100 characters) get our coded shape too.
    frameworkErrors: (err, request, reply) => sendError(request, reply, toTweedieError(err)),
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true },
  };
}

export interface AppOptions {
  config: Config;
}

export default async function app(fastify: FastifyInstance, opts: AppOptions) {
  const cfg = opts.config;

  fastify.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  fastify.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        url: request.url,
        route: request.routeOptions.url,
        statusCode: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
      },
      'request',
    );
  });

  await fastify.register(errorsPlugin);
  // Before everything that reads a body or does work: API keys, then headers, CORS and the rate limit.
  await fastify.register(authPlugin, { config: cfg });
  await fastify.register(securityPlugin, { config: cfg });
  await fastify.register(lifecyclePlugin);
  await fastify.register(pressurePlugin, { config: cfg });
  await fastify.register(multipart, {
    limits: { fileSize: cfg.BODY_LIMIT_BYTES, files: 4, fields: 64, fieldSize: 1024 * 1024, parts: 70 },
  });
  // Fastify parses text/plain as a string by default; no route takes text, so it becomes a 415 like any other
  // type without a parser (rather than a 400 from a JSON schema that got a string).
  fastify.removeContentTypeParser('text/plain');
  // Raw image bodies: the route decides what to do with the bytes.
  fastify.addContentTypeParser(
    /^image\/.*/,
    { parseAs: 'buffer', bodyLimit: cfg.BODY_LIMIT_BYTES },
    (_req, body, done) => done(null, body),
  );
  fastify.addContentTypeParser(
    'application/octet-stream',
    { parseAs: 'buffer', bodyLimit: cfg.BODY_LIMIT_BYTES },
    (_req, body, done) => done(null, body),
  );
  await fastify.register(computePlugin, { config: cfg });
  await fastify.register(modelsPlugin, { config: cfg });
  await fastify.register(jobsPlugin, { config: cfg });
  await fastify.register(metricsPlugin);
  await fastify.register(swaggerPlugin, { version: packageVersion() });
  await fastify.register(graphqlPlugin, {
    config: cfg,
    resolvers: graphqlModules(cfg).map((m) => m(fastify)),
  });

  // Our routes validate and serialise with zod; mercurius and swagger keep their own JSON-schema compilers, so the
  // zod compilers are set in this encapsulated scope only.
  await fastify.register(async (scope) => {
    scope.setValidatorCompiler(validatorCompiler);
    scope.setSerializerCompiler(serializerCompiler);
    if (cfg.ENABLE_TEST_TASKS) await scope.register(testRoutes);
    await scope.register(routes, { config: cfg });
  });
}

/** A ready-to-listen instance (used by server.ts and tests). */
export async function buildApp(cfg: Config, logger?: FastifyServerOptions['logger']) {
  const fastify = Fastify(fastifyOptions(cfg, logger)).withTypeProvider<ZodTypeProvider>();
  // fastify-plugin: the app's decorators (compute, models, lifecycle, ...) are visible on the returned instance.
  await fastify.register(fp(app, { name: 'tweedie' }), { config: cfg });
  return fastify;
}
