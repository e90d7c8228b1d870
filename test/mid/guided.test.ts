/**
 * MID's guided second stage (src/mid/guided.ts): the running-sum implementation against the formula written out
 * directly, its limits, and that weights read on a good pilot remove noise that the pilot alone does not.
 */
import { describe, expect, it } from 'vitest';
import { reflectIndex } from '../../src/diffusion/padding.js';
import { denoiseMid, midInferenceDefaults, midRgb } from '../../src/mid/denoise.js';
import { guidedNonLocalMeans } from '../../src/mid/guided.js';
import { buildMidNetwork } from '../../src/mid/network.js';
import { initTfjs } from '../../src/nn/backend.js';
import { Rng } from '../../src/util/random.js';

/** xhat(p) = sum_q w y(q) / sum_q w, w = exp(-mean over patch and channels of (g(p+k) - g(q+k))^2 / h^2). */
function direct(
  y: Float32Array,
  g: Float32Array,
  w: number,
  h: number,
  ch: number,
  patch: number,
  search: number,
  hh: number,
) {
  const at = (img: Float32Array, r: number, c: number, k: number) =>
    img[(reflectIndex(Math.abs(r), h) * w + reflectIndex(Math.abs(c), w)) * ch + k];
  const rad = patch >> 1;
  const out = new Float32Array(y.length);
  for (let r = 0; r < h; r++)
    for (let c = 0; c < w; c++) {
      const num = new Float64Array(ch);
      let den = 0;
      for (let dr = -search; dr <= search; dr++)
        for (let dc = -search; dc <= search; dc++) {
          let d = 0;
          for (let i = -rad; i <= rad; i++)
            for (let j = -rad; j <= rad; j++)
              for (let k = 0; k < ch; k++)
                d += (at(g, r + i, c + j, k) - at(g, r + dr + i, c + dc + j, k)) ** 2;
          const weight = Math.exp(-d / (patch * patch * ch) / (hh * hh));
          den += weight;
          for (let k = 0; k < ch; k++) num[k] += weight * at(y, r + dr, c + dc, k);
        }
      for (let k = 0; k < ch; k++) out[(r * w + c) * ch + k] = num[k] / den;
    }
  return out;
}

const mse = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0) / a.length;

describe('guidedNonLocalMeans', () => {
  it('equals the weighted average written out directly (interior, 3 channels)', () => {
    const rng = new Rng(1);
    const [w, h] = [13, 11];
    const y = Float32Array.from({ length: w * h * 3 }, () => rng.uniform());
    const g = Float32Array.from(y, (v) => v + 0.1 * rng.normal());
    const fast = guidedNonLocalMeans(y, g, w, h, 3, { patch: 3, search: 2, h: 0.2 });
    const slow = direct(y, g, w, h, 3, 3, 2, 0.2);
    // Borders are extended by the same reflection but the padded band is reflected once more in the direct form
    // only where |index| runs past the image; compare away from the edge.
    for (let r = 3; r < h - 3; r++)
      for (let c = 3; c < w - 3; c++)
        for (let k = 0; k < 3; k++)
          expect(fast[(r * w + c) * 3 + k]).toBeCloseTo(slow[(r * w + c) * 3 + k], 5);
  });

  it('returns the noisy image when h is tiny and the search-window mean when h is huge', () => {
    const rng = new Rng(2);
    const [w, h] = [9, 9];
    const y = Float32Array.from({ length: w * h }, () => rng.uniform());
    const g = Float32Array.from({ length: w * h }, () => rng.uniform());
    const same = guidedNonLocalMeans(y, g, w, h, 1, { patch: 3, search: 2, h: 1e-6 });
    for (let i = 0; i < y.length; i++) expect(same[i]).toBeCloseTo(y[i], 6);
    const flat = guidedNonLocalMeans(y, g, w, h, 1, { patch: 3, search: 1, h: 1e6 });
    let s = 0;
    for (let r = 3; r <= 5; r++) for (let c = 3; c <= 5; c++) s += y[r * w + c];
    expect(flat[4 * w + 4]).toBeCloseTo(s / 9, 5);
  });

  it('removes most of the noise left by a pilot that kept the edges (stripes + noise)', () => {
    const rng = new Rng(3);
    const [w, h] = [48, 48];
    const clean = Float32Array.from({ length: w * h * 3 }, (_, i) => (Math.floor(i / 3 / 6) % 2 ? 0.8 : 0.2));
    const noisy = Float32Array.from(clean, (v) => v + 0.05 * rng.normal());
    // A pilot that removed half of the noise and nothing else, as an under-denoising network would.
    const pilot = Float32Array.from(clean, (v, i) => v + 0.5 * (noisy[i] - v));
    const out = guidedNonLocalMeans(noisy, pilot, w, h, 3, { patch: 5, search: 5, h: 0.08 });
    expect(mse(out, clean)).toBeLessThan(0.5 * mse(pilot, clean));
    expect(mse(out, clean)).toBeLessThan(0.1 * mse(noisy, clean));
  });

  it('patch aggregation pools the weighted averages of every patch that covers a pixel, as written out', () => {
    const rng = new Rng(7);
    const [w, h, ch, patch, search, hh] = [11, 9, 3, 3, 2, 0.2];
    const y = Float32Array.from({ length: w * h * ch }, () => rng.uniform());
    const g = Float32Array.from(y, (v) => v + 0.1 * rng.normal());
    const at = (img: Float32Array, r: number, c: number, k: number) =>
      img[(reflectIndex(Math.abs(r), h) * w + reflectIndex(Math.abs(c), w)) * ch + k];
    const rad = patch >> 1;
    // weight(p, o) of the patch centred at p (inside the image) against the one at p + o.
    const weight = (r: number, c: number, dr: number, dc: number) => {
      let d = 0;
      for (let i = -rad; i <= rad; i++)
        for (let j = -rad; j <= rad; j++)
          for (let k = 0; k < ch; k++) d += (at(g, r + i, c + j, k) - at(g, r + dr + i, c + dc + j, k)) ** 2;
      return Math.exp(-d / (patch * patch * ch) / (hh * hh));
    };
    const fast = guidedNonLocalMeans(y, g, w, h, ch, { patch, search, h: hh, aggregation: 'patch' });
    for (let r = 0; r < h; r++)
      for (let c = 0; c < w; c++) {
        const num = new Float64Array(ch);
        let den = 0;
        // The patch centred at (r - i, c - j) maps (r, c) to (r + dr, c + dc).
        for (let i = -rad; i <= rad; i++)
          for (let j = -rad; j <= rad; j++) {
            if (r - i < 0 || r - i >= h || c - j < 0 || c - j >= w) continue;
            for (let dr = -search; dr <= search; dr++)
              for (let dc = -search; dc <= search; dc++) {
                const wt = weight(r - i, c - j, dr, dc);
                den += wt;
                for (let k = 0; k < ch; k++) num[k] += wt * at(y, r + dr, c + dc, k);
              }
          }
        for (let k = 0; k < ch; k++) expect(fast[(r * w + c) * ch + k]).toBeCloseTo(num[k] / den, 5);
      }
    // patch 1: one patch per pixel, the same as pixel aggregation.
    expect(guidedNonLocalMeans(y, g, w, h, ch, { patch: 1, search, h: hh, aggregation: 'patch' })).toEqual(
      guidedNonLocalMeans(y, g, w, h, ch, { patch: 1, search, h: hh }),
    );
  });

  it('patch aggregation removes more noise than pixel aggregation at the same h (stripes + noise)', () => {
    const rng = new Rng(8);
    const [w, h] = [48, 48];
    const clean = Float32Array.from({ length: w * h * 3 }, (_, i) => (Math.floor(i / 3 / 6) % 2 ? 0.8 : 0.2));
    const noisy = Float32Array.from(clean, (v) => v + 0.05 * rng.normal());
    const pilot = Float32Array.from(clean, (v, i) => v + 0.5 * (noisy[i] - v));
    const options = { patch: 5, search: 3, h: 0.03 };
    const pixel = guidedNonLocalMeans(noisy, pilot, w, h, 3, options);
    const patch = guidedNonLocalMeans(noisy, pilot, w, h, 3, { ...options, aggregation: 'patch' });
    expect(mse(patch, clean)).toBeLessThan(0.85 * mse(pixel, clean));
  });

  it('pilotWeight averages the blend of the noisy values and the pilot with the same weights', () => {
    const rng = new Rng(9);
    const [w, h] = [12, 10];
    const y = Float32Array.from({ length: w * h * 3 }, () => rng.uniform());
    const g = Float32Array.from(y, (v) => v + 0.1 * rng.normal());
    const options = { patch: 3, search: 2, h: 0.2 };
    const ofNoisy = guidedNonLocalMeans(y, g, w, h, 3, options);
    const ofPilot = guidedNonLocalMeans(g, g, w, h, 3, options);
    const mixed = guidedNonLocalMeans(y, g, w, h, 3, { ...options, pilotWeight: 0.3 });
    const slow = direct(
      Float32Array.from(y, (v, i) => 0.7 * v + 0.3 * g[i]),
      g,
      w,
      h,
      3,
      3,
      2,
      0.2,
    );
    for (let i = 0; i < y.length; i++) {
      expect(mixed[i]).toBeCloseTo(0.7 * ofNoisy[i] + 0.3 * ofPilot[i], 5);
      const [r, c] = [Math.floor(i / 3 / w), Math.floor(i / 3) % w];
      if (r >= 3 && r < h - 3 && c >= 3 && c < w - 3) expect(mixed[i]).toBeCloseTo(slow[i], 5);
    }
    expect(guidedNonLocalMeans(y, g, w, h, 3, { ...options, pilotWeight: 0 })).toEqual(ofNoisy);
    expect(guidedNonLocalMeans(y, g, w, h, 3, { ...options, pilotWeight: 1 })).toEqual(ofPilot);
  });

  it('a share of a less noisy pilot in the averaged values removes more noise (stripes + noise)', () => {
    const rng = new Rng(10);
    const [w, h] = [48, 48];
    const clean = Float32Array.from({ length: w * h * 3 }, (_, i) => (Math.floor(i / 3 / 6) % 2 ? 0.8 : 0.2));
    const noisy = Float32Array.from(clean, (v) => v + 0.05 * rng.normal());
    const pilot = Float32Array.from(clean, (v, i) => v + 0.5 * (noisy[i] - v));
    const options = { patch: 5, search: 2, h: 0.08 };
    const plain = guidedNonLocalMeans(noisy, pilot, w, h, 3, options);
    const mixed = guidedNonLocalMeans(noisy, pilot, w, h, 3, { ...options, pilotWeight: 0.4 });
    expect(mse(mixed, clean)).toBeLessThan(0.8 * mse(plain, clean));
  });

  it('refuses bad settings', () => {
    const y = new Float32Array(4);
    expect(() => guidedNonLocalMeans(y, y, 2, 2, 1, { patch: 4, search: 1, h: 0.1 })).toThrow(/patch/);
    expect(() => guidedNonLocalMeans(y, y, 2, 2, 1, { patch: 3, search: -1, h: 0.1 })).toThrow(/search/);
    expect(() => guidedNonLocalMeans(y, y, 2, 2, 1, { patch: 3, search: 1, h: 0 })).toThrow(/h must/);
    expect(() =>
      guidedNonLocalMeans(y, y, 2, 2, 1, { patch: 3, search: 1, h: 1, aggregation: 'block' as 'patch' }),
    ).toThrow(/aggregation/);
    expect(() => guidedNonLocalMeans(y, y, 2, 2, 1, { patch: 3, search: 1, h: 1, pilotWeight: 1.5 })).toThrow(
      /pilotWeight/,
    );
    expect(() =>
      guidedNonLocalMeans(y, y, 2, 2, 1, { patch: 3, search: 1, h: 1, pilotWeight: -0.1 }),
    ).toThrow(/pilotWeight/);
    expect(() =>
      guidedNonLocalMeans(y, new Float32Array(3), 2, 2, 1, { patch: 3, search: 1, h: 1 }),
    ).toThrow();
  });
});

describe('denoiseMid with the guided stage', () => {
  it('reads the stage from the manifest (h in 1/255 units); none without a complete section', () => {
    expect(midInferenceDefaults({ guided: { patch: 5, search: 7, h255: 4 } })).toEqual({
      guided: { patch: 5, search: 7, h: 4 / 255 },
    });
    expect(midInferenceDefaults({ guided: { patch: 5, search: 7 } })).toEqual({ guided: null });
    expect(midInferenceDefaults(undefined)).toEqual({ guided: null });
  });

  it('answers the guided average of the noisy image on the K-mask average, clipped', async () => {
    const { tf } = await initTfjs('wasm');
    const model = buildMidNetwork(tf, { kind: 'mid-unet', widths: [4, 8, 8] }, 2);
    const rng = new Rng(5);
    const [w, h] = [20, 12];
    const rgb = Float32Array.from(
      { length: w * h * 3 },
      (_, i) => 0.5 + 0.3 * Math.sin(i / 11) + 0.05 * rng.normal(),
    );
    const options = { masks: 2, dropRatio: 0.3, seed: 4 };
    const guided = { patch: 3, search: 2, h: 0.05 };
    const out = await denoiseMid(
      tf,
      model,
      { data: rgb, width: w, height: h, channels: 3 },
      { ...options, guided },
    );
    const pilot = (await midRgb(tf, model, rgb, w, h, options)).data;
    const expected = guidedNonLocalMeans(rgb, pilot, w, h, 3, guided);
    for (let i = 0; i < rgb.length; i++)
      expect(out.data[i]).toBeCloseTo(Math.min(1, Math.max(0, expected[i])), 5);
    expect(out.timings.guidedMs).toBeGreaterThan(0);
    const plain = await denoiseMid(tf, model, { data: rgb, width: w, height: h, channels: 3 }, options);
    expect(Array.from(plain.data)).not.toEqual(Array.from(out.data));
    model.dispose();
  });
});
