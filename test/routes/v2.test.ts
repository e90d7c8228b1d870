/**
 * KServe / Open Inference Protocol v2 aliases: the health probes follow /livez and /readyz (and stay public with
 * API keys on), the model endpoints follow the registry (and need the key, as /v1/models does).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp } from '../helpers.js';

const KEY = 'v2-test-key-0123456789';

describe('Open Inference Protocol v2 aliases', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  const auth = { authorization: `Bearer ${KEY}` };
  beforeAll(async () => {
    app = await makeApp({ API_KEYS: KEY, MODELS_REQUIRED: 'gaussian-blur,absent-model' });
    await app.models.settled;
  });
  afterAll(async () => {
    await app.close();
  });

  it('GET /v2/health/live and /v2/health/ready mirror /livez and /readyz, without a key', async () => {
    const live = await app.inject({ method: 'GET', url: '/v2/health/live' });
    expect(live.statusCode).toBe(200);
    expect(live.json()).toEqual({ live: true });
    // absent-model is required and missing: /readyz says 503, and so does the alias.
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(503);
    const ready = await app.inject({ method: 'GET', url: '/v2/health/ready' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toEqual({ ready: false });
    expect(ready.headers['retry-after']).toBe('5');
  });

  it('GET /v2/models/{name} answers the metadata from the manifest', async () => {
    const res = await app.inject({ method: 'GET', url: '/v2/models/gaussian-blur', headers: auth });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({
      name: 'gaussian-blur',
      versions: ['1'],
      platform: 'tensorflowjs_layers',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, -1, -1, 1] }],
      outputs: [],
    });
    const v = await app.inject({ method: 'GET', url: '/v2/models/gaussian-blur/versions/1', headers: auth });
    expect(v.json().name).toBe('gaussian-blur');
  });

  it('GET /v2/models/{name}/ready is 200 for a warm model, 404 TW_MODEL_NOT_FOUND for an unknown one', async () => {
    const ok = await app.inject({ method: 'GET', url: '/v2/models/gaussian-blur/ready', headers: auth });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ name: 'gaussian-blur', version: '1', ready: true, state: 'ready' });
    const byVersion = await app.inject({
      method: 'GET',
      url: '/v2/models/gaussian-blur/versions/1/ready',
      headers: auth,
    });
    expect(byVersion.statusCode).toBe(200);
    for (const url of ['/v2/models/absent-model/ready', '/v2/models/gaussian-blur/versions/9/ready']) {
      const res = await app.inject({ method: 'GET', url, headers: auth });
      expect(res.statusCode, url).toBe(404);
      expect(res.json().error.code).toBe('TW_MODEL_NOT_FOUND');
    }
  });

  it('keeps the model endpoints behind the API key', async () => {
    for (const url of ['/v2/models/gaussian-blur', '/v2/models/gaussian-blur/ready']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(401);
      expect(res.json().error.code).toBe('TW_UNAUTHORIZED');
    }
  });
});
