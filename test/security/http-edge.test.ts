/**
 * The HTTP edge below the routes: a request must arrive within HTTP_REQUEST_TIMEOUT_MS (408, without cutting long
 * computations), what Node's parser refuses (an URL over 16 KB, a malformed request) answers in our coded shape, or
 * as problem details when Accept prefers them, like every other error, `__proto__` keys are
 * refused by name, and the console's source map is not published.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import net, { type Socket } from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusedRequest } from '../../src/app.js';
import { makeApp, repoRoot } from '../helpers.js';

/** Writes `text` on a fresh connection (then `more` after `delayMs`, if given) and collects the answer. */
function raw(
  port: number,
  text: string,
): Promise<{ head: string; body: string; ms: number; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (c) => {
      data += c;
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const [head, body = ''] = data.split('\r\n\r\n');
      resolve({ head, body, ms: performance.now() - t0, closed: true });
    });
    socket.write(text);
  });
}

describe('the HTTP edge', () => {
  let app: FastifyInstance;
  let port: number;
  beforeAll(async () => {
    app = await makeApp({
      HTTP_REQUEST_TIMEOUT_MS: 1000,
      RATE_LIMIT_MAX: 0,
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as AddressInfo).port;
  }, 60_000);
  afterAll(async () => app?.close());

  it('answers a body that does not arrive in time 408 TW_REQUEST_TIMEOUT and closes the connection', async () => {
    // 10 of the 100 announced bytes, then nothing.
    const res = await raw(
      port,
      'POST /v1/ot/plan HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"C": [[1,',
    );
    expect(res.head).toMatch(/^HTTP\/1\.1 408 /);
    expect(JSON.parse(res.body).error.code).toBe('TW_REQUEST_TIMEOUT');
    // The limit (1 s) plus Node's check interval (0.1 s here), with room for a busy machine.
    expect(res.ms).toBeLessThan(4000);
  });

  it('does not cut a request whose computation outlasts the receipt limit', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/_test/busy`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ms: 2500 }),
    });
    expect(res.status).toBe(200);
  });

  it('answers an URL over 16 KB 431 TW_HEADERS_TOO_LARGE', async () => {
    const res = await raw(port, `GET /v1/models?q=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(res.head).toMatch(/^HTTP\/1\.1 431 /);
    expect(res.head).toMatch(/content-type: application\/json/i);
    const error = JSON.parse(res.body).error;
    expect(error.code).toBe('TW_HEADERS_TOO_LARGE');
    expect(error.message).toMatch(/16384 bytes/);
    expect(error.requestId).toBeTruthy();
  });

  it('answers what the parser refuses as problem details when Accept prefers them, with x-request-id (408, 431, 400)', async () => {
    const accept = 'Accept: application/json;q=0.5, application/problem+json\r\n';
    const cases = [
      {
        // The head is parsed, the body is late: Accept and the path come from the parsed request.
        text: `POST /v1/ot/plan?x=1 HTTP/1.1\r\nHost: x\r\n${accept}X-Request-Id: edge-408\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"C": [[1,`,
        status: 408,
        code: 'TW_REQUEST_TIMEOUT',
        requestId: 'edge-408',
        instance: '/v1/ot/plan',
      },
      {
        // No request: Accept and the path are read from the bytes the parser refused.
        text: `GET /v1/models?q=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n${accept}X-Request-Id: edge-431\r\n\r\n`,
        status: 431,
        code: 'TW_HEADERS_TOO_LARGE',
        requestId: 'edge-431',
        instance: '/v1/models',
      },
      {
        text: `GET /v1/models HTTP/1.1\r\nHost: x\r\n${accept}X-Request-Id: edge-400\r\nBad Header: x\r\n\r\n`,
        status: 400,
        code: 'TW_VALIDATION',
        requestId: 'edge-400',
        instance: '/v1/models',
      },
    ];
    for (const c of cases) {
      const res = await raw(port, c.text);
      expect(res.head).toMatch(new RegExp(`^HTTP/1\\.1 ${c.status} `));
      expect(res.head).toMatch(/\r\ncontent-type: application\/problem\+json; charset=utf-8\r\n/i);
      expect(res.head).toMatch(new RegExp(`\r\nx-request-id: ${c.requestId}\r\n`, 'i'));
      expect(JSON.parse(res.body)).toMatchObject({
        type: `urn:tweedie:error:${c.code}`,
        status: c.status,
        code: c.code,
        requestId: c.requestId,
        instance: c.instance,
      });
      expect(typeof JSON.parse(res.body).title).toBe('string');
    }
    // Without Accept (or preferring JSON): our shape, its request id in x-request-id as on every answer; an id that
    // is not a valid request id is replaced.
    const plain = await raw(port, 'BAD REQUEST\r\nX-Request-Id: bad id with spaces\r\n\r\n');
    expect(plain.head).toMatch(/^HTTP\/1\.1 400 /);
    expect(plain.head).toMatch(/\r\ncontent-type: application\/json; charset=utf-8\r\n/i);
    const error = JSON.parse(plain.body).error;
    expect(error.code).toBe('TW_VALIDATION');
    expect(error.requestId).not.toMatch(/ /);
    expect(plain.head).toContain(`\r\nx-request-id: ${error.requestId}\r\n`);
  });

  it('reads a refused request in linear time, whatever its bytes', () => {
    const long = 'a'.repeat(60_000);
    const packet = Buffer.from(
      `GET /${long}X HTTP/1.1 more\r\nAccept:${' '.repeat(60_000)}application/problem+json\r\nx-request-id:  id-1 \r\n\r\n`,
      'latin1',
    );
    const t0 = performance.now();
    const seen = refusedRequest({ rawPacket: packet }, {} as Socket);
    expect(performance.now() - t0).toBeLessThan(100);
    expect(seen).toEqual({ headers: { accept: 'application/problem+json', 'x-request-id': 'id-1' } });
    expect(
      refusedRequest({ rawPacket: Buffer.from(`GET /a/${long}?q=1 HTTP/1.0\r\n`) }, {} as Socket).path,
    ).toBe(`/a/${long}`);
  });

  it('refuses `__proto__` and `constructor.prototype` keys by name (400 TW_VALIDATION), REST and GraphQL alike', async () => {
    const post = (url: string, payload: string) =>
      app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json' } });
    const proto = await post(
      '/v1/ot/plan',
      '{"C": [[0]], "solver": {"solver": "emd", "__proto__": {"x": 1}}}',
    );
    expect(proto.statusCode).toBe(400);
    expect(proto.json().error).toMatchObject({
      code: 'TW_VALIDATION',
      details: [{ path: 'solver.__proto__', code: 'forbidden_key' }],
    });
    expect(proto.json().error.message).toMatch(/__proto__/);
    // Escaped letters are the same key.
    const escaped = await post('/v1/ot/plan', '{"\\u005f_proto__": {}}');
    expect(escaped.json().error.details[0].path).toBe('__proto__');
    const ctor = await post('/v1/ot/plan', '{"a": [{"constructor": {"prototype": {"x": 1}}}]}');
    expect(ctor.json().error.details[0].path).toBe('a.0.constructor.prototype');
    const graphql = await post('/graphql', '{"query": "{ __typename }", "variables": {"__proto__": {}}}');
    expect(graphql.statusCode).toBe(400);
    expect(graphql.json().errors[0].extensions.code).toBe('TW_VALIDATION');
    // Invalid JSON is still TW_BAD_JSON, and a plain "constructor" field is just a field.
    expect((await post('/v1/ot/plan', '{"C": ')).json().error.code).toBe('TW_BAD_JSON');
    const plain = await post('/v1/ot/plan', '{"constructor": "x", "C": [[0]], "solver": {"solver": "emd"}}');
    expect(plain.statusCode).toBe(200);
  });
});

describe('the console', () => {
  const dist = path.join(repoRoot, 'web', 'dist');
  let app: FastifyInstance;
  beforeAll(async () => {
    execFileSync(process.execPath, [path.join(repoRoot, 'web', 'build.mjs')], { stdio: 'pipe' });
    app = await makeApp({ RATE_LIMIT_MAX: 0 });
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    rmSync(path.join(dist, 'stale.js.map'), { force: true });
  });

  it('is built without a source map, and serves none that a build left behind', async () => {
    expect(readdirSync(dist).filter((f) => f.endsWith('.map'))).toEqual([]);
    expect((await app.inject({ url: '/console/console.js' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/console/console.js.map' })).statusCode).toBe(404);
    writeFileSync(path.join(dist, 'stale.js.map'), '{"version":3,"sources":["secret.ts"]}');
    expect(existsSync(path.join(dist, 'stale.js.map'))).toBe(true);
    const stale = await app.inject({ url: '/console/stale.js.map' });
    expect(stale.statusCode).toBe(404);
    expect(stale.body).not.toContain('secret.ts');
  });
});
