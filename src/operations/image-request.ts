/**
 * Reading images from a request: a raw `image/*` (or octet-stream) body, or multipart/form-data with file fields
 * and text fields; or base64 in GraphQL. Shared by every operation that takes images.
 */
import type { MultipartValue } from '@fastify/multipart';
import type { FastifyRequest } from 'fastify';
import sharp from 'sharp';
import type { Config } from '../config.js';
import { fail, TweedieError } from '../errors.js';
import { screenImage } from '../imaging/codec.js';

/** A Buffer over the same memory (no copy). */
export const toBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/**
 * The image files (screened: format, size) and the parameters of an image request: the query string, overridden
 * by multipart text fields.
 */
export async function readImageParams(
  request: FastifyRequest,
  fileFields: string[],
  cfg: Pick<Config, 'MAX_IMAGE_PIXELS'>,
): Promise<{ files: Map<string, Buffer>; params: Record<string, unknown> }> {
  const { image, fields } = await readImageRequest(request, fileFields, { maxPixels: cfg.MAX_IMAGE_PIXELS });
  return { files: image, params: { ...(request.query as Record<string, unknown>), ...fields } };
}

/** The request's `image` file, or 400. */
export function requireImage(files: Map<string, Buffer>): Buffer {
  const bytes = files.get('image');
  if (!bytes) throw fail('VALIDATION', 'No image: send an image/* body or a multipart file field "image"');
  return bytes;
}

/** A GraphQL base64 image as bytes, refused (413) beyond BODY_LIMIT_BYTES before it is decoded. */
export function base64Image(b64: unknown, what: string, cfg: Pick<Config, 'BODY_LIMIT_BYTES'>): Buffer {
  const text = String(b64);
  if (text.length > (cfg.BODY_LIMIT_BYTES * 4) / 3 + 4)
    throw fail('BODY_TOO_LARGE', `The ${what} is larger than BODY_LIMIT_BYTES = ${cfg.BODY_LIMIT_BYTES}`);
  return Buffer.from(text, 'base64');
}

/** Width and height from the image header (no pixel is decoded); undefined when it is not an image we read. */
export async function imageHeaderSize(
  bytes: Uint8Array,
): Promise<{ width: number; height: number } | undefined> {
  try {
    const meta = await sharp(toBuffer(bytes), { limitInputPixels: false }).metadata();
    return meta.width && meta.height ? { width: meta.width, height: meta.height } : undefined;
  } catch {
    return undefined; // the pipeline's decode reports it properly
  }
}

/**
 * A text field's value. The multipart parser cuts a value longer than its fieldSize limit (1 MiB) short and only
 * flags it; a cut value could still parse (a number losing digits), so it is refused as too large instead.
 */
export function multipartFieldValue(
  part: Pick<MultipartValue, 'fieldname' | 'value' | 'valueTruncated' | 'fieldnameTruncated'>,
): string {
  if (part.valueTruncated || part.fieldnameTruncated) {
    throw fail('BODY_TOO_LARGE', `The multipart field '${part.fieldname}' is longer than the limit (1 MiB)`, {
      details: { field: part.fieldname },
    });
  }
  return String(part.value);
}

/**
 * Reads a multipart body with `read`; what the parser cannot read (a truncated body, a malformed part header, a
 * missing final boundary: busboy's plain errors) is 400 TW_VALIDATION rather than a 500. Our own coded errors and
 * the parser's limits (FST_* codes, mapped by the error handler) pass through unchanged.
 */
export async function readMultipart<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof TweedieError) throw err;
    const e = err as { code?: unknown; statusCode?: unknown; message?: unknown };
    if (typeof e.code === 'string' || typeof e.statusCode === 'number') throw err;
    throw fail('VALIDATION', `Malformed multipart/form-data body: ${String(e.message ?? err)}`, {
      details: { reason: String(e.message ?? err) },
    });
  }
}

/**
 * The images (by field name) and text fields of a request. With `maxPixels`, each image is screened from its
 * signature and header (src/imaging/codec.ts screenImage: empty, refused format, too many pixels) before a route
 * estimates its cost or queues it as a job.
 */
export async function readImageRequest(
  request: FastifyRequest,
  fileFields: string[],
  opts: { maxPixels?: number } = {},
): Promise<{ image: Map<string, Buffer>; fields: Record<string, string> }> {
  const read = await readParts(request, fileFields);
  if (opts.maxPixels !== undefined) {
    for (const bytes of read.image.values()) await screenImage(bytes, opts.maxPixels);
  }
  return read;
}

async function readParts(
  request: FastifyRequest,
  fileFields: string[],
): Promise<{ image: Map<string, Buffer>; fields: Record<string, string> }> {
  const image = new Map<string, Buffer>();
  const fields: Record<string, string> = {};
  if (request.isMultipart()) {
    return readMultipart(async () => {
      for await (const part of request.parts()) {
        if (part.type === 'file') {
          if (!fileFields.includes(part.fieldname)) {
            await part.toBuffer();
            throw fail(
              'VALIDATION',
              `Unexpected file field '${part.fieldname}' (expected: ${fileFields.join(', ')})`,
            );
          }
          image.set(part.fieldname, await part.toBuffer());
        } else {
          fields[part.fieldname] = multipartFieldValue(part);
        }
      }
      return { image, fields };
    });
  }
  if (Buffer.isBuffer(request.body)) {
    image.set(fileFields[0], request.body);
    return { image, fields };
  }
  throw fail(
    'UNSUPPORTED_MEDIA_TYPE',
    `Send the image as an image/* body or multipart/form-data (got ${request.headers['content-type'] ?? 'no content type'})`,
  );
}
