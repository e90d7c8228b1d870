/**
 * The catalogue of coded errors. Every failure a client can see has a stable code (TW_...), an HTTP status and a
 * message; the error handler turns them into { error: { code, message, details, requestId } }.
 * Domain code throws these (or plain errors that the handler maps); nothing else reaches a client.
 */

export interface ErrorSpec {
  code: string;
  statusCode: number;
  /** Default message; a thrown error may give a more precise one. */
  message: string;
}

export const ERROR_CATALOGUE = {
  VALIDATION: { code: 'TW_VALIDATION', statusCode: 400, message: 'The request is not valid' },
  /** A 4xx from below our code (Fastify, a plugin) with no more precise code; keeps that status. */
  BAD_REQUEST: { code: 'TW_BAD_REQUEST', statusCode: 400, message: 'Bad request' },
  BAD_JSON: { code: 'TW_BAD_JSON', statusCode: 400, message: 'The request body is not valid JSON' },
  IMAGE_INVALID: { code: 'TW_IMAGE_INVALID', statusCode: 400, message: 'The image could not be decoded' },
  UNAUTHORIZED: { code: 'TW_UNAUTHORIZED', statusCode: 401, message: 'Missing or invalid API key' },
  NOT_FOUND: { code: 'TW_NOT_FOUND', statusCode: 404, message: 'Not found' },
  ROUTE_NOT_FOUND: { code: 'TW_ROUTE_NOT_FOUND', statusCode: 404, message: 'No such route' },
  MODEL_NOT_FOUND: { code: 'TW_MODEL_NOT_FOUND', statusCode: 404, message: 'No such model' },
  JOB_NOT_FOUND: { code: 'TW_JOB_NOT_FOUND', statusCode: 404, message: 'No such job, or it has expired' },
  METHOD_NOT_ALLOWED: { code: 'TW_METHOD_NOT_ALLOWED', statusCode: 405, message: 'Method not allowed' },
  NOT_ACCEPTABLE: {
    code: 'TW_NOT_ACCEPTABLE',
    statusCode: 406,
    message: 'Cannot produce the requested format',
  },
  REQUEST_TIMEOUT: {
    code: 'TW_REQUEST_TIMEOUT',
    statusCode: 408,
    message: 'The request was not received in time',
  },
  CONFLICT: { code: 'TW_CONFLICT', statusCode: 409, message: 'Conflict' },
  JOB_CANCELLED: { code: 'TW_JOB_CANCELLED', statusCode: 409, message: 'The job was cancelled' },
  BODY_TOO_LARGE: { code: 'TW_BODY_TOO_LARGE', statusCode: 413, message: 'The request body is too large' },
  IMAGE_TOO_LARGE: { code: 'TW_IMAGE_TOO_LARGE', statusCode: 413, message: 'The image has too many pixels' },
  PROBLEM_TOO_LARGE: { code: 'TW_PROBLEM_TOO_LARGE', statusCode: 413, message: 'The problem is too large' },
  RESPONSE_TOO_LARGE: {
    code: 'TW_RESPONSE_TOO_LARGE',
    statusCode: 413,
    message: 'The response would be too large; ask for less, or run the work as a job',
  },
  GPU_MEMORY_EXCEEDED: {
    code: 'TW_GPU_MEMORY_EXCEEDED',
    statusCode: 413,
    message: "The network would need more device memory than a worker's GPU_MEMORY_BUDGET_MB",
  },
  UNSUPPORTED_MEDIA_TYPE: {
    code: 'TW_UNSUPPORTED_MEDIA_TYPE',
    statusCode: 415,
    message: 'Unsupported content type',
  },
  IMAGE_FORMAT_UNSUPPORTED: {
    code: 'TW_IMAGE_FORMAT_UNSUPPORTED',
    statusCode: 415,
    message: 'Unsupported image format',
  },
  UNPROCESSABLE: { code: 'TW_UNPROCESSABLE', statusCode: 422, message: 'The input cannot be processed' },
  ONLINE_UNSUPPORTED: {
    code: 'TW_ONLINE_UNSUPPORTED',
    statusCode: 422,
    message: 'This request cannot run as online (matrix-free) Sinkhorn',
  },
  UNBALANCED_MARGINALS: {
    code: 'TW_UNBALANCED_MARGINALS',
    statusCode: 422,
    message: 'The marginals do not have the same mass',
  },
  NUMERIC_RANGE: {
    code: 'TW_NUMERIC_RANGE',
    statusCode: 422,
    message: 'The numbers are outside the range of double precision for this problem',
  },
  /** GraphQL: the document is not valid against the schema (in `errors[].extensions.code`, HTTP 200 or 400). */
  GRAPHQL_VALIDATION: {
    code: 'TW_GRAPHQL_VALIDATION',
    statusCode: 400,
    message: 'The GraphQL document is not valid',
  },
  /** GraphQL: the document asks for more than the limits allow (selections, compute or bulk fields, tokens). */
  GRAPHQL_TOO_COMPLEX: {
    code: 'TW_GRAPHQL_TOO_COMPLEX',
    statusCode: 400,
    message: 'The GraphQL document is too complex',
  },
  RATE_LIMITED: { code: 'TW_RATE_LIMITED', statusCode: 429, message: 'Too many requests' },
  JOB_QUOTA: {
    code: 'TW_JOB_QUOTA',
    statusCode: 429,
    message: 'Too many active jobs for this client; wait for one to finish',
  },
  HEADERS_TOO_LARGE: {
    code: 'TW_HEADERS_TOO_LARGE',
    statusCode: 431,
    message: 'The request line and headers are too large',
  },
  INTERNAL: { code: 'TW_INTERNAL', statusCode: 500, message: 'Internal server error' },
  WORKER_CRASHED: {
    code: 'TW_WORKER_CRASHED',
    statusCode: 500,
    message: 'The compute worker running this task stopped unexpectedly',
  },
  QUEUE_FULL: { code: 'TW_QUEUE_FULL', statusCode: 503, message: 'The compute queue is full; retry later' },
  NOT_READY: { code: 'TW_NOT_READY', statusCode: 503, message: 'The service is not ready' },
  SHUTTING_DOWN: { code: 'TW_SHUTTING_DOWN', statusCode: 503, message: 'The service is shutting down' },
  OVERLOADED: {
    code: 'TW_OVERLOADED',
    statusCode: 503,
    message: 'The service is under pressure; retry later',
  },
  GPU_MEMORY_BUSY: {
    code: 'TW_GPU_MEMORY_BUSY',
    statusCode: 503,
    message: "The worker's device memory is taken by other work; retry shortly",
  },
  GPU_DEVICE_LOST: {
    code: 'TW_GPU_DEVICE_LOST',
    statusCode: 503,
    message: "The compute worker's GPU device was lost; the worker is replaced, retry",
  },
  MODEL_NOT_READY: { code: 'TW_MODEL_NOT_READY', statusCode: 503, message: 'The model is not loaded' },
  DEADLINE_EXCEEDED: {
    code: 'TW_DEADLINE_EXCEEDED',
    statusCode: 504,
    message: 'The request did not finish within its deadline',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorName = keyof typeof ERROR_CATALOGUE;
export type ErrorCode = (typeof ERROR_CATALOGUE)[ErrorName]['code'];

export class TweedieError extends Error {
  readonly code: string;
  readonly statusCode: number;
  readonly details?: unknown;
  /** Seconds, for 503/429 responses. */
  readonly retryAfter?: number;
  /** Extra response headers (e.g. Allow). */
  readonly headers?: Record<string, string>;

  constructor(
    spec: ErrorSpec,
    message?: string,
    opts: { details?: unknown; retryAfter?: number; cause?: unknown; headers?: Record<string, string> } = {},
  ) {
    super(message ?? spec.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'TweedieError';
    this.code = spec.code;
    this.statusCode = spec.statusCode;
    this.details = opts.details;
    this.retryAfter = opts.retryAfter;
    this.headers = opts.headers;
  }

  /** A plain object that survives structured cloning (worker -> main thread). */
  toJSON(): SerializedError {
    return {
      tweedie: true,
      code: this.code,
      statusCode: this.statusCode,
      message: this.message,
      details: this.details,
      retryAfter: this.retryAfter,
    };
  }
}

export interface SerializedError {
  tweedie: true;
  code: string;
  statusCode: number;
  message: string;
  details?: unknown;
  retryAfter?: number;
}

/** Shorthand: `fail('IMAGE_INVALID', 'PNG header is truncated', { details })`. */
export function fail(
  name: ErrorName,
  message?: string,
  opts?: { details?: unknown; retryAfter?: number; cause?: unknown; headers?: Record<string, string> },
): TweedieError {
  return new TweedieError(ERROR_CATALOGUE[name], message, opts);
}

export function isSerializedError(x: unknown): x is SerializedError {
  return typeof x === 'object' && x !== null && (x as { tweedie?: unknown }).tweedie === true;
}

/** Rebuild a TweedieError from its serialised form (used when a worker's error crosses the thread boundary). */
export function reviveError(x: SerializedError): TweedieError {
  const spec = Object.values(ERROR_CATALOGUE).find((s) => s.code === x.code) ?? {
    code: x.code,
    statusCode: x.statusCode,
    message: x.message,
  };
  return new TweedieError(spec, x.message, { details: x.details, retryAfter: x.retryAfter });
}
