/**
 * Staying inside double precision: costs near the largest double (1.8e308) make the solvers' intermediate sums
 * (the network simplex's artificial arcs cost (max|C| + 1) * (n + m), Sinkhorn's g_j - C_ij) overflow although
 * the answer itself is representable. Dividing the cost by a power of two is exact (it only changes the
 * exponent), so solvers divide large costs by one and multiply the cost and potentials back.
 * What cannot be represented (an answer that itself overflows) is refused with OtInputError('range'): never a
 * NaN or Infinity in an answer (JSON would turn it into null).
 */
import { OtInputError } from './types.js';

/** Costs up to this magnitude are solved as given; larger ones are divided by a power of two first. */
export const SAFE_COST_MAGNITUDE = 2 ** 960;

/** Largest |v| (NaN-free input assumed). */
export function maxAbs(data: ArrayLike<number>): number {
  let s = 0;
  for (let k = 0; k < data.length; k++) s = Math.max(s, Math.abs(data[k]));
  return s;
}

/**
 * The power of two 2^k (k >= 0) that brings `magnitude` down to at most `limit`; 1 when it already is. Exact
 * to divide and multiply by (no rounding, unless a value becomes subnormal).
 */
export function powerOfTwoScale(magnitude: number, limit = SAFE_COST_MAGNITUDE): number {
  if (!(magnitude > limit)) return 1;
  let k = Math.ceil(Math.log2(magnitude / limit));
  while (magnitude / 2 ** k > limit) k++;
  return 2 ** k;
}

/** Multiplies every entry in place (potentials back to cost units after a power-of-two rescale). */
export function scaleInPlace(v: Float64Array | undefined, factor: number): void {
  if (!v || factor === 1) return;
  for (let k = 0; k < v.length; k++) v[k] *= factor;
}

/** The first non-finite number in a result (numbers, typed arrays, arrays, plain objects), as a path. */
export function findNonFinite(value: unknown, path = ''): { path: string; value: number } | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : { path, value };
  if (ArrayBuffer.isView(value)) {
    const arr = value as unknown as ArrayLike<number>;
    if (typeof arr.length !== 'number' || typeof arr[0] !== 'number') return undefined;
    for (let k = 0; k < arr.length; k++) {
      if (!Number.isFinite(arr[k])) return { path: `${path}[${k}]`, value: arr[k] };
    }
    return undefined;
  }
  if (Array.isArray(value)) {
    for (let k = 0; k < value.length; k++) {
      const hit = findNonFinite(value[k], `${path}[${k}]`);
      if (hit) return hit;
    }
    return undefined;
  }
  if (value && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      const hit = findNonFinite(v, path ? `${path}.${key}` : key);
      if (hit) return hit;
    }
  }
  return undefined;
}

/**
 * Throws OtInputError('range') when the answer holds a NaN or an infinity: the one check every OT answer
 * passes before it leaves the worker. The message says what to change.
 */
export function assertFiniteResult<T>(result: T, operation: string): T {
  const hit = findNonFinite(result);
  if (hit) {
    throw new OtInputError(
      `the ${operation} result is not representable in double precision (${hit.path} = ${hit.value}): ` +
        'divide the costs (or the coordinates) or the weights by a common factor, or use scaling: "max"; ' +
        'for entropic solvers raise reg',
      'range',
      { field: hit.path, value: String(hit.value) },
    );
  }
  return result;
}
