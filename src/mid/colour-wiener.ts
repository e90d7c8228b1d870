/**
 * MID's Wiener stage (issue 18): the pilot-guided empirical Wiener filter of src/denoise/wiener.ts run on every
 * colour channel, with MID's output (the guided stage after its safeguard) as the pilot and the noisy input as y.
 *
 * Colour space: 'rgb' filters R, G and B as they are; 'opponent' filters the decorrelated channels
 *   L = (R + G + B) / 3,  C1 = (R - B) / 2 + 1/2,  C2 = (R - 2G + B) / 4 + 1/2
 * (each on [0, 1]; camera noise after demosaicking is correlated across R, G and B, and the opponent channels
 * separate the luminance, where most of the signal is, from the chroma, where most of the noise is) and maps back:
 *   R = L + (C2 - 1/2) 2/3 + (C1 - 1/2),  G = L - (C2 - 1/2) 4/3,  B = L + (C2 - 1/2) 2/3 - (C1 - 1/2).
 *
 * Noise level per filtered channel: `sigma: 'residual'` takes the robust std (1.4826 x the median absolute value)
 * of the channel's residual y - pilot (MID's output leaves little noise, so the residual is mostly the noise),
 * 'spectrum' the residual's level and DCT spectrum (src/denoise/wiener.ts noiseSpectrum: camera JPEG noise is
 * spatially correlated), 'coarse' the scale-2 estimator of src/mid/sampler.ts on the channel of y; all times
 * `sigmaScale`.
 *
 * NOT the service default, and not served: on the PolyU training scenes every setting tried (`npm run
 * bench:mid-wiener`, bench/RESULTS.md `mid-wiener`) lost to MID's answer without it, by 0.01 to 0.55 dB. Kept as
 * the measured alternative (and the tool that measured it), like the guided stage's patch aggregation.
 */
import { noiseSpectrum, wienerRefine } from '../denoise/wiener.js';
import { estimateSigmaCoarse } from './sampler.js';

export type MidWienerSpace = 'rgb' | 'opponent';
export type MidWienerSigma = 'spectrum' | 'residual' | 'coarse';

export interface MidWienerOptions {
  space?: MidWienerSpace;
  sigma?: MidWienerSigma;
  /** Multiplier of the estimated noise level of each channel. */
  sigmaScale?: number;
  /** Share of the Wiener estimate in the output (the rest is the pilot); src/denoise/wiener.ts `mix`. */
  mix?: number;
  /** Block stride (src/denoise/wiener.ts). */
  stride?: number;
}

/** Defaults: Noise2Score's stage as it is (mix 0.85, stride 3), per RGB channel, level from the residual. */
export const MID_WIENER_DEFAULTS: Required<MidWienerOptions> = {
  space: 'rgb',
  sigma: 'residual',
  sigmaScale: 1,
  mix: 0.85,
  stride: 3,
};

/** Interleaved RGB -> three planes in `space`. */
export function toPlanes(rgb: Float32Array, n: number, space: MidWienerSpace): Float32Array[] {
  const planes = [0, 1, 2].map(() => new Float32Array(n));
  for (let i = 0; i < n; i++) {
    const r = rgb[i * 3];
    const g = rgb[i * 3 + 1];
    const b = rgb[i * 3 + 2];
    if (space === 'rgb') {
      planes[0][i] = r;
      planes[1][i] = g;
      planes[2][i] = b;
    } else {
      planes[0][i] = (r + g + b) / 3;
      planes[1][i] = (r - b) / 2 + 0.5;
      planes[2][i] = (r - 2 * g + b) / 4 + 0.5;
    }
  }
  return planes;
}

/** Three planes in `space` -> interleaved RGB (not clipped). */
export function fromPlanes(planes: Float32Array[], n: number, space: MidWienerSpace): Float32Array {
  const out = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    if (space === 'rgb') {
      out[i * 3] = planes[0][i];
      out[i * 3 + 1] = planes[1][i];
      out[i * 3 + 2] = planes[2][i];
    } else {
      const l = planes[0][i];
      const c1 = planes[1][i] - 0.5;
      const c2 = planes[2][i] - 0.5;
      out[i * 3] = l + (2 / 3) * c2 + c1;
      out[i * 3 + 1] = l - (4 / 3) * c2;
      out[i * 3 + 2] = l + (2 / 3) * c2 - c1;
    }
  }
  return out;
}

/** Robust std of a - b: 1.4826 x the median of |a - b|. */
export function residualSigma(a: Float32Array, b: Float32Array): number {
  const d = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) d[i] = Math.abs(a[i] - b[i]);
  d.sort();
  const m = d.length;
  if (m === 0) return 0;
  const median = m % 2 ? d[m >> 1] : 0.5 * (d[(m >> 1) - 1] + d[m >> 1]);
  return 1.4826 * median;
}

/**
 * The Wiener stage on an interleaved RGB image: `noisy` y, `pilot` MID's output. Returns the refined RGB image
 * clipped to [0, 1] and the noise level used per filtered channel (on the [0, 1] scale).
 */
export function midWienerRefine(
  noisy: Float32Array,
  pilot: Float32Array,
  width: number,
  height: number,
  options: MidWienerOptions = {},
): { data: Float32Array; sigmas: number[] } {
  const n = width * height;
  if (noisy.length !== n * 3 || pilot.length !== n * 3)
    throw new RangeError(
      `midWienerRefine: expected ${n * 3} RGB values, got ${noisy.length} and ${pilot.length}`,
    );
  const o = { ...MID_WIENER_DEFAULTS, ...options };
  if (!(o.sigmaScale >= 0)) throw new RangeError(`sigmaScale must be >= 0, got ${o.sigmaScale}`);
  const y = toPlanes(noisy, n, o.space);
  const p = toPlanes(pilot, n, o.space);
  const noise = y.map((plane, k) => {
    if (o.sigma === 'spectrum') return noiseSpectrum(plane, p[k], width, height);
    const sigma =
      o.sigma === 'residual' ? residualSigma(plane, p[k]) : estimateSigmaCoarse(plane, width, height);
    return { sigma, spectrum: undefined };
  });
  const sigmas = noise.map((v) => o.sigmaScale * v.sigma);
  const refined = y.map((plane, k) =>
    wienerRefine(plane, p[k], width, height, sigmas[k], {
      mix: o.mix,
      stride: o.stride,
      spectrum: noise[k].spectrum,
    }),
  );
  const data = fromPlanes(refined, n, o.space);
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    data[i] = Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : pilot[i];
  }
  return { data, sigmas };
}
