/**
 * Browser-facing and abuse-facing guards, one third-party plugin each:
 * - @fastify/helmet: security headers on every response (the CSP lets /docs and, when enabled, GraphiQL work);
 * - @fastify/cors: off unless CORS_ORIGINS names origins;
 * - @fastify/rate-limit: RATE_LIMIT_MAX requests per RATE_LIMIT_WINDOW_MS per API key (per client address when
 *   keys are off or the key is not valid), on every route including unknown ones (404s count), probes exempt.
 *
 * Registered after the auth plugin: the limiter keys on `request.apiKeyOwner`, which auth sets in its onRequest
 * hook, and auth refuses (401) only later, so failed key guesses are counted against the guessing address.
 */
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../config.js';
import { fail, TweedieError } from '../../errors.js';
import { isPublicRoute } from '../app/auth.js';
import { sendError } from '../app/errors.js';

/** CORS_ORIGINS as @fastify/cors wants it: false (off), true (`*`: any origin) or the list. */
export function corsOrigins(value: string): boolean | string[] {
  const list = value
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  if (list.length === 0) return false;
  if (list.includes('*')) return true;
  return list;
}

/** Helmet's CSP directives: same-origin everything; GraphiQL (when on) loads React and its bundle from unpkg. */
export function contentSecurityPolicy(cfg: Pick<Config, 'GRAPHIQL'>): Record<string, string[]> {
  const cdn = cfg.GRAPHIQL ? ['https://unpkg.com'] : [];
  return {
    defaultSrc: ["'self'"],
    baseUri: ["'self'"],
    connectSrc: ["'self'"],
    fontSrc: ["'self'", 'data:'],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
    imgSrc: ["'self'", 'data:', 'blob:'],
    objectSrc: ["'none'"],
    scriptSrc: ["'self'", ...cdn],
    scriptSrcAttr: ["'none'"],
    styleSrc: ["'self'", "'unsafe-inline'", ...cdn],
    workerSrc: ["'self'", 'blob:'],
  };
}

/** Probes (and the other pressure-exempt routes such as /openapi.json) are never rate limited. */
function exemptFromRateLimit(request: FastifyRequest): boolean {
  const config = request.routeOptions.config as { pressureExempt?: boolean } | undefined;
  return isPublicRoute(request) || config?.pressureExempt === true;
}

export default fp(
  async function securityPlugin(fastify: FastifyInstance, opts: { config: Config }) {
    const cfg = opts.config;
    await fastify.register(helmet, {
      // upgrade-insecure-requests would break the console on plain-HTTP cluster addresses; TLS is the ingress's job.
      contentSecurityPolicy: { useDefaults: false, directives: contentSecurityPolicy(cfg) },
      // The API is called cross-origin only through CORS; cross-origin embedding of responses is not needed.
      crossOriginResourcePolicy: { policy: cfg.CORS_ORIGINS ? 'cross-origin' : 'same-origin' },
      hsts: false,
    });

    const origin = corsOrigins(cfg.CORS_ORIGINS);
    if (origin !== false) {
      await fastify.register(cors, {
        origin,
        methods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
        allowedHeaders: ['authorization', 'content-type', 'idempotency-key', 'prefer', 'x-request-id'],
        exposedHeaders: [
          'location',
          'retry-after',
          'x-request-id',
          'x-ratelimit-limit',
          'x-ratelimit-remaining',
          'x-ratelimit-reset',
        ],
        maxAge: 600,
      });
    }

    if (cfg.RATE_LIMIT_MAX > 0) {
      await fastify.register(rateLimit, {
        // Added below as a root onRequest hook (not per route), so that the 404 handler is limited too.
        global: false,
        max: cfg.RATE_LIMIT_MAX,
        timeWindow: cfg.RATE_LIMIT_WINDOW_MS,
        keyGenerator: (request) => (request.apiKeyOwner ? `key:${request.apiKeyOwner}` : `ip:${request.ip}`),
        allowList: (request) => exemptFromRateLimit(request),
        errorResponseBuilder: (_request, context) =>
          fail('RATE_LIMITED', `Rate limit of ${context.max} requests per ${context.after} exceeded`, {
            retryAfter: Math.max(1, Math.ceil(context.ttl / 1000)),
            details: { limit: context.max, retryAfterSeconds: Math.max(1, Math.ceil(context.ttl / 1000)) },
          }),
      });
      // Sent from the hook, not thrown: mercurius' error handler would answer a thrown 429 as a GraphQL 200.
      const limit = fastify.rateLimit();
      fastify.addHook('onRequest', async (request, reply) => {
        try {
          await limit.call(fastify, request, reply);
        } catch (err) {
          if (!(err instanceof TweedieError)) throw err;
          request.log.info({ code: err.code, key: request.apiKeyOwner ?? 'address' }, 'rate limited');
          return sendError(request, reply, err);
        }
      });
    }
  },
  { name: 'security', dependencies: ['errors', 'auth'] },
);
