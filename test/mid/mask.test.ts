import { describe, expect, it } from 'vitest';
import { fillMasked, maskToFloat, randomPixelMask } from '../../src/mid/mask.js';
import { Rng } from '../../src/util/random.js';

describe('MID masking', () => {
  it('drops each pixel with the given probability, independently, seeded', () => {
    const w = 200;
    const h = 150;
    for (const ratio of [0, 0.1, 0.3, 0.7]) {
      const mask = randomPixelMask(w, h, ratio, new Rng(11));
      expect(mask.length).toBe(w * h);
      const dropped = mask.reduce((s, v) => s + (v === 0 ? 1 : 0), 0) / mask.length;
      // Binomial std at n = 30000 is <= 0.003: 4 sigma.
      expect(Math.abs(dropped - ratio)).toBeLessThan(0.012);
      // Neighbours are uncorrelated (a row-striped or blocky mask would fail).
      let both = 0;
      for (let i = 0; i + 1 < mask.length; i++) if (!mask[i] && !mask[i + 1]) both++;
      expect(Math.abs(both / (mask.length - 1) - ratio * ratio)).toBeLessThan(0.012);
    }
    expect(randomPixelMask(20, 20, 0.3, new Rng(5))).toEqual(randomPixelMask(20, 20, 0.3, new Rng(5)));
    expect(randomPixelMask(20, 20, 0.3, new Rng(5))).not.toEqual(randomPixelMask(20, 20, 0.3, new Rng(6)));
    expect(() => randomPixelMask(4, 4, 1, new Rng(1))).toThrow(RangeError);
  });

  it('fills dropped pixels with the mean of kept neighbours and leaves kept pixels alone', () => {
    const w = 5;
    const h = 4;
    const channels = 3;
    const image = new Float32Array(w * h * channels).map((_, i) => (i * 7) % 13);
    const mask = new Uint8Array(w * h).fill(1);
    mask[2 * w + 2] = 0; // interior pixel
    mask[0] = 0; // corner
    mask[1] = 0;
    const filled = fillMasked(image, w, h, channels, mask);
    expect(filled.length).toBe(image.length);
    for (let p = 0; p < w * h; p++) {
      if (mask[p]) for (let c = 0; c < channels; c++) expect(filled[p * 3 + c]).toBe(image[p * 3 + c]);
    }
    const expectMean = (p: number, neighbours: number[]) => {
      for (let c = 0; c < channels; c++) {
        const m = neighbours.reduce((s, q) => s + image[q * 3 + c], 0) / neighbours.length;
        expect(filled[p * 3 + c]).toBeCloseTo(m, 5);
      }
    };
    const r = 2;
    const col = 2;
    const interior: number[] = [];
    for (let dr = -1; dr <= 1; dr++)
      for (let dc = -1; dc <= 1; dc++) if (dr || dc) interior.push((r + dr) * w + col + dc);
    expectMean(2 * w + 2, interior);
    expectMean(0, [w, w + 1]); // pixel 1 is dropped too, so only the row below counts
    // A pixel with no kept pixel within radius 1 borrows from radius 2.
    const lonely = new Uint8Array(w * h).fill(0);
    lonely[4] = 1;
    const far = fillMasked(image, w, h, channels, lonely);
    expect(far[(2 * w + 2) * 3]).toBeCloseTo(image[4 * 3], 5);
    expect(Array.from(maskToFloat(mask).slice(0, 3))).toEqual([0, 0, 1]);
  });
});
