/**
 * The pilot-guided Wiener stage (src/denoise/wiener.ts) on small synthetic images: with no noise and the input as
 * its own pilot it returns the input (orthonormal transforms, exact aggregation, every pixel covered, any size and
 * stride); with the clean image as the pilot it is the oracle Wiener filter and lands close to it; it is
 * deterministic; and a plane smaller than a block is left to the pilot.
 */
import { describe, expect, it } from 'vitest';
import { wienerRefine } from '../../src/denoise/wiener.js';
import { psnr } from '../../src/imaging/metrics.js';
import { Rng } from '../../src/util/random.js';

/** A smooth ramp with an edge and a fine texture, on [0.1, 0.9]. */
function scene(width: number, height: number): Float32Array {
  const x = new Float32Array(width * height);
  for (let r = 0; r < height; r++) {
    for (let c = 0; c < width; c++) {
      const ramp = 0.2 + (0.4 * c) / width;
      const edge = r > height / 2 ? 0.25 : 0;
      const texture = 0.05 * Math.sin(0.9 * c) * Math.cos(0.6 * r);
      x[r * width + c] = ramp + edge + texture;
    }
  }
  return x;
}

function noisy(x: Float32Array, sigma: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from(x, (v) => v + sigma * rng.normal());
}

describe('wienerRefine', () => {
  it('returns the input when sigma is 0 and the pilot is the input itself (any size, any stride, many strips)', () => {
    for (const [width, height] of [
      [37, 23],
      [8, 8],
      [64, 40],
      [24, 181], // taller than one strip of row transforms
    ]) {
      const y = noisy(scene(width, height), 0.05, width);
      for (let i = 0; i < y.length; i++) y[i] = Math.min(1, Math.max(0, y[i]));
      for (const stride of [1, 2, 3, 4, 7]) {
        const out = wienerRefine(y, y, width, height, 0, { stride });
        let worst = 0;
        for (let i = 0; i < y.length; i++) worst = Math.max(worst, Math.abs(out[i] - y[i]));
        expect(worst, `${width}x${height} stride ${stride}`).toBeLessThan(1e-6);
      }
    }
  });

  it('with the clean image as the pilot (the oracle Wiener filter) comes close to it', () => {
    const width = 64;
    const height = 48;
    const x = scene(width, height);
    const sigma = 25 / 255;
    const y = noisy(x, sigma, 7);
    const out = wienerRefine(y, x, width, height, sigma);
    const noisyPsnr = psnr(x, y);
    // Noisy about 20 dB; the oracle keeps only the coefficients the clean image has.
    expect(psnr(x, out)).toBeGreaterThan(noisyPsnr + 12);
    // And without the mix with the (here exact) pilot, the Wiener estimate alone still gains most of it.
    expect(psnr(x, wienerRefine(y, x, width, height, sigma, { mix: 1 }))).toBeGreaterThan(noisyPsnr + 9);
  });

  it('shrinks the noise even with its noisy input as the pilot', () => {
    const width = 64;
    const height = 64;
    const x = scene(width, height);
    const sigma = 25 / 255;
    const y = noisy(x, sigma, 3);
    const out = wienerRefine(y, y, width, height, sigma, { mix: 1 });
    // Even its own noisy input as the pilot: coefficients below the noise are shrunk, so it beats the input.
    expect(psnr(x, out)).toBeGreaterThan(psnr(x, y) + 2);
  });

  it('is deterministic', () => {
    const width = 40;
    const height = 33;
    const x = scene(width, height);
    const y = noisy(x, 0.1, 1);
    const pilot = noisy(x, 0.02, 2);
    const a = wienerRefine(y, pilot, width, height, 0.1);
    const b = wienerRefine(y, pilot, width, height, 0.1);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    for (const v of a) expect(v >= 0 && v <= 1).toBe(true);
  });

  it('leaves a plane smaller than a block to the pilot, and refuses planes of the wrong size', () => {
    const pilot = Float32Array.from({ length: 7 * 20 }, (_, i) => (i % 13) / 13);
    const y = noisy(pilot, 0.1, 4);
    expect(Array.from(wienerRefine(y, pilot, 7, 20, 0.1))).toEqual(Array.from(pilot));
    expect(() => wienerRefine(y, pilot.subarray(1), 7, 20, 0.1)).toThrow(RangeError);
  });
});
