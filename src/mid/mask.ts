/**
 * Input sparsification for MID: drop a random subset of pixels (all channels of a pixel together), and fill the
 * dropped pixels with the mean of the kept pixels around them so the network input stays image-like.
 */
import type { Rng } from '../util/random.js';

/** A Bernoulli mask: 1 = kept, 0 = dropped; each pixel is dropped independently with probability `dropRatio`. */
export function randomPixelMask(width: number, height: number, dropRatio: number, rng: Rng): Uint8Array {
  if (!(dropRatio >= 0 && dropRatio < 1))
    throw new RangeError(`dropRatio must be in [0, 1), got ${dropRatio}`);
  const mask = new Uint8Array(width * height);
  for (let i = 0; i < mask.length; i++) mask[i] = rng.uniform() < dropRatio ? 0 : 1;
  return mask;
}

/**
 * Interleaved image (channels per pixel) with its dropped pixels replaced by the mean of the kept pixels in the
 * 3x3 neighbourhood, widening to 5x5, then 9x9 when none is kept there (rare at the drop ratios used); kept pixels
 * are copied unchanged. Normalised convolution with box windows: cheap and without any learned part.
 */
export function fillMasked(
  image: Float32Array,
  width: number,
  height: number,
  channels: number,
  mask: Uint8Array,
): Float32Array {
  const out = image.slice();
  const sums = new Float64Array(channels);
  for (let r = 0; r < height; r++) {
    for (let c = 0; c < width; c++) {
      const p = r * width + c;
      if (mask[p]) continue;
      let filled = false;
      for (const radius of [1, 2, 4]) {
        sums.fill(0);
        let count = 0;
        const r0 = Math.max(0, r - radius);
        const r1 = Math.min(height - 1, r + radius);
        const c0 = Math.max(0, c - radius);
        const c1 = Math.min(width - 1, c + radius);
        for (let rr = r0; rr <= r1; rr++) {
          for (let cc = c0; cc <= c1; cc++) {
            const q = rr * width + cc;
            if (!mask[q]) continue;
            count++;
            for (let k = 0; k < channels; k++) sums[k] += image[q * channels + k];
          }
        }
        if (count > 0) {
          for (let k = 0; k < channels; k++) out[p * channels + k] = sums[k] / count;
          filled = true;
          break;
        }
      }
      if (!filled) for (let k = 0; k < channels; k++) out[p * channels + k] = 0.5;
    }
  }
  return out;
}

/** The mask as floats (the network's second input). */
export function maskToFloat(mask: Uint8Array): Float32Array {
  const out = new Float32Array(mask.length);
  for (let i = 0; i < mask.length; i++) out[i] = mask[i];
  return out;
}
