/**
 * A route takes the media types it declares, and refuses the others with 415 before its body is read. The content
 * type parsers are global (JSON, image/*, octet-stream, multipart/form-data, for the image routes): without this, an
 * image or a multipart form sent to a JSON route was read whole (up to BODY_LIMIT_BYTES) and then refused as a
 * schema violation ("solver: expected object, received undefined"), which names the wrong problem.
 *
 * Routes with a JSON body schema (`schema.body`) take application/json only; image routes (`config.imageUpload`,
 * src/operations/http.ts) check their own body (src/operations/image-request.ts). A request without a
 * Content-Type is left to Fastify (415 with a body, the schema's 400 without one).
 */
import type { RouteOptions } from 'fastify';
import { fail } from '../../errors.js';

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/** The media type of a Content-Type header, lower-cased, without its parameters. */
export function mediaTypeOf(contentType: string): string {
  return contentType.split(';')[0].trim().toLowerCase();
}

/** An onRoute hook: a JSON-body route refuses any other media type (415 TW_UNSUPPORTED_MEDIA_TYPE). */
export function refuseOtherMediaTypes(route: RouteOptions): void {
  const methods = Array.isArray(route.method) ? route.method : [route.method];
  if (!route.schema?.body || !methods.some((m) => BODY_METHODS.has(m.toUpperCase()))) return;
  if ((route.config as { imageUpload?: unknown } | undefined)?.imageUpload) return;
  // After the global preParsing hooks (API keys): an unauthenticated caller still gets its 401 first.
  const jsonOnly = async (
    request: { headers: Record<string, string | string[] | undefined> },
    _reply: unknown,
    payload: unknown,
  ) => {
    const header = request.headers['content-type'];
    if (typeof header !== 'string') return payload;
    const media = mediaTypeOf(header);
    if (media === 'application/json') return payload;
    throw fail(
      'UNSUPPORTED_MEDIA_TYPE',
      `${route.url} takes a JSON body (Content-Type: application/json), not ${media || 'an empty media type'}`,
      { details: { contentType: media, accepted: ['application/json'] } },
    );
  };
  const existing = route.preParsing;
  route.preParsing = existing ? [...(Array.isArray(existing) ? existing : [existing]), jsonOnly] : [jsonOnly];
}
