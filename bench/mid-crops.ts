/**
 * What the MID training-scene sweeps share (bench/mid-sweep.ts, bench/mid-wiener.ts, bench/mid-blend.ts): the PSNR of
 * a clipped output, the centre crop of an interleaved RGB image, and the synthetic texture-rich copy of a clean crop
 * (x' = clip(x + SHARPEN (x - G(x)), 0, 1), G a Gaussian blur of sigma 1, reflected at the edges).
 */
import { reflectIndex } from '../src/diffusion/padding.js';

/** The sharpening amount of the synthetic texture-rich crops. */
export const SHARPEN = 1.5;

/** PSNR (dB, peak 1) of `a` clipped to [0, 1] against `x`. */
export function clippedPsnr(a: Float32Array, x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (Math.min(1, Math.max(0, a[i])) - x[i]) ** 2;
  return 10 * Math.log10(x.length / s);
}

/** The centre size x size crop of an interleaved RGB image. */
export function centreCrop(data: Float32Array, width: number, height: number, size: number): Float32Array {
  const out = new Float32Array(size * size * 3);
  const top = (height - size) >> 1;
  const left = (width - size) >> 1;
  for (let r = 0; r < size; r++) {
    const from = ((top + r) * width + left) * 3;
    out.set(data.subarray(from, from + size * 3), r * size * 3);
  }
  return out;
}

/** The sharpened copy of an interleaved RGB image in [0, 1] (see the module comment). */
export function sharpen(x: Float32Array, w: number, h: number): Float32Array {
  const kernel = [-4, -3, -2, -1, 0, 1, 2, 3, 4].map((d) => Math.exp(-(d * d) / 2));
  const total = kernel.reduce((a, v) => a + v, 0);
  const blur = (src: Float32Array, horizontal: boolean) => {
    const out = new Float32Array(src.length);
    for (let r = 0; r < h; r++)
      for (let c = 0; c < w; c++)
        for (let k = 0; k < 3; k++) {
          let v = 0;
          for (let d = -4; d <= 4; d++) {
            const rr = horizontal ? r : reflectIndex(Math.abs(r + d), h);
            const cc = horizontal ? reflectIndex(Math.abs(c + d), w) : c;
            v += kernel[d + 4] * src[(rr * w + cc) * 3 + k];
          }
          out[(r * w + c) * 3 + k] = v / total;
        }
    return out;
  };
  const g = blur(blur(x, true), false);
  return Float32Array.from(x, (v, i) => Math.min(1, Math.max(0, v + SHARPEN * (v - g[i]))));
}

/** The synthetic copy of a real crop pair: the clean crop sharpened, plus the crop's own real noise y - x. */
export function syntheticPair(
  x: Float32Array,
  y: Float32Array,
  size: number,
): { xs: Float32Array; ys: Float32Array } {
  const xs = sharpen(x, size, size);
  return { xs, ys: Float32Array.from(xs, (v, j) => v + y[j] - x[j]) };
}
