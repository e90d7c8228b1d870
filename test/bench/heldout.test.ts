/**
 * The held-out set of bench:denoise-heldout: a fixed, disjoint split of scikit-image's photographs, and noisy
 * inputs that are what an 8-bit upload is (clipped, rounded) and the same at every run.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  eightBitClipped,
  HELDOUT_PHOTOS,
  heldoutNoisy,
  heldoutSplit,
  loadHeldoutImage,
  SKIMAGE_DATA_DIR,
} from '../../bench/denoise/heldout.js';

describe('held-out photographs', () => {
  it('splits the photographs into disjoint selection and report sets by the documented rule', () => {
    const { selection, report } = heldoutSplit();
    expect([...selection, ...report].sort()).toEqual([...HELDOUT_PHOTOS].sort());
    expect(selection.filter((f) => report.includes(f))).toEqual([]);
    expect(selection).toEqual(['brick.png', 'chelsea.png', 'coins.png', 'gravel.png', 'motorcycle_left.png']);
  });

  it('clips and rounds noisy inputs to 8 bits, with the same noise at every call', () => {
    expect(Array.from(eightBitClipped(Float32Array.of(-0.2, 0.5012, 1.3)))).toEqual(
      [0, 128 / 255, 1].map(Math.fround),
    );
    const image = {
      name: 'flat',
      width: 16,
      height: 16,
      u8: new Uint8Array(256).fill(128),
      x: new Float64Array(256).fill(128 / 255),
    };
    const a = heldoutNoisy(image, 'gaussian', 25 / 255);
    expect(heldoutNoisy(image, 'gaussian', 25 / 255)).toEqual(a);
    expect(heldoutNoisy(image, 'gaussian', 15 / 255)).not.toEqual(a);
    for (const v of a) expect(Math.abs(v * 255 - Math.round(v * 255))).toBeLessThan(1e-3);
  });

  it.skipIf(!existsSync(join(SKIMAGE_DATA_DIR, 'camera.png')))('loads a grey centre crop', async () => {
    const image = await loadHeldoutImage('camera.png');
    expect([image.width, image.height, image.u8.length]).toEqual([256, 256, 256 * 256]);
    expect(image.x[1000]).toBeCloseTo(image.u8[1000] / 255, 12);
  });
});
