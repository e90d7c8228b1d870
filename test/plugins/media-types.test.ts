/**
 * A JSON route refuses another media type (an image, a form, octet-stream) with 415 TW_UNSUPPORTED_MEDIA_TYPE
 * before it reads the body, in our shape or as RFC 9457 problem details; JSON (with parameters) and the image
 * routes' own types still pass.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mediaTypeOf } from '../../src/plugins/app/media-types.js';
import { makeApp } from '../helpers.js';

const form =
  '--XX\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n' +
  'abc\r\n--XX--\r\n';

describe('media types per route', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    app = await makeApp({ BODY_LIMIT_BYTES: 4096 });
  });
  afterAll(async () => {
    await app.close();
  });

  it('reads the media type of a Content-Type header', () => {
    expect(mediaTypeOf('Application/JSON ; charset=utf-8')).toBe('application/json');
    expect(mediaTypeOf('multipart/form-data; boundary=x')).toBe('multipart/form-data');
  });

  it.each([
    ['/v1/ot/plan', 'image/png', 'abc'],
    ['/v1/ot/plan', 'application/octet-stream', 'abc'],
    ['/v1/ot/plan', 'multipart/form-data; boundary=XX', form],
    ['/v1/jobs', 'image/jpeg', 'abc'],
    ['/v1/jobs', 'multipart/form-data; boundary=XX', form],
    ['/v1/_test/busy', 'application/octet-stream', 'abc'],
  ])('POST %s with %s: 415 naming the JSON it takes', async (url, type, payload) => {
    const res = await app.inject({ method: 'POST', url, headers: { 'content-type': type }, payload });
    expect(res.statusCode, res.body).toBe(415);
    const { error } = res.json();
    expect(error.code).toBe('TW_UNSUPPORTED_MEDIA_TYPE');
    expect(error.message).toMatch(/takes a JSON body/);
    expect(error.details).toEqual({ contentType: type.split(';')[0], accepted: ['application/json'] });
  });

  it('refuses before reading: a body over the limit of the wrong type is a 415, not a 413', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/ot/plan',
      headers: { 'content-type': 'image/png', accept: 'application/problem+json' },
      payload: Buffer.alloc(64 * 1024),
    });
    expect(res.statusCode).toBe(415);
    expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(res.json()).toMatchObject({
      status: 415,
      code: 'TW_UNSUPPORTED_MEDIA_TYPE',
      instance: '/v1/ot/plan',
    });
  });

  it('still takes JSON (any case, with parameters) on JSON routes and images on image routes', async () => {
    const ok = await app.inject({
      method: 'POST',
      url: '/v1/_test/busy',
      headers: { 'content-type': 'Application/JSON; charset=utf-8' },
      payload: JSON.stringify({ ms: 1 }),
    });
    expect(ok.statusCode, ok.body).toBe(200);
    // An image route reads its own body: an undecodable image is its 400, not a 415.
    const image = await app.inject({
      method: 'POST',
      url: '/v1/denoise',
      headers: { 'content-type': 'image/png' },
      payload: 'not a png',
    });
    expect(image.json().error.code).toBe('TW_IMAGE_INVALID');
  });
});
