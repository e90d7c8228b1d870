/**
 * Marginals (the "problem" half of geometry -> problem -> solver): uniform weights and the checks every
 * solver runs before it starts, so a malformed request fails early with an OtInputError instead of a NaN plan.
 */
import { OtInputError } from './types.js';

/**
 * Smallest total mass accepted (2^-960, about 1e-289): below it the entries of a plan approach the subnormal
 * range (< 2.2e-308), where doubles lose precision and the solvers' absolute tolerances mean nothing.
 */
export const MIN_TOTAL_MASS = 2 ** -960;

/** Uniform probability vector of length n (each entry 1/n). */
export function uniform(n: number): Float64Array {
  if (!Number.isInteger(n) || n <= 0) throw new OtInputError(`uniform(n) needs a positive integer, got ${n}`);
  return new Float64Array(n).fill(1 / n);
}

/** Sum with Neumaier compensation: marginal sums decide 'balanced or not' at 1e-9, so keep them exact-ish. */
export function accurateSum(x: ArrayLike<number>): number {
  let sum = 0;
  let compensation = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    const t = sum + v;
    compensation += Math.abs(sum) >= Math.abs(v) ? sum - t + v : v - t + sum;
    sum = t;
  }
  // An overflowing sum is +Infinity (the compensation of an overflow is NaN and meaningless).
  return Number.isFinite(sum) ? sum + compensation : sum;
}

/** Throws OtInputError('invalid') unless every entry is finite and >= 0 and the total is positive. */
export function checkWeights(w: ArrayLike<number>, name: string, expectedLength?: number): void {
  if (expectedLength !== undefined && w.length !== expectedLength) {
    throw new OtInputError(`${name} has length ${w.length}, expected ${expectedLength}`);
  }
  if (w.length === 0) throw new OtInputError(`${name} is empty`);
  for (let i = 0; i < w.length; i++) {
    const v = w[i];
    if (!Number.isFinite(v)) throw new OtInputError(`${name}[${i}] is not finite (${v})`);
    if (v < 0) throw new OtInputError(`${name}[${i}] is negative (${v})`);
  }
  const total = accurateSum(w);
  if (total === Number.POSITIVE_INFINITY) {
    throw new OtInputError(
      `the total mass of ${name} overflows double precision: divide the weights by a common factor ` +
        '(the plan and the cost scale with them)',
      'range',
    );
  }
  if (!(total > 0)) throw new OtInputError(`${name} has zero total mass`);
  if (total < MIN_TOTAL_MASS) {
    throw new OtInputError(
      `the total mass of ${name} (${total}) is below ${MIN_TOTAL_MASS.toExponential(2)}, where plan entries become ` +
        'subnormal numbers and lose their precision: multiply the weights by a common factor ' +
        '(the plan and the cost scale with them)',
      'range',
    );
  }
}

export interface BalanceOptions {
  /** Rescale b so that sum(b) = sum(a) instead of throwing when the masses differ. Default false. */
  normalize?: boolean;
  /** Relative tolerance on |sum a - sum b| / max(sum a, sum b). Default 1e-9. */
  relativeTolerance?: number;
}

/**
 * Validates a balanced problem's marginals. Returns (possibly rescaled) copies as Float64Array; b is always
 * rescaled by sum(a)/sum(b) so the solvers see exactly equal masses (as POT does), a is returned as given.
 * Throws OtInputError(kind 'unbalanced') with both sums when they differ by more than the tolerance and
 * `normalize` is off.
 */
export function checkBalanced(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  options: BalanceOptions = {},
): { a: Float64Array; b: Float64Array; massA: number; massB: number } {
  checkWeights(a, 'a');
  checkWeights(b, 'b');
  const massA = accurateSum(a);
  const massB = accurateSum(b);
  const tolerance = options.relativeTolerance ?? 1e-9;
  const gap = Math.abs(massA - massB) / Math.max(massA, massB);
  if (gap > tolerance && !options.normalize) {
    throw new OtInputError(
      `marginals are not balanced: sum(a) = ${massA}, sum(b) = ${massB} (relative gap ${gap.toExponential(3)} > ${tolerance}); ` +
        'pass normalize: true to rescale b, or use the unbalanced solver',
      'unbalanced',
      { massA, massB },
    );
  }
  const aOut = Float64Array.from(a);
  const bOut = Float64Array.from(b);
  const scale = massA / massB;
  for (let j = 0; j < bOut.length; j++) bOut[j] *= scale;
  return { a: aOut, b: bOut, massA, massB };
}

/** Row sums and column sums of a dense row-major n x m plan. */
export function planMarginals(
  plan: Float64Array,
  n: number,
  m: number,
): { rows: Float64Array; cols: Float64Array } {
  const rows = new Float64Array(n);
  const cols = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    let s = 0;
    const off = i * m;
    for (let j = 0; j < m; j++) {
      const p = plan[off + j];
      s += p;
      cols[j] += p;
    }
    rows[i] = s;
  }
  return { rows, cols };
}

/** L1 marginal error sum|P1 - a| + sum|P^T 1 - b| of a dense plan. */
export function marginalErrorL1(plan: Float64Array, a: ArrayLike<number>, b: ArrayLike<number>): number {
  const { rows, cols } = planMarginals(plan, a.length, b.length);
  let err = 0;
  for (let i = 0; i < a.length; i++) err += Math.abs(rows[i] - a[i]);
  for (let j = 0; j < b.length; j++) err += Math.abs(cols[j] - b[j]);
  return err;
}
