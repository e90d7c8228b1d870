/**
 * The MID noise samplers: fitted to residuals of a known signal-dependent, spatially and cross-channel correlated
 * noise, the residual bank must reproduce its per-intensity variance (within 10%) and its correlations; the
 * Gaussian sampler cannot.
 */
import { describe, expect, it } from 'vitest';
import {
  estimateSigmaCoarse,
  fitResidualBank,
  gaussianSampler,
  noiseStatistics,
  type ResidualImage,
} from '../../src/mid/sampler.js';
import { Rng } from '../../src/util/random.js';

/** Noise std at intensity x: heteroscedastic (shot + read noise), as a camera's. */
const trueStd = (x: number) => Math.sqrt(0.0004 * x + 0.00002);

/** A smooth colour "signal" with every intensity from 0 to 1. */
function signalImage(w: number, h: number, phase: number): Float32Array {
  const out = new Float32Array(w * h * 3);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const base = (c + r * 0.37 + phase) / w;
      for (let k = 0; k < 3; k++) out[(r * w + c) * 3 + k] = (base + 0.13 * k) % 1;
    }
  }
  return out;
}

/** Known noise: z correlated in space (a 2-tap horizontal blur) and across channels (a shared component). */
function knownNoise(signal: Float32Array, w: number, h: number, rng: Rng): Float32Array {
  const white = new Float32Array(w * h * 3).map(() => rng.normal());
  const shared = new Float32Array(w * h).map(() => rng.normal());
  const out = new Float32Array(w * h * 3);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const p = r * w + c;
      const q = r * w + Math.max(0, c - 1);
      for (let k = 0; k < 3; k++) {
        // Unit variance: (a^2 + b^2) * 0.5 + s^2 * 0.5 with a = b = 1/sqrt(2), s = 1/sqrt(2).
        const spatial = (white[p * 3 + k] + white[q * 3 + k]) / Math.sqrt(2);
        const z = Math.SQRT1_2 * spatial + Math.SQRT1_2 * shared[p];
        out[p * 3 + k] = trueStd(signal[p * 3 + k]) * z;
      }
    }
  }
  return out;
}

describe('MID noise samplers', () => {
  it('the residual bank reproduces the per-intensity variance of signal-dependent noise within 10%', () => {
    const w = 128;
    const h = 96;
    const rng = new Rng(3);
    const residuals: ResidualImage[] = [0, 17, 41].map((phase) => {
      const signal = signalImage(w, h, phase);
      return { noise: knownNoise(signal, w, h, rng), signal, width: w, height: h };
    });
    const sampler = fitResidualBank(residuals, 3, { bins: 16 });
    for (const v of [0.1, 0.3, 0.5, 0.7, 0.9]) {
      for (let c = 0; c < 3; c++) expect(Math.abs(sampler.stdAt(c, v) / trueStd(v) - 1)).toBeLessThan(0.1);
    }
    // Sample on other clean images; bin the sampled noise by the clean intensity.
    const bins = 8;
    const sums = new Float64Array(bins);
    const truth = new Float64Array(bins);
    const counts = new Float64Array(bins);
    const sampled: ResidualImage[] = [];
    for (let i = 0; i < 60; i++) {
      const clean = signalImage(48, 48, 5 + 3 * i).map((v) => 0.05 + 0.9 * v);
      const noise = sampler.sample(clean, 48, 48, rng);
      sampled.push({ noise, signal: clean, width: 48, height: 48 });
      for (let j = 0; j < noise.length; j++) {
        const b = Math.min(bins - 1, Math.floor(clean[j] * bins));
        sums[b] += noise[j] ** 2;
        truth[b] += trueStd(clean[j]) ** 2;
        counts[b]++;
      }
    }
    for (let b = 0; b < bins; b++) {
      if (counts[b] < 2000) continue;
      expect(Math.abs(sums[b] / truth[b] - 1), `bin ${b}`).toBeLessThan(0.1);
    }
    // Correlations survive (2-tap blur: horizontal lag-1 ~ 0.25 of the total; shared component: 0.5 across channels).
    const real = noiseStatistics(residuals, 3);
    const stats = noiseStatistics(sampled, 3);
    expect(real.neighbourCorrelation.horizontal).toBeGreaterThan(0.15);
    expect(
      Math.abs(stats.neighbourCorrelation.horizontal - real.neighbourCorrelation.horizontal),
    ).toBeLessThan(0.05);
    expect(Math.abs(stats.neighbourCorrelation.vertical)).toBeLessThan(0.05);
    for (let i = 0; i < 3; i++) {
      expect(real.crossChannelCorrelation[i]).toBeGreaterThan(0.4);
      expect(Math.abs(stats.crossChannelCorrelation[i] - real.crossChannelCorrelation[i])).toBeLessThan(0.06);
    }
    // A Gaussian sampler of the right overall level has neither.
    const gaussian = gaussianSampler([0.015, 0.015, 0.015]);
    const g = noiseStatistics(
      [0, 1].map(() => {
        const clean = signalImage(64, 64, 1);
        return { noise: gaussian.sample(clean, 64, 64, rng), signal: clean, width: 64, height: 64 };
      }),
      3,
    );
    expect(Math.abs(g.neighbourCorrelation.horizontal)).toBeLessThan(0.05);
    expect(Math.abs(g.crossChannelCorrelation[0])).toBeLessThan(0.05);
  });

  it('the coarse sigma estimate reads i.i.d. Gaussian noise on a smooth image', () => {
    const w = 256;
    const rng = new Rng(9);
    const plane = new Float32Array(w * w);
    for (let i = 0; i < plane.length; i++) plane[i] = 0.3 + 0.2 * Math.sin(i / 900) + 0.02 * rng.normal();
    expect(estimateSigmaCoarse(plane, w, w)).toBeGreaterThan(0.018);
    expect(estimateSigmaCoarse(plane, w, w)).toBeLessThan(0.022);
  });
});
