/**
 * Optional API keys. With API_KEYS or API_KEYS_FILE set, every route except the probes (/livez, /readyz, /metrics)
 * needs `Authorization: Bearer <key>`; anything else is 401 TW_UNAUTHORIZED with `WWW-Authenticate: Bearer`.
 *
 * Keys are compared in constant time: both sides are hashed (SHA-256, so lengths match) and every configured key is
 * compared with `timingSafeEqual`, without stopping at the first match. A caller is known by its owner id (a
 * separate hash of the key), which jobs store so that a job is visible only to the key that submitted it. Keys
 * themselves are never kept in clear after start-up, and never logged (the logger redacts the header).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../config.js';
import { fail } from '../../errors.js';
import { sendError } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Owner id of the caller's API key; undefined when API keys are off (or before authentication ran). */
    apiKeyOwner: string | undefined;
  }
  interface FastifyInstance {
    /** True when API keys are configured. */
    authEnabled: boolean;
  }
}

/** Routes that stay open with keys on: orchestrators and scrapers carry no key (the OIP v2 probes are aliases). */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set([
  '/livez',
  '/readyz',
  '/metrics',
  '/v2/health/live',
  '/v2/health/ready',
]);

/** Keys from API_KEYS (comma-separated) and API_KEYS_FILE (one per line, `#` comments), trimmed, deduplicated. */
export function loadApiKeys(cfg: Pick<Config, 'API_KEYS' | 'API_KEYS_FILE'>): string[] {
  const keys = (cfg.API_KEYS ?? '').split(',');
  if (cfg.API_KEYS_FILE) {
    let text: string;
    try {
      text = readFileSync(cfg.API_KEYS_FILE, 'utf8');
    } catch (err) {
      throw new Error(`API_KEYS_FILE: cannot read ${cfg.API_KEYS_FILE}: ${(err as Error).message}`);
    }
    keys.push(...text.split(/\r?\n/).filter((line) => !line.trimStart().startsWith('#')));
  }
  const cleaned = [...new Set(keys.map((k) => k.trim()).filter((k) => k.length > 0))];
  for (const k of cleaned) {
    // A key with spaces could never be sent in a Bearer header; refuse at start rather than lock a client out.
    if (!/^[\x21-\x7e]+$/.test(k))
      throw new Error('API keys must be visible ASCII characters without spaces');
  }
  return cleaned;
}

const digest = (key: string) => createHash('sha256').update(key, 'utf8').digest();

/** A stable, non-reversible id of a key: what jobs store as their owner (never the key itself). */
export function ownerIdOf(key: string): string {
  return createHash('sha256').update(`tweedie-owner\0${key}`, 'utf8').digest('hex').slice(0, 24);
}

export interface Keyring {
  /** The owner id of a presented key, or undefined when it matches no configured key. */
  identify(presented: string): string | undefined;
  readonly size: number;
}

export function keyring(keys: string[]): Keyring {
  const entries = keys.map((k) => ({ digest: digest(k), owner: ownerIdOf(k) }));
  return {
    size: entries.length,
    identify(presented) {
      const probe = digest(presented);
      let owner: string | undefined;
      // No early exit: the time taken does not depend on which key (if any) matched.
      for (const e of entries) {
        if (timingSafeEqual(probe, e.digest)) owner = e.owner;
      }
      return owner;
    },
  };
}

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  const m = /^Bearer[ ]+([\x21-\x7e]+)[ ]*$/i.exec(value);
  return m?.[1];
}

/**
 * The console's static files (routes/console.ts: `/` redirects to `/console/`, the bundle, examples and sample
 * grids) are public too: a browser cannot attach a bearer token to a page load or an <img>, and they hold no data.
 * The console then sends the key the user types to every API call.
 */
export function isPublicRoute(request: FastifyRequest): boolean {
  const url = request.routeOptions.url;
  if (url === undefined) return false;
  return PUBLIC_ROUTES.has(url) || url === '/' || url.startsWith('/console/');
}

export default fp(
  async function authPlugin(fastify: FastifyInstance, opts: { config: Config }) {
    const ring = keyring(loadApiKeys(opts.config));
    fastify.decorate('authEnabled', ring.size > 0);
    fastify.decorateRequest('apiKeyOwner', undefined);
    if (ring.size === 0) return;
    fastify.log.info({ keys: ring.size }, 'API keys required');

    // Identify early (the rate limiter, an onRequest hook registered after this one, keys on the owner), refuse
    // just before the body is read: refused callers are still counted by address, and their bodies never parsed.
    fastify.addHook('onRequest', async (request) => {
      const token = bearerToken(request.headers.authorization);
      request.apiKeyOwner = token === undefined ? undefined : ring.identify(token);
    });
    // The refusal is sent from the hook rather than thrown: a plugin's own error handler (mercurius answers errors
    // as GraphQL responses with status 200) must not soften it.
    fastify.addHook('preParsing', async (request, reply) => {
      if (request.apiKeyOwner !== undefined || isPublicRoute(request)) return;
      const missing = request.headers.authorization === undefined;
      const refusal = fail('UNAUTHORIZED', missing ? 'An API key is required' : 'The API key is not valid', {
        headers: { 'www-authenticate': 'Bearer realm="tweedie"' },
      });
      request.log.info({ code: refusal.code, message: refusal.message }, 'request rejected');
      return sendError(request, reply, refusal);
    });
  },
  { name: 'auth', dependencies: ['errors'] },
);
