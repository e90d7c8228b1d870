/**
 * API keys: every route but the probes needs a valid Bearer key (REST, GraphQL, 404s), jobs belong to the key
 * that submitted them (404 for others), keys never reach the logs, and the key file format is honoured.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { testConfig } from '../../src/config.js';
import { bearerToken, keyring, loadApiKeys, ownerIdOf } from '../../src/plugins/app/auth.js';
import { makeApp, tinyModelsDir, waitFor } from '../helpers.js';

const WebSocket = createRequire(import.meta.url)('ws');

const KEY_A = 'tw_alice_0123456789abcdef';
const KEY_B = 'tw_bob_fedcba9876543210';
const bearer = (k: string) => ({ authorization: `Bearer ${k}` });
const planBody = { x: [[0], [1]], y: [[0.5], [1.5]], solver: { solver: 'emd' } };

function expectCodedError(res: { statusCode: number; json: () => any }, status: number, code: string) {
  expect(res.statusCode).toBe(status);
  const body = res.json();
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe('string');
  expect(typeof body.error.requestId).toBe('string');
}

describe('API key helpers', () => {
  it('reads keys from API_KEYS and a file (comments, blank lines, CRLF), deduplicated', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tw-keys-'));
    const file = path.join(dir, 'keys');
    writeFileSync(file, `# rotated 2026-11\r\n${KEY_B}\r\n\r\n  ${KEY_A}  \n`);
    expect(loadApiKeys({ API_KEYS: ` ${KEY_A},, `, API_KEYS_FILE: file }).sort()).toEqual(
      [KEY_A, KEY_B].sort(),
    );
    expect(loadApiKeys({ API_KEYS: undefined, API_KEYS_FILE: undefined })).toEqual([]);
    expect(() => loadApiKeys({ API_KEYS_FILE: path.join(dir, 'missing') })).toThrow(/API_KEYS_FILE/);
  });

  it('matches only exact keys and gives each its own owner id, never the key itself', () => {
    const ring = keyring([KEY_A, KEY_B]);
    expect(ring.identify(KEY_A)).toBe(ownerIdOf(KEY_A));
    expect(ring.identify(KEY_B)).toBe(ownerIdOf(KEY_B));
    expect(ownerIdOf(KEY_A)).not.toBe(ownerIdOf(KEY_B));
    expect(ownerIdOf(KEY_A)).not.toContain(KEY_A);
    for (const wrong of [`${KEY_A}x`, KEY_A.slice(0, -1), KEY_A.toUpperCase(), '', 'x']) {
      expect(ring.identify(wrong)).toBeUndefined();
    }
  });

  it('parses Bearer headers strictly', () => {
    expect(bearerToken(`Bearer ${KEY_A}`)).toBe(KEY_A);
    expect(bearerToken(`bearer ${KEY_A}`)).toBe(KEY_A);
    expect(bearerToken(`Basic ${KEY_A}`)).toBeUndefined();
    expect(bearerToken('Bearer')).toBeUndefined();
    expect(bearerToken(`Bearer ${KEY_A} extra`)).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});

describe('with API keys set', () => {
  let app: FastifyInstance;
  const logLines: string[] = [];

  beforeAll(async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tw-keys-'));
    const file = path.join(dir, 'keys');
    writeFileSync(file, `${KEY_B}\n`);
    const cfg = testConfig({
      WORKERS: 1,
      ENABLE_TEST_TASKS: true,
      MODELS_DIR: tinyModelsDir(),
      TFJS_BACKEND: 'wasm',
      API_KEYS: KEY_A,
      API_KEYS_FILE: file,
      RATE_LIMIT_MAX: 0,
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
    });
    // The app's own logger options (redaction included), writing into an array we can search.
    const sink = new Writable({
      write(chunk, _enc, done) {
        logLines.push(String(chunk));
        done();
      },
    });
    const { fastifyOptions } = await import('../../src/app.js');
    const loggerOpts = fastifyOptions({ ...cfg, LOG_LEVEL: 'trace' }).logger as Record<string, unknown>;
    app = await buildApp(cfg, { ...loggerOpts, stream: sink });
    await app.ready();
  }, 60_000);
  afterAll(async () => app?.close());

  it('refuses REST calls without a key, with a wrong key, or with another scheme (401 + WWW-Authenticate)', async () => {
    for (const headers of [{}, bearer('nope'), { authorization: `Basic ${KEY_A}` }, bearer(`${KEY_A}0`)]) {
      const res = await app.inject({ method: 'POST', url: '/v1/ot/plan', payload: planBody, headers });
      expectCodedError(res, 401, 'TW_UNAUTHORIZED');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
    const models = await app.inject({ method: 'GET', url: '/v1/models' });
    expectCodedError(models, 401, 'TW_UNAUTHORIZED');
  });

  it("serves the console's static files without a key (a browser cannot send one for a page), never the API", async () => {
    const root = await app.inject({ method: 'GET', url: '/' });
    expect(root.statusCode).toBe(302);
    expect(root.headers.location).toBe('/console/');
    // 200 when web/dist is built, 404 TW_NOT_FOUND naming the build command when not: never 401
    for (const url of ['/console/', '/console/console.js']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).not.toBe(401);
    }
    // the static prefix does not open the API: a path that climbs out of /console/ is still refused or not found
    for (const url of ['/console/../v1/models', '/console/%2e%2e/v1/models']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).not.toBe(200);
    }
    expectCodedError(await app.inject({ method: 'GET', url: '/v1/models' }), 401, 'TW_UNAUTHORIZED');
  });

  it('refuses unknown routes too, so routes cannot be probed without a key', async () => {
    expectCodedError(await app.inject({ method: 'GET', url: '/v1/nothing-here' }), 401, 'TW_UNAUTHORIZED');
    expectCodedError(
      await app.inject({ method: 'GET', url: '/v1/nothing-here', headers: bearer(KEY_A) }),
      404,
      'TW_ROUTE_NOT_FOUND',
    );
  });

  it('accepts either configured key (from API_KEYS and from API_KEYS_FILE)', async () => {
    for (const key of [KEY_A, KEY_B]) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/ot/plan',
        payload: planBody,
        headers: bearer(key),
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().cost).toBeCloseTo(0.25, 12);
    }
  });

  it('leaves the probes open', async () => {
    expect((await app.inject({ method: 'GET', url: '/livez' })).statusCode).toBe(200);
    expect([200, 503]).toContain((await app.inject({ method: 'GET', url: '/readyz' })).statusCode);
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
  });

  it('guards GraphQL', async () => {
    const query = { query: '{ __typename }' };
    const anon = await app.inject({ method: 'POST', url: '/graphql', payload: query });
    expectCodedError(anon, 401, 'TW_UNAUTHORIZED');
    const ok = await app.inject({ method: 'POST', url: '/graphql', payload: query, headers: bearer(KEY_A) });
    expect(ok.statusCode).toBe(200);
    expect(ok.json().data.__typename).toBe('Query');
  });

  it('shows a job only to the key that submitted it (404 for the other key, REST and GraphQL)', async () => {
    const submit = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      payload: { operation: 'ot.plan', input: planBody },
      headers: bearer(KEY_A),
    });
    expect(submit.statusCode, submit.body).toBe(202);
    const id = submit.json().id as string;
    await waitFor(async () => {
      const r = await app.inject({ method: 'GET', url: `/v1/jobs/${id}`, headers: bearer(KEY_A) });
      return r.json().state === 'succeeded';
    }, 20_000);
    const mine = await app.inject({ method: 'GET', url: `/v1/jobs/${id}/result`, headers: bearer(KEY_A) });
    expect(mine.statusCode).toBe(200);
    expect(mine.json().cost).toBeCloseTo(0.25, 12);

    for (const url of [`/v1/jobs/${id}`, `/v1/jobs/${id}/result`]) {
      const theirs = await app.inject({ method: 'GET', url, headers: bearer(KEY_B) });
      expectCodedError(theirs, 404, 'TW_JOB_NOT_FOUND');
    }
    const cancel = await app.inject({ method: 'DELETE', url: `/v1/jobs/${id}`, headers: bearer(KEY_B) });
    expectCodedError(cancel, 404, 'TW_JOB_NOT_FOUND');
    // Same answer as an id that never existed: nothing to tell them apart.
    const unknown = await app.inject({
      method: 'GET',
      url: '/v1/jobs/00000000-0000-4000-8000-000000000000',
      headers: bearer(KEY_B),
    });
    expect(unknown.statusCode).toBe(404);

    const gql = (key: string) =>
      app.inject({
        method: 'POST',
        url: '/graphql',
        payload: { query: 'query($id: ID!) { job(id: $id) { id state } }', variables: { id } },
        headers: bearer(key),
      });
    expect((await gql(KEY_A)).json().data.job).toMatchObject({ id, state: 'SUCCEEDED' });
    expect((await gql(KEY_B)).json().data.job).toBeNull();
  });

  it('keeps async submissions owned too, and scopes idempotency keys per API key', async () => {
    const post = (key: string) =>
      app.inject({
        method: 'POST',
        url: '/v1/ot/plan',
        payload: { ...planBody, async: true },
        headers: { ...bearer(key), 'idempotency-key': 'same-key-1' },
      });
    const a = await post(KEY_A);
    const b = await post(KEY_B);
    expect(a.statusCode).toBe(202);
    expect(b.statusCode).toBe(202);
    // B's identical key did not replay A's job.
    expect(b.json().id).not.toBe(a.json().id);
    expect(b.headers['idempotent-replayed']).toBeUndefined();
    const replay = await post(KEY_A);
    expect(replay.json().id).toBe(a.json().id);
    expect(
      (await app.inject({ method: 'GET', url: `/v1/jobs/${a.json().id}`, headers: bearer(KEY_B) }))
        .statusCode,
    ).toBe(404);
  });

  it("guards the GraphQL WebSocket: no key, no connection; a subscription to another key's job gets nothing", async () => {
    const submit = await app.inject({
      method: 'POST',
      url: '/v1/jobs',
      payload: { operation: 'ot.plan', input: planBody },
      headers: bearer(KEY_A),
    });
    const id = submit.json().id as string;
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    const url = `ws://127.0.0.1:${port}/graphql`;

    const anonymous = new WebSocket(url, 'graphql-transport-ws');
    const refusal = await new Promise<string>((resolve) => {
      anonymous.on('unexpected-response', (_req: unknown, res: { statusCode: number }) =>
        resolve(String(res.statusCode)),
      );
      anonymous.on('error', (err: Error) => resolve(err.message));
      anonymous.on('open', () => resolve('open'));
    });
    expect(refusal).toMatch(/401/);

    // Bob connects (valid key) and subscribes to Alice's job: an error, never a state.
    const ws = new WebSocket(url, 'graphql-transport-ws', { headers: bearer(KEY_B) });
    const messages: { type: string; payload?: unknown }[] = [];
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(String(data));
      messages.push(msg);
      if (msg.type === 'connection_ack') {
        ws.send(
          JSON.stringify({
            id: '1',
            type: 'subscribe',
            payload: {
              query: 'subscription($id: ID!) { jobProgress(id: $id) { state } }',
              variables: { id },
            },
          }),
        );
      }
    });
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'connection_init' }));
    await waitFor(() => messages.some((m) => m.type === 'error' || m.type === 'complete'), 10_000);
    ws.close();
    expect(messages.some((m) => m.type === 'next')).toBe(false);
    expect(JSON.stringify(messages)).toMatch(/TW_JOB_NOT_FOUND|No job/);
  });

  it('never writes a key to the logs', async () => {
    logLines.length = 0;
    await app.inject({ method: 'GET', url: '/v1/models', headers: bearer(KEY_A) });
    await app.inject({ method: 'GET', url: '/v1/models', headers: bearer(`${KEY_B}-wrong`) });
    app.log.info({ req: { headers: { authorization: `Bearer ${KEY_A}` } } }, 'a careless log line');
    const text = logLines.join('');
    expect(logLines.length).toBeGreaterThan(2);
    expect(text).toContain('a careless log line');
    expect(text).not.toContain(KEY_A);
    expect(text).not.toContain(KEY_B);
  });
});

describe('without API keys', () => {
  it('is open, and jobs are visible to everyone as before', async () => {
    const app = await makeApp({ RATE_LIMIT_MAX: 0, PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0 });
    try {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/jobs',
        payload: { operation: 'ot.plan', input: planBody },
      });
      expect(res.statusCode).toBe(202);
      const get = await app.inject({ method: 'GET', url: `/v1/jobs/${res.json().id}` });
      expect(get.statusCode).toBe(200);
      expect(get.headers['www-authenticate']).toBeUndefined();
    } finally {
      await app.close();
    }
  }, 30_000);
});
