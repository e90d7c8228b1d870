/**
 * The OTEL_* variables end to end: OTEL_TRACES_EXPORTER=otlp sends the spans of a request, as OTLP/HTTP JSON, to
 * OTEL_EXPORTER_OTLP_ENDPOINT (a sink started here), under OTEL_SERVICE_NAME. (Its own file: tracing is
 * process-global, and vitest runs each file in its own process.)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initTracing, shutdownTracing } from '../../src/telemetry/tracing.js';
import { makeApp } from '../helpers.js';

describe('OTEL_TRACES_EXPORTER=otlp', () => {
  const bodies: { url?: string; body: any }[] = [];
  let sink: http.Server;
  beforeAll(async () => {
    sink = http.createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => {
        text += c.toString();
      });
      req.on('end', () => {
        bodies.push({ url: req.url, body: JSON.parse(text) });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    const endpoint = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`;
    Object.assign(process.env, {
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_SERVICE_NAME: 'tweedie-test',
    });
    expect(await initTracing()).toBe(true);
  });
  afterAll(async () => {
    sink?.close();
  });

  it('exports the request span to the collector, in the caller’s trace', async () => {
    const app = await makeApp();
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const r = await app.inject({
      method: 'GET',
      url: '/livez',
      headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` },
    });
    expect(r.statusCode).toBe(200);
    await app.close();
    await shutdownTracing(); // flushes the batch
    expect(bodies.map((b) => b.url)).toContain('/v1/traces');
    const resourceSpans = bodies.flatMap((b) => b.body.resourceSpans ?? []);
    const service = resourceSpans[0].resource.attributes.find(
      (a: { key: string }) => a.key === 'service.name',
    );
    expect(service.value.stringValue).toBe('tweedie-test');
    const spans = resourceSpans.flatMap((rs: any) => rs.scopeSpans.flatMap((ss: any) => ss.spans));
    const request = spans.find((s: { name: string }) => s.name === 'GET /livez');
    expect(request).toMatchObject({ traceId, parentSpanId: 'b7ad6b7169203331' });
  });
});
