/**
 * RED-Diff (Mardani, Song, Kautz & Vahdat, ICLR 2024, "A Variational Perspective on Solving Inverse Problems with
 * Diffusion Models"; official code NVlabs/RED-diff, algos/reddiff.py): restoration as the optimisation of one image
 * estimate mu, with a diffusion model as a regulariser that is never differentiated.
 *
 *   mu_0 = H^+ y                                    (or a classical interpolation: `init`, src/diffusion/initial.ts)
 *   for t over `steps` strided timesteps, descending from tMax (default T-1) to 0:
 *     eps ~ N(0, I);  x_t = sqrt(alphaBar_t) mu + sqrt(1 - alphaBar_t) eps
 *     epsHat = eps_theta(x_t, t)                                  (no gradient through the network)
 *     loss = mean((y - H mu)^2) / 2 + lambda w_t mean(sg(epsHat - eps) . mu),   w_t = sqrt(1-alphaBar_t)/sqrt(alphaBar_t)
 *     one Adam step on mu (betas 0.9, 0.99)
 *   return clip(mu) and ||y - H clip(mu)|| / ||y||
 *
 * The prior term's gradient is lambda w_t (epsHat - eps) / N, a score-matching residual: its expectation over eps
 * pulls mu towards where the denoiser agrees with the noise that was added, i.e. towards the data manifold. With
 * the SNR weighting it equals lambda (mu - x0Hat(x_t)) / N, x0Hat the Tweedie estimate: at large t x0Hat is a
 * blurred mean image, so a run that starts from a good interpolation should start at a smaller tMax (the official
 * code starts from H^+ y and at T). Adam normalises each pixel's step, so missing pixels move at about lr per step
 * however small their gradient is. Since the network is only evaluated, a step costs one forward pass (DPS-style
 * methods need a backward pass through the U-Net too). Images are NHWC [b, h, w, 1] in the model's range [-1, 1]; the service converts from/to [0, 1].
 *
 * Determinism: eps comes from the project's seeded Rng (not tf.randomNormal), so the same seed, inputs and backend
 * give bit-identical results.
 */

import { tidyValues } from '../nn/read.js';
import { checkCancelled } from '../util/cancellation.js';
import { Rng } from '../util/random.js';
import type { EpsModel } from './eps-model.js';
import { cropPlanes, type HoleWindow, holeWindows, pastePlanes, windowsMeasurements } from './hole-window.js';
import { initialEstimate, type RedDiffInit } from './initial.js';
import { type DegradationOperator, maskOperator } from './operators.js';
import { type DdpmSchedule, stridedTimesteps } from './schedule.js';

type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type Tensor4D = import('@tensorflow/tfjs').Tensor4D;

/** How the prior term is weighted along the trajectory (the official code's `grad_term_weight` times ...). */
export type RedDiffWeighting = 'snr' | 'sqrt' | 'constant';

export interface RedDiffProgress {
  /** Steps done so far (1..steps). */
  step: number;
  steps: number;
  /** The timestep just used. */
  t: number;
}

export interface RedDiffOptions {
  /** Number of strided timesteps (and Adam steps). */
  steps: number;
  /** Weight of the diffusion prior (official default 0.25); 0 = least squares from H^+ y. */
  lambda?: number;
  /** Adam learning rate (official configurations use 0.1 to 0.5). */
  lr?: number;
  /** Seed of the noise eps drawn at each step. */
  seed?: number;
  /**
   * 'snr' (default, the official "linear"): w_t = sqrt(1 - alphaBar_t) / sqrt(alphaBar_t), the inverse square root
   * of the SNR; 'sqrt': the square root of that; 'constant': w_t = 1.
   */
  weighting?: RedDiffWeighting;
  /**
   * Measurement noise level of y on the [-1, 1] scale. Recorded only: the official loss does not reweight the data
   * term by sigma_y (the prior's weight lambda is what trades fidelity for regularity).
   */
  sigmaY?: number;
  /** Starting estimate: 'pinv' (the official H^+ y, default) or 'smooth' (src/diffusion/initial.ts). */
  init?: RedDiffInit;
  /** Largest timestep of the descending schedule (default T - 1): a good start needs less noise to forget it. */
  tMax?: number;
  /** Range the returned estimate is clipped to. */
  range?: [number, number];
  /** Called every `progressEvery` steps and after the last one. */
  onProgress?: (progress: RedDiffProgress) => void;
  progressEvery?: number;
  /** Checked before each step; an aborted signal stops the run (its reason is thrown). */
  signal?: AbortSignal;
  /** Keep this many intermediate estimates (evenly spaced over the run, the last one included). */
  trace?: number;
  /**
   * Inpainting (a mask operator) only: optimise just the window around the missing pixels (src/diffusion/
   * hole-window.ts: their bounding box over the batch widened by `margin` pixels, sides rounded up to multiples of
   * `multiple`, the network's down-sampling factor; holes far apart, whose windows do not overlap, get one each,
   * optimised one after the other: holeWindows); the estimate is y outside it. Absent, a window that would be
   * the whole image, or noisy measurements (sigmaY > 0, whose observed pixels the whole-image run smooths): the whole
   * image.
   */
  window?: { margin: number; multiple: number };
  /**
   * Return the mean of this many runs (default 1), with noise seeds seed, seed + 1000, seed + 2000, ...: an estimate
   * of the posterior mean, which PSNR rewards over one sample's hallucinated detail; costs that many runs.
   */
  samples?: number;
  /**
   * With `window` (exact measurements): coarse to fine. The window (its sides then multiples of 2 x `multiple`) is
   * first solved at half resolution: y as the means of 2x2 blocks, a block observed when its four pixels are (a
   * 32x32 hole becomes 16x16, and the prior's field sees twice the context), with `steps` steps from `tMax` (default
   * the run's) at `lr` (default the run's); its estimate, up-sampled (bilinear), fills the missing pixels of the
   * start of the full-resolution run, which then uses the run's own steps, lambda and lr, from `fineTMax` (default
   * the run's tMax: a good start needs less noise to forget it). Ignored when lambda is 0 (without a prior the
   * half-resolution run adds nothing) and where no window applies (noisy measurements).
   */
  coarse?: RedDiffCoarse;
  /** Start from this estimate (NHWC values, y's shape, the model's range) instead of `init` (coarse to fine). */
  start?: Float32Array;
}

export interface RedDiffCoarse {
  steps: number;
  tMax?: number;
  lr?: number;
  /** The full-resolution run's largest timestep after the half-resolution one (default: the run's tMax). */
  fineTMax?: number;
}

export interface RedDiffTraceEntry {
  step: number;
  t: number;
  /** Clipped estimate, NHWC flattened, same shape as the result. */
  x: Float32Array;
}

export interface RedDiffResult {
  /** The restored images, NHWC flattened, clipped to `range`. */
  x: Float32Array;
  shape: [number, number, number, number];
  /** ||y - H(x)|| / ||y|| (the absolute norm when y = 0). */
  residual: number;
  residualNorm: number;
  steps: number;
  params: {
    lambda: number;
    lr: number;
    seed: number;
    weighting: RedDiffWeighting;
    sigmaY: number;
    init: RedDiffInit;
    tMax: number;
    /** The window that was optimised (`window` option), when it was smaller than the image. */
    window?: HoleWindow;
    /** The windows that were optimised one after the other, when holes far apart had one each. */
    windows?: HoleWindow[];
    /** Runs averaged (`samples` option), when more than one. */
    samples?: number;
    /** The half-resolution run that started this one (`coarse` option), when there was one. */
    coarse?: { steps: number; tMax: number; lr: number; msPerStep: number };
  };
  timings: { initMs: number; loopMs: number; msPerStep: number; totalMs: number };
  trace?: RedDiffTraceEntry[];
}

/** The library's defaults: the official lambda and weighting, lr inside the official 0.1-0.5; the service's (src/schemas/restore.ts) are measured. */
export const RED_DIFF_DEFAULTS = {
  lambda: 0.25,
  lr: 0.25,
  seed: 0,
  weighting: 'snr' as RedDiffWeighting,
} as const;

function priorWeight(schedule: DdpmSchedule, t: number, weighting: RedDiffWeighting): number {
  if (weighting === 'constant') return 1;
  const inverseSqrtSnr = schedule.sqrtOneMinusAlphaBars[t] / schedule.sqrtAlphaBars[t];
  return weighting === 'sqrt' ? Math.sqrt(inverseSqrtSnr) : inverseSqrtSnr;
}

/** Which steps (1-based) record a trace entry: `count` evenly spaced, ending at the last step. */
function traceSteps(steps: number, count: number): Set<number> {
  const out = new Set<number>();
  const n = Math.min(count, steps);
  for (let i = 1; i <= n; i++) out.add(Math.round((i * steps) / n));
  return out;
}

/**
 * RED-Diff with `prior` as eps_theta (src/diffusion/eps-model.ts: `ddpmEpsModel` for the DDPM U-Net). Each step
 * calls it once on the whole batch, with the step's integer timestep as a float [batch] tensor.
 */
export async function redDiffRestore(
  tf: Tf,
  prior: EpsModel,
  schedule: DdpmSchedule,
  H: DegradationOperator,
  y: Tensor4D,
  options: RedDiffOptions,
): Promise<RedDiffResult> {
  const samples = options.samples ?? 1;
  if (!(Number.isInteger(samples) && samples >= 1))
    throw new RangeError(`samples must be a positive integer, got ${samples}`);
  if (samples > 1) return averagedRestore(tf, prior, schedule, H, y, options, samples);
  const window = options.window;
  if (window && H.kind === 'mask' && H.mask && windowsMeasurements(options.sigmaY)) {
    // Coarse to fine halves the window: its sides are then multiples of twice the network's factor. Without a prior
    // (lambda 0) a half-resolution run has nothing to add: the start stays the run's own.
    const run = options.coarse && options.lambda === 0 ? { ...options, coarse: undefined } : options;
    const multiple = window.multiple * (run.coarse ? 2 : 1);
    const wins = holeWindows(H.mask, H.height, H.width, window.margin, multiple);
    if (wins) return windowedRestore(tf, prior, schedule, H, y, run, wins);
    if (run.coarse && H.height % multiple === 0 && H.width % multiple === 0)
      return coarseToFine(tf, prior, schedule, H, y, run);
  }
  const started = performance.now();
  const steps = options.steps;
  const lambda = options.lambda ?? RED_DIFF_DEFAULTS.lambda;
  const lr = options.lr ?? RED_DIFF_DEFAULTS.lr;
  const seed = options.seed ?? RED_DIFF_DEFAULTS.seed;
  const weighting = options.weighting ?? RED_DIFF_DEFAULTS.weighting;
  const sigmaY = options.sigmaY ?? 0;
  const [lo, hi] = options.range ?? [-1, 1];
  if (!(lambda >= 0 && Number.isFinite(lambda))) throw new RangeError('lambda must be a finite number >= 0');
  if (!(lr > 0 && Number.isFinite(lr))) throw new RangeError('lr must be a positive number');
  const tMax = options.tMax ?? schedule.timesteps - 1;
  if (!(Number.isInteger(tMax) && tMax >= 1 && tMax <= schedule.timesteps - 1))
    throw new RangeError(`tMax must be an integer in 1..${schedule.timesteps - 1}, got ${tMax}`);
  // `steps` timesteps evenly spaced from tMax down to 0 (repeats are allowed when steps > tMax + 1).
  const timesteps = stridedTimesteps(schedule, steps).map((t) =>
    Math.round((t * tMax) / (schedule.timesteps - 1)),
  );
  const progressEvery = Math.max(1, Math.floor(options.progressEvery ?? Math.ceil(steps / 20)));
  const tracing = options.trace && options.trace > 0 ? traceSteps(steps, options.trace) : null;
  const trace: RedDiffTraceEntry[] = [];

  const batch = y.shape[0];
  const shape: [number, number, number, number] = [batch, H.height, H.width, 1];
  const size = batch * H.height * H.width;
  const rng = new Rng(seed);
  const noise = new Float32Array(size);

  // Adam (Kingma & Ba) written out rather than tf.train.adam: its dispose() leaks the second moments (tf.js 4.22),
  // and torch's epsilon 1e-8 (the official code's optimiser) is kept. Bias-corrected, as torch.optim.Adam.
  const beta1 = 0.9;
  const beta2 = 0.99;
  const adamEpsilon = 1e-8;
  const init = options.init ?? 'pinv';
  if (options.start && options.start.length !== size)
    throw new RangeError(`start has ${options.start.length} values, y ${size}`);
  let mu = options.start ? tf.tensor4d(options.start, shape) : await initialEstimate(tf, H, y, init);
  let firstMoment = tf.zerosLike(mu) as Tensor4D;
  let secondMoment = tf.zerosLike(mu) as Tensor4D;
  // d/dmu of mean((y - H mu)^2) / 2; H is linear, so its gradient comes from tf.grad through H.forward.
  const dataGradient = tf.grad((m: Tensor) =>
    tf.div(tf.mean(tf.square(tf.sub(y, H.forward(tf, m as Tensor4D)))), 2),
  );
  const initMs = performance.now() - started;
  const loopStart = performance.now();
  try {
    // The iterate, the moments and the gradients stay on the device: only a traced step reads back (async).
    for (const [index, t] of timesteps.entries()) {
      options.signal?.throwIfAborted();
      // The task running this was cancelled (src/util/cancellation.ts): stop before the next network call.
      checkCancelled();
      const step = index + 1;
      const a = schedule.sqrtAlphaBars[t];
      const s = schedule.sqrtOneMinusAlphaBars[t];
      const weight = lambda * priorWeight(schedule, t, weighting);
      rng.fillNormal(noise);
      const next = tf.tidy(() => {
        let gradient = dataGradient(mu);
        if (weight !== 0) {
          const eps = tf.tensor4d(noise, shape);
          const xt = tf.add(tf.mul(mu, a), tf.mul(eps, s)) as Tensor4D;
          // The gradient of lambda w_t mean(sg(epsHat - eps) . mu): the network is evaluated, never differentiated.
          const priorGradient = tf.mul(tf.sub(prior(xt, tf.fill([batch], t)), eps), weight / size);
          gradient = tf.add(gradient, priorGradient);
        }
        const m = tf.add(tf.mul(firstMoment, beta1), tf.mul(gradient, 1 - beta1));
        const v = tf.add(tf.mul(secondMoment, beta2), tf.mul(tf.square(gradient), 1 - beta2));
        const mHat = tf.div(m, 1 - beta1 ** step);
        const vHat = tf.div(v, 1 - beta2 ** step);
        const update = tf.mul(tf.div(mHat, tf.add(tf.sqrt(vHat), adamEpsilon)), lr);
        return { mu: tf.sub(mu, update) as Tensor4D, m: m as Tensor4D, v: v as Tensor4D };
      });
      tf.dispose([mu, firstMoment, secondMoment]);
      mu = next.mu;
      firstMoment = next.m;
      secondMoment = next.v;
      if (tracing?.has(step))
        trace.push({ step, t, x: await tidyValues(tf, () => tf.clipByValue(mu, lo, hi)) });
      if (options.onProgress && (step % progressEvery === 0 || step === steps))
        options.onProgress({ step, steps, t });
    }
    const loopMs = performance.now() - loopStart;
    const finals = tf.tidy(() => {
      const clipped = tf.clipByValue(mu, lo, hi) as Tensor4D;
      const misfit = tf.sub(y, H.forward(tf, clipped));
      return [clipped, tf.norm(misfit), tf.norm(y)];
    });
    let x: Float32Array;
    let residualNorm: number;
    let yNorm: number;
    try {
      const [xs, rs, ys] = await Promise.all(finals.map((t) => t.data()));
      x = xs as Float32Array;
      residualNorm = rs[0];
      yNorm = ys[0];
    } finally {
      tf.dispose(finals);
    }
    return {
      x: Float32Array.from(x),
      shape,
      residual: yNorm > 0 ? residualNorm / yNorm : residualNorm,
      residualNorm,
      steps,
      params: { lambda, lr, seed, weighting, sigmaY, init, tMax },
      timings: { initMs, loopMs, msPerStep: loopMs / steps, totalMs: performance.now() - started },
      ...(tracing ? { trace } : {}),
    };
  } finally {
    tf.dispose([mu, firstMoment, secondMoment]);
  }
}

/**
 * RED-Diff on the windows `wins` (disjoint, each holding only its own holes) of a mask problem, one after the other:
 * y and the mask cropped to each, the estimates pasted into y (clipped to the range) outside them, where every pixel
 * is observed; the residual is that of the whole image; progress counts every window's steps, a trace entry is the
 * whole image with every window's entry pasted in.
 */
async function windowedRestore(
  tf: Tf,
  prior: EpsModel,
  schedule: DdpmSchedule,
  H: DegradationOperator,
  y: Tensor4D,
  options: RedDiffOptions,
  wins: HoleWindow[],
): Promise<RedDiffResult> {
  const started = performance.now();
  const { height, width } = H;
  const batch = y.shape[0];
  const [lo, hi] = options.range ?? [-1, 1];
  const yValues = Float32Array.from(await y.data());
  const base = Float32Array.from(yValues, (v) => Math.min(hi, Math.max(lo, v)));
  const onProgress = options.onProgress;
  // Coarse to fine halves a window: only one whose sides are multiples of twice the network's factor (a window as
  // tall or as wide as the image has the image's side, a multiple of the factor only) runs it.
  const halvable = 2 * (options.window?.multiple ?? 1);
  const runs: RedDiffResult[] = [];
  let x: Float32Array = base;
  // Outside every window x = clip(y) and every pixel is observed: the misfit there is y - clip(y).
  let outside: Float32Array = yValues;
  let outsideBase: Float32Array = base;
  for (const [k, win] of wins.entries()) {
    const inner = maskOperator(cropPlanes(H.mask as Float32Array, height, width, win), win.height, win.width);
    const yWindow = tf.slice(y, [0, win.top, win.left, 0], [batch, win.height, win.width, 1]) as Tensor4D;
    const innerOptions: RedDiffOptions = {
      ...options,
      window: undefined,
      ...(onProgress && wins.length > 1
        ? {
            onProgress: (p: RedDiffProgress) =>
              onProgress({ ...p, step: k * p.steps + p.step, steps: wins.length * p.steps }),
          }
        : {}),
    };
    try {
      runs.push(
        options.coarse && win.height % halvable === 0 && win.width % halvable === 0
          ? await coarseToFine(tf, prior, schedule, inner, yWindow, innerOptions)
          : await redDiffRestore(tf, prior, schedule, inner, yWindow, innerOptions),
      );
    } finally {
      yWindow.dispose();
      inner.dispose();
    }
    const result = runs[k];
    x = pastePlanes(x, height, width, win, result.x);
    const zeros = new Float32Array(result.x.length);
    outside = pastePlanes(outside, height, width, win, zeros);
    outsideBase = pastePlanes(outsideBase, height, width, win, zeros);
  }
  let misfit = runs.reduce((sum, r) => sum + r.residualNorm ** 2, 0);
  let norm = 0;
  for (let i = 0; i < yValues.length; i++) {
    misfit += (outside[i] - outsideBase[i]) ** 2;
    norm += yValues[i] ** 2;
  }
  const residualNorm = Math.sqrt(misfit);
  const yNorm = Math.sqrt(norm);
  const [first] = runs;
  const loopMs = runs.reduce((sum, r) => sum + r.timings.loopMs, 0);
  return {
    ...first,
    x,
    shape: [batch, height, width, 1],
    residual: yNorm > 0 ? residualNorm / yNorm : residualNorm,
    residualNorm,
    params: { ...first.params, ...(wins.length === 1 ? { window: wins[0] } : { windows: wins }) },
    timings: {
      initMs: runs.reduce((sum, r) => sum + r.timings.initMs, 0),
      loopMs,
      msPerStep: loopMs / (runs.length * first.steps),
      totalMs: performance.now() - started,
    },
    ...(first.trace
      ? {
          trace: first.trace.map((e, i) => ({
            ...e,
            x: runs.reduce<Float32Array>(
              (img, r, k) => pastePlanes(img, height, width, wins[k], (r.trace ?? [])[i].x),
              base,
            ),
          })),
        }
      : {}),
  };
}

/**
 * Coarse to fine (the `coarse` option) on a mask problem with even sides (the window, or the whole image): RED-Diff
 * on the half-resolution problem, then on the full one from y where observed and the up-sampled half-resolution
 * estimate where missing. Progress counts both runs' steps; a trace is the full-resolution run's.
 */
async function coarseToFine(
  tf: Tf,
  prior: EpsModel,
  schedule: DdpmSchedule,
  H: DegradationOperator,
  y: Tensor4D,
  options: RedDiffOptions,
): Promise<RedDiffResult> {
  const started = performance.now();
  const coarse = options.coarse as RedDiffCoarse;
  if (!(Number.isInteger(coarse.steps) && coarse.steps >= 1))
    throw new RangeError(`coarse.steps must be a positive integer, got ${coarse.steps}`);
  const { height, width } = H;
  const mask = H.mask as Float32Array;
  const batch = y.shape[0];
  const h2 = height / 2;
  const w2 = width / 2;
  // A half-resolution pixel is observed when its four pixels are.
  const halfMask = new Float32Array(batch * h2 * w2);
  for (let b = 0; b < batch; b++)
    for (let r = 0; r < h2; r++)
      for (let c = 0; c < w2; c++) {
        const i = b * height * width + 2 * r * width + 2 * c;
        const seen = mask[i] > 0.5 && mask[i + 1] > 0.5 && mask[i + width] > 0.5 && mask[i + width + 1] > 0.5;
        halfMask[(b * h2 + r) * w2 + c] = seen ? 1 : 0;
      }
  const halfOp = maskOperator(halfMask, h2, w2);
  const yHalf = tf.tidy(() => halfOp.forward(tf, tf.avgPool(y, 2, 2, 'valid') as Tensor4D));
  const onProgress = options.onProgress;
  const total = coarse.steps + options.steps;
  const base = { ...options, window: undefined, coarse: undefined, start: undefined, trace: undefined };
  let first: RedDiffResult;
  try {
    first = await redDiffRestore(tf, prior, schedule, halfOp, yHalf, {
      ...base,
      steps: coarse.steps,
      tMax: coarse.tMax ?? options.tMax,
      lr: coarse.lr ?? options.lr,
      ...(onProgress ? { onProgress: (p: RedDiffProgress) => onProgress({ ...p, steps: total }) } : {}),
    });
  } finally {
    yHalf.dispose();
    halfOp.dispose();
  }
  const start = await tidyValues(tf, () => {
    const up = tf.image.resizeBilinear(
      tf.tensor4d(first.x, [batch, h2, w2, 1]),
      [height, width],
      false,
      true,
    );
    const observed = tf.tensor4d(mask, [batch, height, width, 1]);
    return tf.add(tf.mul(observed, y), tf.mul(tf.sub(1, observed), up));
  });
  const fine = await redDiffRestore(tf, prior, schedule, H, y, {
    ...options,
    tMax: coarse.fineTMax ?? options.tMax,
    window: undefined,
    coarse: undefined,
    start,
    ...(onProgress
      ? {
          onProgress: (p: RedDiffProgress) => onProgress({ ...p, step: coarse.steps + p.step, steps: total }),
        }
      : {}),
  });
  const { lr, tMax } = first.params;
  return {
    ...fine,
    params: { ...fine.params, coarse: { steps: coarse.steps, tMax, lr, msPerStep: first.timings.msPerStep } },
    timings: {
      ...fine.timings,
      initMs: fine.timings.initMs + first.timings.totalMs,
      totalMs: performance.now() - started,
    },
  };
}

/** Seeds of the averaged runs: seed + SAMPLE_SEED_STRIDE k (as bench/restore-sweep.ts's AVERAGE). */
const SAMPLE_SEED_STRIDE = 1000;

/**
 * The mean of `samples` RED-Diff runs (each clipped, so the mean is in range) with seeds seed + 1000 k; the residual
 * is the mean's, progress counts every run's steps, a trace is the mean of the runs' traces.
 */
async function averagedRestore(
  tf: Tf,
  prior: EpsModel,
  schedule: DdpmSchedule,
  H: DegradationOperator,
  y: Tensor4D,
  options: RedDiffOptions,
  samples: number,
): Promise<RedDiffResult> {
  const started = performance.now();
  const seed = options.seed ?? RED_DIFF_DEFAULTS.seed;
  const runs: RedDiffResult[] = [];
  for (let k = 0; k < samples; k++) {
    const onProgress = options.onProgress;
    runs.push(
      await redDiffRestore(tf, prior, schedule, H, y, {
        ...options,
        samples: 1,
        seed: seed + SAMPLE_SEED_STRIDE * k,
        ...(onProgress
          ? {
              onProgress: (p: RedDiffProgress) =>
                onProgress({ step: k * p.steps + p.step, steps: samples * p.steps, t: p.t }),
            }
          : {}),
      }),
    );
  }
  const mean = (arrays: Float32Array[]) => {
    const out = new Float32Array(arrays[0].length);
    for (const a of arrays) for (let i = 0; i < out.length; i++) out[i] += a[i];
    for (let i = 0; i < out.length; i++) out[i] /= arrays.length;
    return out;
  };
  const x = mean(runs.map((r) => r.x));
  const [first] = runs;
  const norms = tf.tidy(() => {
    const misfit = tf.sub(y, H.forward(tf, tf.tensor4d(x, first.shape)));
    return [tf.norm(misfit), tf.norm(y)];
  });
  const [residualNorm, yNorm] = await Promise.all(norms.map(async (t) => (await t.data())[0]));
  tf.dispose(norms);
  const loopMs = runs.reduce((sum, r) => sum + r.timings.loopMs, 0);
  return {
    ...first,
    x,
    residual: yNorm > 0 ? residualNorm / yNorm : residualNorm,
    residualNorm,
    params: { ...first.params, seed, samples },
    timings: {
      initMs: runs.reduce((sum, r) => sum + r.timings.initMs, 0),
      loopMs,
      msPerStep: loopMs / (samples * first.steps),
      totalMs: performance.now() - started,
    },
    ...(first.trace
      ? { trace: first.trace.map((e, i) => ({ ...e, x: mean(runs.map((r) => (r.trace ?? [])[i].x)) })) }
      : {}),
  };
}
