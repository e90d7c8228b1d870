/**
 * Hot reload of the model repository: a version dropped into MODELS_DIR is loaded and warmed, then served as the
 * default (POST /v1/models/reload behind the key, or MODELS_WATCH), and a version whose folder is gone is dropped.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeApp, repoRoot, waitFor } from '../helpers.js';

const KEY = 'reload-test-key-0123456789';
const auth = { authorization: `Bearer ${KEY}` };

/** A models dir with gaussian-blur@1 only. */
function repo(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tweedie-reload-'));
  cpSync(path.join(repoRoot, 'models', 'gaussian-blur', '1'), path.join(dir, 'gaussian-blur', '1'), {
    recursive: true,
  });
  return dir;
}

/** gaussian-blur@<version>: version 1 with every weight multiplied by `scale`, so its output tells them apart. */
function addVersion(dir: string, version: string, scale: number) {
  const to = path.join(dir, 'gaussian-blur', version);
  cpSync(path.join(dir, 'gaussian-blur', '1'), to, { recursive: true });
  const manifest = JSON.parse(readFileSync(path.join(to, 'manifest.json'), 'utf8'));
  writeFileSync(path.join(to, 'manifest.json'), JSON.stringify({ ...manifest, version }));
  const bytes = readFileSync(path.join(to, 'weights.bin'));
  const w = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  for (let i = 0; i < w.length; i++) w[i] *= scale;
  writeFileSync(path.join(to, 'weights.bin'), Buffer.from(w.buffer));
}

describe('model hot reload', () => {
  let app: Awaited<ReturnType<typeof makeApp>> | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The sum of the output of the default version (resolved as routes do) on a constant 8x8 image. */
  const inferDefault = async () => {
    const m = app!.models.requireReady('gaussian-blur');
    const out = await app!.compute.pool.run('model.infer', {
      name: m.name,
      version: m.version,
      data: new Float32Array(64).fill(1),
      shape: [1, 8, 8, 1],
    });
    return { version: m.version, sum: out.data.reduce((s, v) => s + v, 0) };
  };

  it('POST /v1/models/reload serves a new version without restart, and drops a removed one', async () => {
    dir = repo();
    app = await makeApp({ MODELS_DIR: dir, API_KEYS: KEY, WORKERS: 2, MODELS_REQUIRED: 'gaussian-blur' });
    await app.models.settled;
    // With 2 workers the warm-ups may end before the start-up probe (system.info) on the other worker does.
    await waitFor(() => app!.compute.up);
    const before = await inferDefault();
    expect(before.version).toBe('1');

    expect((await app.inject({ method: 'POST', url: '/v1/models/reload' })).statusCode).toBe(401);

    addVersion(dir, '2', 2);
    const res = await app.inject({ method: 'POST', url: '/v1/models/reload', headers: auth });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({
      added: [{ model: 'gaussian-blur@2', state: 'ready' }],
      removed: [],
      defaults: { 'gaussian-blur': '2' },
    });
    const after = await inferDefault();
    expect(after.version).toBe('2');
    expect(after.sum).toBeCloseTo(2 * before.sum, 3);
    const view = (await app.inject({ method: 'GET', url: '/v1/models/gaussian-blur', headers: auth })).json();
    expect(view).toMatchObject({ version: '2', isDefault: true, state: 'ready', required: true });
    expect(view.versions).toEqual([
      { version: '1', state: 'ready' },
      { version: '2', state: 'ready' },
    ]);
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);

    // The old version's folder is removed: the next reload forgets it (and frees it in the workers).
    rmSync(path.join(dir, 'gaussian-blur', '1'), { recursive: true });
    const again = (await app.inject({ method: 'POST', url: '/v1/models/reload', headers: auth })).json();
    expect(again).toMatchObject({ added: [], removed: ['gaussian-blur@1'] });
    expect(app.models.get('gaussian-blur', '1')).toBeUndefined();
    expect((await inferDefault()).version).toBe('2');
  });

  it('gives work that names no version (jobs) the new version too, in a worker that cached the old one', async () => {
    dir = repo();
    app = await makeApp({ MODELS_DIR: dir, WORKERS: 1 });
    await app.models.settled;
    const latest = async () => {
      const out = await app!.compute.pool.run('model.infer', {
        name: 'gaussian-blur',
        data: new Float32Array(64).fill(1),
        shape: [1, 8, 8, 1],
      });
      return out.data.reduce((s, v) => s + v, 0);
    };
    const before = await latest();
    addVersion(dir, '2', 2);
    await app.models.reload();
    expect(await latest()).toBeCloseTo(2 * before, 3);
  });

  it('keeps serving the old default when the new version fails to load', async () => {
    dir = repo();
    app = await makeApp({ MODELS_DIR: dir, API_KEYS: KEY });
    await app.models.settled;
    addVersion(dir, '3', 1);
    // An unknown layer: the folder scans as valid, the load in the workers fails.
    const modelJson = path.join(dir, 'gaussian-blur', '3', 'model.json');
    writeFileSync(modelJson, readFileSync(modelJson, 'utf8').replace('"Conv2D"', '"NoSuchLayer"'));
    const res = (await app.inject({ method: 'POST', url: '/v1/models/reload', headers: auth })).json();
    expect(res.added).toEqual([expect.objectContaining({ model: 'gaussian-blur@3', state: 'failed' })]);
    expect(res.defaults).toEqual({ 'gaussian-blur': '1' });
    expect((await inferDefault()).version).toBe('1');
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
  });

  it('leaves the registry as it is when the repository cannot be read (a volume hiccup is not "every model gone")', async () => {
    dir = repo();
    app = await makeApp({ MODELS_DIR: dir, API_KEYS: KEY });
    await app.models.settled;
    const away = `${dir}-away`;
    const { renameSync } = await import('node:fs');
    renameSync(dir, away);
    try {
      const res = await app.inject({ method: 'POST', url: '/v1/models/reload', headers: auth });
      expect(res.statusCode, res.body).toBe(503);
      expect(res.json().error.code).toBe('TW_NOT_READY');
      expect(res.body).not.toContain(dir);
      expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    } finally {
      renameSync(away, dir);
    }
    expect((await inferDefault()).version).toBe('1');
  });

  it('MODELS_WATCH reloads by itself when a version is dropped in', async () => {
    dir = repo();
    app = await makeApp({ MODELS_DIR: dir, MODELS_WATCH: true, MODELS_WATCH_INTERVAL_MS: 200 });
    await app.models.settled;
    addVersion(dir, '4', 3);
    await waitFor(() => app!.models.get('gaussian-blur')?.version === '4', 15_000, 50);
    expect(app.models.get('gaussian-blur', '4')?.state).toBe('ready');
  });
});
