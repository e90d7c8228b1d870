/**
 * Starting points for RED-Diff's estimate mu.
 *
 * The official algorithm starts from the pseudo-inverse H^+ y ('pinv'). For inpainting that puts the missing pixels
 * at 0 (mid-grey on [-1, 1]), and for average-pool super-resolution it gives blocks. Adam then has to move every
 * missing pixel all the way from there, driven only by the prior's stochastic gradient. 'smooth' starts instead from
 * a classical interpolation that still fits the measurements exactly:
 * - mask: biharmonic fill of the missing pixels (as scikit-image's inpaint_biharmonic): a harmonic fill (Laplace's
 *   equation with the observed pixels as boundary values, solved coarse to fine on a pyramid with Gauss-Seidel
 *   sweeps at each level, so large holes fill too), refined by at most 400 conjugate-gradient iterations;
 * - average-pool: bicubic up-sampling of y refined by iterative back-projection, then the correction
 *   x + H^+(y - H x), which makes H x = y exactly (H H^+ = I for average pooling with nearest up-sampling);
 * - other operators (blur, bicubic, identity): the pseudo-inverse, unchanged.
 * Images are NHWC [b, h, w, 1]; the fills run on the CPU in float64. Their cost grows with the size of the holes
 * and is bounded by the iteration cap (every Set12 64x64 benchmark crop and Fashion-MNIST image converges before
 * it); at 256x256 it stays within a few U-Net steps.
 */

import { tidyValues } from '../nn/read.js';
import { cubic, type DegradationOperator } from './operators.js';

type Tf = typeof import('@tensorflow/tfjs');
type Tensor4D = import('@tensorflow/tfjs').Tensor4D;

export const RED_DIFF_INITS = ['pinv', 'smooth'] as const;
export type RedDiffInit = (typeof RED_DIFF_INITS)[number];

/** Gauss-Seidel sweeps of the 4-neighbour Laplace equation on the missing pixels at every pyramid level. */
const SWEEPS_PER_LEVEL = 24;

function relax(x: Float64Array, observed: Uint8Array, h: number, w: number, sweeps: number) {
  for (let s = 0; s < sweeps; s++)
    for (let r = 0; r < h; r++)
      for (let c = 0; c < w; c++) {
        const i = r * w + c;
        if (observed[i]) continue;
        let sum = 0;
        let n = 0;
        if (r > 0) {
          sum += x[i - w];
          n++;
        }
        if (r < h - 1) {
          sum += x[i + w];
          n++;
        }
        if (c > 0) {
          sum += x[i - 1];
          n++;
        }
        if (c < w - 1) {
          sum += x[i + 1];
          n++;
        }
        if (n > 0) x[i] = sum / n;
      }
}

/** Harmonic fill of one image: `values` where `observed`, the rest solved for. All missing: zeros. */
function fillLevel(values: Float64Array, observed: Uint8Array, h: number, w: number): Float64Array {
  let missing = 0;
  for (let i = 0; i < observed.length; i++) if (!observed[i]) missing++;
  const x = Float64Array.from(values);
  if (missing === 0) return x;
  if (missing === observed.length) return new Float64Array(h * w);
  // Coarse level: 2x2 means of the observed pixels (a coarse pixel is observed when any of its 4 is).
  const hc = Math.ceil(h / 2);
  const wc = Math.ceil(w / 2);
  const vc = new Float64Array(hc * wc);
  const nc = new Float64Array(hc * wc);
  for (let r = 0; r < h; r++)
    for (let c = 0; c < w; c++) {
      const i = r * w + c;
      if (!observed[i]) continue;
      const j = (r >> 1) * wc + (c >> 1);
      vc[j] += values[i];
      nc[j] += 1;
    }
  const oc = new Uint8Array(hc * wc);
  for (let j = 0; j < vc.length; j++)
    if (nc[j] > 0) {
      vc[j] /= nc[j];
      oc[j] = 1;
    }
  const coarse = h === 1 && w === 1 ? vc : fillLevel(vc, oc, hc, wc);
  // Pull: bilinear interpolation of the coarse solution at each missing pixel's centre, then relax.
  for (let r = 0; r < h; r++) {
    const fr = Math.min(Math.max((r + 0.5) / 2 - 0.5, 0), hc - 1);
    const r0 = Math.floor(fr);
    const r1 = Math.min(r0 + 1, hc - 1);
    const ar = fr - r0;
    for (let c = 0; c < w; c++) {
      const i = r * w + c;
      if (observed[i]) continue;
      const fc = Math.min(Math.max((c + 0.5) / 2 - 0.5, 0), wc - 1);
      const c0 = Math.floor(fc);
      const c1 = Math.min(c0 + 1, wc - 1);
      const ac = fc - c0;
      x[i] =
        (1 - ar) * ((1 - ac) * coarse[r0 * wc + c0] + ac * coarse[r0 * wc + c1]) +
        ar * ((1 - ac) * coarse[r1 * wc + c0] + ac * coarse[r1 * wc + c1]);
    }
  }
  relax(x, observed, h, w, SWEEPS_PER_LEVEL);
  return x;
}

/**
 * Runs `fillOne` on each image of a batch: `values` and `mask` (1 observed, 0 missing) are NHW-flattened, `mask`
 * either one per image or one for all. Observed pixels are returned unchanged.
 */
function fillBatch(
  what: string,
  values: Float32Array,
  mask: Float32Array,
  height: number,
  width: number,
  fillOne: (values: Float64Array, observed: Uint8Array) => Float64Array,
): Float32Array {
  const size = height * width;
  if (values.length % size !== 0 || mask.length % size !== 0)
    throw new RangeError(`${what}: lengths ${values.length}/${mask.length} are not multiples of ${size}`);
  const out = new Float32Array(values.length);
  for (let b = 0; b < values.length / size; b++) {
    const offset = b * size;
    const maskOffset = mask.length === size ? 0 : offset;
    const observed = new Uint8Array(size);
    for (let i = 0; i < size; i++) observed[i] = mask[maskOffset + i] > 0.5 ? 1 : 0;
    const filled = fillOne(Float64Array.from(values.subarray(offset, offset + size)), observed);
    for (let i = 0; i < size; i++) out[offset + i] = observed[i] ? values[offset + i] : filled[i];
  }
  return out;
}

/** Harmonic inpainting of a batch (see fillBatch for the layout). */
export function harmonicFill(
  values: Float32Array,
  mask: Float32Array,
  height: number,
  width: number,
): Float32Array {
  return fillBatch('harmonicFill', values, mask, height, width, (v, observed) =>
    fillLevel(v, observed, height, width),
  );
}

/** The 5-point Laplacian with reflecting (Neumann) borders: (L x)_i = sum over in-image neighbours n of x_n - x_i. */
function laplacian(x: Float64Array, out: Float64Array, h: number, w: number) {
  for (let r = 0; r < h; r++)
    for (let c = 0; c < w; c++) {
      const i = r * w + c;
      let v = 0;
      if (r > 0) v += x[i - w] - x[i];
      if (r < h - 1) v += x[i + w] - x[i];
      if (c > 0) v += x[i - 1] - x[i];
      if (c < w - 1) v += x[i + 1] - x[i];
      out[i] = v;
    }
}

/**
 * Biharmonic fill of one image: minimises ||L x||^2 over the missing pixels (the observed ones fixed), i.e. solves
 * the biharmonic equation there, by conjugate gradients on P^T L L P u = -P^T L L x_observed, started from the
 * harmonic fill. `maxIterations` bounds the work; it stops earlier once the residual falls by `tolerance`.
 */
function biharmonicOne(
  start: Float64Array,
  observed: Uint8Array,
  h: number,
  w: number,
  maxIterations: number,
  tolerance: number,
): Float64Array {
  const n = h * w;
  const x = Float64Array.from(start);
  const tmp = new Float64Array(n);
  const apply = (v: Float64Array, out: Float64Array) => {
    laplacian(v, tmp, h, w);
    laplacian(tmp, out, h, w);
    for (let i = 0; i < n; i++) if (observed[i]) out[i] = 0;
  };
  const r = new Float64Array(n);
  apply(x, r);
  for (let i = 0; i < n; i++) r[i] = -r[i];
  const p = Float64Array.from(r);
  const ap = new Float64Array(n);
  let rr = 0;
  for (let i = 0; i < n; i++) rr += r[i] * r[i];
  const stop = rr * tolerance * tolerance;
  for (let k = 0; k < maxIterations && rr > stop && rr > 0; k++) {
    apply(p, ap);
    let pap = 0;
    for (let i = 0; i < n; i++) pap += p[i] * ap[i];
    if (!(pap > 0)) break;
    const alpha = rr / pap;
    let next = 0;
    for (let i = 0; i < n; i++) {
      x[i] += alpha * p[i];
      r[i] -= alpha * ap[i];
      next += r[i] * r[i];
    }
    const beta = next / rr;
    rr = next;
    for (let i = 0; i < n; i++) p[i] = r[i] + beta * p[i];
  }
  return x;
}

/**
 * Biharmonic inpainting of a batch (as scikit-image's inpaint_biharmonic, with reflecting borders): the harmonic
 * fill refined by conjugate gradients. Observed pixels are returned unchanged.
 */
export function biharmonicFill(
  values: Float32Array,
  mask: Float32Array,
  height: number,
  width: number,
  maxIterations = 400,
  tolerance = 1e-6,
): Float32Array {
  return fillBatch('biharmonicFill', values, mask, height, width, (v, observed) =>
    biharmonicOne(fillLevel(v, observed, height, width), observed, height, width, maxIterations, tolerance),
  );
}

/** Taps of bicubic up-sampling along one axis: for each output index, 4 input indices (clamped) and weights. */
function cubicTaps(inLength: number, factor: number): { index: Int32Array; weight: Float64Array } {
  const out = inLength * factor;
  const index = new Int32Array(out * 4);
  const weight = new Float64Array(out * 4);
  for (let o = 0; o < out; o++) {
    const f = (o + 0.5) / factor - 0.5;
    const base = Math.floor(f);
    for (let k = 0; k < 4; k++) {
      const i = base - 1 + k;
      index[o * 4 + k] = Math.min(Math.max(i, 0), inLength - 1);
      weight[o * 4 + k] = cubic(f - i);
    }
  }
  return { index, weight };
}

/** Bicubic up-sampling (Keys, a = -0.5) by an integer factor, pixel-centre aligned, edges clamped (NHW, one channel). */
export function bicubicUpsample(
  values: Float32Array | Float64Array,
  h: number,
  w: number,
  factor: number,
): Float64Array {
  const size = h * w;
  const H = h * factor;
  const W = w * factor;
  const rows = cubicTaps(h, factor);
  const cols = cubicTaps(w, factor);
  const count = values.length / size;
  const out = new Float64Array(count * H * W);
  const tmp = new Float64Array(h * W);
  for (let b = 0; b < count; b++) {
    const base = b * size;
    for (let r = 0; r < h; r++)
      for (let c = 0; c < W; c++) {
        let v = 0;
        for (let k = 0; k < 4; k++)
          v += cols.weight[c * 4 + k] * values[base + r * w + cols.index[c * 4 + k]];
        tmp[r * W + c] = v;
      }
    for (let r = 0; r < H; r++)
      for (let c = 0; c < W; c++) {
        let v = 0;
        for (let k = 0; k < 4; k++) v += rows.weight[r * 4 + k] * tmp[rows.index[r * 4 + k] * W + c];
        out[b * H * W + r * W + c] = v;
      }
  }
  return out;
}

function averagePool(x: Float64Array, H: number, W: number, factor: number): Float64Array {
  const h = H / factor;
  const w = W / factor;
  const count = x.length / (H * W);
  const out = new Float64Array(count * h * w);
  for (let b = 0; b < count; b++)
    for (let r = 0; r < H; r++)
      for (let c = 0; c < W; c++)
        out[b * h * w + Math.floor(r / factor) * w + Math.floor(c / factor)] += x[b * H * W + r * W + c];
  const scale = 1 / (factor * factor);
  for (let i = 0; i < out.length; i++) out[i] *= scale;
  return out;
}

/** Iterative back-projection rounds (Irani & Peleg) before the exact correction. */
const BACK_PROJECTIONS = 20;

/**
 * Super-resolution start for average pooling: bicubic up-sampling of y refined by iterative back-projection
 * x <- x + U(y - H x) with U the bicubic up-sampler, then the exact correction x + H^+(y - H x) (nearest
 * up-sampling), after which H x = y to rounding.
 */
export function backProjectedUpsample(y: Float32Array, h: number, w: number, factor: number): Float32Array {
  const H = h * factor;
  const W = w * factor;
  const x = bicubicUpsample(y, h, w, factor);
  const misfit = new Float64Array(y.length);
  for (let k = 0; k <= BACK_PROJECTIONS; k++) {
    const hx = averagePool(x, H, W, factor);
    for (let i = 0; i < y.length; i++) misfit[i] = y[i] - hx[i];
    if (k < BACK_PROJECTIONS) {
      const up = bicubicUpsample(misfit, h, w, factor);
      for (let i = 0; i < x.length; i++) x[i] += up[i];
    }
  }
  const out = new Float32Array(x.length);
  const count = y.length / (h * w);
  for (let b = 0; b < count; b++)
    for (let r = 0; r < H; r++)
      for (let c = 0; c < W; c++) {
        const i = b * H * W + r * W + c;
        out[i] = x[i] + misfit[b * h * w + Math.floor(r / factor) * w + Math.floor(c / factor)];
      }
  return out;
}

/** RED-Diff's starting estimate for `init` (see the module comment); a new tensor the caller disposes. */
export async function initialEstimate(
  tf: Tf,
  H: DegradationOperator,
  y: Tensor4D,
  init: RedDiffInit,
): Promise<Tensor4D> {
  if (init === 'pinv' || (H.kind !== 'mask' && H.kind !== 'average-pool')) return H.pseudoInverse(tf, y);
  const batch = y.shape[0];
  if (H.kind === 'mask') {
    const pinv = await H.pseudoInverse(tf, y);
    const values = await tidyValues(tf, () => pinv);
    const mask = await tidyValues(tf, () =>
      H.forward(tf, tf.ones([batch, H.height, H.width, 1]) as Tensor4D),
    );
    return tf.tensor4d(biharmonicFill(values, mask, H.height, H.width), [batch, H.height, H.width, 1]);
  }
  const factor = H.height / H.outputHeight;
  const up = backProjectedUpsample((await y.data()) as Float32Array, H.outputHeight, H.outputWidth, factor);
  return tf.tensor4d(up, [batch, H.height, H.width, 1]);
}
