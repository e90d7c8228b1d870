/**
 * The one operation online (matrix-free) Sinkhorn needs, as an interface with a CPU and a GPU implementation:
 * the soft-min of a potential over the points of the other side, the cost computed on the fly from the points.
 * Memory is O((n + m) * dim): no n x m matrix ever exists.
 *
 *   rows: out[i] = -eps * log sum_j exp((h[j] - c(x_i, y_j)) / eps)     (i < n)
 *   cols: out[j] = -eps * log sum_i exp((h[i] - c(x_i, y_j)) / eps)     (j < m)
 *
 * with c(x, y) = |x - y|^2 ('sqeuclidean') or |x - y| ('euclidean'), divided by `costScale`. A log-domain
 * Sinkhorn half-step is f = rows(g + eps log b, eps) (and g = cols(f + eps log a, eps)). An entry of h that is
 * -Infinity (zero weight) contributes nothing; a row whose every term is -Infinity gives +Infinity.
 */

export type OnlineCost = 'sqeuclidean' | 'euclidean';

/** Two point clouds, row-major float64: x is n x dim, y is m x dim. */
export interface OnlineGeometry {
  x: Float64Array;
  n: number;
  y: Float64Array;
  m: number;
  dim: number;
  cost: OnlineCost;
  /** The cost is divided by this (1: none). */
  costScale: number;
}

export interface SoftminBackend {
  /** 'cpu', 'webgpu' ...: reported in results and benchmarks. */
  readonly name: string;
  /** out (length n) = the soft-min over columns of h (length m) minus the cost, see above. */
  rows(h: Float64Array, eps: number, out: Float64Array): void | Promise<void>;
  /** out (length m) = the soft-min over rows of h (length n) minus the cost, see above. */
  cols(h: Float64Array, eps: number, out: Float64Array): void | Promise<void>;
  /** Free what the backend holds (GPU buffers). Safe to call twice. */
  dispose(): void;
}

/** Makes a backend for one geometry (uploads the points once, for a GPU). */
export type SoftminFactory = (geometry: OnlineGeometry) => SoftminBackend | Promise<SoftminBackend>;
