/**
 * Reading images from a request: a raw `image/*` (or octet-stream) body, or multipart/form-data with file fields
 * and text fields. Shared by every route that takes images.
 */
import type { FastifyRequest } from 'fastify';
import { fail } from '../src/errors.js';

export async function readImageRequest(
  request: FastifyRequest,
  fileFields: string[],
): Promise<{ image: Map<string, Buffer>; fields: Record<string, string> }> {
  const image = new Map<string, Buffer>();
  const fields: Record<string, string> = {};
  if (request.isMultipart()) {
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
        fields[part.fieldname] = String(part.value);
      }
    }
    return { image, fields };
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
