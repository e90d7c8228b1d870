/**
 * What tracing costs a request: µs per request (in-process inject, median over rounds; wall time and the
 * process's CPU time, all threads, which a loaded machine disturbs less) for GET /livez and a compute round trip
 * (POST /v1/_test/busy ms=0), with and without a traceparent.
 *
 *   npx tsx bench/tracing.ts off   # no exporter (the default)
 *   npx tsx bench/tracing.ts on    # OTEL_TRACES_EXPORTER=otlp to a local OTLP/HTTP sink in this process
 *
 * `on` also checks that the spans reach the sink (the OTEL_* variables end to end). Run each mode in its own
 * process (tracing is process-global); on a shared machine, compare runs made one after the other.
 */
import { cpSync, mkdtempSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { buildApp } from '../src/app.js';
import { testConfig } from '../src/config.js';

const mode = process.argv[2] ?? 'off';
const ROUNDS = Number(process.env.ROUNDS ?? 12);
const N = Number(process.env.N ?? 400);

let sink: { received: () => { posts: number; bytes: number }; close: () => void } | undefined;
if (mode === 'on') {
  let posts = 0;
  let bytes = 0;
  const server = http.createServer((req, res) => {
    req.on('data', (c: Buffer) => {
      bytes += c.length;
    });
    req.on('end', () => {
      if (req.url === '/v1/traces') posts++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  process.env.OTEL_TRACES_EXPORTER = 'otlp';
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  process.env.OTEL_SERVICE_NAME = 'tweedie-bench';
  const { initTracing } = await import('../src/telemetry/tracing.js');
  if (!(await initTracing())) throw new Error('tracing did not start');
  sink = { received: () => ({ posts, bytes }), close: () => server.close() };
}

const models = mkdtempSync(path.join(os.tmpdir(), 'tweedie-bench-models-'));
cpSync(path.resolve('models/gaussian-blur'), path.join(models, 'gaussian-blur'), { recursive: true });
const app = await buildApp(
  testConfig({ WORKERS: 1, ENABLE_TEST_TASKS: true, MODELS_DIR: models, TFJS_BACKEND: 'wasm' }),
);
await app.ready();

const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const cases = {
  livez: { method: 'GET' as const, url: '/livez' },
  'livez+traceparent': { method: 'GET' as const, url: '/livez', headers: { traceparent } },
  busy0: { method: 'POST' as const, url: '/v1/_test/busy', payload: { ms: 0 } },
  'busy0+traceparent': {
    method: 'POST' as const,
    url: '/v1/_test/busy',
    payload: { ms: 0 },
    headers: { traceparent },
  },
};
const samples: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
const cpu: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (const c of Object.values(cases)) for (let i = 0; i < 200; i++) await app.inject(c); // warm up
for (let round = 0; round < ROUNDS; round++) {
  // Each round starts with another case, so no case always runs first (after a pause, a GC...).
  const entries = Object.entries(cases);
  for (const [name, c] of [...entries.slice(round % 4), ...entries.slice(0, round % 4)]) {
    const n = name.startsWith('busy') ? N / 4 : N;
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    for (let i = 0; i < n; i++) {
      const r = await app.inject(c);
      if (r.statusCode !== 200) throw new Error(`${name}: ${r.statusCode} ${r.body}`);
    }
    samples[name].push(Number(process.hrtime.bigint() - t0) / 1e3 / n);
    const dc = process.cpuUsage(c0);
    cpu[name].push((dc.user + dc.system) / n);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const out: Record<string, string> = {};
for (const [name, xs] of Object.entries(samples)) {
  out[name] = `${median(xs).toFixed(0)} µs wall, ${median(cpu[name]).toFixed(0)} µs cpu`;
}
await app.close();
if (sink) {
  const { shutdownTracing } = await import('../src/telemetry/tracing.js');
  await shutdownTracing();
  out.exported = JSON.stringify(sink.received());
  sink.close();
}
console.log(JSON.stringify({ mode, rounds: ROUNDS, ...out }));
