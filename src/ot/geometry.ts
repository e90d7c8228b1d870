/**
 * Geometry: how the cost between two point clouds is computed (the first step of
 * geometry -> problem -> solver -> output). Point clouds are row-major Float64Array (n x d).
 */
import { type CostMatrix, OtInputError } from './types.js';

export type CostKind = 'sqeuclidean' | 'euclidean' | 'cityblock' | 'minkowski' | 'cosine';
export type CostScaling = 'none' | 'max' | 'mean' | 'median';

export interface PointCloud {
  /** Row-major n x d coordinates. */
  data: Float64Array;
  n: number;
  d: number;
}

export interface CostOptions {
  cost?: CostKind;
  /** Exponent of the Minkowski cost (sum |x - y|^p)^(1/p); p >= 1. Default 2. */
  p?: number;
  /** Divide the matrix by its max / mean / median so that eps can be given relative to the cost. */
  scaling?: CostScaling;
}

export interface ScaledCost {
  C: CostMatrix;
  /** The factor the raw costs were divided by (1 for 'none'). Multiply solver costs by it to undo. */
  scale: number;
}

/** Wraps coordinates given as number[][] or a flat array into a PointCloud, checking shape and finiteness. */
export function pointCloud(
  points: ArrayLike<number> | readonly (readonly number[])[],
  d?: number,
): PointCloud {
  if (points.length > 0 && Array.isArray(points[0])) {
    const rows = points as readonly (readonly number[])[];
    const dim = rows[0].length;
    const data = new Float64Array(rows.length * dim);
    rows.forEach((row, i) => {
      if (row.length !== dim)
        throw new OtInputError(`point ${i} has ${row.length} coordinates, expected ${dim}`);
      data.set(row, i * dim);
    });
    return checkedCloud({ data, n: rows.length, d: dim });
  }
  const flat = points as ArrayLike<number>;
  const dim = d ?? 1;
  if (flat.length % dim !== 0)
    throw new OtInputError(`flat point array of length ${flat.length} is not a multiple of d=${dim}`);
  return checkedCloud({ data: Float64Array.from(flat), n: flat.length / dim, d: dim });
}

function checkedCloud(cloud: PointCloud): PointCloud {
  if (cloud.n === 0) throw new OtInputError('point cloud is empty');
  for (let k = 0; k < cloud.data.length; k++) {
    if (!Number.isFinite(cloud.data[k]))
      throw new OtInputError(`point cloud has a non-finite coordinate at ${k}`);
  }
  return cloud;
}

/**
 * Pairwise cost matrix between clouds x (n x d) and y (m x d), the same definitions as POT's `ot.dist`
 * (scipy's cdist) for these metrics. Cosine cost is 1 - cos(x, y); a zero vector has no direction, so we
 * define cos(0, y) = 0 (cost 1) for y != 0 and cos(0, 0) = 1 (cost 0: identical points cost nothing),
 * where scipy would return NaN.
 */
export function costMatrix(x: PointCloud, y: PointCloud, options: CostOptions = {}): CostMatrix {
  if (x.d !== y.d) throw new OtInputError(`x has dimension ${x.d} but y has ${y.d}`);
  const kind = options.cost ?? 'sqeuclidean';
  const { n, d } = x;
  const m = y.n;
  const X = x.data;
  const Y = y.data;
  const out = new Float64Array(n * m);
  switch (kind) {
    case 'sqeuclidean':
    case 'euclidean': {
      // Direct differences rather than |x|^2 + |y|^2 - 2 x.y: no cancellation, so C(x, x) is exactly 0.
      const root = kind === 'euclidean';
      for (let i = 0; i < n; i++) {
        const xo = i * d;
        const ro = i * m;
        for (let j = 0; j < m; j++) {
          const yo = j * d;
          let s = 0;
          for (let k = 0; k < d; k++) {
            const t = X[xo + k] - Y[yo + k];
            s += t * t;
          }
          out[ro + j] = root ? Math.sqrt(s) : s;
        }
      }
      break;
    }
    case 'cityblock':
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < m; j++) {
          let s = 0;
          for (let k = 0; k < d; k++) s += Math.abs(X[i * d + k] - Y[j * d + k]);
          out[i * m + j] = s;
        }
      }
      break;
    case 'minkowski': {
      const p = options.p ?? 2;
      if (!(p >= 1) || !Number.isFinite(p))
        throw new OtInputError(`minkowski cost needs a finite p >= 1, got ${p}`);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < m; j++) {
          let s = 0;
          for (let k = 0; k < d; k++) s += Math.abs(X[i * d + k] - Y[j * d + k]) ** p;
          out[i * m + j] = s ** (1 / p);
        }
      }
      break;
    }
    case 'cosine': {
      const normsY = new Float64Array(m);
      for (let j = 0; j < m; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += Y[j * d + k] * Y[j * d + k];
        normsY[j] = Math.sqrt(s);
      }
      for (let i = 0; i < n; i++) {
        let nx = 0;
        for (let k = 0; k < d; k++) nx += X[i * d + k] * X[i * d + k];
        nx = Math.sqrt(nx);
        for (let j = 0; j < m; j++) {
          const ny = normsY[j];
          let cost: number;
          if (nx === 0 || ny === 0) cost = nx === 0 && ny === 0 ? 0 : 1;
          else {
            let dot = 0;
            for (let k = 0; k < d; k++) dot += X[i * d + k] * Y[j * d + k];
            // Clamp: rounding can push |cos| a hair above 1, and a negative cost would break the LP bounds.
            cost = Math.min(2, Math.max(0, 1 - dot / (nx * ny)));
          }
          out[i * m + j] = cost;
        }
      }
      break;
    }
    default:
      throw new OtInputError(`unknown cost '${kind as string}'`);
  }
  for (let k = 0; k < out.length; k++) {
    if (!Number.isFinite(out[k])) {
      const i = Math.floor(k / m);
      throw new OtInputError(
        `the ${kind} cost between x[${i}] and y[${k - i * m}] overflows double precision: ` +
          'divide the coordinates of x and y by a common factor (e.g. their largest magnitude)',
        'range',
        { i, j: k - i * m },
      );
    }
  }
  return { n, m, data: out };
}

/** Wraps a given row-major matrix (number[][] or flat with n, m) as a CostMatrix, checking finiteness. */
export function costFromMatrix(
  matrix: ArrayLike<number> | readonly (readonly number[])[],
  n?: number,
  m?: number,
): CostMatrix {
  let data: Float64Array;
  if (matrix.length > 0 && Array.isArray(matrix[0])) {
    const rows = matrix as readonly (readonly number[])[];
    n = rows.length;
    m = rows[0].length;
    data = new Float64Array(n * m);
    for (let i = 0; i < n; i++) {
      if (rows[i].length !== m)
        throw new OtInputError(`cost row ${i} has ${rows[i].length} entries, expected ${m}`);
      data.set(rows[i], i * m);
    }
  } else {
    if (n === undefined || m === undefined) throw new OtInputError('a flat cost matrix needs n and m');
    if (matrix.length !== n * m)
      throw new OtInputError(`cost has ${matrix.length} entries, expected ${n} x ${m}`);
    data = Float64Array.from(matrix as ArrayLike<number>);
  }
  if (n === 0 || m === 0) throw new OtInputError('cost matrix is empty');
  for (let k = 0; k < data.length; k++) {
    if (!Number.isFinite(data[k])) throw new OtInputError(`cost entry ${k} is not finite (${data[k]})`);
  }
  return { n, m, data };
}

/** The factor a cost would be divided by under `scaling` (1 for 'none' or for an all-zero cost). */
export function costScale(C: CostMatrix, scaling: CostScaling): number {
  const v = C.data;
  let s: number;
  switch (scaling) {
    case 'none':
      return 1;
    case 'max': {
      s = Number.NEGATIVE_INFINITY;
      for (let k = 0; k < v.length; k++) if (v[k] > s) s = v[k];
      break;
    }
    case 'mean': {
      s = 0;
      for (let k = 0; k < v.length; k++) s += v[k];
      s /= v.length;
      break;
    }
    case 'median':
      s = median(v);
      break;
    default:
      throw new OtInputError(`unknown cost scaling '${scaling as string}'`);
  }
  // A zero (or negative) scale would turn the cost into NaN/flip it: leave such costs unscaled.
  return s > 0 && Number.isFinite(s) ? s : 1;
}

/** Returns a new CostMatrix divided by the chosen statistic, and the factor used. */
export function scaleCost(C: CostMatrix, scaling: CostScaling = 'none'): ScaledCost {
  const scale = costScale(C, scaling);
  if (scale === 1) return { C, scale };
  const data = new Float64Array(C.data.length);
  const inv = 1 / scale;
  for (let k = 0; k < data.length; k++) data[k] = C.data[k] * inv;
  return { C: { n: C.n, m: C.m, data }, scale };
}

/** Point clouds -> cost matrix -> optional scaling, in one call. */
export function pointCloudCost(x: PointCloud, y: PointCloud, options: CostOptions = {}): ScaledCost {
  return scaleCost(costMatrix(x, y, options), options.scaling ?? 'none');
}

/** Largest entry of a cost matrix. */
export function maxCost(C: CostMatrix): number {
  let s = Number.NEGATIVE_INFINITY;
  const v = C.data;
  for (let k = 0; k < v.length; k++) s = Math.max(s, v[k]);
  return s;
}

/** Median (mean of the two middle values for even length) by quickselect on a copy: O(len) expected. */
export function median(values: Float64Array): number {
  const w = Float64Array.from(values);
  const len = w.length;
  if (len === 0) return Number.NaN;
  const hi = select(w, len >> 1);
  if (len % 2 === 1) return hi;
  // After select, everything left of len/2 is <= hi: the lower middle is the max of that part.
  let lo = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < len >> 1; k++) if (w[k] > lo) lo = w[k];
  return (lo + hi) / 2;
}

function select(w: Float64Array, k: number): number {
  let left = 0;
  let right = w.length - 1;
  while (right > left) {
    // Median-of-three pivot avoids the quadratic case on sorted input (cost matrices often are).
    const mid = (left + right) >> 1;
    const pivot = medianOf3(w[left], w[mid], w[right]);
    let i = left;
    let j = right;
    while (i <= j) {
      while (w[i] < pivot) i++;
      while (w[j] > pivot) j--;
      if (i <= j) {
        const t = w[i];
        w[i] = w[j];
        w[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else return w[k];
  }
  return w[k];
}

function medianOf3(a: number, b: number, c: number): number {
  return Math.max(Math.min(a, b), Math.min(Math.max(a, b), c));
}
