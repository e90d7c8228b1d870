/**
 * Exact OT on the line. For a cost h(|x - y|) with h convex (here |x - y|^p, p >= 1) the monotone
 * (north-west corner on sorted samples) coupling is optimal, so the plan costs O((n + m) log(n + m)).
 */
import { checkBalanced, checkWeights } from './marginals.js';
import { OtInputError, type SparsePlan } from './types.js';

export interface Emd1dResult {
  /** sum_ij P_ij |xa_i - xb_j|^p. */
  cost: number;
  /** At most n + m - 1 entries, in the original (unsorted) indices, sorted by row then column. */
  plan: SparsePlan;
}

function checkPoints(x: ArrayLike<number>, name: string): void {
  if (x.length === 0) throw new OtInputError(`${name} is empty`);
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) throw new OtInputError(`${name}[${i}] is not finite (${x[i]})`);
  }
}

function sortedOrder(x: ArrayLike<number>): Int32Array {
  const order = new Int32Array(x.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  // Stable by index among ties, matching numpy's argsort on the same data closely enough (cost is tie-invariant).
  return order.sort((p, q) => x[p] - x[q] || p - q);
}

/**
 * POT's `emd_1d(x_a, x_b, a, b, metric='minkowski', p)` and `emd2_1d` (the cost). Uniform weights when a or b
 * are omitted. Like every balanced solver here (emd, sinkhorn, ...) it throws OtInputError('unbalanced') when
 * sum(a) and sum(b) differ beyond 1e-9 relative, unless `normalize` (then b is rescaled to the mass of a, which
 * POT does silently). Note POT's default metric is 'sqeuclidean', which equals p = 2 here.
 */
export function emd1d(
  xa: ArrayLike<number>,
  xb: ArrayLike<number>,
  a?: ArrayLike<number>,
  b?: ArrayLike<number>,
  p = 1,
  options: { normalize?: boolean } = {},
): Emd1dResult {
  if (!(p >= 1) || !Number.isFinite(p)) throw new OtInputError(`emd1d needs a finite p >= 1, got ${p}`);
  checkPoints(xa, 'xa');
  checkPoints(xb, 'xb');
  const n = xa.length;
  const m = xb.length;
  if (a && a.length !== n) throw new OtInputError(`a has length ${a.length}, expected ${n}`);
  if (b && b.length !== m) throw new OtInputError(`b has length ${b.length}, expected ${m}`);
  const { a: wa, b: wb } = checkBalanced(
    a ?? new Float64Array(n).fill(1 / n),
    b ?? new Float64Array(m).fill(1 / m),
    options,
  );

  const oa = sortedOrder(xa);
  const ob = sortedOrder(xb);
  const rows: number[] = [];
  const cols: number[] = [];
  const values: number[] = [];
  let cost = 0;
  let i = 0;
  let j = 0;
  let restA = wa[oa[0]];
  let restB = wb[ob[0]];
  // North-west corner walk, as POT's emd_1d_sorted: move the smaller remaining mass, advance that side.
  while (i < n && j < m) {
    const ia = oa[i];
    const jb = ob[j];
    const moved = Math.min(restA, restB);
    if (moved > 0) {
      rows.push(ia);
      cols.push(jb);
      values.push(moved);
      cost += moved * Math.abs(xa[ia] - xb[jb]) ** p;
    }
    if (restA < restB) {
      restB -= restA;
      i++;
      if (i < n) restA = wa[oa[i]];
    } else {
      restA -= restB;
      j++;
      if (j < m) restB = wb[ob[j]];
    }
  }
  const order = rows.map((_, k) => k).sort((s, t) => rows[s] - rows[t] || cols[s] - cols[t]);
  return {
    cost,
    plan: {
      rows: Int32Array.from(order, (k) => rows[k]),
      cols: Int32Array.from(order, (k) => cols[k]),
      values: Float64Array.from(order, (k) => values[k]),
    },
  };
}

/** POT's `emd2_1d(x_a, x_b, a, b, metric='minkowski', p)`: the cost sum P_ij |x_i - y_j|^p only. */
export function emd2_1d(
  xa: ArrayLike<number>,
  xb: ArrayLike<number>,
  a?: ArrayLike<number>,
  b?: ArrayLike<number>,
  p = 1,
  options: { normalize?: boolean } = {},
): number {
  return emd1d(xa, xb, a, b, p, options).cost;
}

/**
 * p-Wasserstein distance between 1-D distributions by quantile functions, POT's `wasserstein_1d`.
 *
 * Beware of POT 0.8.2's semantics, which this function matches by default: `ot.wasserstein_1d(u, v, uw, vw, p)`
 * returns sum over quantile pieces of |F^-1 - G^-1|^p, i.e. W_p^p (equal to emd2_1d with the minkowski
 * metric), without the 1/p root. Pass `{ root: true }` to get W_p = (W_p^p)^(1/p).
 */
export function wasserstein1d(
  u: ArrayLike<number>,
  v: ArrayLike<number>,
  uWeights?: ArrayLike<number>,
  vWeights?: ArrayLike<number>,
  p = 1,
  options: { root?: boolean } = {},
): number {
  if (!(p >= 1) || !Number.isFinite(p))
    throw new OtInputError(`wasserstein1d needs a finite p >= 1, got ${p}`);
  checkPoints(u, 'u');
  checkPoints(v, 'v');
  const n = u.length;
  const m = v.length;
  const wu = uWeights ? Float64Array.from(uWeights) : new Float64Array(n).fill(1 / n);
  const wv = vWeights ? Float64Array.from(vWeights) : new Float64Array(m).fill(1 / m);
  checkWeights(wu, 'uWeights', n);
  checkWeights(wv, 'vWeights', m);
  const ou = sortedOrder(u);
  const ov = sortedOrder(v);
  const cu = new Float64Array(n);
  const cv = new Float64Array(m);
  let s = 0;
  for (let k = 0; k < n; k++) cu[k] = s += wu[ou[k]];
  s = 0;
  for (let k = 0; k < m; k++) cv[k] = s += wv[ov[k]];
  // Merge the two sets of cumulative weights; on each piece (q_{k-1}, q_k] both quantile functions are constant.
  // Quantile at level q: first index with cum >= q (numpy searchsorted side='left'), clipped to the last sample.
  let total = 0;
  let prev = 0;
  let iu = 0;
  let iv = 0;
  let ku = 0;
  let kv = 0;
  while (ku < n || kv < m) {
    let q: number;
    if (kv >= m || (ku < n && cu[ku] <= cv[kv])) q = cu[ku++];
    else q = cv[kv++];
    while (iu < n - 1 && cu[iu] < q) iu++;
    while (iv < m - 1 && cv[iv] < q) iv++;
    const diff = Math.abs(u[ou[iu]] - v[ov[iv]]);
    total += (q - prev) * (p === 1 ? diff : diff ** p);
    prev = q;
  }
  return options.root ? total ** (1 / p) : total;
}
