/**
 * How the restore pipeline pads an image to the U-Net's grid, driven by the prior's manifest.
 *
 * Default (no `extra.padding`): the estimate x, the measurement y and the mask are extended at the bottom and right
 * by reflection (mirror without repeating the edge pixel, periodically for tiny images) up to a multiple of
 * lcm(multiple, factor). Reflection keeps the band image-like; the padded pixels are observed like their mirror
 * images, so they constrain nothing new.
 *
 * A prior trained on images placed on a larger canvas (ddpm-fashion-mnist: 28x28 zero-padded to 32x32) says so in
 * its manifest:
 *
 *   "padding": { "mode": "constant", "value": 0, "content": [28, 28], "canvas": [32, 32] }
 *
 * (`value` on the service's [0, 1] scale, bytes / 255; content and canvas as [height, width]). An estimate of
 * exactly the content size is then placed at the centre of the canvas, as in training, and the band is filled with
 * `value` and treated as OBSERVED: the mask marks it kept, and in super-resolution the measurement's band holds the
 * value too (a band of `value` in x pools to a band of `value` in y when the offsets are multiples of the factor).
 * Any other size, or a factor the centred offsets are not multiples of, falls back to reflection.
 */

export interface ConstantPadding {
  mode: 'constant';
  /** Fill value on [0, 1]. */
  value: number;
  /** [height, width] of the images the prior was trained on, before padding. */
  content: [number, number];
  /** [height, width] of the canvas they were padded to (centred). */
  canvas: [number, number];
}

/** The manifest's `extra.padding`, or null when absent; throws on a malformed section (a manifest bug). */
export function manifestPadding(extra: Record<string, unknown> | undefined): ConstantPadding | null {
  const raw = extra?.padding;
  if (raw === undefined) return null;
  const p = raw as Partial<ConstantPadding>;
  const pair = (v: unknown): v is [number, number] =>
    Array.isArray(v) && v.length === 2 && v.every((n) => Number.isInteger(n) && n > 0);
  if (
    p.mode !== 'constant' ||
    typeof p.value !== 'number' ||
    !(p.value >= 0 && p.value <= 1) ||
    !pair(p.content) ||
    !pair(p.canvas) ||
    p.canvas[0] < p.content[0] ||
    p.canvas[1] < p.content[1]
  ) {
    throw new Error(
      `manifest extra.padding must be { mode: 'constant', value in [0, 1], content: [h, w], canvas: [H, W] } with canvas >= content, got ${JSON.stringify(raw)}`,
    );
  }
  return p as ConstantPadding;
}

/** Mirror index i (>= 0) into 0..n-1 without repeating the edge (…, 2, 1, 0, 1, 2, …), periodically. */
export function reflectIndex(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  const k = i % period;
  return k < n ? k : period - k;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

export interface RestorePadding {
  mode: 'reflect' | 'constant';
  /** Padded size of the estimate x. */
  height: number;
  width: number;
  /** Band sizes in the estimate's space. */
  top: number;
  left: number;
  bottom: number;
  right: number;
  /**
   * Pads a plane of the estimate's space (factor 1: x, the mask) or of the measurement's space (y, `factor` times
   * smaller). `fill` is the constant band's value (the image: the manifest's value; a keep mask: 1); ignored when
   * reflecting.
   */
  pad(data: Float32Array, h: number, w: number, space: 'x' | 'y', fill?: number): Float32Array;
  /** Crops a padded estimate (row-major, `width` wide) back to the unpadded size. */
  crop(data: ArrayLike<number>): Float32Array;
  /** What the answer reports. */
  summary(): { mode: 'reflect' | 'constant'; top: number; left: number; bottom: number; right: number };
}

/**
 * The padding plan of a restore problem whose estimate is outHeight x outWidth, with a measurement `factor` times
 * smaller (super-resolution; 1 otherwise), for a network whose sides must be multiples of `multiple`.
 */
export function restorePadding(
  extra: Record<string, unknown> | undefined,
  outHeight: number,
  outWidth: number,
  factor: number,
  multiple: number,
): RestorePadding {
  const unit = (multiple * factor) / gcd(multiple, factor);
  const constant = manifestPadding(extra);
  let top = 0;
  let left = 0;
  let height = Math.ceil(outHeight / unit) * unit;
  let width = Math.ceil(outWidth / unit) * unit;
  let mode: 'reflect' | 'constant' = 'reflect';
  if (constant && constant.content[0] === outHeight && constant.content[1] === outWidth) {
    const [ch, cw] = constant.canvas;
    const t = (ch - outHeight) >> 1;
    const l = (cw - outWidth) >> 1;
    if (ch % unit === 0 && cw % unit === 0 && t % factor === 0 && l % factor === 0) {
      mode = 'constant';
      top = t;
      left = l;
      height = ch;
      width = cw;
    }
  }
  const value = constant?.value ?? 0;
  return {
    mode,
    height,
    width,
    top,
    left,
    bottom: height - outHeight - top,
    right: width - outWidth - left,
    pad(data, h, w, space, fill = value) {
      const s = space === 'x' ? 1 : factor;
      const H = height / s;
      const W = width / s;
      const t0 = top / s;
      const l0 = left / s;
      const out = new Float32Array(H * W);
      for (let r = 0; r < H; r++) {
        for (let c = 0; c < W; c++) {
          if (mode === 'constant') {
            const sr = r - t0;
            const sc = c - l0;
            out[r * W + c] = sr >= 0 && sr < h && sc >= 0 && sc < w ? data[sr * w + sc] : fill;
          } else {
            out[r * W + c] = data[reflectIndex(r, h) * w + reflectIndex(c, w)];
          }
        }
      }
      return out;
    },
    crop(data) {
      const out = new Float32Array(outHeight * outWidth);
      for (let r = 0; r < outHeight; r++) {
        for (let c = 0; c < outWidth; c++) out[r * outWidth + c] = data[(r + top) * width + c + left];
      }
      return out;
    },
    summary() {
      return { mode, top, left, bottom: height - outHeight - top, right: width - outWidth - left };
    },
  };
}
