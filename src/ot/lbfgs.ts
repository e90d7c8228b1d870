/**
 * Limited-memory BFGS for smooth unconstrained minimisation in float64.
 *
 * Two-loop recursion (Nocedal & Wright, Alg. 7.4) with a strong-Wolfe line search (Alg. 3.5/3.6,
 * cubic interpolation in the zoom phase). Written here rather than taken from npm so the OT solvers
 * (quadratic and sparsity-constrained OT) have no numeric dependency and stay Float64Array end to end.
 */

import { throwIfAborted } from './types.js';

/** Writes the gradient at x into grad and returns f(x). Must not keep references to x or grad. */
export type Objective = (x: Float64Array, grad: Float64Array) => number;

export interface LbfgsOptions {
  /** Number of curvature pairs kept (m). */
  memory?: number;
  maxIter?: number;
  /** Stop when max_i |grad_i| <= gtol (scipy's pgtol convention). */
  gtol?: number;
  /** Stop when (f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol (scipy's factr convention, in units of 1). */
  ftol?: number;
  /** Function evaluations allowed per line search. */
  maxLineSearch?: number;
  /** Sufficient-decrease (c1) and curvature (c2) constants of the strong Wolfe conditions. */
  c1?: number;
  c2?: number;
  signal?: AbortSignal;
}

export interface LbfgsResult {
  x: Float64Array;
  f: number;
  grad: Float64Array;
  /** max_i |grad_i| at the returned point. */
  gradNorm: number;
  iterations: number;
  evaluations: number;
  converged: boolean;
  message: string;
}

function dot(u: Float64Array, v: Float64Array): number {
  let s = 0;
  for (let i = 0; i < u.length; i++) s += u[i] * v[i];
  return s;
}

function maxAbs(u: Float64Array): number {
  let s = 0;
  for (let i = 0; i < u.length; i++) {
    const a = Math.abs(u[i]);
    if (a > s || Number.isNaN(a)) s = a;
  }
  return s;
}

/** Minimiser of the cubic interpolating (a, fa, ga) and (b, fb, gb), or NaN when it does not exist. */
function cubicMinimizer(a: number, fa: number, ga: number, b: number, fb: number, gb: number): number {
  const d1 = ga + gb - (3 * (fa - fb)) / (a - b);
  const disc = d1 * d1 - ga * gb;
  if (!(disc >= 0)) return Number.NaN;
  const d2 = Math.sign(b - a) * Math.sqrt(disc);
  return b - ((b - a) * (gb + d2 - d1)) / (gb - ga + 2 * d2);
}

interface LineSearchOutcome {
  step: number;
  f: number;
  ok: boolean;
  evaluations: number;
}

/**
 * Strong-Wolfe line search along direction d from x (value f0, slope g0 = grad.d < 0).
 * On return xNew/gNew hold the accepted point and its gradient.
 */
function strongWolfe(
  fun: Objective,
  x: Float64Array,
  f0: number,
  g0: number,
  d: Float64Array,
  initialStep: number,
  xNew: Float64Array,
  gNew: Float64Array,
  c1: number,
  c2: number,
  maxEval: number,
): LineSearchOutcome {
  let evaluations = 0;
  const evalAt = (t: number): { f: number; slope: number } => {
    for (let i = 0; i < x.length; i++) xNew[i] = x[i] + t * d[i];
    const f = fun(xNew, gNew);
    evaluations++;
    return { f, slope: dot(gNew, d) };
  };
  // Near the optimum f changes by less than its own rounding error, so comparisons of f values stop
  // meaning anything. There we fall back to the approximate Wolfe conditions of Hager & Zhang (2005),
  // which read the slope only: f(t) - f0 ~ t (g0 + slope) / 2 <= c1 t g0  <=>  slope <= (2 c1 - 1) g0.
  const fNoise = 1e-11 * Math.abs(f0) + 1e-300;
  const sufficientDecrease = (t: number, f: number, slope: number): boolean =>
    f <= f0 + c1 * t * g0 || (Math.abs(f - f0) <= fNoise && slope <= (2 * c1 - 1) * g0);
  const curvatureHolds = (slope: number): boolean => Math.abs(slope) <= -c2 * g0;
  /** Is the point (f, slope) worse than the bracket end (fLo) it is compared with? */
  const worseThan = (f: number, slope: number, fLo: number): boolean =>
    Math.abs(f - fLo) <= fNoise ? slope >= 0 : f >= fLo;

  // Zoom between a bracket [lo, hi] known to contain a point satisfying the strong Wolfe conditions.
  const zoom = (
    lo: number,
    fLo: number,
    gLo: number,
    hi: number,
    fHi: number,
    gHi: number,
  ): LineSearchOutcome => {
    let best = { step: lo, f: fLo };
    while (evaluations < maxEval) {
      let t = cubicMinimizer(lo, fLo, gLo, hi, fHi, gHi);
      const width = Math.abs(hi - lo);
      const left = Math.min(lo, hi);
      // Keep the trial well inside the bracket; otherwise bisect (guards against a degenerate cubic).
      if (!Number.isFinite(t) || t < left + 0.1 * width || t > left + 0.9 * width) t = 0.5 * (lo + hi);
      if (width < 1e-16 * Math.max(1, Math.abs(lo))) break;
      const { f, slope } = evalAt(t);
      if (!Number.isFinite(f) || !sufficientDecrease(t, f, slope) || worseThan(f, slope, fLo)) {
        hi = t;
        fHi = Number.isFinite(f) ? f : Number.MAX_VALUE;
        gHi = Number.isFinite(slope) ? slope : 0;
      } else {
        if (curvatureHolds(slope)) return { step: t, f, ok: true, evaluations };
        if (slope * (hi - lo) >= 0) {
          hi = lo;
          fHi = fLo;
          gHi = gLo;
        }
        lo = t;
        fLo = f;
        gLo = slope;
        best = { step: t, f };
      }
    }
    // Out of evaluations: accept the best sufficient-decrease point found, if it moved at all.
    if (best.step > 0) {
      evalAt(best.step);
      return { step: best.step, f: best.f, ok: true, evaluations };
    }
    return { step: 0, f: f0, ok: false, evaluations };
  };

  let prevT = 0;
  let prevF = f0;
  let prevSlope = g0;
  let t = initialStep;
  for (let k = 0; evaluations < maxEval; k++) {
    const { f, slope } = evalAt(t);
    if (!Number.isFinite(f)) {
      // Stepped outside the domain where f is finite: shrink the bracket towards the last good point.
      return zoom(prevT, prevF, prevSlope, t, Number.MAX_VALUE, 0);
    }
    if (!sufficientDecrease(t, f, slope) || (k > 0 && worseThan(f, slope, prevF))) {
      return zoom(prevT, prevF, prevSlope, t, f, slope);
    }
    if (curvatureHolds(slope)) return { step: t, f, ok: true, evaluations };
    if (slope >= 0) return zoom(t, f, slope, prevT, prevF, prevSlope);
    prevT = t;
    prevF = f;
    prevSlope = slope;
    t *= 2;
  }
  return { step: 0, f: f0, ok: false, evaluations };
}

/** Minimises fun from x0 (x0 is not modified). */
export function minimizeLbfgs(fun: Objective, x0: Float64Array, options: LbfgsOptions = {}): LbfgsResult {
  const memory = options.memory ?? 10;
  const maxIter = options.maxIter ?? 1000;
  const gtol = options.gtol ?? 1e-8;
  const ftol = options.ftol ?? 1e-15;
  const maxLineSearch = options.maxLineSearch ?? 30;
  const c1 = options.c1 ?? 1e-4;
  const c2 = options.c2 ?? 0.9;
  const dim = x0.length;

  let x = Float64Array.from(x0);
  let grad = new Float64Array(dim);
  let xNew = new Float64Array(dim);
  let gNew = new Float64Array(dim);
  const direction = new Float64Array(dim);
  const sHist: Float64Array[] = [];
  const yHist: Float64Array[] = [];
  const rhoHist: number[] = [];
  const alpha = new Float64Array(memory);

  let f = fun(x, grad);
  let evaluations = 1;
  if (!Number.isFinite(f)) {
    return {
      x,
      f,
      grad,
      gradNorm: maxAbs(grad),
      iterations: 0,
      evaluations,
      converged: false,
      message: 'objective is not finite at the starting point',
    };
  }
  let gradNorm = maxAbs(grad);
  let iterations = 0;
  let message = `reached maxIter=${maxIter}`;
  let converged = false;

  while (true) {
    if (gradNorm <= gtol) {
      converged = true;
      message = 'gradient norm below gtol';
      break;
    }
    if (iterations >= maxIter) break;
    throwIfAborted(options.signal);

    // Two-loop recursion: direction = -H_k grad with H_0 = (s'y / y'y) I.
    for (let i = 0; i < dim; i++) direction[i] = -grad[i];
    const h = sHist.length;
    for (let j = h - 1; j >= 0; j--) {
      alpha[j] = rhoHist[j] * dot(sHist[j], direction);
      const y = yHist[j];
      for (let i = 0; i < dim; i++) direction[i] -= alpha[j] * y[i];
    }
    if (h > 0) {
      const gamma = dot(sHist[h - 1], yHist[h - 1]) / dot(yHist[h - 1], yHist[h - 1]);
      for (let i = 0; i < dim; i++) direction[i] *= gamma;
    }
    for (let j = 0; j < h; j++) {
      const beta = rhoHist[j] * dot(yHist[j], direction);
      const s = sHist[j];
      for (let i = 0; i < dim; i++) direction[i] += (alpha[j] - beta) * s[i];
    }
    let slope = dot(grad, direction);
    if (!(slope < 0)) {
      // Curvature memory went bad (non-convex region or rounding): restart from steepest descent.
      sHist.length = 0;
      yHist.length = 0;
      rhoHist.length = 0;
      for (let i = 0; i < dim; i++) direction[i] = -grad[i];
      slope = dot(grad, direction);
    }
    // First iteration: a unit-length step in the steepest-descent direction, as scipy does.
    const initialStep = h === 0 ? Math.min(1, 1 / Math.max(Math.sqrt(-slope), 1e-300)) : 1;
    const ls = strongWolfe(fun, x, f, slope, direction, initialStep, xNew, gNew, c1, c2, maxLineSearch);
    evaluations += ls.evaluations;
    if (!ls.ok) {
      if (h > 0) {
        // Retry once from steepest descent before giving up.
        sHist.length = 0;
        yHist.length = 0;
        rhoHist.length = 0;
        continue;
      }
      message = 'line search failed to find a point with sufficient decrease';
      break;
    }
    iterations++;

    const s = new Float64Array(dim);
    const y = new Float64Array(dim);
    for (let i = 0; i < dim; i++) {
      s[i] = xNew[i] - x[i];
      y[i] = gNew[i] - grad[i];
    }
    const sy = dot(s, y);
    // Skip pairs without positive curvature: keeping them would make H_k indefinite.
    if (sy > 1e-300 && sy > 1e-12 * Math.sqrt(dot(s, s) * dot(y, y))) {
      if (sHist.length === memory) {
        sHist.shift();
        yHist.shift();
        rhoHist.shift();
      }
      sHist.push(s);
      yHist.push(y);
      rhoHist.push(1 / sy);
    }

    const fPrev = f;
    [x, xNew] = [xNew, x];
    [grad, gNew] = [gNew, grad];
    f = ls.f;
    gradNorm = maxAbs(grad);
    if (gradNorm <= gtol) continue; // reported at the top of the loop
    if (ftol > 0 && (fPrev - f) / Math.max(Math.abs(fPrev), Math.abs(f), 1) <= ftol) {
      converged = true;
      message = 'relative reduction of f below ftol';
      break;
    }
  }
  return { x, f, grad, gradNorm, iterations, evaluations, converged, message };
}
