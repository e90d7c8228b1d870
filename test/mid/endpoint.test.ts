/**
 * POST /v1/denoise?method=mid and GraphQL denoise(method: MID) with a tiny random-weight MID network. Its output
 * head starts at zero, so an untrained D returns the masked-and-filled input: on a flat image that is the image
 * itself, which checks the wiring (channels, masks, tiling) without a trained model. Quality: quality.test.ts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMidNetwork } from '../../src/mid/network.js';
import { initTfjs } from '../../src/nn/backend.js';
import { fileSystemIO } from '../../src/nn/fs-io.js';
import { makeApp, tinyModelsDir } from '../helpers.js';

async function makeRepo(): Promise<string> {
  const dir = path.join(tinyModelsDir(), '..', `mid-repo-${process.pid}`);
  const { tf } = await initTfjs('wasm');
  const model = buildMidNetwork(tf, { kind: 'mid-unet', widths: [4, 8, 8] }, 1);
  const out = path.join(dir, 'mid-rgb', '1');
  mkdirSync(out, { recursive: true });
  await model.save(fileSystemIO(out));
  writeFileSync(
    path.join(out, 'manifest.json'),
    JSON.stringify({
      name: 'mid-rgb',
      version: '1',
      task: 'denoise',
      format: 'layers',
      inputShape: [null, null, null, 4],
      valueRange: [0, 1],
      channels: 4,
      noiseFamily: 'real-camera',
      architecture: { kind: 'mid-unet', widths: [4, 8, 8], multiple: 8 },
      description: 'random weights, for endpoint tests',
      parameters: model.countParams(),
      trainingData: 'none (random weights)',
      trainingSteps: 0,
      trainingCommand: 'test/mid/endpoint.test.ts',
      createdAt: new Date(0).toISOString(),
      extra: { maskRatio: 0.3, masksDefault: 3 },
    }),
  );
  model.dispose();
  return dir;
}

async function flatPng(w: number, h: number, rgb: [number, number, number]): Promise<Buffer> {
  return sharp({
    create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } },
  })
    .png()
    .toBuffer();
}

async function texturedPng(w: number, h: number, channels: 1 | 3): Promise<Buffer> {
  const px = Buffer.alloc(w * h * channels);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 251;
  const image = sharp(px, { raw: { width: w, height: h, channels } });
  return (channels === 1 ? image.toColourspace('b-w') : image).png().toBuffer();
}

describe('POST /v1/denoise?method=mid', () => {
  let app: Awaited<ReturnType<typeof makeApp>>;
  beforeAll(async () => {
    app = await makeApp({ MODELS_DIR: await makeRepo(), MAX_IMAGE_PIXELS: 64 * 64 });
    await app.models.settled;
  }, 120_000);
  afterAll(async () => {
    await app.close();
  });

  it('answers an RGB PNG of the same size; a flat image comes back unchanged through the untrained net', async () => {
    const png = await flatPng(40, 24, [200, 90, 30]);
    const res = await app.inject({
      method: 'POST',
      url: '/v1/denoise?method=mid',
      headers: { 'content-type': 'image/png' },
      payload: png,
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    expect(res.headers['x-model']).toBe('mid-rgb@1');
    expect(res.headers['x-masks']).toBe('3'); // the manifest's masksDefault
    const { data, info } = await sharp(res.rawPayload).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([40, 24, 3]);
    for (let i = 0; i < data.length; i += 3) {
      expect([data[i], data[i + 1], data[i + 2]]).toEqual([200, 90, 30]);
    }
  });

  it('masks and seed: the same seed gives the same image, another seed or K another one', async () => {
    const png = await texturedPng(32, 32, 3);
    const run = async (query: string) => {
      const res = await app.inject({
        method: 'POST',
        url: `/v1/denoise?method=mid&output=json&${query}`,
        headers: { 'content-type': 'image/png' },
        payload: png,
      });
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as { image: string; masks: number; method: string; noise: string };
    };
    const a = await run('masks=2&seed=5');
    const b = await run('masks=2&seed=5');
    const c = await run('masks=2&seed=6');
    const d = await run('masks=1&seed=5');
    expect(a.masks).toBe(2);
    expect(a.method).toBe('mid');
    expect(a.noise).toBe('real-camera');
    expect(b.image).toBe(a.image);
    expect(c.image).not.toBe(a.image);
    expect(d.image).not.toBe(a.image);
  });

  it('grey input: replicated to RGB and answered grey', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/denoise?method=mid&masks=1&output=json',
      headers: { 'content-type': 'image/png' },
      payload: await texturedPng(24, 16, 1),
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().channels).toBe(1);
    const meta = await sharp(Buffer.from(res.json().image, 'base64')).metadata();
    expect([meta.width, meta.height, meta.channels]).toEqual([24, 16, 1]);
  });

  it('refuses bad parameters, too-large images and unknown models with coded errors', async () => {
    const png = await flatPng(16, 16, [1, 2, 3]);
    const cases: [string, number, string][] = [
      ['/v1/denoise?method=mid&masks=0', 400, 'TW_VALIDATION'],
      ['/v1/denoise?method=mid&masks=65', 400, 'TW_VALIDATION'],
      ['/v1/denoise?method=mid&model=mid-nope', 404, 'TW_MODEL_NOT_FOUND'],
    ];
    for (const [url, status, code] of cases) {
      const res = await app.inject({
        method: 'POST',
        url,
        headers: { 'content-type': 'image/png' },
        payload: png,
      });
      expect(res.statusCode, `${url}: ${res.body}`).toBe(status);
      expect(res.json().error.code).toBe(code);
    }
    const big = await app.inject({
      method: 'POST',
      url: '/v1/denoise?method=mid',
      headers: { 'content-type': 'image/png' },
      payload: await flatPng(80, 80, [1, 2, 3]),
    });
    expect(big.statusCode).toBe(413);
  });

  it('GraphQL denoise(method: MID) answers the same image as REST', async () => {
    const png = await texturedPng(24, 24, 3);
    const rest = await app.inject({
      method: 'POST',
      url: '/v1/denoise?method=mid&masks=2&seed=3&output=json',
      headers: { 'content-type': 'image/png' },
      payload: png,
    });
    const res = await app.inject({
      method: 'POST',
      url: '/graphql',
      payload: {
        query:
          'query($img: String!) { denoise(input: { image: $img, method: MID, masks: 2, seed: 3 }) { image method masks model } }',
        variables: { img: png.toString('base64') },
      },
    });
    expect(res.statusCode, res.body).toBe(200);
    const data = res.json().data.denoise;
    expect(data.image).toBe(rest.json().image);
    expect(data.masks).toBe(2);
    expect(data.model).toBe('mid-rgb@1');
  });
});
