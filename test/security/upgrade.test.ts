/**
 * A WebSocket upgrade that is refused (rate limit, missing key, overload, unknown route) must not leave its socket
 * open: Node hands an upgrade's socket to the 'upgrade' listener (@fastify/websocket), which routes it through
 * Fastify; when a hook answers before the route's handler, nothing else closes the socket, and every refusal used
 * to hold a descriptor (CLOSE-WAIT) forever.
 */
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp, waitFor } from '../helpers.js';

const KEY = 'upgrade-test-key';

/** Sends one upgrade request on a fresh connection; resolves with the status line's code once the answer came. */
function upgrade(port: number, url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => {
      text += chunk;
      const m = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n[\s\S]*?\r\n\r\n/.exec(text);
      if (m) {
        // The client is done: it half-closes, as a browser or `ws` does after a refused handshake.
        socket.end();
        resolve(Number(m[1]));
      }
    });
    socket.on('error', reject);
    const lines = [
      `GET ${url} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      'Connection: Upgrade',
      'Upgrade: websocket',
      'Sec-WebSocket-Version: 13',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Protocol: graphql-transport-ws',
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ];
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  });
}

const connections = (app: FastifyInstance) =>
  new Promise<number>((resolve, reject) =>
    app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
  );

/** Sends `count` upgrades, `parallel` at a time; returns how many got each status. */
async function refusals(port: number, count: number, url: string, headers: Record<string, string> = {}) {
  const statuses: Record<number, number> = {};
  for (let i = 0; i < count; i += 20) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(20, count - i) }, () => upgrade(port, url, headers)),
    );
    for (const s of batch) statuses[s] = (statuses[s] ?? 0) + 1;
  }
  return statuses;
}

async function listening(overrides: Parameters<typeof makeApp>[0]) {
  const app = await makeApp(overrides);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, port: (app.server.address() as AddressInfo).port };
}

/** Open sockets fall back to the count before the refusals (the server closed every refused one). */
async function expectAllClosed(app: FastifyInstance, before: number) {
  await waitFor(async () => (await connections(app)) <= before, 10_000).catch(() => undefined);
  expect(await connections(app)).toBeLessThanOrEqual(before);
}

const auth = { Authorization: `Bearer ${KEY}` };

describe('refused WebSocket upgrades close their socket', () => {
  let app: FastifyInstance;
  let port: number;
  beforeAll(async () => {
    ({ app, port } = await listening({
      API_KEYS: KEY,
      RATE_LIMIT_MAX: 1,
      RATE_LIMIT_WINDOW_MS: 3_600_000,
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
    }));
  }, 60_000);
  afterAll(async () => app?.close());

  it('holds no socket after 200 upgrades refused 429 by the rate limit (onRequest)', async () => {
    // The key's one request of the window, so that every upgrade below is over the limit.
    await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: auth });
    const before = await connections(app);
    expect(await refusals(port, 200, '/graphql', auth)).toEqual({ 429: 200 });
    await expectAllClosed(app, before);
  });
});

describe('other refusals of an upgrade close their socket too', () => {
  let app: FastifyInstance;
  let port: number;
  beforeAll(async () => {
    ({ app, port } = await listening({
      API_KEYS: KEY,
      RATE_LIMIT_MAX: 0,
      PRESSURE_MAX_EVENT_LOOP_DELAY_MS: 0,
    }));
  }, 60_000);
  afterAll(async () => app?.close());

  it('401 without a key (preParsing), 404 for an unknown route, 400 for a bad URL', async () => {
    const before = await connections(app);
    expect(await refusals(port, 40, '/graphql')).toEqual({ 401: 40 });
    expect(await refusals(port, 40, '/no-such-route', auth)).toEqual({ 404: 40 });
    // A router refusal (frameworkErrors: a malformed percent-encoding).
    expect(await refusals(port, 20, '/v1/%zz', auth)).toEqual({ 400: 20 });
    await expectAllClosed(app, before);
  });
});

describe('an upgrade refused 503 under pressure closes its socket', () => {
  let app: FastifyInstance;
  let port: number;
  beforeAll(async () => {
    // Any heap is over a 1-byte threshold: under-pressure refuses every non-probe request.
    ({ app, port } = await listening({
      RATE_LIMIT_MAX: 0,
      PRESSURE_MAX_HEAP_BYTES: 1,
      PRESSURE_SAMPLE_INTERVAL_MS: 50,
    }));
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/v1/models`)).status === 503, 10_000);
  }, 60_000);
  afterAll(async () => app?.close());

  it('503 TW_OVERLOADED', async () => {
    const before = await connections(app);
    expect(await refusals(port, 40, '/graphql')).toEqual({ 503: 40 });
    await expectAllClosed(app, before);
  });
});
