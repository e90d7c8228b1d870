/**
 * The DDPM noise schedule (Ho, Jain & Abbeel, 2020) and the closed-form identities every diffusion pipeline uses.
 *
 * Convention (the same as the official DDPM, RED-Diff and EPS-AD code): timesteps are integer indices
 * t = 0 .. T-1, beta_t grows linearly from betaStart (t = 0) to betaEnd (t = T-1), alpha_t = 1 - beta_t and
 * alphaBar_t = prod_{s <= t} alpha_s, so x_t = sqrt(alphaBar_t) x_0 + sqrt(1 - alphaBar_t) eps. The network
 * eps_theta(x_t, t) receives t as the float value of that index. Everything here is Float64Array numerics: the
 * schedule is the ground truth that tensor code samples from.
 */

export interface DdpmScheduleConfig {
  /** Number of diffusion steps T. */
  timesteps: number;
  betaStart: number;
  betaEnd: number;
}

export const DEFAULT_SCHEDULE_CONFIG: DdpmScheduleConfig = {
  timesteps: 1000,
  betaStart: 1e-4,
  betaEnd: 0.02,
};

export interface DdpmSchedule extends DdpmScheduleConfig {
  kind: 'linear';
  betas: Float64Array;
  alphas: Float64Array;
  alphaBars: Float64Array;
  sqrtAlphaBars: Float64Array;
  sqrtOneMinusAlphaBars: Float64Array;
}

/**
 * The linear-beta schedule; alphaBar is accumulated in float64 (a product of 1000 factors loses ~1e-13). A field of
 * `config` that is undefined (absent from a manifest's schedule section) takes its default.
 */
export function linearSchedule(config: Partial<DdpmScheduleConfig> = {}): DdpmSchedule {
  const given = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined));
  const { timesteps, betaStart, betaEnd } = { ...DEFAULT_SCHEDULE_CONFIG, ...given };
  if (!Number.isInteger(timesteps) || timesteps < 1)
    throw new RangeError(`timesteps must be a positive integer`);
  if (!(betaStart > 0 && betaEnd < 1 && betaStart <= betaEnd))
    throw new RangeError(`need 0 < betaStart <= betaEnd < 1, got ${betaStart}, ${betaEnd}`);
  const betas = new Float64Array(timesteps);
  const alphas = new Float64Array(timesteps);
  const alphaBars = new Float64Array(timesteps);
  const sqrtAlphaBars = new Float64Array(timesteps);
  const sqrtOneMinusAlphaBars = new Float64Array(timesteps);
  let product = 1;
  for (let t = 0; t < timesteps; t++) {
    betas[t] = timesteps === 1 ? betaStart : betaStart + ((betaEnd - betaStart) * t) / (timesteps - 1);
    alphas[t] = 1 - betas[t];
    product *= alphas[t];
    alphaBars[t] = product;
    sqrtAlphaBars[t] = Math.sqrt(product);
    sqrtOneMinusAlphaBars[t] = Math.sqrt(1 - product);
  }
  return {
    kind: 'linear',
    timesteps,
    betaStart,
    betaEnd,
    betas,
    alphas,
    alphaBars,
    sqrtAlphaBars,
    sqrtOneMinusAlphaBars,
  };
}

function checkStep(schedule: DdpmSchedule, t: number): void {
  if (!Number.isInteger(t) || t < 0 || t >= schedule.timesteps)
    throw new RangeError(`timestep ${t} outside 0..${schedule.timesteps - 1}`);
}

type FloatArray = Float32Array | Float64Array;

function checkSameLength(a: FloatArray, b: FloatArray): void {
  if (a.length !== b.length) throw new RangeError(`length mismatch: ${a.length} vs ${b.length}`);
}

/** Forward process sample x_t = sqrt(alphaBar_t) x0 + sqrt(1 - alphaBar_t) eps. */
export function qSample(schedule: DdpmSchedule, x0: FloatArray, eps: FloatArray, t: number): Float64Array {
  checkStep(schedule, t);
  checkSameLength(x0, eps);
  const a = schedule.sqrtAlphaBars[t];
  const s = schedule.sqrtOneMinusAlphaBars[t];
  const out = new Float64Array(x0.length);
  for (let i = 0; i < out.length; i++) out[i] = a * x0[i] + s * eps[i];
  return out;
}

/** The score of the perturbed density, s(x_t, t) = -eps / sqrt(1 - alphaBar_t). */
export function scoreFromEps(schedule: DdpmSchedule, eps: FloatArray, t: number): Float64Array {
  checkStep(schedule, t);
  const k = -1 / schedule.sqrtOneMinusAlphaBars[t];
  const out = new Float64Array(eps.length);
  for (let i = 0; i < out.length; i++) out[i] = k * eps[i];
  return out;
}

/** Tweedie's estimate E[x_0 | x_t] = (x_t - sqrt(1 - alphaBar_t) eps) / sqrt(alphaBar_t). */
export function tweedieX0(schedule: DdpmSchedule, xt: FloatArray, eps: FloatArray, t: number): Float64Array {
  checkStep(schedule, t);
  checkSameLength(xt, eps);
  const a = schedule.sqrtAlphaBars[t];
  const s = schedule.sqrtOneMinusAlphaBars[t];
  const out = new Float64Array(xt.length);
  for (let i = 0; i < out.length; i++) out[i] = (xt[i] - s * eps[i]) / a;
  return out;
}

/** The noise that maps x0 to x_t: eps = (x_t - sqrt(alphaBar_t) x0) / sqrt(1 - alphaBar_t). */
export function epsFromX0(schedule: DdpmSchedule, xt: FloatArray, x0: FloatArray, t: number): Float64Array {
  checkStep(schedule, t);
  checkSameLength(xt, x0);
  const a = schedule.sqrtAlphaBars[t];
  const s = schedule.sqrtOneMinusAlphaBars[t];
  const out = new Float64Array(xt.length);
  for (let i = 0; i < out.length; i++) out[i] = (xt[i] - a * x0[i]) / s;
  return out;
}

/** Signal-to-noise ratio alphaBar_t / (1 - alphaBar_t): strictly decreasing in t. */
export function snr(schedule: DdpmSchedule, t: number): number {
  checkStep(schedule, t);
  return schedule.alphaBars[t] / (1 - schedule.alphaBars[t]);
}

/**
 * `count` timesteps spread evenly over 0..T-1, in DESCENDING order, always starting at T-1 and ending at 0
 * (count >= 2); the respacing used by strided samplers and by RED-Diff's descending loop.
 */
export function stridedTimesteps(schedule: DdpmSchedule, count: number): number[] {
  const T = schedule.timesteps;
  if (!Number.isInteger(count) || count < 1 || count > T)
    throw new RangeError(`count must be an integer in 1..${T}, got ${count}`);
  if (count === 1) return [T - 1];
  const steps: number[] = [];
  for (let i = count - 1; i >= 0; i--) steps.push(Math.round((i * (T - 1)) / (count - 1)));
  return steps;
}

/**
 * The posterior q(x_prev | x_t, x_0) of a (possibly respaced) pair of timesteps t > prev (prev = -1 means x_0,
 * alphaBar = 1): x_prev = coefX0 * x0 + coefXt * x_t + sqrt(variance) z. With prev = t - 1 these are DDPM's
 * beta-tilde formulas; for a respaced pair the effective beta is 1 - alphaBar_t / alphaBar_prev (improved DDPM's
 * respacing), so ancestral sampling on a stride stays a proper DDPM on the sub-sequence.
 */
export function posteriorCoefficients(
  schedule: DdpmSchedule,
  t: number,
  prev: number,
): { coefX0: number; coefXt: number; variance: number } {
  checkStep(schedule, t);
  if (prev !== -1) checkStep(schedule, prev);
  if (prev >= t) throw new RangeError(`prev (${prev}) must be below t (${t})`);
  const abT = schedule.alphaBars[t];
  const abPrev = prev < 0 ? 1 : schedule.alphaBars[prev];
  const beta = 1 - abT / abPrev;
  const alpha = 1 - beta;
  return {
    coefX0: (Math.sqrt(abPrev) * beta) / (1 - abT),
    coefXt: (Math.sqrt(alpha) * (1 - abPrev)) / (1 - abT),
    variance: (beta * (1 - abPrev)) / (1 - abT),
  };
}

/** The schedule's parameters as recorded in manifests. */
export function describeSchedule(schedule: DdpmSchedule): Record<string, unknown> {
  return {
    kind: schedule.kind,
    timesteps: schedule.timesteps,
    betaStart: schedule.betaStart,
    betaEnd: schedule.betaEnd,
    alphaBarFirst: schedule.alphaBars[0],
    alphaBarLast: schedule.alphaBars[schedule.timesteps - 1],
  };
}
