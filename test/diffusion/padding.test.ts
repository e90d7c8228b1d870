/**
 * Padding driven by the prior's manifest (src/diffusion/padding.ts): the plan itself, and end to end through
 * POST /v1/restore with the committed ddpm-fashion-mnist, whose manifest says it was trained on 28x28 images
 * zero-padded to 32x32. Uploaded at their native 28x28, Fashion-MNIST test images must be padded the same way
 * (reflection, the old behaviour, loses to biharmonic inpainting), so RED-Diff at the service's defaults beats the
 * classical fill by more than 1 dB on 50% random masks and bicubic up-sampling on x2 super-resolution.
 */
import { cpSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFashionMnistImages } from '../../src/diffusion/fashion-mnist.js';
import { bicubicUpsample, biharmonicFill } from '../../src/diffusion/initial.js';
import { manifestPadding, restorePadding } from '../../src/diffusion/padding.js';
import { Rng } from '../../src/util/random.js';
import { makeApp, multipartForm, repoRoot, tinyModelsDir } from '../helpers.js';

const FASHION = { mode: 'constant', value: 0, content: [28, 28], canvas: [32, 32] };

describe('restorePadding', () => {
  it('centres a content-sized image on the manifest canvas, band filled and observed', () => {
    const plan = restorePadding({ padding: FASHION }, 28, 28, 1, 8);
    expect(plan.summary()).toEqual({ mode: 'constant', top: 2, left: 2, bottom: 2, right: 2 });
    const image = Float32Array.from({ length: 28 * 28 }, (_, i) => 0.2 + (i % 7) / 10);
    const padded = plan.pad(image, 28, 28, 'x');
    expect(padded.length).toBe(32 * 32);
    expect(padded[0]).toBe(0);
    expect(padded[2 * 32 + 2]).toBeCloseTo(image[0], 6);
    expect(padded[31 * 32 + 31]).toBe(0);
    expect(plan.pad(new Float32Array(28 * 28), 28, 28, 'x', 1)[0]).toBe(1); // the mask: observed
    expect(Array.from(plan.crop(padded))).toEqual(Array.from(image));
    // x2 super-resolution: 14x14 measurement, 1-pixel band, the same crop of the 28x28 estimate.
    const sr = restorePadding({ padding: FASHION }, 28, 28, 2, 8);
    expect(sr.summary().mode).toBe('constant');
    const y = sr.pad(new Float32Array(14 * 14).fill(0.5), 14, 14, 'y');
    expect(y.length).toBe(16 * 16);
    expect([y[0], y[16 + 1], y[15 * 16 + 15]]).toEqual([0, 0.5, 0]);
  });

  it('reflects at the bottom and right for other sizes, factors the canvas does not fit, and no section', () => {
    expect(restorePadding({ padding: FASHION }, 20, 14, 1, 8).summary()).toEqual({
      mode: 'reflect',
      top: 0,
      left: 0,
      bottom: 4,
      right: 2,
    });
    // x4: the 2-pixel band is not a whole number of measurement pixels.
    expect(restorePadding({ padding: FASHION }, 28, 28, 4, 8).summary().mode).toBe('reflect');
    const plan = restorePadding(undefined, 28, 28, 1, 8);
    expect(plan.summary()).toEqual({ mode: 'reflect', top: 0, left: 0, bottom: 4, right: 4 });
    const image = Float32Array.from({ length: 28 * 28 }, (_, i) => i);
    const padded = plan.pad(image, 28, 28, 'x');
    expect(padded[28]).toBe(image[26]); // mirror without repeating the edge
    expect(Array.from(plan.crop(padded))).toEqual(Array.from(image));
  });

  it('rejects a malformed manifest section', () => {
    expect(manifestPadding({})).toBeNull();
    expect(() => manifestPadding({ padding: { ...FASHION, mode: 'edge' } })).toThrow(/extra.padding/);
    expect(() => manifestPadding({ padding: { ...FASHION, canvas: [24, 24] } })).toThrow(/canvas >= content/);
  });
});

const psnr = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return 10 * Math.log10(a.length / s);
};
const mean = (xs: number[]) => xs.reduce((a, v) => a + v, 0) / xs.length;
const png = (bytes: Uint8Array, side: number) =>
  sharp(Buffer.from(bytes), { raw: { width: side, height: side, channels: 1 } })
    .png()
    .toBuffer();

describe('Fashion-MNIST uploaded at 28x28 through POST /v1/restore', () => {
  const COUNT = 8;
  let app: Awaited<ReturnType<typeof makeApp>>;
  let images: Uint8Array[];

  beforeAll(async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tweedie-padding-'));
    cpSync(tinyModelsDir(), dir, { recursive: true });
    cpSync(path.join(repoRoot, 'models/ddpm-fashion-mnist'), path.join(dir, 'ddpm-fashion-mnist'), {
      recursive: true,
    });
    app = await makeApp({ MODELS_DIR: dir });
    await app.models.settled;
    const test = await loadFashionMnistImages('t10k');
    images = Array.from({ length: COUNT }, (_, i) => test.pixels.slice(i * 784, (i + 1) * 784));
  }, 120_000);
  afterAll(async () => {
    await app?.close();
  });

  it('inpaints 50% random masks more than 1 dB better than biharmonic, padded with observed zeros', async () => {
    const ours: number[] = [];
    const classical: number[] = [];
    for (const [i, bytes] of images.entries()) {
      const rng = new Rng(100 + i);
      const keep = Float32Array.from({ length: 784 }, () => (rng.uniform() < 0.5 ? 0 : 1));
      const maskBytes = Uint8Array.from(keep, (k) => (k ? 0 : 255)); // white = missing
      const { headers, payload } = multipartForm(
        [
          ['image', 'image.png', await png(bytes, 28)],
          ['mask', 'mask.png', await png(maskBytes, 28)],
        ],
        { simulate: 'true', output: 'json', seed: String(i) },
      );
      const res = await app.inject({ method: 'POST', url: '/v1/restore', headers, payload });
      expect(res.statusCode, res.body).toBe(200);
      const json = res.json();
      expect(json.model).toBe('ddpm-fashion-mnist@20261127');
      expect(json.padding).toEqual({ mode: 'constant', top: 2, left: 2, bottom: 2, right: 2 });
      const x = Float32Array.from(bytes, (v) => v / 255);
      ours.push(json.psnr);
      classical.push(
        psnr(
          biharmonicFill(
            x.map((v, j) => v * keep[j]),
            keep,
            28,
            28,
          ),
          x,
        ),
      );
    }
    const gain = mean(ours) - mean(classical);
    expect(
      gain,
      `RED-Diff ${mean(ours).toFixed(2)} dB, biharmonic ${mean(classical).toFixed(2)} dB`,
    ).toBeGreaterThan(1);
  }, 120_000);

  it('super-resolves x2 (average pooling) more than 1 dB better than bicubic up-sampling', async () => {
    const ours: number[] = [];
    const classical: number[] = [];
    for (const [i, bytes] of images.entries()) {
      const res = await app.inject({
        method: 'POST',
        url: `/v1/restore?task=super-resolution&factor=2&simulate=true&output=json&seed=${i}`,
        headers: { 'content-type': 'image/png' },
        payload: await png(bytes, 28),
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().padding.mode).toBe('constant');
      ours.push(res.json().psnr);
      const x = Float32Array.from(bytes, (v) => v / 255);
      const y = new Float32Array(14 * 14);
      for (let r = 0; r < 28; r++)
        for (let c = 0; c < 28; c++) y[(r >> 1) * 14 + (c >> 1)] += x[r * 28 + c] / 4;
      classical.push(
        psnr(
          bicubicUpsample(y, 14, 14, 2).map((v) => Math.min(1, Math.max(0, v))),
          x,
        ),
      );
    }
    const gain = mean(ours) - mean(classical);
    expect(
      gain,
      `RED-Diff ${mean(ours).toFixed(2)} dB, bicubic ${mean(classical).toFixed(2)} dB`,
    ).toBeGreaterThan(1);
  }, 120_000);
});
