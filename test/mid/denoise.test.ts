/**
 * MID inference mechanics with a random-weight network: windows give the whole-image result, K masks are averaged,
 * grey and RGBA inputs keep their layout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { denoiseMid, midRgb } from '../../src/mid/denoise.js';
import { buildMidNetwork } from '../../src/mid/network.js';
import { initTfjs } from '../../src/nn/backend.js';
import { Rng } from '../../src/util/random.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;

describe('MID inference', () => {
  let tf: Tf;
  let model: LayersModel;
  beforeAll(async () => {
    tf = (await initTfjs('wasm')).tf;
    model = buildMidNetwork(tf, { kind: 'mid-unet', widths: [4, 8, 8] }, 2);
    // Random (non-zero) head too, so the output depends on a neighbourhood and tiling is really exercised.
    const rng = new Rng(4);
    model.setWeights(
      model.getWeights().map((w) =>
        tf.tensor(
          Float32Array.from({ length: w.size }, () => 0.2 * rng.normal()),
          w.shape,
        ),
      ),
    );
  });
  afterAll(() => model.dispose());

  const image = (w: number, h: number, channels: number) => {
    const rng = new Rng(w * h + channels);
    return Float32Array.from(
      { length: w * h * channels },
      (_, i) => 0.5 + 0.3 * Math.sin(i / 17) + 0.05 * rng.normal(),
    );
  };

  it('tiled windows give the whole-image result (masks drawn on the whole image)', async () => {
    const w = 300;
    const h = 90;
    const rgb = image(w, h, 3);
    const options = { masks: 2, dropRatio: 0.3, seed: 7 };
    const whole = (await midRgb(tf, model, rgb, w, h, { ...options, tile: 512 })).data;
    // margin 56 covers the U-Net's receptive-field radius (as Noise2Score's default)
    const tiled = (await midRgb(tf, model, rgb, w, h, { ...options, tile: 160, margin: 56, overlap: 8 }))
      .data;
    let maxDiff = 0;
    let spread = 0;
    for (let i = 0; i < whole.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(whole[i] - tiled[i]));
      spread = Math.max(spread, Math.abs(whole[i] - rgb[i]));
    }
    expect(spread).toBeGreaterThan(0.01); // the net does change the image
    expect(maxDiff).toBeLessThan(1e-4);
  });

  it('averages K masks: the result is the mean of the single-mask results of the same seeds', async () => {
    const w = 32;
    const h = 24;
    const rgb = image(w, h, 3);
    const two = (await midRgb(tf, model, rgb, w, h, { masks: 2, dropRatio: 0.3, seed: 1 })).data;
    const one = (await midRgb(tf, model, rgb, w, h, { masks: 1, dropRatio: 0.3, seed: 1 })).data;
    expect(Array.from(two)).not.toEqual(Array.from(one));
    // Mask k depends only on (seed, k): K = 2 contains K = 1's mask, so 2*two - one is the second mask's output.
    const second = two.map((v, i) => 2 * v - one[i]);
    expect(second.some((v, i) => Math.abs(v - one[i]) > 1e-3)).toBe(true);
  });

  it('residual (partition) mode: each pixel comes from the one pass that dropped it, never from itself', async () => {
    const w = 24;
    const h = 16;
    const rgb = image(w, h, 3);
    const blind = (await midRgb(tf, model, rgb, w, h, { masks: 1, dropRatio: 0.3, seed: 3, partition: 3 }))
      .data;
    // Changing one pixel's own value must not change its blind-spot prediction (it was dropped and filled from
    // its neighbours in the only pass that counts for it)...
    const p = 8 * w + 10;
    const changed = rgb.slice();
    for (let c = 0; c < 3; c++) changed[p * 3 + c] += 0.3;
    const blind2 = (
      await midRgb(tf, model, changed, w, h, { masks: 1, dropRatio: 0.3, seed: 3, partition: 3 })
    ).data;
    for (let c = 0; c < 3; c++) expect(blind2[p * 3 + c]).toBeCloseTo(blind[p * 3 + c], 5);
    // ...whereas the ordinary output at a pixel the mask keeps does depend on it.
    const plain = (await midRgb(tf, model, rgb, w, h, { masks: 4, dropRatio: 0.3, seed: 3 })).data;
    const plain2 = (await midRgb(tf, model, changed, w, h, { masks: 4, dropRatio: 0.3, seed: 3 })).data;
    expect(Math.abs(plain2[p * 3] - plain[p * 3])).toBeGreaterThan(1e-3);
    await expect(async () =>
      midRgb(tf, model, rgb, w, h, { masks: 1, dropRatio: 0.3, partition: 1 }),
    ).rejects.toThrow(RangeError);
  });

  it('keeps grey and RGBA layouts, passes alpha through, clips to [0,1]', async () => {
    const w = 20;
    const h = 12;
    const grey = await denoiseMid(
      tf,
      model,
      { data: image(w, h, 1), width: w, height: h, channels: 1 },
      {
        masks: 1,
        dropRatio: 0.3,
      },
    );
    expect(grey.channels).toBe(1);
    expect(grey.data.length).toBe(w * h);
    const rgba = image(w, h, 4);
    const out = await denoiseMid(
      tf,
      model,
      { data: rgba, width: w, height: h, channels: 4 },
      { masks: 1, dropRatio: 0.3 },
    );
    expect(out.data.length).toBe(w * h * 4);
    for (let i = 0; i < w * h; i++) expect(out.data[i * 4 + 3]).toBe(rgba[i * 4 + 3]);
    expect(out.data.every((v) => v >= 0 && v <= 1)).toBe(true);
    await expect(async () =>
      denoiseMid(
        tf,
        model,
        { data: image(w, h, 2), width: w, height: h, channels: 2 },
        { masks: 1, dropRatio: 0.3 },
      ),
    ).rejects.toThrow(RangeError);
  });
});
