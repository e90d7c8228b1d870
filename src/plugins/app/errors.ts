/**
 * One error shape for every failure: { error: { code, message, details?, requestId } }, or, for a client whose
 * Accept header prefers `application/problem+json` to `application/json`, an RFC 9457 problem: { type, title,
 * status, detail, instance, code, details?, requestId } (see problemBody).
 * 4xx carry their message; 5xx carry only the catalogue's generic text (internals go to the log, never out).
 * A known path asked with a method it does not serve answers 405 with `Allow` (not 404).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { toTweedieError } from '../../error-mapping.js';
import { ERROR_CATALOGUE, fail, type TweedieError } from '../../errors.js';

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown; requestId: string };
}

export { toTweedieError };

/** RFC 9457 problem details, with our code, details and request id as extension members. */
export interface ProblemBody {
  /** `urn:tweedie:error:<code>`: identifies the kind of problem (one per code of the catalogue). */
  type: string;
  /** The catalogue's message for the code: the same for every occurrence of this type. */
  title: string;
  status: number;
  /** This occurrence's message (today's `error.message`). */
  detail: string;
  /** The path of the request that failed (absent only when Node refused a request it could not read: rawErrorAnswer). */
  instance?: string;
  code: string;
  details?: unknown;
  requestId: string;
}

export const PROBLEM_JSON = 'application/problem+json';
export const PROBLEM_TYPE_PREFIX = 'urn:tweedie:error:';

/**
 * Does the client prefer RFC 9457 problem details? Only when its Accept header names `application/problem+json`
 * itself, with a q at least that of `application/json` (from the most specific range matching it: exact, then
 * application/*, then *\/*). No Accept, `*\/*` or `application/json` keep today's shape.
 */
export function prefersProblem(accept: string | string[] | undefined): boolean {
  const header = Array.isArray(accept) ? accept.join(',') : accept;
  if (!header?.toLowerCase().includes(PROBLEM_JSON)) return false;
  let problemQ = 0;
  let jsonQ = 0;
  let jsonSpecificity = -1;
  for (const part of header.split(',')) {
    const [range, ...params] = part.split(';').map((x) => x.trim().toLowerCase());
    let q = 1;
    for (const param of params) {
      const [key, value] = param.split('=').map((x) => x.trim());
      if (key === 'q') q = Number.isFinite(Number(value)) ? Math.min(1, Math.max(0, Number(value))) : 0;
    }
    if (range === PROBLEM_JSON) problemQ = Math.max(problemQ, q);
    const specificity =
      range === 'application/json' ? 2 : range === 'application/*' ? 1 : range === '*/*' ? 0 : -1;
    if (specificity > jsonSpecificity || (specificity === jsonSpecificity && specificity >= 0 && q > jsonQ)) {
      jsonSpecificity = specificity;
      jsonQ = q;
    }
  }
  return problemQ > 0 && problemQ >= (jsonSpecificity < 0 ? 0 : jsonQ);
}

/** The content type of an error answer to this request. */
export function errorContentType(request: FastifyRequest): string {
  return `${prefersProblem(request.headers.accept) ? PROBLEM_JSON : 'application/json'}; charset=utf-8`;
}

export function sendError(request: FastifyRequest, reply: FastifyReply, te: TweedieError) {
  if (te.retryAfter !== undefined) reply.header('retry-after', String(te.retryAfter));
  for (const [k, v] of Object.entries(te.headers ?? {})) reply.header(k, v);
  return reply.code(te.statusCode).type(errorContentType(request)).send(errorBody(request, te));
}

/**
 * What a GraphQL client reads: `errors[].extensions.code`, as mercurius' error formatter answers (src/plugins/
 * external/graphql.ts). Added to the refusals sent on /graphql before mercurius runs (API key, rate limit,
 * shutdown), beside our shape, so that a GraphQL client finds the code where it finds every other one.
 */
export interface GraphqlErrors {
  errors: { message: string; extensions: { code: string; statusCode: number; details?: unknown } }[];
}

/**
 * The body of an error answer (sendError's; an onSend hook that swaps a payload writes it itself, with
 * errorContentType): our shape, or an RFC 9457 problem when the client prefers it; on /graphql, with `errors` too.
 */
export function errorBody(
  request: FastifyRequest,
  te: TweedieError,
): ErrorBody | ProblemBody | ((ErrorBody | ProblemBody) & GraphqlErrors) {
  const body = legacyErrorBody(request, te);
  const { code, message, details } = body.error;
  const graphql: GraphqlErrors | undefined =
    request.routeOptions.url === '/graphql'
      ? {
          errors: [
            {
              message,
              extensions: { code, statusCode: te.statusCode, ...(details !== undefined && { details }) },
            },
          ],
        }
      : undefined;
  if (!prefersProblem(request.headers.accept)) return graphql ? { ...body, ...graphql } : body;
  return { ...problemBody(te, body, request.url.split('?')[0]), ...graphql };
}

/** Our shape as an RFC 9457 problem (`instance`: the request's path, left out when it is not known). */
function problemBody(te: TweedieError, body: ErrorBody, instance: string | undefined): ProblemBody {
  const { code, message, details, requestId } = body.error;
  const spec = Object.values(ERROR_CATALOGUE).find((x) => x.code === code);
  return {
    type: `${PROBLEM_TYPE_PREFIX}${code}`,
    title: spec?.message ?? message,
    status: te.statusCode,
    detail: message,
    ...(instance !== undefined && { instance }),
    code,
    ...(details !== undefined && { details }),
    requestId,
  };
}

/**
 * The answer to what Node's HTTP parser refused before any request existed (src/app.ts clientError: 408, 431, a
 * malformed request): the same shape and content type as sendError gives, negotiated on whatever Accept header was
 * read, with the path when it is known.
 */
export function rawErrorAnswer(
  te: TweedieError,
  request: { accept?: string; requestId: string; path?: string },
): { contentType: string; body: ErrorBody | ProblemBody } {
  const body = legacyErrorFields(te, request.requestId);
  return prefersProblem(request.accept)
    ? { contentType: `${PROBLEM_JSON}; charset=utf-8`, body: problemBody(te, body, request.path) }
    : { contentType: 'application/json; charset=utf-8', body };
}

function legacyErrorBody(request: FastifyRequest, te: TweedieError): ErrorBody {
  return legacyErrorFields(te, String(request.id));
}

function legacyErrorFields(te: TweedieError, requestId: string): ErrorBody {
  const isServer = te.statusCode >= 500;
  const catalogueMessage = Object.values(ERROR_CATALOGUE).find((s) => s.code === te.code)?.message;
  const body: ErrorBody = {
    error: {
      code: te.code,
      // 5xx: our own coded 5xx messages are written for clients (queue full, deadline); unknown ones are generic.
      message:
        isServer && te.code === 'TW_INTERNAL' ? (catalogueMessage ?? 'Internal server error') : te.message,
      requestId,
    },
  };
  if (te.details !== undefined && !isServer) body.error.details = te.details;
  if (isServer && te.details && typeof te.details === 'object' && !('internal' in (te.details as object))) {
    body.error.details = te.details;
  }
  return body;
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/**
 * The methods some route serves at `path` (a concrete path, matched as the router matches it). A catch-all
 * (`*`) route, such as a CORS preflight handler, does not make every path known.
 */
export function allowedMethods(fastify: FastifyInstance, path: string): string[] {
  return METHODS.filter((method) => {
    const route = fastify.findRoute({ method, url: path });
    return route !== null && !(route.params && '*' in route.params);
  });
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
    fastify.setNotFoundHandler((request, reply) => {
      const path = request.url.split('?')[0];
      const allow = allowedMethods(fastify, path);
      if (allow.length > 0) {
        return sendError(
          request,
          reply,
          fail('METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${path}; use ${allow.join(', ')}`, {
            details: { method: request.method, allow },
            headers: { allow: allow.join(', ') },
          }),
        );
      }
      return sendError(request, reply, fail('ROUTE_NOT_FOUND', `No route ${request.method} ${path}`));
    });
  },
  { name: 'errors' },
);
