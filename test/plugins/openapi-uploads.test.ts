/**
 * The OpenAPI document describes the image routes' bodies (route config `imageUpload`, turned into a requestBody
 * by the swagger transform): a multipart form with binary file fields, so Swagger UI's "Try it out" offers a file
 * picker (without it, it sent no file and got 415), and the raw image/* body. Detect also takes JSON.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp } from '../helpers.js';

describe('OpenAPI request bodies of the image routes', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  let spec: { paths: Record<string, Record<string, { requestBody?: any }>> };
  beforeAll(async () => {
    app = await makeApp();
    spec = (await app.inject({ url: '/openapi.json' })).json();
  });
  afterAll(async () => {
    await app.close();
  });

  const body = (prefix: string) => {
    const path = Object.keys(spec.paths).find((p) => p.replace(/\/$/, '') === prefix);
    if (!path) throw new Error(`no ${prefix} in the document`);
    return spec.paths[path].post.requestBody;
  };

  it.each([
    ['/v1/denoise', ['image']],
    ['/v1/restore', ['image', 'mask']],
    ['/v1/inpaint', ['image', 'mask']],
  ])('%s: multipart with binary file fields %j, and a raw image/* body', (route, fields) => {
    const rb = body(route);
    expect(rb?.required).toBe(true);
    const form = rb.content['multipart/form-data'].schema;
    for (const f of fields) expect(form.properties[f]).toMatchObject({ type: 'string', format: 'binary' });
    expect(form.required).toEqual(['image']);
    expect(rb.content['image/*'].schema).toMatchObject({ type: 'string', format: 'binary' });
  });

  it('/v1/detect/adversarial: repeated binary `image` fields, raw image/* and JSON with base64 images', () => {
    const rb = body('/v1/detect/adversarial');
    const image = rb.content['multipart/form-data'].schema.properties.image;
    expect(image).toMatchObject({ type: 'array', items: { type: 'string', format: 'binary' } });
    expect(rb.content['image/*'].schema.format).toBe('binary');
    expect(rb.content['application/json'].schema.required).toEqual(['images']);
  });

  it('leaves the other routes as their schemas say (OT plan: JSON from zod)', () => {
    const rb = body('/v1/ot/plan');
    expect(Object.keys(rb.content)).toEqual(['application/json']);
  });
});
