/**
 * The safeguard on MID's guided stage (src/mid/guided.ts guidedSafeguard): the Wiener-style blend against the
 * formula written out directly, the bounds around the pilot and around the noisy input, that it keeps the pilot's fine texture where the stage blurs
 * it while keeping the stage's averaging on flat areas, the manifest section, and that the service path runs it.
 */
import { describe, expect, it } from 'vitest';
import { reflectIndex } from '../../src/diffusion/padding.js';
import { denoiseMid, midInferenceDefaults, midRgb } from '../../src/mid/denoise.js';
import { channelSigmas, guidedNonLocalMeans, guidedSafeguard, guidedStage } from '../../src/mid/guided.js';
import { buildMidNetwork } from '../../src/mid/network.js';
import { initTfjs } from '../../src/nn/backend.js';
import { Rng } from '../../src/util/random.js';

const mse = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0) / a.length;

describe('guidedSafeguard', () => {
  it('blends towards the pilot by its local variance, as written out directly', () => {
    const rng = new Rng(1);
    const [w, h, ch] = [9, 7, 3];
    const pilot = Float32Array.from({ length: w * h * ch }, () => rng.uniform());
    const stage = Float32Array.from({ length: w * h * ch }, () => rng.uniform());
    const sigmas = [0.1, 0.2, 0.05];
    const out = guidedSafeguard(pilot, pilot, stage, w, h, ch, sigmas, { blend: 2, patch: 3 });
    for (let r = 0; r < h; r++)
      for (let c = 0; c < w; c++)
        for (let k = 0; k < ch; k++) {
          const vals: number[] = [];
          for (let i = -1; i <= 1; i++)
            for (let j = -1; j <= 1; j++)
              vals.push(
                pilot[(reflectIndex(Math.abs(r + i), h) * w + reflectIndex(Math.abs(c + j), w)) * ch + k],
              );
          const m = vals.reduce((a, v) => a + v, 0) / 9;
          const v = vals.reduce((a, x) => a + (x - m) ** 2, 0) / 9;
          const alpha = v / (v + 2 * sigmas[k] ** 2);
          const p = (r * w + c) * ch + k;
          expect(out[p]).toBeCloseTo(stage[p] + alpha * (pilot[p] - stage[p]), 5);
        }
  });

  it('keeps every value within bound * sigma of the pilot and leaves the others alone', () => {
    const rng = new Rng(2);
    const [w, h] = [16, 16];
    const pilot = Float32Array.from({ length: w * h * 3 }, () => rng.uniform());
    const stage = Float32Array.from(pilot, (v) => v + 0.1 * rng.normal());
    const sigmas = [0.05, 0.1, 0.02];
    const out = guidedSafeguard(pilot, pilot, stage, w, h, 3, sigmas, { bound: 1 });
    let clamped = 0;
    for (let i = 0; i < out.length; i++) {
      const limit = sigmas[i % 3];
      expect(Math.abs(out[i] - pilot[i])).toBeLessThanOrEqual(limit + 1e-6);
      if (Math.abs(stage[i] - pilot[i]) <= limit) expect(out[i]).toBe(stage[i]);
      else clamped++;
    }
    expect(clamped).toBeGreaterThan(0);
    // bound 0 is the pilot; no option is the stage.
    expect(guidedSafeguard(pilot, pilot, stage, w, h, 3, sigmas, { bound: 0 })).toEqual(pilot);
    expect(guidedSafeguard(pilot, pilot, stage, w, h, 3, sigmas, {})).toEqual(stage);
  });

  it('keeps every value within noisyBound * sigma of the noisy input, after the pilot bound', () => {
    const rng = new Rng(6);
    const [w, h] = [16, 16];
    const noisy = Float32Array.from({ length: w * h * 3 }, () => rng.uniform());
    const pilot = Float32Array.from(noisy, (v) => v + 0.1 * rng.normal());
    const stage = Float32Array.from(pilot, (v) => v + 0.1 * rng.normal());
    const sigmas = [0.05, 0.1, 0.02];
    const out = guidedSafeguard(noisy, pilot, stage, w, h, 3, sigmas, { bound: 2, noisyBound: 1.5 });
    const pilotBound = guidedSafeguard(noisy, pilot, stage, w, h, 3, sigmas, { bound: 2 });
    let clamped = 0;
    for (let i = 0; i < out.length; i++) {
      const limit = 1.5 * sigmas[i % 3];
      expect(Math.abs(out[i] - noisy[i])).toBeLessThanOrEqual(limit + 1e-6);
      if (Math.abs(pilotBound[i] - noisy[i]) <= limit) expect(out[i]).toBe(pilotBound[i]);
      else clamped++;
    }
    expect(clamped).toBeGreaterThan(0);
    expect(guidedSafeguard(noisy, pilot, stage, w, h, 3, sigmas, { noisyBound: 0 })).toEqual(noisy);
  });

  it('keeps fine texture the stage blurred and the stage on flat areas (better than either alone)', () => {
    const rng = new Rng(3);
    const [w, h] = [48, 48];
    const sigma = 0.02;
    // Left half flat, right half a fine checkerboard of contrast 3 sigma.
    const clean = new Float32Array(w * h);
    for (let r = 0; r < h; r++)
      for (let c = 0; c < w; c++)
        clean[r * w + c] = c < w / 2 ? 0.5 : 0.5 + ((r + c) % 2 ? 1.5 : -1.5) * sigma;
    // A pilot that kept the texture and half of the noise; a stage that removed the noise and flattened the texture.
    const pilot = Float32Array.from(clean, (v) => v + 0.5 * sigma * rng.normal());
    const stage = Float32Array.from(clean, (v, i) => (i % w < w / 2 ? v : 0.5) + 0.1 * sigma * rng.normal());
    const out = guidedSafeguard(pilot, pilot, stage, w, h, 1, [sigma], { blend: 1, patch: 3 });
    const half = (img: Float32Array, right: boolean) =>
      img.filter((_, i) => i % w >= w / 2 === right && i % w > 1 && i % w < w - 2);
    expect(mse(out, clean)).toBeLessThan(0.5 * mse(stage, clean));
    expect(mse(out, clean)).toBeLessThan(0.8 * mse(pilot, clean));
    // Flat half: close to the stage's residual, far below the pilot's.
    expect(mse(half(out, false), half(clean, false))).toBeLessThan(
      0.3 * mse(half(pilot, false), half(clean, false)),
    );
  });

  it('estimates the noise level per channel', () => {
    const rng = new Rng(4);
    const [w, h] = [128, 128];
    const sig = [0.01, 0.03, 0.05];
    const img = Float32Array.from({ length: w * h * 3 }, (_, i) => 0.5 + sig[i % 3] * rng.normal());
    const est = channelSigmas(img, w, h, 3);
    for (let k = 0; k < 3; k++) expect(est[k] / sig[k]).toBeGreaterThan(0.8);
    for (let k = 0; k < 3; k++) expect(est[k] / sig[k]).toBeLessThan(1.2);
  });

  it('refuses bad settings', () => {
    const y = new Float32Array(4);
    expect(() => guidedSafeguard(y, y, y, 2, 2, 1, [0.1], { blend: 0 })).toThrow(/blend/);
    expect(() => guidedSafeguard(y, y, y, 2, 2, 1, [0.1], { bound: -1 })).toThrow(/bound/);
    expect(() => guidedSafeguard(y, y, y, 2, 2, 1, [0.1], { noisyBound: -1 })).toThrow(/noisyBound/);
    expect(() => guidedSafeguard(y, y, y, 2, 2, 1, [0.1], { blend: 1, patch: 2 })).toThrow(/patch/);
    expect(() => guidedSafeguard(y, y, y, 2, 2, 1, [0.1, 0.1], { bound: 1 })).toThrow(/sigmas/);
    expect(() => guidedSafeguard(y, y, new Float32Array(3), 2, 2, 1, [0.1], { bound: 1 })).toThrow();
  });
});

describe('the safeguard in the service path', () => {
  it('reads blend and bound from the manifest section', () => {
    expect(
      midInferenceDefaults({ guided: { patch: 5, search: 7, h255: 4, blend: 2, bound: 1.5, noisyBound: 2 } }),
    ).toEqual({ guided: { patch: 5, search: 7, h: 4 / 255, blend: 2, bound: 1.5, noisyBound: 2 } });
    expect(
      midInferenceDefaults({ guided: { patch: 5, search: 7, h255: 4, blend: 0, bound: -1, noisyBound: -2 } }),
    ).toEqual({
      guided: { patch: 5, search: 7, h: 4 / 255 },
    });
  });

  it('reads the aggregation from the manifest section; an unknown one is absent (pixel)', () => {
    expect(midInferenceDefaults({ guided: { patch: 5, search: 7, h255: 3, aggregation: 'patch' } })).toEqual({
      guided: { patch: 5, search: 7, h: 3 / 255, aggregation: 'patch' },
    });
    expect(midInferenceDefaults({ guided: { patch: 5, search: 7, h255: 3, aggregation: 'block' } })).toEqual({
      guided: { patch: 5, search: 7, h: 3 / 255 },
    });
  });

  it('reads pilotWeight from the manifest section; one outside [0, 1] is absent (0)', () => {
    expect(midInferenceDefaults({ guided: { patch: 5, search: 7, h255: 5, pilotWeight: 0.4 } })).toEqual({
      guided: { patch: 5, search: 7, h: 5 / 255, pilotWeight: 0.4 },
    });
    expect(midInferenceDefaults({ guided: { patch: 5, search: 7, h255: 5, pilotWeight: 1.5 } })).toEqual({
      guided: { patch: 5, search: 7, h: 5 / 255 },
    });
  });

  it('denoiseMid answers the safeguarded guided stage on the K-mask average', async () => {
    const { tf } = await initTfjs('wasm');
    const model = buildMidNetwork(tf, { kind: 'mid-unet', widths: [4, 8, 8] }, 2);
    const rng = new Rng(5);
    const [w, h] = [24, 16];
    const rgb = Float32Array.from(
      { length: w * h * 3 },
      (_, i) => 0.5 + 0.3 * Math.sin(i / 11) + 0.05 * rng.normal(),
    );
    const options = { masks: 2, dropRatio: 0.3, seed: 4 };
    const guided = { patch: 3, search: 2, h: 0.05, blend: 1, bound: 1, noisyBound: 2 };
    const out = await denoiseMid(
      tf,
      model,
      { data: rgb, width: w, height: h, channels: 3 },
      { ...options, guided },
    );
    const pilot = (await midRgb(tf, model, rgb, w, h, options)).data;
    const stage = guidedNonLocalMeans(rgb, pilot, w, h, 3, guided);
    const expected = guidedSafeguard(rgb, pilot, stage, w, h, 3, channelSigmas(rgb, w, h, 3), {
      blend: 1,
      bound: 1,
      noisyBound: 2,
      patch: 3,
    });
    expect(guidedStage(rgb, pilot, w, h, 3, guided)).toEqual(expected);
    for (let i = 0; i < rgb.length; i++)
      expect(out.data[i]).toBeCloseTo(Math.min(1, Math.max(0, expected[i])), 5);
    const unguarded = await denoiseMid(
      tf,
      model,
      { data: rgb, width: w, height: h, channels: 3 },
      { ...options, guided: { patch: 3, search: 2, h: 0.05 } },
    );
    expect(Array.from(unguarded.data)).not.toEqual(Array.from(out.data));
    model.dispose();
  });
});
