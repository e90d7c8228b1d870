/**
 * The whole path of "train on your own images": a tiny Noise2Score model trained for a few steps on generated
 * noisy images (no clean image anywhere), exported into a MODELS_DIR, and served by the app with model=<name>.
 */
import { cpSync, mkdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initTfjs } from '../../src/nn/backend.js';
import { parseModelManifest } from '../../src/nn/manifest.js';
import { Rng } from '../../src/util/random.js';
import { trainNoise2Score } from '../../tools/train/noise2score.js';
import { makeApp, tinyModelsDir } from '../helpers.js';

let dir: string;
let app: Awaited<ReturnType<typeof makeApp>> | undefined;

/** A noisy photograph stand-in: a smooth scene with a square, plus Gaussian noise of sigma 20/255, as 8-bit. */
async function noisyImage(path: string, seed: number, format: 'png' | 'jpeg' | 'tiff'): Promise<void> {
  const rng = new Rng(seed);
  const px = Buffer.alloc(40 * 40 * 3);
  for (let r = 0; r < 40; r++) {
    for (let c = 0; c < 40; c++) {
      const clean = r > 8 + seed && r < 30 && c > 10 && c < 32 ? 200 : 50 + 3 * c;
      for (let k = 0; k < 3; k++)
        px[(r * 40 + c) * 3 + k] = Math.max(0, Math.min(255, clean + 20 * rng.normal()));
    }
  }
  await sharp(px, { raw: { width: 40, height: 40, channels: 3 } })
    .toFormat(format, format === 'jpeg' ? { quality: 95 } : {})
    .toFile(path);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'serve-trained-'));
  mkdirSync(join(dir, 'my-noisy'));
  await noisyImage(join(dir, 'my-noisy', 'DSC_0001.png'), 1, 'png');
  await noisyImage(join(dir, 'my-noisy', 'scan 2.jpg'), 2, 'jpeg');
  await noisyImage(join(dir, 'my-noisy', 'frame-3.tif'), 3, 'tiff');
}, 60_000);

afterAll(async () => {
  await app?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('a model trained on one folder of noisy images is served by name', () => {
  it('npm run train -- noise2score --images DIR --out MODELS_DIR/my-denoiser/1, then model=my-denoiser', async () => {
    const modelsDir = join(dir, 'models');
    cpSync(join(tinyModelsDir(), 'gaussian-blur'), join(modelsDir, 'gaussian-blur'), { recursive: true });
    const out = join(modelsDir, 'my-denoiser', '1');
    const lines: string[] = [];
    const { tf } = await initTfjs('wasm');
    await trainNoise2Score(tf, {
      noise: 'gaussian',
      noisyDir: join(dir, 'my-noisy'),
      steps: 4,
      batch: 4,
      patch: 16,
      lr: 1e-3,
      out,
      checkpointDir: join(dir, 'checkpoints'),
      checkpointMinutes: 100,
      resume: false,
      seed: 1,
      architecture: { kind: 'unet', widths: [4, 8, 8], outputScale: 32 },
      commandLine:
        'npm run train -- noise2score --noise gaussian --images my-noisy --out models/my-denoiser/1',
      log: (line) => lines.push(line),
    });
    expect(lines.join('\n')).toMatch(/step 4\/4 loss \d/);
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
    expect(parseModelManifest(manifest).ok).toBe(true);
    expect(manifest).toMatchObject({
      name: 'my-denoiser',
      version: '1',
      task: 'denoise-score',
      trainingSteps: 4,
    });
    expect(manifest.trainingData).toContain('my-noisy (the noisy images only');
    expect(manifest.extra.lineage).toMatch(/fresh initialisation.*on the CPU/);

    app = await makeApp({ MODELS_DIR: modelsDir });
    await app.models.settled;
    const listed = (await app.inject({ url: '/v1/models' })).json().models;
    expect(listed.find((m: { name: string }) => m.name === 'my-denoiser')).toMatchObject({
      state: 'ready',
      manifest: { trainingCommand: manifest.trainingCommand, extra: { lineage: manifest.extra.lineage } },
    });
    const payload = await sharp(join(dir, 'my-noisy', 'DSC_0001.png'))
      .png()
      .toBuffer();
    const res = await app.inject({
      method: 'POST',
      url: '/v1/denoise?noise=gaussian&level=20&model=my-denoiser',
      headers: { 'content-type': 'image/png' },
      payload,
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['x-model']).toBe('my-denoiser@1');
    const meta = await sharp(res.rawPayload).metadata();
    expect([meta.width, meta.height]).toEqual([40, 40]);
  }, 120_000);
});
