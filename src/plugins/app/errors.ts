/**
 * One error shape for every failure: { error: { code, message, details?, requestId } }.
 * 4xx carry their message; 5xx carry only the catalogue's generic text (internals go to the log, never out).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { toTweedieError } from '../../error-mapping.js';
import { ERROR_CATALOGUE, fail, type TweedieError } from '../../errors.js';

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown; requestId: string };
}

export { toTweedieError };

export function sendError(request: FastifyRequest, reply: FastifyReply, te: TweedieError) {
  if (te.retryAfter !== undefined) reply.header('retry-after', String(te.retryAfter));
  for (const [k, v] of Object.entries(te.headers ?? {})) reply.header(k, v);
  return reply.code(te.statusCode).type('application/json; charset=utf-8').send(errorBody(request, te));
}

/** The body of an error answer (sendError's; an onSend hook that swaps a payload writes it itself). */
export function errorBody(request: FastifyRequest, te: TweedieError): ErrorBody {
  const isServer = te.statusCode >= 500;
  const catalogueMessage = Object.values(ERROR_CATALOGUE).find((s) => s.code === te.code)?.message;
  const body: ErrorBody = {
    error: {
      code: te.code,
      // 5xx: our own coded 5xx messages are written for clients (queue full, deadline); unknown ones are generic.
      message:
        isServer && te.code === 'TW_INTERNAL' ? (catalogueMessage ?? 'Internal server error') : te.message,
      requestId: String(request.id),
    },
  };
  if (te.details !== undefined && !isServer) body.error.details = te.details;
  if (isServer && te.details && typeof te.details === 'object' && !('internal' in (te.details as object))) {
    body.error.details = te.details;
  }
  return body;
}

export default fp(
  async function errorsPlugin(fastify: FastifyInstance) {
    fastify.setErrorHandler((err, request, reply) => {
      const te = toTweedieError(err);
      if (te.statusCode >= 500) {
        request.log.error({ err, code: te.code, details: te.details }, 'request failed');
      } else if (te.cause !== undefined) {
        request.log.warn({ err, code: te.code }, 'request rejected by a failing validator');
      } else {
        request.log.info({ code: te.code, message: te.message }, 'request rejected');
      }
      return sendError(request, reply, te);
    });
    fastify.setNotFoundHandler((request, reply) =>
      sendError(
        request,
        reply,
        fail('ROUTE_NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}`),
      ),
    );
  },
  { name: 'errors' },
);
