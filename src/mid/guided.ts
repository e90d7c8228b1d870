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
 * wrong but the patches still match. Optionally (pilotWeight) a share of the pilot joins the averaged values.
 *
 * Cost: (2 search + 1)^2 passes over the image, each a squared difference, a box filter (running sums) and an
 * exp per pixel: about 0.5-1 s per 512x512 RGB image at search 7 in one thread.
 */
import { reflectIndex } from '../diffusion/padding.js';
import { estimateSigmaCoarse } from './sampler.js';

export interface GuidedAverageOptions {
  /** Side of the square patch (odd). */
  patch: number;
  /** Search radius: offsets -search..search in both directions. */
  search: number;
  /** Filtering parameter on the [0, 1] scale (per-value patch distance unit). */
  h: number;
  /**
   * 'pixel' (default): each pixel is the weighted average of the search-window pixels, with the weights of the
   * patch centred on it (classic NLM). 'patch': every patch's weighted average estimates all the pixels it covers,
   * and each pixel pools the estimates of the patch x patch patches that contain it, numerators and weights summed
   * (patch aggregation, as BM3D aggregates its blocks): a pixel draws on the matches of every patch that covers
   * it, not only of the one centred on it, so more noise goes where one patch finds few matches; one more box
   * filter per offset.
   */
  aggregation?: 'pixel' | 'patch';
  /**
   * Share of the pilot in the averaged values: the stage averages v = (1 - pilotWeight) y + pilotWeight g instead
   * of the noisy y (0, the default: y alone). The stage is linear in v, so this is the same blend of the guided
   * average of y (unbiased where the patches match, noisier) and of the pilot (less noise, the pilot's bias): a
   * shrinkage between the two at no extra cost.
   */
  pilotWeight?: number;
  /**
   * Safeguard (guidedSafeguard below), Wiener-style blend: weight of the pilot where its local variance v is
   * large against the noise, alpha = v / (v + blend sigma^2). Undefined or null: none.
   */
  blend?: number | null;
  /** Safeguard, residual bound: |output - pilot| <= bound * sigma per value. Undefined or null: none. */
  bound?: number | null;
  /** Safeguard, bound around the input: |output - noisy| <= noisyBound * sigma per value. Undefined or null: none. */
  noisyBound?: number | null;
  /** Safeguard, local energy cap around the pilot (guidedSafeguard below). Undefined or null: none. */
  pilotCap?: EnergyCap | null;
  /** Safeguard, local energy cap on the residual y - output (discrepancy principle). Undefined or null: none. */
  residualCap?: EnergyCap | null;
  /** Safeguard, the residual cap's anchor moves towards y where the pilot is suspect. Undefined or null: none. */
  pilotResidualCap?: EnergyCap | null;
}

/**
 * A local energy cap of the safeguard: where the mean over the window x window neighbourhood (and the channels) of
 * ((output - reference) / sigma_c)^2 exceeds kappa, the output moves towards the pilot by the factor
 * t = sqrt(kappa / that mean) (output = pilot + t (output - pilot)); elsewhere it is unchanged.
 */
export interface EnergyCap {
  /** Side of the square neighbourhood (odd, >= 1). */
  window: number;
  /** Largest local mean allowed, in units of `relativeTo` (> 0). */
  kappa: number;
  /**
   * 'sigma' (default): kappa is in units of sigma_c^2. 'median': in units of the median over the image of the local
   * mean itself, so the cap fires where the energy is kappa times the image's typical level: an anomaly test that
   * does not depend on the noise estimate's scale (the coarse estimate is about 0.75x the true std on camera JPEGs,
   * so a kappa in sigma units that spares good output on one crop fires everywhere on another).
   */
  relativeTo?: 'sigma' | 'median';
}

/** One reflect-padded plane per channel of an interleaved image, padded by `pad` on every side. */
function padPlanes(data: Float32Array, width: number, height: number, channels: number, pad: number) {
  const W = width + 2 * pad;
  const H = height + 2 * pad;
  const planes = Array.from({ length: channels }, () => new Float32Array(W * H));
  for (let r = 0; r < H; r++) {
    const sr = reflectIndex(Math.abs(r - pad), height);
    for (let c = 0; c < W; c++) {
      const from = (sr * width + reflectIndex(Math.abs(c - pad), width)) * channels;
      for (let k = 0; k < channels; k++) planes[k][r * W + c] = data[from + k];
    }
  }
  return planes;
}

/** Weights below exp(-CUTOFF) are dropped (skipped, not computed): e^-30 ~ 1e-13 of a perfect match's weight. */
const CUTOFF = 30;

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
  const aggregation = options.aggregation ?? 'pixel';
  if (aggregation !== 'pixel' && aggregation !== 'patch')
    throw new RangeError(`aggregation must be 'pixel' or 'patch', got ${aggregation}`);
  if (noisy.length !== width * height * channels || pilot.length !== noisy.length)
    throw new RangeError('noisy and pilot must both hold width * height * channels values');
  const pilotWeight = options.pilotWeight ?? 0;
  if (!(pilotWeight >= 0 && pilotWeight <= 1))
    throw new RangeError(`pilotWeight must be in [0, 1], got ${pilotWeight}`);
  const values =
    pilotWeight === 0 ? noisy : Float32Array.from(noisy, (v, i) => v + pilotWeight * (pilot[i] - v));
  const radius = patch >> 1;
  const pad = search + radius;
  const W = width + 2 * pad;
  const yp = padPlanes(values, width, height, channels, pad);
  const gp = padPlanes(pilot, width, height, channels, pad);
  // The distance image covers the output plus the patch radius around it (rows/cols -radius..height+radius).
  const dw = width + 2 * radius;
  const dh = height + 2 * radius;
  const dist = new Float64Array(dw * dh);
  const rowSums = new Float64Array(width * dh);
  const numerators = Array.from({ length: channels }, () => new Float64Array(width * height));
  const denominator = new Float64Array(width * height);
  const weights = new Float64Array(width * height);
  const boxRows = aggregation === 'patch' ? new Float64Array(width * height) : weights;
  const scale = 1 / (patch * patch * channels * h * h);
  for (let dr = -search; dr <= search; dr++) {
    for (let dc = -search; dc <= search; dc++) {
      // Squared pilot differences between p and p + (dr, dc), summed over channels.
      dist.fill(0);
      const shift = dr * W + dc;
      for (let k = 0; k < channels; k++) {
        const g = gp[k];
        for (let r = 0; r < dh; r++) {
          const rowStart = (r + search) * W + search;
          const out = r * dw;
          for (let c = 0; c < dw; c++) {
            const d = g[rowStart + c] - g[rowStart + c + shift];
            dist[out + c] += d * d;
          }
        }
      }
      // Box filter: horizontal running sums, then vertical; then the weights.
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
          const e = s * scale;
          weights[r * width + c] = e < CUTOFF ? Math.exp(-e) : 0;
        }
      }
      // Patch aggregation: pixel u takes w(p) y(u + offset) from every patch centre p within the patch radius of
      // u (the patch at p maps p + k to p + k + offset), i.e. the box sum of the weights around u.
      if (aggregation === 'patch') boxSum(weights, width, height, radius, boxRows);
      for (let r = 0; r < height; r++) {
        const from = (r + pad + dr) * W + pad + dc;
        const row = r * width;
        for (let c = 0; c < width; c++) denominator[row + c] += weights[row + c];
        for (let k = 0; k < channels; k++) {
          const y = yp[k];
          const num = numerators[k];
          for (let c = 0; c < width; c++) num[row + c] += weights[row + c] * y[from + c];
        }
      }
    }
  }
  const out = new Float32Array(width * height * channels);
  for (let p = 0; p < width * height; p++) {
    for (let k = 0; k < channels; k++) out[p * channels + k] = numerators[k][p] / denominator[p];
  }
  return out;
}

/**
 * In place: values[p] = sum of values over the (2 radius + 1)^2 window around p, inside the image only (centres
 * outside it do not exist); `scratch` holds width * height values.
 */
function boxSum(values: Float64Array, width: number, height: number, radius: number, scratch: Float64Array) {
  if (radius === 0) return;
  for (let r = 0; r < height; r++) {
    const base = r * width;
    let s = 0;
    for (let c = 0; c < Math.min(radius, width); c++) s += values[base + c];
    for (let c = 0; c < width; c++) {
      if (c + radius < width) s += values[base + c + radius];
      if (c - radius - 1 >= 0) s -= values[base + c - radius - 1];
      scratch[base + c] = s;
    }
  }
  for (let c = 0; c < width; c++) {
    let s = 0;
    for (let r = 0; r < Math.min(radius, height); r++) s += scratch[r * width + c];
    for (let r = 0; r < height; r++) {
      if (r + radius < height) s += scratch[(r + radius) * width + c];
      if (r - radius - 1 >= 0) s -= scratch[(r - radius - 1) * width + c];
      values[r * width + c] = s;
    }
  }
}

export interface GuidedSafeguardOptions {
  /** Pilot weight alpha = v / (v + blend sigma_c^2), v = pilot's local variance (patch x patch); > 0. */
  blend?: number | null;
  /** Residual bound in units of sigma_c: the output stays within bound * sigma_c of the pilot; >= 0. */
  bound?: number | null;
  /** Bound around the noisy input in units of sigma_c: the output stays within noisyBound * sigma_c of it; >= 0. */
  noisyBound?: number | null;
  /** Side of the local-variance window (odd); default 5. */
  patch?: number;
  /**
   * Energy cap around the pilot, after the bounds: the stage's local mean squared move away from the pilot is at
   * most kappa sigma_c^2. The pilot's residual noise is what the stage should remove; a move much larger than the
   * noise level is structure the pilot resolved and the stage's patch matches averaged away.
   */
  pilotCap?: EnergyCap | null;
  /**
   * Cap on the residual y - output, last (after the discrepancy principle, Morozov 1966): a denoiser removes the
   * noise, whose local energy is about sigma_c^2; where the local mean of ((y - output) / sigma_c)^2 is far above
   * it (above kappa), signal went with the noise (fine texture the stage's patch matches averaged away), and there
   * the output moves back towards the pilot, which kept that texture, by t = sqrt(kappa / mean). Moving towards
   * the pilot rather than the input keeps the pilot's denoising where the rule fires on a noisy area.
   */
  residualCap?: EnergyCap | null;
  /**
   * Where residualCap pulls to, when the pilot itself is suspect: the same cap on the PILOT's residual y - pilot
   * gives the anchor a = y + t_p (pilot - y), t_p = min(1, sqrt(L / E_p)), E_p = local mean of
   * ((y - pilot) / sigma_c)^2, and residualCap moves the output towards a instead of the pilot. Pulling towards the
   * pilot helps only where the pilot kept the texture; where its own residual is far above the image's typical
   * level, the pilot removed signal too, and the anchor moves back towards the input (which holds the signal, with
   * its noise). No effect without residualCap; where the pilot's residual is below the limit, a = pilot.
   */
  pilotResidualCap?: EnergyCap | null;
}

function checkCap(name: string, cap: EnergyCap | null | undefined) {
  if (cap == null) return;
  if (!(Number.isInteger(cap.window) && cap.window >= 1 && cap.window % 2 === 1))
    throw new RangeError(`${name}.window must be an odd integer >= 1, got ${cap.window}`);
  if (!(cap.kappa > 0)) throw new RangeError(`${name}.kappa must be > 0, got ${cap.kappa}`);
  if (cap.relativeTo !== undefined && cap.relativeTo !== 'sigma' && cap.relativeTo !== 'median')
    throw new RangeError(`${name}.relativeTo must be 'sigma' or 'median', got ${cap.relativeTo}`);
}

/** Variances below this (on the [0, 1] scale) count as this: a noise-free input caps every move to ~0. */
const MIN_VARIANCE = 1e-12;

/**
 * In place: out = pilot + t (out - pilot) per pixel, t = min(1, sqrt(L / E)), E = the mean over the window x
 * window neighbourhood inside the image and over the channels of ((out - reference) / sigma_c)^2, L = kappa, or
 * kappa times the median of E over the image (relativeTo 'median').
 */
function capEnergy(
  out: Float32Array,
  reference: Float32Array,
  pilot: Float32Array,
  width: number,
  height: number,
  channels: number,
  sigmas: number[],
  cap: EnergyCap,
) {
  const n = width * height;
  const energy = new Float64Array(n);
  const inverse = sigmas.map((s) => 1 / Math.max(s * s, MIN_VARIANCE));
  for (let p = 0; p < n; p++) {
    let e = 0;
    for (let k = 0; k < channels; k++)
      e += (out[p * channels + k] - reference[p * channels + k]) ** 2 * inverse[k];
    energy[p] = e / channels;
  }
  const count = new Float64Array(n).fill(1);
  const scratch = new Float64Array(n);
  const radius = cap.window >> 1;
  boxSum(energy, width, height, radius, scratch);
  boxSum(count, width, height, radius, scratch);
  for (let p = 0; p < n; p++) energy[p] /= count[p];
  let limit = cap.kappa;
  if (cap.relativeTo === 'median') {
    const sorted = Float64Array.from(energy).sort();
    limit *= n % 2 ? sorted[n >> 1] : 0.5 * (sorted[(n >> 1) - 1] + sorted[n >> 1]);
    // A zero median (most of the image untouched) is no scale to measure against: pulling every changed value
    // back would undo the stage wherever it did anything.
    if (!(limit > 0)) return;
  }
  for (let p = 0; p < n; p++) {
    const mean = energy[p];
    if (!(mean > limit)) continue;
    const t = Math.sqrt(limit / mean);
    for (let k = 0; k < channels; k++) {
      const i = p * channels + k;
      out[i] = pilot[i] + t * (out[i] - pilot[i]);
    }
  }
}

/**
 * Per-channel noise level of an interleaved image: src/mid/sampler.ts estimateSigmaCoarse (scale-2 trimmed Haar
 * RMS: the wavelet MAD gives ~0 on camera JPEGs whose finest scale is smoothed) on each channel.
 */
export function channelSigmas(data: Float32Array, width: number, height: number, channels: number): number[] {
  return Array.from({ length: channels }, (_, k) => {
    const plane = new Float32Array(width * height);
    for (let i = 0; i < plane.length; i++) plane[i] = data[i * channels + k];
    return estimateSigmaCoarse(plane, width, height);
  });
}

/** Local variance of each channel of an interleaved image over a side x side window (reflect borders). */
function localVariance(data: Float32Array, width: number, height: number, channels: number, side: number) {
  const radius = side >> 1;
  const planes = padPlanes(data, width, height, channels, radius);
  const W = width + 2 * radius;
  const out = new Float32Array(width * height * channels);
  const n = side * side;
  const rowS = new Float64Array(W);
  const rowQ = new Float64Array(W);
  for (let k = 0; k < channels; k++) {
    const g = planes[k];
    // Column sums over the window rows, then a horizontal running sum.
    for (let r = 0; r < height; r++) {
      rowS.fill(0);
      rowQ.fill(0);
      for (let dr = 0; dr < side; dr++) {
        const base = (r + dr) * W;
        for (let c = 0; c < W; c++) {
          const v = g[base + c];
          rowS[c] += v;
          rowQ[c] += v * v;
        }
      }
      let s = 0;
      let q = 0;
      for (let c = 0; c < side; c++) {
        s += rowS[c];
        q += rowQ[c];
      }
      for (let c = 0; c < width; c++) {
        if (c > 0) {
          s += rowS[c + side - 1] - rowS[c - 1];
          q += rowQ[c + side - 1] - rowQ[c - 1];
        }
        const m = s / n;
        out[(r * width + c) * channels + k] = Math.max(0, q / n - m * m);
      }
    }
  }
  return out;
}

/**
 * Limits how far the guided stage moves from the pilot, per value, on the noise level `sigmas` (one per channel):
 *
 *   blend:  z = stage + alpha (pilot - stage),  alpha = v / (v + blend sigma_c^2),  v = local variance of the pilot
 *           (Wiener-style: where the pilot shows structure well above the noise, keep the pilot; in flat areas,
 *           keep the stage's stronger averaging);
 *   bound:  z = pilot + clamp(z - pilot, -bound sigma_c, bound sigma_c);
 *   noisyBound: z = y + clamp(z - y, -noisyBound sigma_c, noisyBound sigma_c), y the noisy input (a residual
 *           bound: the clean value lies within a few sigma of y, so larger moves are the stage's own errors);
 *   pilotCap: z = pilot + t (z - pilot), t = min(1, sqrt(kappa / E)), E = local mean of ((z - pilot) / sigma_c)^2;
 *   residualCap: z = pilot + t (z - pilot), the same with E = local mean of ((y - z) / sigma_c)^2 (discrepancy
 *           principle: a residual well above the noise level is signal removed); with pilotResidualCap, the anchor
 *           is a = y + t_p (pilot - y) instead of the pilot, t_p from the same cap on the pilot's residual y - pilot.
 *
 * The guided stage averages noisy pixels whose pilot patches match; on fine low-contrast texture the matches mix
 * different structures and the stage blurs what the pilot kept (the one validation crop where MID lost to the noisy
 * input). The per-value rules fall back to the pilot there; the caps act on a neighbourhood's energy, which a
 * blurred texture raises well above the noise level while each value's move stays within a few sigma. Applied in
 * the order above; no option: the stage unchanged.
 */
export function guidedSafeguard(
  noisy: Float32Array,
  pilot: Float32Array,
  stage: Float32Array,
  width: number,
  height: number,
  channels: number,
  sigmas: number[],
  options: GuidedSafeguardOptions,
): Float32Array {
  const { blend, bound, noisyBound, pilotCap, residualCap, pilotResidualCap } = options;
  const side = options.patch ?? 5;
  if (blend != null && !(blend > 0)) throw new RangeError(`blend must be > 0, got ${blend}`);
  if (bound != null && !(bound >= 0)) throw new RangeError(`bound must be >= 0, got ${bound}`);
  if (noisyBound != null && !(noisyBound >= 0))
    throw new RangeError(`noisyBound must be >= 0, got ${noisyBound}`);
  checkCap('pilotCap', pilotCap);
  checkCap('residualCap', residualCap);
  checkCap('pilotResidualCap', pilotResidualCap);
  if (!(Number.isInteger(side) && side >= 1 && side % 2 === 1))
    throw new RangeError(`patch must be an odd integer >= 1, got ${side}`);
  const n = width * height * channels;
  if (pilot.length !== n || stage.length !== n || noisy.length !== n)
    throw new RangeError('noisy, pilot and stage must all hold width * height * channels values');
  if (sigmas.length !== channels) throw new RangeError(`expected ${channels} sigmas, got ${sigmas.length}`);
  const out = Float32Array.from(stage);
  if (blend != null) {
    const v = localVariance(pilot, width, height, channels, side);
    for (let i = 0; i < out.length; i++) {
      const noise = blend * sigmas[i % channels] ** 2;
      const alpha = v[i] + noise > 0 ? v[i] / (v[i] + noise) : 0;
      out[i] = stage[i] + alpha * (pilot[i] - stage[i]);
    }
  }
  if (bound != null) {
    for (let i = 0; i < out.length; i++) {
      const limit = bound * sigmas[i % channels];
      const d = out[i] - pilot[i];
      if (d > limit) out[i] = pilot[i] + limit;
      else if (d < -limit) out[i] = pilot[i] - limit;
    }
  }
  if (noisyBound != null) {
    for (let i = 0; i < out.length; i++) {
      const limit = noisyBound * sigmas[i % channels];
      const d = out[i] - noisy[i];
      if (d > limit) out[i] = noisy[i] + limit;
      else if (d < -limit) out[i] = noisy[i] - limit;
    }
  }
  if (pilotCap != null) capEnergy(out, pilot, pilot, width, height, channels, sigmas, pilotCap);
  if (residualCap != null) {
    let anchor = pilot;
    if (pilotResidualCap != null) {
      // capEnergy with reference = target = y: E_p on y - pilot, and the pilot moves towards y where E_p > L.
      anchor = Float32Array.from(pilot);
      capEnergy(anchor, noisy, noisy, width, height, channels, sigmas, pilotResidualCap);
    }
    capEnergy(out, noisy, anchor, width, height, channels, sigmas, residualCap);
  }
  return out;
}

/**
 * MID's whole second stage: guided non-local means of the noisy image on the pilot, then the safeguard when the
 * options carry one (noise level: channelSigmas of the noisy image).
 */
export function guidedStage(
  noisy: Float32Array,
  pilot: Float32Array,
  width: number,
  height: number,
  channels: number,
  options: GuidedAverageOptions,
  sigmas?: number[],
): Float32Array {
  const stage = guidedNonLocalMeans(noisy, pilot, width, height, channels, options);
  const { blend, bound, noisyBound, pilotCap, residualCap, pilotResidualCap } = options;
  if (blend == null && bound == null && noisyBound == null && pilotCap == null && residualCap == null)
    return stage;
  return guidedSafeguard(
    noisy,
    pilot,
    stage,
    width,
    height,
    channels,
    sigmas ?? channelSigmas(noisy, width, height, channels),
    { blend, bound, noisyBound, pilotCap, residualCap, pilotResidualCap, patch: options.patch },
  );
}
