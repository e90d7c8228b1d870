/**
 * The safeguard on MID's guided stage (src/mid/guided.ts guidedSafeguard): the Wiener-style blend against the
 * formula written out directly, the bounds around the pilot and around the noisy input, that it keeps the pilot's fine texture where the stage blurs
 * it while keeping the stage's averaging on flat areas, the energy caps (and the residual cap's anchor moving towards
 * the input where the pilot lost the texture too), the manifest section, and that the service path runs it.
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

  it('caps the local energy of the move from the pilot and of the residual, as written out directly', () => {
    const rng = new Rng(7);
    const [w, h, ch] = [11, 9, 3];
    const noisy = Float32Array.from({ length: w * h * ch }, () => rng.uniform());
    const pilot = Float32Array.from(noisy, (v) => v + 0.05 * rng.normal());
    const stage = Float32Array.from(pilot, (v) => v + 0.1 * rng.normal());
    const sigmas = [0.05, 0.1, 0.02];
    // Mean over the window inside the image and over the channels of ((z - ref) / sigma_c)^2, then the shrink
    // towards the pilot.
    const capped = (
      z: Float32Array,
      ref: Float32Array,
      window: number,
      kappa: number,
      median = false,
      to: Float32Array = pilot,
    ) => {
      const out = Float32Array.from(z);
      const radius = window >> 1;
      const energies: number[] = [];
      for (let r = 0; r < h; r++)
        for (let c = 0; c < w; c++) {
          let e = 0;
          let n = 0;
          for (let i = Math.max(0, r - radius); i <= Math.min(h - 1, r + radius); i++)
            for (let j = Math.max(0, c - radius); j <= Math.min(w - 1, c + radius); j++) {
              for (let k = 0; k < ch; k++)
                e += ((z[(i * w + j) * ch + k] - ref[(i * w + j) * ch + k]) / sigmas[k]) ** 2;
              n += ch;
            }
          energies.push(e / n);
        }
      const sorted = [...energies].sort((a, b) => a - b);
      const limit = median ? kappa * sorted[(sorted.length - 1) / 2] : kappa; // 99 pixels: the middle one
      for (let p = 0; p < w * h; p++) {
        const t = Math.min(1, Math.sqrt(limit / energies[p]));
        for (let k = 0; k < ch; k++) out[p * ch + k] = to[p * ch + k] + t * (z[p * ch + k] - to[p * ch + k]);
      }
      return out;
    };
    const pilotCap = { window: 3, kappa: 0.8 };
    const residualCap = { window: 5, kappa: 1.2 };
    const out = guidedSafeguard(noisy, pilot, stage, w, h, ch, sigmas, { pilotCap, residualCap });
    const expected = capped(capped(stage, pilot, 3, 0.8), noisy, 5, 1.2);
    for (let i = 0; i < out.length; i++) expect(out[i]).toBeCloseTo(expected[i], 5);
    const relative = guidedSafeguard(noisy, pilot, stage, w, h, ch, sigmas, {
      residualCap: { window: 5, kappa: 1.2, relativeTo: 'median' },
    });
    const expectedRelative = capped(stage, noisy, 5, 1.2, true);
    for (let i = 0; i < out.length; i++) expect(relative[i]).toBeCloseTo(expectedRelative[i], 5);
    expect(Array.from(relative)).not.toEqual(Array.from(stage));
    // Some values moved, and a kappa above every neighbourhood's energy leaves the stage alone.
    expect(Array.from(out)).not.toEqual(Array.from(stage));
    expect(
      guidedSafeguard(noisy, pilot, stage, w, h, ch, sigmas, { pilotCap: { window: 3, kappa: 1e9 } }),
    ).toEqual(stage);
    // pilotResidualCap: the same cap on the pilot's residual y - pilot moves the pilot towards y (the anchor),
    // then the residual cap pulls towards that anchor instead of the pilot.
    const pilotResidualCap = { window: 3, kappa: 1.1, relativeTo: 'median' as const };
    const anchored = guidedSafeguard(noisy, pilot, stage, w, h, ch, sigmas, {
      residualCap: { window: 5, kappa: 1.2, relativeTo: 'median' },
      pilotResidualCap,
    });
    const anchor = capped(pilot, noisy, 3, 1.1, true, noisy);
    expect(Array.from(anchor)).not.toEqual(Array.from(pilot));
    const expectedAnchored = capped(stage, noisy, 5, 1.2, true, anchor);
    for (let i = 0; i < out.length; i++) expect(anchored[i]).toBeCloseTo(expectedAnchored[i], 5);
    expect(Array.from(anchored)).not.toEqual(Array.from(relative));
    // Without the residual cap it does nothing.
    expect(guidedSafeguard(noisy, pilot, stage, w, h, ch, sigmas, { pilotResidualCap })).toEqual(stage);
  });

  // A quarter of the image (the left columns) is a fine texture of contrast about the noise level, the rest is flat;
  // the pilot kept the texture and half of the noise. The guided stage's h (8/255) mixes the texture's phases in its
  // patch matches and flattens it: worse than the noisy input there.
  const texturedScene = (sigma: number, seed: number) => {
    const rng = new Rng(seed);
    const [w, h] = [48, 48];
    const clean = new Float32Array(w * h * 3);
    for (let r = 0; r < h; r++)
      for (let c = 0; c < w; c++)
        for (let k = 0; k < 3; k++)
          clean[(r * w + c) * 3 + k] =
            0.5 + (c < w / 4 ? 3 * (3 / 255) * Math.sin(2.1 * c + 1.3 * r) * Math.cos(1.7 * r - 0.9 * c) : 0);
    const noisy = Float32Array.from(clean, (v) => v + sigma * rng.normal());
    const pilot = Float32Array.from(clean, (v, i) => v + 0.5 * (noisy[i] - v));
    const textured = (img: Float32Array) => img.filter((_, i) => Math.floor(i / 3) % w < w / 4);
    const flat = (img: Float32Array) => img.filter((_, i) => Math.floor(i / 3) % w >= w / 4);
    return { w, h, clean, noisy, pilot, textured, flat };
  };
  const stageOptions = { patch: 5, search: 5, h: 8 / 255, bound: 3, noisyBound: 4 };
  const residualCap = { window: 5, kappa: 1.5, relativeTo: 'median' as const };

  it('the residual cap gives back the texture the stage averaged away and leaves the flat area alone', () => {
    const { w, h, clean, noisy, pilot, textured, flat } = texturedScene(3 / 255, 8);
    const sigmas = channelSigmas(noisy, w, h, 3);
    const stage = guidedStage(noisy, pilot, w, h, 3, stageOptions, sigmas);
    const out = guidedStage(noisy, pilot, w, h, 3, { ...stageOptions, residualCap }, sigmas);
    const err = (f: (img: Float32Array) => Float32Array, img: Float32Array) => mse(f(img), f(clean));
    expect(err(textured, stage)).toBeGreaterThan(1.5 * err(textured, noisy));
    expect(err(textured, out)).toBeLessThan(0.75 * err(textured, stage));
    // The flat area keeps the stage's averaging (far below the noisy input's error).
    expect(err(flat, out)).toBeLessThan(1.01 * err(flat, stage));
    expect(err(flat, out)).toBeLessThan(0.05 * err(flat, noisy));
    expect(mse(out, clean)).toBeLessThan(mse(stage, clean));
  });

  it('a residual cap relative to a zero median (most of the image untouched) changes nothing', () => {
    const [w, h] = [8, 8];
    const noisy = Float32Array.from({ length: w * h }, (_, i) => 0.3 + 0.01 * (i % 5));
    const pilot = Float32Array.from(noisy, (v) => v + 0.02);
    const stage = Float32Array.from(noisy);
    stage[27] += 0.05; // the only value the stage changed
    const out = guidedSafeguard(noisy, pilot, stage, w, h, 1, [0.01], {
      residualCap: { window: 3, kappa: 1.5, relativeTo: 'median' },
    });
    expect(out).toEqual(stage);
  });

  it('with pilotResidualCap, the residual cap pulls towards the input where the pilot lost the texture too', () => {
    const scene = texturedScene(3 / 255, 9);
    const { w, h, clean, noisy, textured, flat } = scene;
    // This pilot flattened the texture as well (it kept half of the noise everywhere).
    const pilot = Float32Array.from(scene.pilot, (v, i) =>
      Math.floor(i / 3) % w < w / 4 ? 0.5 + 0.5 * (noisy[i] - clean[i]) : v,
    );
    const sigmas = channelSigmas(noisy, w, h, 3);
    const towardsPilot = guidedStage(noisy, pilot, w, h, 3, { ...stageOptions, residualCap }, sigmas);
    const pilotResidualCap = { window: 5, kappa: 1.5, relativeTo: 'median' as const };
    const out = guidedStage(
      noisy,
      pilot,
      w,
      h,
      3,
      { ...stageOptions, residualCap, pilotResidualCap },
      sigmas,
    );
    const err = (f: (img: Float32Array) => Float32Array, img: Float32Array) => mse(f(img), f(clean));
    // Pulled towards a pilot that lost the texture, the residual cap stays worse than the input there.
    expect(err(textured, towardsPilot)).toBeGreaterThan(err(textured, noisy));
    expect(err(textured, out)).toBeLessThan(0.75 * err(textured, towardsPilot));
    // The flat area keeps the stage's averaging (the columns next to the texture move a little).
    expect(err(flat, out)).toBeLessThan(1.05 * err(flat, towardsPilot));
    expect(err(flat, out)).toBeLessThan(0.05 * err(flat, noisy));
    expect(mse(out, clean)).toBeLessThan(mse(towardsPilot, clean));
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
    expect(() => guidedSafeguard(y, y, y, 2, 2, 1, [0.1], { pilotCap: { window: 2, kappa: 1 } })).toThrow(
      /pilotCap.window/,
    );
    expect(() => guidedSafeguard(y, y, y, 2, 2, 1, [0.1], { residualCap: { window: 3, kappa: 0 } })).toThrow(
      /residualCap.kappa/,
    );
    expect(() =>
      guidedSafeguard(y, y, y, 2, 2, 1, [0.1], { pilotResidualCap: { window: 3, kappa: -1 } }),
    ).toThrow(/pilotResidualCap.kappa/);
    const mode = 'mean' as 'median';
    expect(() =>
      guidedSafeguard(y, y, y, 2, 2, 1, [0.1], { residualCap: { window: 3, kappa: 1, relativeTo: mode } }),
    ).toThrow(/relativeTo/);
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

  it('reads the energy caps from the manifest section; a malformed one is absent', () => {
    expect(
      midInferenceDefaults({
        guided: {
          patch: 5,
          search: 7,
          h255: 5,
          pilotCap: { window: 17, kappa: 0.5 },
          residualCap: { window: 9, kappa: 1 },
          pilotResidualCap: { window: 9, kappa: 2, relativeTo: 'median' },
        },
      }),
    ).toEqual({
      guided: {
        patch: 5,
        search: 7,
        h: 5 / 255,
        pilotCap: { window: 17, kappa: 0.5 },
        residualCap: { window: 9, kappa: 1 },
        pilotResidualCap: { window: 9, kappa: 2, relativeTo: 'median' },
      },
    });
    expect(
      midInferenceDefaults({
        guided: {
          patch: 5,
          search: 7,
          h255: 5,
          pilotCap: { window: 4, kappa: 1 },
          residualCap: { window: 9 },
          pilotResidualCap: { window: 9, kappa: 0 },
        },
      }),
    ).toEqual({ guided: { patch: 5, search: 7, h: 5 / 255 } });
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
