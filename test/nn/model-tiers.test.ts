/**
 * Two tiers per model family: the manifest says `tier` ('cpu' by default, or 'gpu'); a request that names no
 * version gets the highest version of the tier the backend prefers (gpu on WebGPU with a hardware adapter or on
 * tfjs-node-gpu, cpu otherwise), falling back to the cpu tier; an explicit version picks any.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backendModelTier } from '../../src/nn/backend.js';
import { parseModelManifest } from '../../src/nn/manifest.js';
import { resolveModel, scanModelRepository } from '../../src/nn/repository.js';
import { makeApp, repoRoot } from '../helpers.js';
import { validManifest } from './helpers.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/**
 * A models dir with gaussian-blur@1 (cpu tier, as committed) and, for each entry of `gpuVersions`, a generated
 * gpu-tier version: version 1 with every weight multiplied by `scale`, so its output tells it apart.
 */
function repo(gpuVersions: Record<string, number>, keepCpu = true): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tweedie-tiers-'));
  dirs.push(dir);
  const source = path.join(repoRoot, 'models', 'gaussian-blur', '1');
  for (const [version, scale] of Object.entries(gpuVersions)) {
    const to = path.join(dir, 'gaussian-blur', version);
    cpSync(source, to, { recursive: true });
    const manifest = JSON.parse(readFileSync(path.join(to, 'manifest.json'), 'utf8'));
    writeFileSync(path.join(to, 'manifest.json'), JSON.stringify({ ...manifest, version, tier: 'gpu' }));
    const bytes = readFileSync(path.join(to, 'weights.bin'));
    const w = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    for (let i = 0; i < w.length; i++) w[i] *= scale;
    writeFileSync(path.join(to, 'weights.bin'), Buffer.from(w.buffer));
  }
  if (keepCpu) cpSync(source, path.join(dir, 'gaussian-blur', '1'), { recursive: true });
  return dir;
}

describe('model tiers', () => {
  it('the manifest says the tier: cpu when absent, gpu or cpu when given, nothing else', () => {
    const plain = parseModelManifest(validManifest());
    expect(plain.ok && plain.manifest.tier).toBe('cpu');
    const gpu = parseModelManifest({ ...validManifest(), tier: 'gpu' });
    expect(gpu.ok && gpu.manifest.tier).toBe('gpu');
    const bad = parseModelManifest({ ...validManifest(), tier: 'tpu' });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(/tier/);
  });

  it('the backend decides the preferred tier: a GPU only when it is a real one', () => {
    expect(backendModelTier({ backend: 'wasm' })).toBe('cpu');
    expect(backendModelTier({ backend: 'cpu' })).toBe('cpu');
    expect(backendModelTier({ backend: null })).toBe('cpu');
    expect(backendModelTier({ backend: 'webgpu', adapter: { software: false } })).toBe('gpu');
    // lavapipe (a CPU running shaders) is slower than wasm: it gets the cpu tier.
    expect(backendModelTier({ backend: 'webgpu', adapter: { software: true } })).toBe('cpu');
    const gpuBinding = [
      { name: 'tensorflow (@tensorflow/tfjs-node-gpu)', error: 'not installed' },
      { name: 'webgpu', error: 'no adapter' },
      { name: 'tensorflow (@tensorflow/tfjs-node)' },
    ];
    expect(backendModelTier({ backend: 'tensorflow', tried: gpuBinding })).toBe('cpu');
    expect(
      backendModelTier({
        backend: 'tensorflow',
        tried: [{ name: 'tensorflow (@tensorflow/tfjs-node-gpu)' }],
      }),
    ).toBe('gpu');
  });

  it('a version-less lookup takes the highest version of the tier, else cpu, else any; a version picks any', async () => {
    const entries = await scanModelRepository(repo({ '2': 2, '3': 3 }));
    expect(resolveModel(entries, 'gaussian-blur')?.version).toBe('1');
    expect(resolveModel(entries, 'gaussian-blur', undefined, 'cpu')?.version).toBe('1');
    expect(resolveModel(entries, 'gaussian-blur', undefined, 'gpu')?.version).toBe('3');
    expect(resolveModel(entries, 'gaussian-blur', '2', 'cpu')?.version).toBe('2');
    // Only gpu-tier versions: a CPU backend still serves the highest (slow, not wrong).
    const gpuOnly = await scanModelRepository(repo({ '2': 2, '3': 3 }, false));
    expect(resolveModel(gpuOnly, 'gaussian-blur', undefined, 'cpu')?.version).toBe('3');
  });

  it('on wasm the service defaults to the cpu tier, lists the tiers, and model version still picks the gpu one', async () => {
    const app = await makeApp({ MODELS_DIR: repo({ '2': 2 }) });
    try {
      await app.models.settled;
      await app.compute.started;
      const list = (await app.inject({ method: 'GET', url: '/v1/models' })).json();
      expect(list.tier).toBe('cpu');
      const byVersion = Object.fromEntries(
        list.models.map((m: { version: string }) => [m.version, m]),
      ) as Record<string, { tier: string; isDefault: boolean; manifest: { tier: string } }>;
      expect(byVersion['1']).toMatchObject({ tier: 'cpu', isDefault: true, manifest: { tier: 'cpu' } });
      expect(byVersion['2']).toMatchObject({ tier: 'gpu', isDefault: false, manifest: { tier: 'gpu' } });
      expect(app.models.requireReady('gaussian-blur').version).toBe('1');
      // GraphQL's Model type says the same.
      const gql = await app.inject({
        method: 'POST',
        url: '/graphql',
        payload: {
          query: '{ models { version tier isDefault } cpu: model(name: "gaussian-blur") { tier } }',
        },
      });
      expect(gql.json().data.models).toEqual(
        expect.arrayContaining([
          { version: '1', tier: 'cpu', isDefault: true },
          { version: '2', tier: 'gpu', isDefault: false },
        ]),
      );
      expect(gql.json().data.cpu).toEqual({ tier: 'cpu' });
      // The worker resolves a version-less name the same way (jobs name no version); an explicit one is honoured.
      const sum = async (version?: string) => {
        const out = await app.compute.pool.run('model.infer', {
          name: 'gaussian-blur',
          ...(version ? { version } : {}),
          data: new Float32Array(64).fill(1),
          shape: [1, 8, 8, 1],
        });
        return out.data.reduce((s, v) => s + v, 0);
      };
      const cpu = await sum();
      expect(cpu).toBeCloseTo(await sum('1'), 4);
      expect(await sum('2')).toBeCloseTo(2 * cpu, 3);
    } finally {
      await app.close();
    }
  });
});
