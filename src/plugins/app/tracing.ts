/**
 * One span per request, from the W3C `traceparent` / `tracestate` the client sent (a malformed one is ignored: a
 * new trace), with its ids in the request's log lines (`trace_id`, `span_id` in the child logger's bindings). The
 * span is made active from preHandler on (after the body is read), so whatever the handler starts (a job's submit
 * span, a compute task's span) is its child. See src/telemetry/tracing.ts.
 */
import { type Context, context, type Span, SpanStatusCode, trace } from '@opentelemetry/api';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { DocumentNode, OperationDefinitionNode } from 'graphql';
import type { MercuriusContext } from 'mercurius';
import {
  ensurePropagation,
  extractContext,
  hasContext,
  logBindings,
  SpanKind,
  startSpan,
  tracingEnabled,
} from '../../telemetry/tracing.js';

interface RequestTrace {
  span: Span;
  parent: Context;
  ended: boolean;
}

const traces = new WeakMap<FastifyRequest, RequestTrace>();

function endRequestSpan(request: FastifyRequest, statusCode: number | undefined, aborted = false) {
  const t = traces.get(request);
  if (!t || t.ended) return;
  t.ended = true;
  if (t.span.isRecording()) {
    if (statusCode !== undefined) t.span.setAttribute('http.response.status_code', statusCode);
    if (aborted) t.span.setStatus({ code: SpanStatusCode.ERROR, message: 'client aborted' });
    else if (statusCode !== undefined && statusCode >= 500) t.span.setStatus({ code: SpanStatusCode.ERROR });
  }
  t.span.end();
}

export default fp(
  async function tracingPlugin(fastify: FastifyInstance) {
    ensurePropagation();
    fastify.addHook('onRequest', (request, _reply, done) => {
      // Nothing to record and no trace to pass on: no span, no context (tracing off costs a header lookup).
      if (request.headers.traceparent === undefined && !tracingEnabled()) return done();
      const parent = extractContext(request.headers);
      const route = request.routeOptions.url;
      const span = startSpan(
        route ? `${request.method} ${route}` : request.method,
        SpanKind.SERVER,
        {
          'http.request.method': request.method,
          'http.route': route,
          'url.path': request.url.split('?', 1)[0],
          'tw.request_id': request.id,
        },
        parent,
      );
      traces.set(request, { span, parent, ended: false });
      const bindings = logBindings(span);
      if (bindings.trace_id) request.log = request.log.child(bindings);
      done();
    });
    // Callback style: the rest of the request (further preHandler hooks, the handler and all it awaits) runs
    // inside context.with, so it sees the request's span as the active one.
    fastify.addHook('preHandler', (request, _reply, done) => {
      const t = traces.get(request);
      if (!t || !hasContext(t.span)) return done();
      context.with(trace.setSpan(t.parent, t.span), done);
    });
    fastify.addHook('onResponse', (request, reply, done) => {
      endRequestSpan(request, reply.statusCode);
      done();
    });
    fastify.addHook('onRequestAbort', (request, done) => {
      endRequestSpan(request, undefined, true);
      done();
    });
  },
  { name: 'tracing' },
);

/** `graphql <type> <name>`: a span from execution to resolution, a child of the request's span. */
export function traceGraphql(fastify: FastifyInstance) {
  const spans = new WeakMap<MercuriusContext, Span>();
  fastify.graphql.addHook('preExecution', async (_schema, document, ctx) => {
    if (!tracingEnabled()) return;
    const op = (document as DocumentNode).definitions.find(
      (d): d is OperationDefinitionNode => d.kind === 'OperationDefinition',
    );
    const type = op?.operation ?? 'query';
    const name = op?.name?.value;
    const span = startSpan(name ? `graphql ${type} ${name}` : `graphql ${type}`, SpanKind.INTERNAL, {
      'graphql.operation.type': type,
      'graphql.operation.name': name,
    });
    if (span.isRecording()) spans.set(ctx, span);
  });
  fastify.graphql.addHook('onResolution', async (execution, ctx) => {
    const span = spans.get(ctx);
    if (!span) return;
    spans.delete(ctx);
    if (execution.errors?.length) span.setStatus({ code: SpanStatusCode.ERROR, message: 'graphql errors' });
    span.end();
  });
}
