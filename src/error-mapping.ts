/**
 * From anything thrown to a coded error (src/errors.ts): the one mapping that the HTTP error handler, GraphQL's
 * error formatter, jobs and the compute workers share. Domain libraries throw typed errors (OtInputError,
 * ModelLoadError, AbortError), mapped here by class, never by message.
 */
import type { FastifyError } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { ZodError } from 'zod';
import { domainError } from './domain-errors.js';
import { ERROR_CATALOGUE, type ErrorSpec, fail, TweedieError } from './errors.js';

export { domainError };

/**
 * Map anything thrown to a TweedieError: our own, the domain libraries' typed input errors (by `instanceof`), zod
 * and Fastify's validation and parser errors; anything else is a 500 whose message stays in the log.
 */
export function toTweedieError(err: unknown): TweedieError {
  if (err instanceof TweedieError) return err;
  const domain = domainError(err);
  if (domain) return domain;
  if (err instanceof ZodError) {
    return fail('VALIDATION', 'The request is not valid', {
      details: err.issues.map((i) => ({ path: i.path.join('.'), message: i.message, code: i.code })),
    });
  }
  const e = err as FastifyError & { validation?: unknown[]; validationContext?: string };
  if (hasZodFastifySchemaValidationErrors(e)) {
    return fail('VALIDATION', `Invalid ${e.validationContext ?? 'request'}: ${e.message}`, {
      details: e.validation.map((v) => ({
        path: [e.validationContext, ...String(v.instancePath).split('/').filter(Boolean)]
          .filter(Boolean)
          .join('.'),
        message: v.message,
        code: (v.params as { issue?: { code?: string } } | undefined)?.issue?.code,
      })),
    });
  }
  if (Array.isArray(e.validation)) {
    return fail('VALIDATION', e.message, { details: e.validation });
  }
  if (e.code === 'FST_ERR_VALIDATION' && typeof e.statusCode === 'number' && e.statusCode >= 500) {
    // A validator threw (Fastify marks it 500): the input is refused as invalid, but the exception's own
    // message (a JavaScript TypeError, say) is for the log, never for the client.
    return fail('VALIDATION', undefined, { cause: err });
  }
  const byFastifyCode: Record<string, ErrorSpec> = {
    FST_ERR_CTP_BODY_TOO_LARGE: ERROR_CATALOGUE.BODY_TOO_LARGE,
    FST_REQ_FILE_TOO_LARGE: ERROR_CATALOGUE.BODY_TOO_LARGE,
    FST_PARTS_LIMIT: ERROR_CATALOGUE.BODY_TOO_LARGE,
    FST_FILES_LIMIT: ERROR_CATALOGUE.BODY_TOO_LARGE,
    FST_FIELDS_LIMIT: ERROR_CATALOGUE.BODY_TOO_LARGE,
    FST_ERR_CTP_INVALID_MEDIA_TYPE: ERROR_CATALOGUE.UNSUPPORTED_MEDIA_TYPE,
    FST_INVALID_MULTIPART_CONTENT_TYPE: ERROR_CATALOGUE.UNSUPPORTED_MEDIA_TYPE,
    FST_ERR_CTP_INVALID_CONTENT_LENGTH: ERROR_CATALOGUE.VALIDATION,
    FST_ERR_CTP_EMPTY_JSON_BODY: ERROR_CATALOGUE.BAD_JSON,
    FST_ERR_CTP_INVALID_JSON_BODY: ERROR_CATALOGUE.BAD_JSON,
    FST_PROTO_VIOLATION: ERROR_CATALOGUE.BAD_JSON,
    FST_ERR_VALIDATION: ERROR_CATALOGUE.VALIDATION,
    FST_ERR_BAD_URL: ERROR_CATALOGUE.VALIDATION,
    FST_ERR_MAX_PARAM_LENGTH: ERROR_CATALOGUE.VALIDATION,
    FST_UNDER_PRESSURE: ERROR_CATALOGUE.OVERLOADED,
  };
  const spec = e.code ? byFastifyCode[e.code] : undefined;
  if (spec) {
    return new TweedieError(spec, spec.statusCode < 500 ? e.message : undefined, {
      retryAfter: spec.statusCode === 503 ? 5 : undefined,
    });
  }
  if (e instanceof SyntaxError && e.statusCode === 400) return fail('BAD_JSON', e.message);
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const match = Object.values(ERROR_CATALOGUE).find((s) => s.statusCode === e.statusCode);
    return new TweedieError(match ?? { ...ERROR_CATALOGUE.BAD_REQUEST, statusCode: e.statusCode }, e.message);
  }
  return fail('INTERNAL', undefined, { cause: err });
}
