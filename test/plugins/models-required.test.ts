/**
 * MODELS_REQUIRED: readiness waits for the models the routes use by default (not only the manifest's `required`
 * toy), a required name with no valid version keeps the service unready, and `defaults` is derived from the
 * routes' own defaults.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { NOISE_FAMILIES } from '../../src/denoise/noise.js';
import { ROUTE_DEFAULT_MODELS, requiredModelNames } from '../../src/nn/default-models.js';
import { denoiseModelName } from '../../src/operations/denoise/operation.js';
import { denoiseParams } from '../../src/operations/denoise/schema.js';
import { DEFAULT_DETECTOR } from '../../src/operations/detect/schema.js';
import { defaultRestoreModel } from '../../src/operations/restore/schema.js';
import { makeApp, repoRoot } from '../helpers.js';

describe('MODELS_REQUIRED', () => {
  let app: Awaited<ReturnType<typeof makeApp>> | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  it('defaults to `defaults`: every model some route picks when a request names none, all in the repository', () => {
    expect(loadConfig({}).MODELS_REQUIRED).toBe('defaults');
    const picked = new Set<string>([
      ...NOISE_FAMILIES.map((noise) => denoiseModelName(denoiseParams.parse({ noise }))),
      denoiseModelName(denoiseParams.parse({ method: 'mid' })),
      defaultRestoreModel(28, 28),
      defaultRestoreModel(256, 256),
      DEFAULT_DETECTOR,
    ]);
    expect(new Set(requiredModelNames('defaults'))).toEqual(picked);
    expect(ROUTE_DEFAULT_MODELS.length).toBe(picked.size);
    for (const name of picked) expect(existsSync(path.join(repoRoot, 'models', name)), name).toBe(true);
    expect(requiredModelNames('none')).toEqual([]);
    expect(requiredModelNames(' a , b,a ')).toEqual(['a', 'b']);
    expect(() => loadConfig({ MODELS_REQUIRED: '../etc' })).toThrow(/MODELS_REQUIRED/);
  });

  it('keeps /readyz at 503, naming it, while a required model has no valid version', async () => {
    app = await makeApp({ MODELS_REQUIRED: 'gaussian-blur,noise2score-gaussian' });
    await app.models.settled;
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json().reasons).toEqual([
      'required model noise2score-gaussian has no valid version in the repository',
    ]);
  });

  it('marks the default version of each required name as required, and is ready once they are warm', async () => {
    app = await makeApp({ MODELS_REQUIRED: 'gaussian-blur' });
    await app.models.settled;
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().status).toBe('ready');
    expect(res.json().models).toEqual([
      expect.objectContaining({ name: 'gaussian-blur', state: 'ready', required: true }),
    ]);
  });
});
