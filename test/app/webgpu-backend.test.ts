import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp, waitFor } from '../helpers.js';

// TFJS_BACKEND=webgpu end to end: the workers run TF.js on the WebGPU adapter (lavapipe on CI and on machines
// without a GPU) and /readyz, GET /v1/models and /metrics name it. With no adapter at all the workers fall back to
// wasm (tested in test/nn/backend.test.ts): skipped then, unless TEST_WEBGPU=1 demands an adapter.
const { getWebGpu, releaseWebGpu } = await import('../../src/gpu/device.js');
const probe = await getWebGpu({ allowSoftware: true });
await releaseWebGpu();
const run = probe.ok || process.env.TEST_WEBGPU === '1';

describe.skipIf(!run)('TFJS_BACKEND=webgpu', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    app = await makeApp({ TFJS_BACKEND: 'webgpu' });
    await waitFor(() => app.compute.up, 60_000);
  }, 90_000);
  afterAll(() => app?.close());

  it('reports the backend and the adapter on /readyz, GET /v1/models and /metrics', async () => {
    await waitFor(async () => (await app.inject({ url: '/readyz' })).statusCode === 200, 60_000);
    const ready = (await app.inject({ url: '/readyz' })).json();
    expect(ready.backend).toBe('webgpu');
    expect(ready.backendTried).toEqual([{ name: 'webgpu' }]);
    expect(ready.adapter).toMatchObject({ vendor: expect.any(String), software: expect.any(Boolean) });
    expect(ready.adapter.description).toBeTruthy();

    const models = (await app.inject({ url: '/v1/models' })).json();
    expect(models.backend).toBe('webgpu');
    expect(models.adapter).toEqual(ready.adapter);

    const metrics = (await app.inject({ url: '/metrics' })).body;
    const line = metrics.split('\n').find((l) => l.startsWith('tweedie_compute_backend_info{'));
    expect(line).toContain('backend="webgpu"');
    expect(line).toContain(`adapter_vendor="${ready.adapter.vendor}"`);
    expect(line).toContain(`adapter_software="${ready.adapter.software}"`);
    expect(line).toMatch(/ 1$/);
  }, 90_000);
});
