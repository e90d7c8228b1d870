/**
 * MID's second stage: non-local averaging of the NOISY pixels with weights read on MID's estimate (the pilot).
 *
 *   xhat(p) = sum_q w(p, q) y(q) / sum_q w(p, q),   q in the (2 search + 1)^2 window around p,
 *   w(p, q) = exp(-d(p, q) / h^2),   d = mean over the patch x patch window and the channels of (g(p+k) - g(q+k))^2
 *
 * with g the pilot. It is non-local means (Buades et al. 2005) with the patch distances measured on a denoised
 * image instead of the noisy one, as in the second step of BM3D (Dabov et al. 2007): the pilot's patches are
 * nearly noise-free, so the weights find the pixels of the same structure, and averaging the noisy values keeps
 * what the pilot lost (MID alone removes a part of the noise and leaves the rest; this stage removes more without
 * blurring what the pilot resolved). The noisy values are averaged, so the output is unbiased where the pilot is
 * wrong but the patches still match.
 *
 * Cost: (2 search + 1)^2 passes over the image, each a squared difference, a box filter (running sums) and an
 * exp per pixel: about 0.5-1 s per 512x512 RGB image at search 7 in one thread.
 */
import { reflectIndex } from '../diffusion/padding.js';

export interface GuidedAverageOptions {
  /** Side of the square patch (odd). */
  patch: number;
  /** Search radius: offsets -search..search in both directions. */
  search: number;
  /** Filtering parameter on the [0, 1] scale (per-value patch distance unit). */
  h: number;
}

/** Reflect-pads an interleaved image by `pad` on every side. */
function padImage(data: Float32Array, width: number, height: number, channels: number, pad: number) {
  const W = width + 2 * pad;
  const H = height + 2 * pad;
  const out = new Float32Array(W * H * channels);
  for (let r = 0; r < H; r++) {
    const sr = reflectIndex(Math.abs(r - pad), height);
    for (let c = 0; c < W; c++) {
      const sc = reflectIndex(Math.abs(c - pad), width);
      for (let k = 0; k < channels; k++)
        out[(r * W + c) * channels + k] = data[(sr * width + sc) * channels + k];
    }
  }
  return out;
}

/**
 * Guided non-local means of an interleaved image (channels per pixel) with its pilot (same layout); output not
 * clipped. Borders: both images are extended by reflection.
 */
export function guidedNonLocalMeans(
  noisy: Float32Array,
  pilot: Float32Array,
  width: number,
  height: number,
  channels: number,
  options: GuidedAverageOptions,
): Float32Array {
  const { patch, search, h } = options;
  if (!(Number.isInteger(patch) && patch >= 1 && patch % 2 === 1))
    throw new RangeError(`patch must be an odd integer >= 1, got ${patch}`);
  if (!(Number.isInteger(search) && search >= 0))
    throw new RangeError(`search must be an integer >= 0, got ${search}`);
  if (!(h > 0)) throw new RangeError(`h must be > 0, got ${h}`);
  if (noisy.length !== width * height * channels || pilot.length !== noisy.length)
    throw new RangeError('noisy and pilot must both hold width * height * channels values');
  const radius = patch >> 1;
  const pad = search + radius;
  const W = width + 2 * pad;
  const yp = padImage(noisy, width, height, channels, pad);
  const gp = padImage(pilot, width, height, channels, pad);
  // The distance image covers the output plus the patch radius around it (rows/cols -radius..height+radius).
  const dw = width + 2 * radius;
  const dh = height + 2 * radius;
  const dist = new Float64Array(dw * dh);
  const rowSums = new Float64Array(width * dh);
  const numerator = new Float64Array(width * height * channels);
  const denominator = new Float64Array(width * height);
  const scale = 1 / (patch * patch * channels * h * h);
  for (let dr = -search; dr <= search; dr++) {
    for (let dc = -search; dc <= search; dc++) {
      // Squared pilot differences between p and p + (dr, dc), summed over channels.
      for (let r = 0; r < dh; r++) {
        const pr = r + search; // row in the padded image of distance row r
        for (let c = 0; c < dw; c++) {
          const p = (pr * W + c + search) * channels;
          const q = ((pr + dr) * W + c + search + dc) * channels;
          let s = 0;
          for (let k = 0; k < channels; k++) {
            const d = gp[p + k] - gp[q + k];
            s += d * d;
          }
          dist[r * dw + c] = s;
        }
      }
      // Box filter: horizontal running sums, then vertical.
      for (let r = 0; r < dh; r++) {
        let s = 0;
        const base = r * dw;
        for (let c = 0; c < patch; c++) s += dist[base + c];
        rowSums[r * width] = s;
        for (let c = 1; c < width; c++) {
          s += dist[base + c + patch - 1] - dist[base + c - 1];
          rowSums[r * width + c] = s;
        }
      }
      for (let c = 0; c < width; c++) {
        let s = 0;
        for (let r = 0; r < patch; r++) s += rowSums[r * width + c];
        for (let r = 0; r < height; r++) {
          if (r > 0) s += rowSums[(r + patch - 1) * width + c] - rowSums[(r - 1) * width + c];
          const weight = Math.exp(-s * scale);
          const p = r * width + c;
          denominator[p] += weight;
          const q = ((r + pad + dr) * W + c + pad + dc) * channels;
          for (let k = 0; k < channels; k++) numerator[p * channels + k] += weight * yp[q + k];
        }
      }
    }
  }
  const out = new Float32Array(width * height * channels);
  for (let p = 0; p < width * height; p++) {
    for (let k = 0; k < channels; k++) out[p * channels + k] = numerator[p * channels + k] / denominator[p];
  }
  return out;
}
