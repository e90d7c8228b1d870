/**
 * Traces: a W3C traceparent is taken from the request, its ids reach the request's log lines, and one trace runs
 * across API, job and worker thread: request span -> job.submit -> job.run -> compute <kind> -> worker <kind>
 * (timed in the worker thread), on the memory backend and, when TEST_REDIS_URL is set, on the redis backend with
 * the job worker's side in this process. Spans are read from an in-memory exporter. A malformed traceparent is
 * ignored (a new trace), never an error.
 */
import { Writable } from 'node:stream';
import { threadId } from 'node:worker_threads';
import { SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { type Config, testConfig } from '../../src/config.js';
import { startJobWorker } from '../../src/jobs/redis-worker.js';
import { exportersFromEnv, initTracing, shutdownTracing } from '../../src/telemetry/tracing.js';
import { tinyModelsDir, waitForJob } from '../helpers.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const traceparent = `00-${TRACE_ID}-${CALLER_SPAN}-01`;

/** An app whose log lines are collected as objects. */
async function appWithLogs(overrides: Partial<Config> = {}) {
  const lines: Record<string, any>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  const cfg = testConfig({
    WORKERS: 1,
    ENABLE_TEST_TASKS: true,
    MODELS_DIR: tinyModelsDir(),
    TFJS_BACKEND: 'wasm',
    ...overrides,
  });
  const app = await buildApp(cfg, { level: 'info', stream });
  await app.ready();
  return { app, lines, cfg };
}

const hex = (s: ReadableSpan) => s.spanContext().spanId;
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
function one(spans: ReadableSpan[], name: string): ReadableSpan {
  const found = spans.filter((s) => s.name === name);
  expect(
    found.map((s) => s.name),
    `spans: ${spans.map((s) => s.name).join(', ')}`,
  ).toEqual([name]);
  return found[0];
}

/** The chain request -> job.submit -> job.run -> compute -> worker for a test.busy job, all in one trace. */
function expectJobTrace(spans: ReadableSpan[], traceId: string) {
  const mine = spans.filter((s) => s.spanContext().traceId === traceId);
  const request = one(mine, 'POST /v1/jobs');
  const submit = one(mine, 'job.submit test.busy');
  const run = one(mine, 'job.run test.busy');
  const compute = one(mine, 'compute test.busy');
  const worker = one(mine, 'worker test.busy');
  expect(parentOf(request)).toBe(CALLER_SPAN);
  expect(parentOf(submit)).toBe(hex(request));
  expect(parentOf(run)).toBe(hex(submit));
  expect(parentOf(compute)).toBe(hex(run));
  expect(parentOf(worker)).toBe(hex(compute));
  // Timed in a worker thread, inside the compute span.
  expect(worker.attributes['thread.id']).not.toBe(threadId);
  const ms = (t: [number, number]) => t[0] * 1e3 + t[1] / 1e6;
  expect(ms(worker.startTime)).toBeGreaterThanOrEqual(ms(compute.startTime) - 1);
  expect(ms(worker.endTime)).toBeLessThanOrEqual(ms(compute.endTime) + 1);
  expect(ms(worker.endTime) - ms(worker.startTime)).toBeGreaterThanOrEqual(15);
  expect(request.attributes['http.response.status_code']).toBe(202);
  return { request, submit, run };
}

describe('OTEL_* variables', () => {
  it('is off by default and when OTEL_SDK_DISABLED=true; refuses what it cannot export', () => {
    expect(exportersFromEnv({})).toEqual([]);
    expect(exportersFromEnv({ OTEL_TRACES_EXPORTER: 'none' })).toEqual([]);
    expect(exportersFromEnv({ OTEL_TRACES_EXPORTER: 'otlp, console' })).toEqual(['otlp', 'console']);
    expect(exportersFromEnv({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' })).toEqual([]);
    expect(() => exportersFromEnv({ OTEL_TRACES_EXPORTER: 'zipkin' })).toThrow(/zipkin/);
    expect(() =>
      exportersFromEnv({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }),
    ).toThrow(/http\/json/);
  });
});

describe('traceparent with tracing off (no exporter)', () => {
  it('puts the caller’s trace id in the request’s log lines; a malformed one is ignored', async () => {
    const { app, lines } = await appWithLogs();
    try {
      const r = await app.inject({ method: 'GET', url: '/livez', headers: { traceparent } });
      expect(r.statusCode).toBe(200);
      const line = lines.find((l) => l.msg === 'request' && l.url === '/livez');
      expect(line).toMatchObject({ trace_id: TRACE_ID, span_id: CALLER_SPAN });

      lines.length = 0;
      const bad = await app.inject({
        method: 'GET',
        url: '/livez',
        headers: { traceparent: `00-${'0'.repeat(32)}-${CALLER_SPAN}-01` },
      });
      expect(bad.statusCode).toBe(200);
      const badLine = lines.find((l) => l.msg === 'request');
      expect(badLine).toBeDefined();
      expect(badLine?.trace_id).toBeUndefined();
    } finally {
      await app.close();
    }
  });
});

describe('one trace across API, job and worker thread', () => {
  const exporter = new InMemorySpanExporter();
  beforeAll(async () => {
    expect(await initTracing({ spanProcessors: [new SimpleSpanProcessor(exporter)] })).toBe(true);
  });
  afterAll(async () => {
    await shutdownTracing();
  });

  it('memory backend: request -> job.submit -> job.run -> compute -> worker; ids in the logs', async () => {
    const { app, lines } = await appWithLogs();
    try {
      exporter.reset();
      const r = await app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: { traceparent, tracestate: 'vendor=abc' },
        payload: { operation: 'test.busy', input: { ms: 20 } },
      });
      expect(r.statusCode, r.body).toBe(202);
      expect((await waitForJob(app, r.headers.location as string)).state).toBe('succeeded');
      const { request } = expectJobTrace(exporter.getFinishedSpans(), TRACE_ID);
      const line = lines.find((l) => l.msg === 'request' && l.url === '/v1/jobs');
      expect(line).toMatchObject({ trace_id: TRACE_ID, span_id: hex(request) });
    } finally {
      await app.close();
    }
  });

  it('synchronous route: request -> compute -> worker; a coded failure marks the spans', async () => {
    const { app } = await appWithLogs();
    try {
      exporter.reset();
      const ok = await app.inject({
        method: 'POST',
        url: '/v1/_test/busy',
        headers: { traceparent },
        payload: { ms: 20 },
      });
      expect(ok.statusCode, ok.body).toBe(200);
      const failed = await app.inject({
        method: 'POST',
        url: '/v1/_test/fail',
        headers: { traceparent },
        payload: { code: 'TW_INTERNAL', message: 'boom' },
      });
      expect(failed.statusCode).toBe(500);
      const spans = exporter.getFinishedSpans();
      const request = one(spans, 'POST /v1/_test/busy');
      const compute = one(spans, 'compute test.busy');
      expect(parentOf(compute)).toBe(hex(request));
      expect(parentOf(one(spans, 'worker test.busy'))).toBe(hex(compute));
      const failedRequest = one(spans, 'POST /v1/_test/fail');
      const failedCompute = one(spans, 'compute test.fail');
      expect(parentOf(failedCompute)).toBe(hex(failedRequest));
      expect(failedCompute.status).toMatchObject({ code: SpanStatusCode.ERROR, message: 'TW_INTERNAL' });
      expect(failedRequest.status.code).toBe(SpanStatusCode.ERROR);
      expect(failedRequest.attributes['http.response.status_code']).toBe(500);
    } finally {
      await app.close();
    }
  });

  it('GraphQL: an operation span, and a job submitted by a resolver in the same trace', async () => {
    const { app } = await appWithLogs();
    try {
      exporter.reset();
      const r = await app.inject({
        method: 'POST',
        url: '/graphql',
        headers: { traceparent },
        payload: {
          query: 'mutation Go($input: JSON!) { submitJob(operation: "test.busy", input: $input) { id } }',
          variables: { input: { ms: 1 } },
        },
      });
      expect(r.statusCode, r.body).toBe(200);
      const id = r.json().data.submitJob.id as string;
      expect((await waitForJob(app, `/v1/jobs/${id}`)).state).toBe('succeeded');
      const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === TRACE_ID);
      const request = one(spans, 'POST /graphql');
      const operation = one(spans, 'graphql mutation Go');
      const submit = one(spans, 'job.submit test.busy');
      expect(parentOf(request)).toBe(CALLER_SPAN);
      expect(parentOf(operation)).toBe(hex(request));
      // Resolvers run in the request's context (mercurius hooks cannot make the operation span active).
      expect(parentOf(submit)).toBe(hex(request));
      expect(parentOf(one(spans, 'job.run test.busy'))).toBe(hex(submit));
    } finally {
      await app.close();
    }
  });

  it('a malformed traceparent starts a new trace', async () => {
    const { app } = await appWithLogs();
    try {
      exporter.reset();
      const r = await app.inject({
        method: 'GET',
        url: '/livez',
        headers: { traceparent: '00-not-a-trace-01', tracestate: '=,=' },
      });
      expect(r.statusCode).toBe(200);
      const span = one(exporter.getFinishedSpans(), 'GET /livez');
      expect(span.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(span.spanContext().traceId).not.toBe(TRACE_ID);
      expect(span.parentSpanContext).toBeUndefined();
    } finally {
      await app.close();
    }
  });

  const redisUrl = process.env.TEST_REDIS_URL;
  it.skipIf(!redisUrl)('redis backend: the worker process side continues the trace', async () => {
    const queue = `trace-${process.pid}-${Date.now()}`;
    const { app, cfg } = await appWithLogs({
      JOBS_BACKEND: 'redis',
      REDIS_URL: redisUrl,
      JOBS_QUEUE_NAME: queue,
    });
    const workerLines: Record<string, any>[] = [];
    const log = pino(
      { level: 'info' },
      new Writable({
        write(chunk, _enc, cb) {
          workerLines.push(JSON.parse(String(chunk)));
          cb();
        },
      }),
    );
    const worker = await startJobWorker({ ...cfg, JOBS_BACKEND: 'redis' }, log);
    try {
      exporter.reset();
      const r = await app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: { traceparent },
        payload: { operation: 'test.busy', input: { ms: 20 } },
      });
      expect(r.statusCode, r.body).toBe(202);
      expect((await waitForJob(app, r.headers.location as string)).state).toBe('succeeded');
      expectJobTrace(exporter.getFinishedSpans(), TRACE_ID);
      expect(workerLines.find((l) => l.msg === 'job completed')).toMatchObject({ trace_id: TRACE_ID });
    } finally {
      await worker.close(1000);
      await app.close();
    }
  });
});
