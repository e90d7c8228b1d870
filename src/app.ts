/**
 * The application as a Fastify plugin tree: external plugins, our services (compute pool, models, metrics),
 * the error handler, GraphQL, and the routes autoloaded from /routes. `buildApp` makes a configured instance
 * for the server and for tests.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import multipart from '@fastify/multipart';
import Fastify, {
  type ConnectionError,
  type FastifyHttpOptions,
  type FastifyInstance,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import fp from 'fastify-plugin';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { IResolvers, MercuriusContext } from 'mercurius';
import routes from '../routes/index.js';
import type { Config } from './config.js';
import { fail } from './errors.js';
import { jobResolvers } from './graphql/jobs.js';
import { coreResolvers } from './graphql/resolvers.js';
import { operationComputeFields, operationResolvers, operationSdl } from './operations/graphql.js';
import { OPERATIONS } from './operations/index.js';
import authPlugin from './plugins/app/auth.js';
import computePlugin from './plugins/app/compute.js';
import errorsPlugin, {
  errorBody,
  errorContentType,
  rawErrorAnswer,
  sendError,
  toTweedieError,
} from './plugins/app/errors.js';
import jobsPlugin from './plugins/app/jobs.js';
import lifecyclePlugin from './plugins/app/lifecycle.js';
import { refuseOtherMediaTypes } from './plugins/app/media-types.js';
import metricsPlugin from './plugins/app/metrics.js';
import modelsPlugin from './plugins/app/models.js';
import testRoutes from './plugins/app/test-routes.js';
import tracingPlugin, { traceGraphql } from './plugins/app/tracing.js';
import graphqlPlugin from './plugins/external/graphql.js';
import pressurePlugin from './plugins/external/pressure.js';
import securityPlugin from './plugins/external/security.js';
import swaggerPlugin from './plugins/external/swagger.js';
import { parseJsonBody } from './util/json-body.js';

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
  return [coreResolvers, operationResolvers(OPERATIONS, cfg), jobResolvers];
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function fastifyOptions(
  cfg: Config,
  logger?: FastifyServerOptions['logger'],
): FastifyHttpOptions<http.Server> {
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
    frameworkErrors: (err, request, reply) => {
      // No hook runs for these refusals: a refused WebSocket upgrade's socket is closed here (see app()).
      if (isUpgrade(request.raw)) reply.raw.once('finish', () => closeUpgradeSocket(request.raw.socket));
      return sendError(request, reply, toTweedieError(err));
    },
    // Receipt of a request (line, headers, body) is bounded: a slow or stalled sender gets 408 and is cut off. Node
    // checks every connectionsCheckingInterval, so that is kept a fraction of the limit. The socket's inactivity
    // timeout only reaps sockets stuck for longer than any request may compute (nothing moves while a synchronous
    // request computes, up to REQUEST_TIMEOUT_MAX_MS).
    requestTimeout: cfg.HTTP_REQUEST_TIMEOUT_MS,
    connectionTimeout: cfg.REQUEST_TIMEOUT_MAX_MS + 60_000,
    http: {
      headersTimeout: Math.min(60_000, cfg.HTTP_REQUEST_TIMEOUT_MS),
      connectionsCheckingInterval: Math.min(
        30_000,
        Math.max(100, Math.floor(cfg.HTTP_REQUEST_TIMEOUT_MS / 10)),
      ),
    },
    // What Node refuses before Fastify sees a request (headers over http.maxHeaderSize, a request not received in
    // time, a malformed request) gets our coded shape too.
    clientErrorHandler: clientError,
    // New requests while closing are refused by the lifecycle plugin, with our coded 503 (TW_SHUTTING_DOWN).
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true },
  };
}

/** Answers what Node's HTTP parser refused (the socket has no request, no reply yet), then closes the socket. */
function clientError(this: FastifyInstance, err: ConnectionError, socket: Socket) {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const te =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? fail(
          'REQUEST_TIMEOUT',
          'The request (line, headers and body) was not received within the time allowed',
        )
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? fail(
            'HEADERS_TOO_LARGE',
            `The request line and headers are over ${http.maxHeaderSize} bytes: send long parameters in a body`,
          )
        : fail('VALIDATION', 'The HTTP request is malformed');
  const seen = refusedRequest(err, socket);
  const given = seen.headers['x-request-id'];
  const requestId = given !== undefined && REQUEST_ID.test(given) ? given : randomUUID();
  this.log.info({ code: te.code, parserCode: err.code, requestId }, 'client error');
  // Only while no answer has begun on this socket (a request whose body was late may have one under way).
  const pending = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !pending?.headersSent) {
    // The same shape, content type and x-request-id as any other error (src/plugins/app/errors.ts).
    const { contentType, body } = rawErrorAnswer(te, {
      accept: seen.headers.accept,
      requestId,
      path: seen.path,
    });
    const text = JSON.stringify(body);
    socket.write(
      `HTTP/1.1 ${te.statusCode} ${http.STATUS_CODES[te.statusCode]}\r\nContent-Type: ${contentType}\r\n` +
        `Content-Length: ${Buffer.byteLength(text)}\r\nx-request-id: ${requestId}\r\nConnection: close\r\n\r\n${text}`,
    );
  }
  socket.destroy();
}

/**
 * What can be read of a request Node refused: the parsed request's path and headers when its head was complete (a
 * late body), else the request line and header lines of the bytes the parser refused (`rawPacket`, up to the blank
 * line; a header cut off or not among those bytes is simply not seen). Only `accept` and `x-request-id` are kept.
 */
export function refusedRequest(
  err: { rawPacket?: unknown },
  socket: Socket,
): { path?: string; headers: { accept?: string; 'x-request-id'?: string } } {
  const req = (socket as Socket & { _httpMessage?: { req?: IncomingMessage } })._httpMessage?.req;
  if (req) {
    const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(', ') : v);
    return {
      path: req.url?.split('?')[0],
      headers: { accept: one(req.headers.accept), 'x-request-id': one(req.headers['x-request-id']) },
    };
  }
  if (!Buffer.isBuffer(err.rawPacket)) return { headers: {} };
  const text = err.rawPacket.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const lines = (end >= 0 ? text.slice(0, end) : text).split('\r\n');
  // Split, not matched by one pattern: these bytes are the client's (a 16 KB URL), read in linear time.
  const [method = '', target = '', version = '', ...more] = (lines[0] ?? '').split(' ');
  const path =
    /^[A-Z]+$/.test(method) && target.startsWith('/') && /^HTTP\/1\.[01]$/.test(version) && more.length === 0
      ? target.split('?')[0]
      : undefined;
  const headers: { accept?: string; 'x-request-id'?: string } = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, Math.max(0, colon)).trim().toLowerCase();
    if (name !== 'accept' && name !== 'x-request-id') continue;
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { ...(path !== undefined && { path }), headers };
}

/** Node sets `upgrade` on a request it emitted as 'upgrade' (its socket then belongs to the listener, not to HTTP). */
const isUpgrade = (raw: IncomingMessage) => (raw as IncomingMessage & { upgrade?: boolean }).upgrade === true;

/**
 * Ends a refused upgrade's socket once the answer is flushed, and destroys it then (nothing reads it any more, so
 * the peer's FIN would never be seen), or after UPGRADE_CLOSE_GRACE_MS if the peer does not take the answer.
 */
function closeUpgradeSocket(socket: Socket | null | undefined) {
  if (!socket || socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), UPGRADE_CLOSE_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.end(() => socket.destroy());
}
const UPGRADE_CLOSE_GRACE_MS = 2000;

export interface AppOptions {
  config: Config;
}

export default async function app(fastify: FastifyInstance, opts: AppOptions) {
  const cfg = opts.config;

  // First: the request's span and its trace ids in the request logger, for every later hook's log lines too.
  await fastify.register(tracingPlugin);
  fastify.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  // A WebSocket handshake that is refused (rate limit, key, overload, 404: any answer but 101) must close its socket:
  // Node hands an upgrade's socket to @fastify/websocket, which routes it through Fastify and closes it only when
  // its own onRequest hook has marked the request, and a hook registered before it (auth, the rate limit,
  // under-pressure) may answer first. Nothing else ever closes such a socket (it has no HTTP parser, no timeout),
  // so each refusal held a descriptor for good. onResponse runs for every answer sent, whichever hook sent it (the
  // router's own refusals, which run no hook, are closed in fastifyOptions' frameworkErrors).
  fastify.addHook('onResponse', async (request, reply) => {
    if (isUpgrade(request.raw) && reply.statusCode !== 101) closeUpgradeSocket(request.raw.socket);
  });
  fastify.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        url: request.url,
        route: request.routeOptions.url,
        operation: operationOf(request.routeOptions.config),
        statusCode: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
      },
      'request',
    );
  });

  await fastify.register(errorsPlugin);
  // Every answer passes here: a JSON payload over MAX_RESPONSE_BYTES is not sent, 413 is. The large producers (an
  // OT plan) refuse before or off the main thread; this is the backstop for every other one, GraphQL included.
  // Streams (a job's result download) are not measured: a job is the way out for large answers.
  fastify.addHook('onSend', async (request, reply, payload) => {
    if ((request.routeOptions.config as { responseCapExempt?: boolean } | undefined)?.responseCapExempt)
      return payload;
    const limit = cfg.MAX_RESPONSE_BYTES;
    let bytes: number;
    if (typeof payload === 'string') {
      // length <= UTF-8 bytes <= 3 * length: count the bytes only when it could matter.
      if (payload.length * 3 <= limit) return payload;
      bytes = Buffer.byteLength(payload);
    } else if (Buffer.isBuffer(payload)) bytes = payload.length;
    else return payload;
    if (bytes <= limit || !/json/i.test(String(reply.getHeader('content-type') ?? ''))) return payload;
    const te = fail(
      'RESPONSE_TOO_LARGE',
      `The answer of ${bytes} bytes is over MAX_RESPONSE_BYTES = ${limit}: ask for less, or run the work as a job ` +
        'and download its result',
      { details: { bytes, limit } },
    );
    request.log.warn({ code: te.code, bytes, limit }, 'response too large');
    reply.code(te.statusCode).type(errorContentType(request));
    // errorBody gives /graphql both shapes (errors[].extensions.code and ours); GraphQL answers also carry data.
    if (request.routeOptions.url === '/graphql')
      return JSON.stringify({ data: null, ...errorBody(request, te) });
    return JSON.stringify(errorBody(request, te));
  });
  // Before everything that reads a body or does work: API keys, then headers, CORS and the rate limit.
  await fastify.register(authPlugin, { config: cfg });
  await fastify.register(securityPlugin, { config: cfg });
  await fastify.register(lifecyclePlugin, { config: cfg });
  await fastify.register(pressurePlugin, { config: cfg });
  // JSON bodies: Fastify's parser, but a `__proto__` key is named in a coded 400 rather than called invalid JSON.
  fastify.removeContentTypeParser('application/json');
  fastify.addContentTypeParser(
    'application/json',
    { parseAs: 'string', bodyLimit: cfg.BODY_LIMIT_BYTES },
    (_req, body, done) => {
      try {
        done(null, parseJsonBody(body as string));
      } catch (err) {
        done(err as Error, undefined);
      }
    },
  );
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
  await fastify.register(swaggerPlugin, { version: packageVersion(), serverUrl: cfg.OPENAPI_SERVER_URL });
  await fastify.register(graphqlPlugin, {
    config: cfg,
    resolvers: graphqlModules(cfg).map((m) => m(fastify)),
    sdl: operationSdl(OPERATIONS, cfg),
    computeFields: operationComputeFields(OPERATIONS, cfg),
  });
  traceGraphql(fastify);

  // Our routes validate and serialise with zod; mercurius and swagger keep their own JSON-schema compilers, so the
  // zod compilers are set in this encapsulated scope only.
  await fastify.register(async (scope) => {
    scope.setValidatorCompiler(validatorCompiler);
    scope.setSerializerCompiler(serializerCompiler);
    // A JSON route refuses an image, a form or any other media type with 415 before reading it.
    scope.addHook('onRoute', refuseOtherMediaTypes);
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

/** The operation a route serves (src/operations/http.ts), for the request log line. */
function operationOf(config: unknown): string | undefined {
  const c = config as { operation?: string; operationId?: string } | undefined;
  return c?.operation ?? c?.operationId;
}
