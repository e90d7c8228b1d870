/**
 * The hole radius of an inpainting mask (src/diffusion/mask-structure.ts) and the RED-Diff settings it selects from
 * a prior's manifest (modelRedDiffDefaults in src/operations/restore/task.ts), on synthetic masks.
 */
import { describe, expect, it } from 'vitest';
import { holeRadius } from '../../src/diffusion/mask-structure.js';
import { boxMask, centredBoxMask, randomPixelMask } from '../../src/diffusion/operators.js';
import { modelRedDiffDefaults } from '../../src/operations/restore/task.js';

/** Brute force: the largest chessboard distance from a missing pixel to the nearest observed one. */
function bruteRadius(mask: Float32Array, h: number, w: number): number {
  let worst = 0;
  for (let i = 0; i < h * w; i++) {
    if (mask[i] > 0.5) continue;
    let best = Number.POSITIVE_INFINITY;
    for (let j = 0; j < h * w; j++)
      if (mask[j] > 0.5)
        best = Math.min(
          best,
          Math.max(Math.abs(Math.floor(i / w) - Math.floor(j / w)), Math.abs((i % w) - (j % w))),
        );
    worst = Math.max(worst, best);
  }
  return worst;
}

describe('holeRadius', () => {
  it('is half the side of a box, 0 without holes, Infinity with nothing observed', () => {
    expect(holeRadius(centredBoxMask(64, 64, 32), 64, 64)).toBe(16);
    expect(holeRadius(centredBoxMask(256, 256, 32), 256, 256)).toBe(16);
    expect(holeRadius(centredBoxMask(32, 32, 12), 32, 32)).toBe(6);
    expect(holeRadius(centredBoxMask(20, 20, 3), 20, 20)).toBe(2);
    // A box on the image border: the distance counts observed pixels only (nothing beyond the edge).
    expect(holeRadius(boxMask(20, 30, [{ top: 0, left: 0, height: 5, width: 9 }]), 20, 30)).toBe(5);
    expect(holeRadius(new Float32Array(100).fill(1), 10, 10)).toBe(0);
    expect(holeRadius(new Float32Array(100), 10, 10)).toBe(Number.POSITIVE_INFINITY);
  });

  it('matches a brute-force search on random masks and takes the largest over a batch', () => {
    const h = 17;
    const w = 23;
    const masks = [0.3, 0.6, 0.9].map((ratio, k) => randomPixelMask(h, w, ratio, 7 + k));
    for (const m of masks) expect(holeRadius(m, h, w)).toBe(bruteRadius(m, h, w));
    const batch = new Float32Array(3 * h * w);
    masks.forEach((m, k) => {
      batch.set(m, k * h * w);
    });
    expect(holeRadius(batch, h, w)).toBe(Math.max(...masks.map((m) => bruteRadius(m, h, w))));
    expect(() => holeRadius(new Float32Array(10), 3, 3)).toThrow(RangeError);
  });

  it('stays small on random-pixel masks, well apart from a 32x32 hole', () => {
    for (const seed of [1, 2, 3]) {
      expect(holeRadius(randomPixelMask(256, 256, 0.5, seed), 256, 256)).toBeLessThanOrEqual(3);
      expect(holeRadius(randomPixelMask(64, 64, 0.8, seed), 64, 64)).toBeLessThanOrEqual(4);
    }
  });
});

describe('modelRedDiffDefaults selects the settings from the mask', () => {
  const extra = {
    redDiff: {
      init: 'smooth',
      tMax: 30,
      lambda: 0.05,
      lr: 0.01,
      holes: {
        minRadius: 6,
        tMax: 200,
        lr: 0.05,
        windowMargin: 24,
        coarse: { steps: 40, tMax: 400, fineTMax: 100 },
      },
    },
  };

  it('general settings for scattered missing pixels and without a mask', () => {
    const mask = { mask: randomPixelMask(64, 64, 0.5, 4), height: 64, width: 64 };
    const scattered = modelRedDiffDefaults(extra, mask);
    expect(scattered).toMatchObject({
      init: 'smooth',
      tMax: 30,
      lambda: 0.05,
      lr: 0.01,
      settings: 'general',
    });
    expect(scattered.holeRadius).toBeLessThan(6);
    expect(modelRedDiffDefaults(extra)).toEqual({
      init: 'smooth',
      tMax: 30,
      lambda: 0.05,
      lr: 0.01,
      settings: 'general',
    });
  });

  it("the holes settings (absent fields: the general ones) from the manifest's minRadius on", () => {
    const hole = (side: number) => ({ mask: centredBoxMask(64, 64, side), height: 64, width: 64 });
    // A 12x12 box has radius 6 (the threshold), a 10x10 box 5.
    expect(modelRedDiffDefaults(extra, hole(32))).toEqual({
      init: 'smooth',
      tMax: 200,
      lambda: 0.05,
      lr: 0.05,
      windowMargin: 24,
      coarse: { steps: 40, tMax: 400, fineTMax: 100 },
      settings: 'holes',
      holeRadius: 16,
    });
    expect(modelRedDiffDefaults(extra, hole(12)).settings).toBe('holes');
    expect(modelRedDiffDefaults(extra, hole(10))).toMatchObject({
      settings: 'general',
      tMax: 30,
      holeRadius: 5,
    });
    // The window is the holes settings' (the general ones have none here).
    expect(modelRedDiffDefaults(extra, hole(10)).windowMargin).toBeUndefined();
    expect(modelRedDiffDefaults(extra, hole(10)).coarse).toBeUndefined();
    // The half-resolution run is a window's: without a margin it is dropped.
    const { windowMargin: __, ...noWindow } = extra.redDiff.holes;
    expect(
      modelRedDiffDefaults({ redDiff: { ...extra.redDiff, holes: noWindow } }, hole(32)).coarse,
    ).toBeUndefined();
    // A manifest without a holes section: the general settings for every mask.
    const { holes: _, ...plain } = extra.redDiff;
    expect(modelRedDiffDefaults({ redDiff: plain }, hole(32))).toMatchObject({
      settings: 'general',
      tMax: 30,
    });
    // A malformed holes section reads as absent.
    expect(
      modelRedDiffDefaults({ redDiff: { ...plain, holes: { minRadius: 'x', tMax: 200 } } }, hole(32)),
    ).toMatchObject({ settings: 'general', tMax: 30 });
  });
});
