/**
 * A hostile or broken model repository: a corrupt model.json, a missing weight shard, a model.json whose shard
 * paths point outside its folder (relative, absolute, and through a symbolic link), a corrupt manifest.json. Each
 * broken version is reported (failed or invalid, with a reason), the service stays ready on the good model and
 * serves it, and nothing outside a model's folder is read.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApp, repoRoot } from '../helpers.js';

const GOOD = path.join(repoRoot, 'models/gaussian-blur/1');

/** A copy of the good model under <repo>/<name>/1, with model.json changed by `edit` (and not required). */
function brokenCopy(repo: string, name: string, edit: (dir: string, modelJson: any) => unknown) {
  const dir = path.join(repo, name, '1');
  mkdirSync(path.dirname(dir), { recursive: true });
  cpSync(GOOD, dir, { recursive: true });
  const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ ...manifest, name, required: false }));
  const modelJson = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const edited = edit(dir, modelJson);
  if (edited !== undefined) writeFileSync(path.join(dir, 'model.json'), JSON.stringify(edited));
}

describe('a model repository with broken and hostile models', () => {
  let app: FastifyInstance;
  let repo: string;
  let outside: string;

  beforeAll(async () => {
    repo = mkdtempSync(path.join(os.tmpdir(), 'tweedie-hostile-models-'));
    outside = mkdtempSync(path.join(os.tmpdir(), 'tweedie-outside-'));
    // A valid weights file outside the repository: loading it would succeed, which is exactly what must not happen.
    cpSync(path.join(GOOD, 'weights.bin'), path.join(outside, 'weights.bin'));
    cpSync(GOOD, path.join(repo, 'gaussian-blur/1'), { recursive: true });
    brokenCopy(repo, 'corrupt-json', (dir) => {
      writeFileSync(path.join(dir, 'model.json'), '{"modelTopology": {"class_name": "Sequential", "con');
    });
    brokenCopy(repo, 'missing-shard', (dir) => rmSync(path.join(dir, 'weights.bin')));
    brokenCopy(repo, 'escape-relative', (_dir, json) => {
      json.weightsManifest[0].paths = [
        path.relative(path.join(repo, 'escape-relative/1'), path.join(outside, 'weights.bin')),
      ];
      return json;
    });
    brokenCopy(repo, 'escape-absolute', (_dir, json) => {
      json.weightsManifest[0].paths = [path.join(outside, 'weights.bin')];
      return json;
    });
    brokenCopy(repo, 'escape-symlink', (dir) => {
      rmSync(path.join(dir, 'weights.bin'));
      symlinkSync(path.join(outside, 'weights.bin'), path.join(dir, 'weights.bin'));
    });
    brokenCopy(repo, 'corrupt-manifest', (dir) => {
      writeFileSync(path.join(dir, 'manifest.json'), '{"name": "corrupt-manifest", "task":');
    });
    brokenCopy(repo, 'wrong-shard-size', (dir) => {
      writeFileSync(path.join(dir, 'weights.bin'), Buffer.alloc(7));
    });
    app = await makeApp({ MODELS_DIR: repo, RATE_LIMIT_MAX: 0 });
    await app.models.settled;
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    rmSync(repo, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it('reports every broken version with a reason and stays ready on the good one', async () => {
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode, ready.body).toBe(200);
    const models: { name: string; state: string; reason?: string }[] = (
      await app.inject({ method: 'GET', url: '/v1/models' })
    ).json().models;
    const state = Object.fromEntries(models.map((m) => [m.name, m]));
    expect(state['gaussian-blur'].state).toBe('ready');
    for (const name of [
      'corrupt-json',
      'missing-shard',
      'escape-relative',
      'escape-absolute',
      'corrupt-manifest',
      'wrong-shard-size',
    ]) {
      expect(['failed', 'invalid'], `${name}: ${JSON.stringify(state[name])}`).toContain(state[name]?.state);
      expect(state[name].reason, name).toBeTruthy();
    }
    expect(state['escape-relative'].reason).toMatch(/outside the model folder/);
    expect(state['escape-absolute'].reason).toMatch(/outside the model folder/);
    expect(state['corrupt-json'].reason).toMatch(/JSON/);
  });

  it('does not follow a symbolic link out of the model folder', async () => {
    const models: { name: string; state: string; reason?: string }[] = (
      await app.inject({ method: 'GET', url: '/v1/models' })
    ).json().models;
    const link = models.find((m) => m.name === 'escape-symlink');
    expect(['failed', 'invalid'], JSON.stringify(link)).toContain(link?.state);
    expect(link?.reason).toMatch(/outside the model folder/);
  });

  it('serves the good model, and answers for a broken one with a coded error', async () => {
    const data = new Float32Array(16 * 16);
    data[8 * 16 + 8] = 1;
    const res = await app.compute.pool.run('model.infer', {
      name: 'gaussian-blur',
      data,
      shape: [1, 16, 16, 1],
    });
    expect(res.data.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 4);
    const broken = await app.inject({ method: 'GET', url: '/v1/models/escape-absolute' });
    expect(broken.statusCode).toBeLessThan(500);
    const missing = app.compute.pool.run('model.infer', {
      name: 'missing-shard',
      data,
      shape: [1, 16, 16, 1],
    });
    await expect(missing).rejects.toMatchObject({ code: expect.stringMatching(/^TW_/) });
    // The pool survived all of it.
    const again = await app.compute.pool.run('model.infer', {
      name: 'gaussian-blur',
      data,
      shape: [1, 16, 16, 1],
    });
    expect(again.shape).toEqual([1, 16, 16, 1]);
  });
});
