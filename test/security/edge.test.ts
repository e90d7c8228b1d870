/**
 * What a caller meets at the edge: security headers (and a CSP under which /docs still renders), CORS off by
 * default and on for configured origins only, and the rate limit (per key / per address, 404s counted, probes
 * exempt, 429 in our error shape with Retry-After).
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contentSecurityPolicy, corsOrigins } from '../../src/plugins/external/security.js';
import { makeApp } from '../helpers.js';

const bearer = (k: string) => ({ authorization: `Bearer ${k}` });

describe('security headers, /docs and CORS with configured origins', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await makeApp({
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
      RATE_LIMIT_MAX: 0,
      CORS_ORIGINS: 'https://console.example',
    });
  }, 60_000);
  afterAll(async () => app?.close());

  it('sets helmet headers on API responses, errors included', async () => {
    for (const url of ['/v1/models', '/v1/no-such-route']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
      const csp = String(res.headers['content-security-policy']);
      expect(csp).toContain("default-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unpkg.com');
    }
  });

  it('renders Swagger UI under its CSP: the page, every script and stylesheet it references, and the spec', async () => {
    const page = await app.inject({ method: 'GET', url: '/docs/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    const csp = String(page.headers['content-security-policy']);
    const html = page.body;
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)]
      .map((m) => m[1])
      .filter((u) => !u.startsWith('http'));
    expect(assets.length).toBeGreaterThanOrEqual(3);
    // Every asset is same-origin (allowed by 'self') and loads.
    for (const rel of assets) {
      const url = new URL(rel, 'http://x/docs/').pathname;
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
    }
    // No inline <script> bodies that 'self' would block (scripts are files), or they carry an allowed hash.
    const inline = [...html.matchAll(/<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/g)].filter((m) =>
      m[1].trim(),
    );
    if (inline.length > 0) expect(csp).toMatch(/'sha256-|'unsafe-inline'/);
    expect(csp).toMatch(/script-src 'self'/);
    // Plain-HTTP cluster addresses must not be upgraded to https (the assets would not load).
    expect(csp).not.toContain('upgrade-insecure-requests');
    const init = await app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' });
    expect(init.statusCode).toBe(200);
    const spec = await app.inject({ method: 'GET', url: '/docs/json' });
    expect(spec.statusCode).toBe(200);
    expect(spec.json().openapi).toMatch(/^3\./);
  });

  it('answers preflights for the listed origin only', async () => {
    const ok = await app.inject({
      method: 'OPTIONS',
      url: '/v1/ot/plan',
      headers: {
        origin: 'https://console.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });
    expect(ok.statusCode).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe('https://console.example');
    expect(String(ok.headers['access-control-allow-headers'])).toContain('authorization');
    const other = await app.inject({
      method: 'OPTIONS',
      url: '/v1/ot/plan',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    const get = await app.inject({
      method: 'GET',
      url: '/v1/models',
      headers: { origin: 'https://console.example' },
    });
    expect(get.headers['access-control-allow-origin']).toBe('https://console.example');
    expect(String(get.headers['access-control-expose-headers'])).toContain('retry-after');
  });
  it('parses CORS_ORIGINS and allows unpkg in the CSP only with GraphiQL on', () => {
    expect(corsOrigins('')).toBe(false);
    expect(corsOrigins(' , ')).toBe(false);
    expect(corsOrigins('*')).toBe(true);
    expect(corsOrigins('https://a.example, https://b.example')).toEqual([
      'https://a.example',
      'https://b.example',
    ]);
    expect(contentSecurityPolicy({ GRAPHIQL: true }).scriptSrc).toContain('https://unpkg.com');
    expect(contentSecurityPolicy({ GRAPHIQL: false }).scriptSrc).not.toContain('https://unpkg.com');
  });
});

describe('rate limit per client address (no keys), and CORS off by default', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await makeApp({
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
      RATE_LIMIT_MAX: 3,
      RATE_LIMIT_WINDOW_MS: 60_000,
    });
  }, 60_000);
  afterAll(async () => app?.close());

  it('refuses the 4th request in the window with 429 TW_RATE_LIMITED and Retry-After, 404s counted', async () => {
    const from = (ip: string, url: string) => app.inject({ method: 'GET', url, remoteAddress: ip });
    expect((await from('10.0.0.1', '/v1/models')).statusCode).toBe(200);
    expect((await from('10.0.0.1', '/v1/nowhere')).statusCode).toBe(404);
    expect((await from('10.0.0.1', '/v1/nowhere-else')).statusCode).toBe(404);
    for (const url of ['/v1/models', '/v1/nowhere']) {
      const res = await from('10.0.0.1', url);
      expect(res.statusCode).toBe(429);
      const body = res.json();
      expect(body.error.code).toBe('TW_RATE_LIMITED');
      expect(typeof body.error.requestId).toBe('string');
      const retry = Number(res.headers['retry-after']);
      expect(retry).toBeGreaterThanOrEqual(1);
      expect(retry).toBeLessThanOrEqual(60);
    }
    // GraphQL is limited too, with a real 429 (not a GraphQL 200).
    const gql = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: { query: '{ __typename }' },
      remoteAddress: '10.0.0.1',
    });
    expect(gql.statusCode).toBe(429);
    expect(gql.json().error.code).toBe('TW_RATE_LIMITED');
    // Another address has its own budget.
    expect((await from('10.0.0.2', '/v1/models')).statusCode).toBe(200);
  });

  it('sends no CORS headers when CORS_ORIGINS is empty', async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/v1/models',
      headers: { origin: 'https://evil.example' },
      remoteAddress: '10.0.0.8',
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/v1/ot/plan',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
      remoteAddress: '10.0.0.8',
    });
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('never limits the probes', async () => {
    for (let i = 0; i < 8; i++) {
      expect((await app.inject({ method: 'GET', url: '/livez', remoteAddress: '10.0.0.3' })).statusCode).toBe(
        200,
      );
      expect(
        (await app.inject({ method: 'GET', url: '/metrics', remoteAddress: '10.0.0.3' })).statusCode,
      ).toBe(200);
    }
    expect(
      (await app.inject({ method: 'GET', url: '/v1/models', remoteAddress: '10.0.0.3' })).statusCode,
    ).toBe(200);
  });
});

describe('rate limit per API key', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await makeApp({
      RATE_LIMIT_MAX: 2,
      RATE_LIMIT_WINDOW_MS: 60_000,
      API_KEYS: 'key-one-aaaa,key-two-bbbb',
    });
  }, 60_000);
  afterAll(async () => app?.close());

  it('gives each key its own budget, from the same address', async () => {
    const get = (key: string) =>
      app.inject({ method: 'GET', url: '/v1/models', headers: bearer(key), remoteAddress: '10.1.0.1' });
    expect((await get('key-one-aaaa')).statusCode).toBe(200);
    expect((await get('key-one-aaaa')).statusCode).toBe(200);
    expect((await get('key-one-aaaa')).statusCode).toBe(429);
    expect((await get('key-two-bbbb')).statusCode).toBe(200);
  });

  it('counts failed key guesses against the guessing address', async () => {
    const guess = (k: string) =>
      app.inject({ method: 'GET', url: '/v1/models', headers: bearer(k), remoteAddress: '10.1.0.9' });
    expect((await guess('guess-1')).statusCode).toBe(401);
    expect((await guess('guess-2')).statusCode).toBe(401);
    const third = await guess('guess-3');
    expect(third.statusCode).toBe(429);
    expect(third.json().error.code).toBe('TW_RATE_LIMITED');
  });
});
