/**
 * Traces: W3C Trace Context in and out, OpenTelemetry spans, off by default.
 *
 * Always on (cheap): an incoming `traceparent` / `tracestate` is parsed (a malformed one is ignored: a new trace,
 * never an error), its ids go into the request's log lines (`trace_id`, `span_id`), and the context travels with
 * the request's work: into a job's stored data (both backends) and into the compute pool's task envelope.
 *
 * Exporting spans is off unless asked for by the standard variables: `OTEL_TRACES_EXPORTER=otlp` (OTLP over
 * HTTP/JSON to `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, headers from
 * `OTEL_EXPORTER_OTLP_HEADERS`) or `console`; `OTEL_SDK_DISABLED=true` turns everything off whatever the rest says;
 * `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` name the service; `OTEL_TRACES_SAMPLER(_ARG)` and `OTEL_BSP_*`
 * are read by the SDK. (The specification's default exporter is `otlp`; ours is none, so that a pod without a
 * collector sends nothing anywhere.) With no exporter, no tracer provider is registered: spans are the API's
 * non-recording ones and cost a few allocations.
 *
 * Spans (explicit, no monkey-patching): `<METHOD> <route>` per request (server), `graphql <operation>`,
 * `job.submit <operation>` (producer), `job.run <operation>` (consumer, child of the submit span, in whichever
 * process runs the job), `compute <kind>` around the pool's task (queue wait included) and, below it,
 * `worker <kind>`: the task's execution in the worker thread, timed there and recorded on the main thread (the
 * worker threads hold no tracer provider of their own).
 */
import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { defaultResource, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  NodeTracerProvider,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-node';

/** What a trace context looks like when stored (job data) or sent (task envelope): W3C header values. */
export interface TraceCarrier {
  traceparent?: string;
  tracestate?: string;
}

export const TRACER_NAME = 'tweedie';
const tracer = () => trace.getTracer(TRACER_NAME);

let provider: NodeTracerProvider | undefined;
let propagationReady = false;

/**
 * The W3C propagator and an AsyncLocalStorage context manager, registered once per process whether or not spans
 * are exported: they carry an incoming trace id to logs and jobs at the cost of one AsyncLocalStorage.run for a
 * request that brought a traceparent (none when it did not and nothing records).
 */
export function ensurePropagation() {
  if (propagationReady) return;
  propagationReady = true;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
}

export interface TracingOptions {
  /** Span processors to use instead of the ones the environment asks for (tests: an in-memory exporter). */
  spanProcessors?: SpanProcessor[];
  /** service.name when OTEL_SERVICE_NAME does not say. */
  serviceName?: string;
  env?: NodeJS.ProcessEnv;
}

/** The exporters OTEL_TRACES_EXPORTER names ([] = tracing off); unknown names are an error at start. */
export function exportersFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  if (/^true$/i.test(env.OTEL_SDK_DISABLED?.trim() ?? '')) return [];
  const names = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '' && s !== 'none');
  for (const name of names) {
    if (name !== 'otlp' && name !== 'console') {
      throw new Error(`OTEL_TRACES_EXPORTER: unknown exporter '${name}' (known: otlp, console, none)`);
    }
  }
  if (names.includes('otlp')) {
    const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL;
    if (protocol && protocol !== 'http/json') {
      throw new Error(`OTEL_EXPORTER_OTLP_PROTOCOL: only http/json is built in (got '${protocol}')`);
    }
  }
  return [...new Set(names)];
}

/**
 * Start tracing for this process as the environment (or `opts.spanProcessors`) asks. Answers whether spans are
 * recorded. Called once by the entry points (server.ts, worker.ts) and by tests; a second call replaces nothing.
 */
export async function initTracing(opts: TracingOptions = {}): Promise<boolean> {
  ensurePropagation();
  if (provider) return true;
  const env = opts.env ?? process.env;
  let processors = opts.spanProcessors;
  if (!processors) {
    const exporters: SpanExporter[] = [];
    for (const name of exportersFromEnv(env)) {
      if (name === 'console') exporters.push(new ConsoleSpanExporter());
      else {
        const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
        exporters.push(new OTLPTraceExporter());
      }
    }
    processors = exporters.map((e) => new BatchSpanProcessor(e));
  }
  if (processors.length === 0) return false;
  // The SDK's own attributes, then our service name, then OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES (last wins).
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': opts.serviceName ?? 'tweedie' }))
    .merge(resourceFromAttributes(envDetector.detect().attributes ?? {}));
  provider = new NodeTracerProvider({ resource, spanProcessors: processors });
  trace.setGlobalTracerProvider(provider);
  return true;
}

/** True when spans are recorded and exported (a provider is registered). */
export const tracingEnabled = () => provider !== undefined;

/** Export what is buffered and stop (shutdown; tests). */
export async function shutdownTracing() {
  const p = provider;
  provider = undefined;
  if (!p) return;
  await p.shutdown();
  trace.disable();
}

/** Export what is buffered (tests). */
export async function flushTracing() {
  await provider?.forceFlush();
}

const headerGetter: TextMapGetter<Record<string, string | string[] | undefined>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/** The context a request's headers (or a stored carrier) bring; ROOT when none, or malformed. */
export function extractContext(carrier: Record<string, string | string[] | undefined> | undefined): Context {
  if (!carrier) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, carrier, headerGetter);
}

/** The W3C headers of `ctx`'s span ({} when it has no valid one). */
export function injectContext(ctx: Context = context.active()): TraceCarrier {
  const carrier: TraceCarrier = {};
  propagation.inject(ctx, carrier);
  return carrier;
}

/** Log bindings of a span: `trace_id` and `span_id`, or nothing when it carries no valid context. */
export function logBindings(span: Span | undefined): { trace_id?: string; span_id?: string } {
  const sc = span?.spanContext();
  if (!sc || !trace.isSpanContextValid(sc)) return {};
  return { trace_id: sc.traceId, span_id: sc.spanId };
}

/** The trace id a stored carrier names, if it is well formed. */
export function traceIdOf(carrier: TraceCarrier | undefined): string | undefined {
  if (!carrier?.traceparent) return undefined;
  const sc = trace.getSpanContext(extractContext(carrier as Record<string, string>));
  return sc && trace.isSpanContextValid(sc) ? sc.traceId : undefined;
}

/** True when `span` has a context worth making active (a valid id, recorded or passed through). */
export const hasContext = (span: Span) => trace.isSpanContextValid(span.spanContext());

export function startSpan(
  name: string,
  kind: SpanKind,
  attributes: Record<string, string | number | boolean | undefined>,
  parent: Context = context.active(),
  startTime?: number,
): Span {
  return tracer().startSpan(name, { kind, attributes, startTime }, parent);
}

/** Records `err` on `span` as its error status. */
export function recordError(span: Span, err: unknown) {
  if (!span.isRecording()) return;
  const code = (err as { code?: unknown })?.code;
  span.setStatus({ code: SpanStatusCode.ERROR, message: typeof code === 'string' ? code : undefined });
  if (err instanceof Error) span.recordException({ name: err.name, message: err.message });
}

/**
 * Runs `fn` inside a span (active for everything `fn` starts), ending it when `fn` settles; an error is recorded
 * and rethrown. With nothing recording and no parent, `fn` runs as is, unless `base` is given: then `fn` always
 * runs in `base` + `span` (a job's run must not inherit whichever context started it).
 */
export async function inSpan<T>(span: Span, fn: (span: Span) => Promise<T>, base?: Context): Promise<T> {
  try {
    if (base) return await context.with(trace.setSpan(base, span), () => fn(span));
    if (!hasContext(span)) return await fn(span);
    return await context.with(trace.setSpan(context.active(), span), () => fn(span));
  } catch (err) {
    recordError(span, err);
    throw err;
  } finally {
    span.end();
  }
}

/** `job.submit <operation>`: a producer span under the active context; `carrier` is what the job stores. */
export function startJobSubmit(operation: string): { span: Span; carrier: TraceCarrier } {
  const span = startSpan(`job.submit ${operation}`, SpanKind.PRODUCER, { 'tw.job.operation': operation });
  return { span, carrier: hasContext(span) ? injectContext(trace.setSpan(context.active(), span)) : {} };
}

/**
 * `job.run <operation>`: the run of a job, a consumer span whose parent is the submit span stored with the job
 * (`carrier`), in whichever process runs it; `fn` runs with it active (so the pool's task spans are its children).
 */
export function inJobRun<T>(
  operation: string,
  jobId: string,
  carrier: TraceCarrier | undefined,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = extractContext(carrier as Record<string, string> | undefined);
  const span = startSpan(
    `job.run ${operation}`,
    SpanKind.CONSUMER,
    { 'tw.job.operation': operation, 'tw.job.id': jobId },
    parent,
  );
  return inSpan(span, fn, parent);
}

export { SpanKind };
