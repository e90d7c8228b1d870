/**
 * MID's colour Wiener stage (src/mid/colour-wiener.ts) and the noise spectrum it can read from the residual
 * (src/denoise/wiener.ts noiseSpectrum), on small synthetic images: the opponent transform inverts exactly, the
 * stage in RGB is the grey Wiener stage run on each channel with that channel's own noise level, a white
 * spectrum changes nothing, and the spectrum of spatially correlated noise is read where the noise is.
 */
import { describe, expect, it } from 'vitest';
import { noiseSpectrum, wienerRefine } from '../../src/denoise/wiener.js';
import { fromPlanes, midWienerRefine, residualSigma, toPlanes } from '../../src/mid/colour-wiener.js';
import { Rng } from '../../src/util/random.js';

function scene(width: number, height: number): Float32Array {
  const x = new Float32Array(width * height * 3);
  for (let r = 0; r < height; r++) {
    for (let c = 0; c < width; c++) {
      for (let k = 0; k < 3; k++) {
        x[(r * width + c) * 3 + k] =
          0.2 + 0.15 * k + (0.3 * c) / width + 0.05 * Math.sin(0.7 * c + k) * Math.cos(0.5 * r);
      }
    }
  }
  return x;
}

describe('midWienerRefine', () => {
  it('opponent planes map back to the same RGB values', () => {
    const x = scene(13, 7);
    const n = 13 * 7;
    const back = fromPlanes(toPlanes(x, n, 'opponent'), n, 'opponent');
    for (let i = 0; i < x.length; i++) expect(back[i]).toBeCloseTo(x[i], 6);
  });

  it('in RGB is the grey Wiener stage on each channel, each with its own noise level', () => {
    const width = 40;
    const height = 32;
    const n = width * height;
    const x = scene(width, height);
    const rng = new Rng(3);
    // Channel k has noise 0.01 (k + 1): the levels must stay per channel.
    const y = Float32Array.from(x, (v, i) => v + 0.01 * ((i % 3) + 1) * rng.normal());
    const { data, sigmas } = midWienerRefine(y, x, width, height, { space: 'rgb', sigma: 'residual' });
    expect(sigmas[0]).toBeLessThan(sigmas[1]);
    expect(sigmas[1]).toBeLessThan(sigmas[2]);
    expect(sigmas[2] / sigmas[0]).toBeGreaterThan(2);
    const yPlanes = toPlanes(y, n, 'rgb');
    const xPlanes = toPlanes(x, n, 'rgb');
    for (let k = 0; k < 3; k++) {
      expect(sigmas[k]).toBeCloseTo(residualSigma(yPlanes[k], xPlanes[k]), 9);
      const grey = wienerRefine(yPlanes[k], xPlanes[k], width, height, sigmas[k]);
      for (let i = 0; i < n; i++) expect(data[i * 3 + k]).toBeCloseTo(grey[i], 6);
    }
  });

  it('returns the input when it is its own pilot and the level is read from the residual (then 0)', () => {
    const width = 24;
    const height = 16;
    const x = scene(width, height);
    for (const space of ['rgb', 'opponent'] as const) {
      for (const sigma of ['spectrum', 'residual'] as const) {
        const { data } = midWienerRefine(x, x, width, height, { space, sigma, mix: 1 });
        for (let i = 0; i < x.length; i++) expect(data[i], `${space} ${sigma}`).toBeCloseTo(x[i], 5);
      }
    }
  });
});

describe('noiseSpectrum', () => {
  const width = 192;
  const height = 192;

  it('reads white noise as flat, at its level', () => {
    const rng = new Rng(11);
    const pilot = new Float32Array(width * height).fill(0.5);
    const y = Float32Array.from(pilot, (v) => v + 0.02 * rng.normal());
    const { sigma, spectrum } = noiseSpectrum(y, pilot, width, height);
    expect(sigma).toBeGreaterThan(0.017);
    expect(sigma).toBeLessThan(0.023);
    expect(spectrum.reduce((a, v) => a + v, 0) / 64).toBeCloseTo(1, 9);
    for (const v of spectrum) {
      expect(v).toBeGreaterThan(0.6);
      expect(v).toBeLessThan(1.4);
    }
    // A white spectrum is the default: the same answer as none.
    const a = wienerRefine(y, pilot, width, height, sigma);
    const b = wienerRefine(y, pilot, width, height, sigma, { spectrum: new Float64Array(64).fill(1) });
    expect(Array.from(b)).toEqual(Array.from(a));
  });

  it('puts horizontally smoothed noise at low horizontal frequencies (index u * 8 + v)', () => {
    const rng = new Rng(12);
    const white = Float32Array.from({ length: width * height }, () => rng.normal());
    const pilot = new Float32Array(width * height).fill(0.5);
    const y = new Float32Array(width * height);
    for (let r = 0; r < height; r++)
      for (let c = 0; c < width; c++) {
        const left = white[r * width + Math.max(0, c - 1)];
        const right = white[r * width + Math.min(width - 1, c + 1)];
        y[r * width + c] = 0.5 + 0.01 * (left + 2 * white[r * width + c] + right);
      }
    const { spectrum } = noiseSpectrum(y, pilot, width, height);
    // Low horizontal frequency (v = 1) against the highest (v = 7), any vertical one.
    for (let u = 0; u < 8; u++) expect(spectrum[u * 8 + 1]).toBeGreaterThan(5 * spectrum[u * 8 + 7]);
    // Vertically it stays white.
    expect(spectrum[1 * 8 + 1] / spectrum[7 * 8 + 1]).toBeGreaterThan(0.6);
    expect(spectrum[1 * 8 + 1] / spectrum[7 * 8 + 1]).toBeLessThan(1.6);
  });

  it('refuses a spectrum of the wrong size', () => {
    const y = new Float32Array(16 * 16).fill(0.5);
    expect(() => wienerRefine(y, y, 16, 16, 0.01, { spectrum: new Float64Array(10) })).toThrow(RangeError);
  });
});
