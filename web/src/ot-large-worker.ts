/**
 * The Transport page's worker for large point clouds (1e3 to 1e5 points a cloud): everything that would freeze the
 * page at that size runs here. It generates the two clouds and writes the request body (JSON of 2e5 points is
 * several MB), and, once the job is done, parses its result, maps the potentials f and g to colours, rasterises the
 * points into an RGBA buffer (one 2 x 2 square a point, no path per point) and picks a random sample of the sparse
 * plan's pairs as line segments in pixel coordinates. The page only puts the image and strokes the sample.
 *
 * Built as its own file (web/dist/ot-large-worker.js, classic worker) by web/build.mjs; the CSP allows workers
 * from 'self'.
 */
import { Rng } from '../../src/util/random.js';

export interface GenerateRequest {
  type: 'generate';
  n: number;
  seed: number;
  /** The request body without the clouds (solver, output...), merged into the JSON written here. */
  rest: Record<string, unknown>;
}

export interface RenderRequest {
  type: 'render';
  /** The job's result, as bytes (parsed here, not on the page). */
  result: ArrayBuffer;
  width: number;
  height: number;
  maxLines: number;
}

export interface Generated {
  type: 'generated';
  body: string;
  ms: number;
}

export interface Rendered {
  type: 'rendered';
  image: ArrayBuffer;
  /** x0, y0, x1, y1 for each sampled pair, in pixels. */
  lines: Float32Array;
  /** Points drawn (source + target). */
  points: number;
  /** Pairs in the sparse plan (before sampling). */
  nnz: number;
  history: { iteration: number; error: number }[];
  summary: Record<string, unknown>;
  /** Time spent here: parse, colour map and rasterise. */
  ms: { parse: number; draw: number };
}

export interface Failed {
  type: 'error';
  message: string;
}

interface PlanResult {
  solver: string;
  backend?: string;
  cost: number;
  iterations: number;
  converged: boolean;
  status: string;
  marginalError?: number;
  errorHistory?: { iteration: number; error: number }[];
  f?: number[];
  g?: number[];
  plan?: { format: string; rows: number[]; cols: number[]; values: number[]; nnz: number };
  timings?: Record<string, number>;
  warnings: string[];
}

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<GenerateRequest | RenderRequest>) => void) | null;
  postMessage(message: Generated | Rendered | Failed, transfer?: Transferable[]): void;
};

/** The clouds of the last `generate`, kept here for `render` (never copied back to the page). */
let xs = new Float64Array(0);
let ys = new Float64Array(0);

const round = (v: number) => Math.round(v * 1e5) / 1e5;

function generate(req: GenerateRequest): Generated {
  const t0 = performance.now();
  const rng = new Rng(req.seed);
  const n = req.n;
  xs = new Float64Array(2 * n);
  ys = new Float64Array(2 * n);
  // Source: one Gaussian on the left; target: two Gaussians on the right (the plan splits the source in two).
  for (let i = 0; i < n; i++) {
    xs[2 * i] = round(-1.2 + 0.45 * rng.normal());
    xs[2 * i + 1] = round(0.45 * rng.normal());
  }
  for (let j = 0; j < n; j++) {
    const up = rng.uniform() < 0.5 ? 1 : -1;
    ys[2 * j] = round(1.2 + 0.3 * rng.normal());
    ys[2 * j + 1] = round(0.8 * up + 0.3 * rng.normal());
  }
  const pts = (a: Float64Array) => {
    const parts: string[] = new Array(a.length / 2);
    for (let i = 0; i < parts.length; i++) parts[i] = `[${a[2 * i]},${a[2 * i + 1]}]`;
    return `[${parts.join(',')}]`;
  };
  const rest = JSON.stringify(req.rest).slice(1, -1);
  const body = `{"x":${pts(xs)},"y":${pts(ys)}${rest ? `,${rest}` : ''}}`;
  return { type: 'generated', body, ms: performance.now() - t0 };
}

/** A perceptual-ish ramp between stops (t in [0, 1]) -> [r, g, b]. */
function ramp(stops: number[][], t: number): number[] {
  const s = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
  const k = Math.min(Math.floor(s), stops.length - 2);
  const u = s - k;
  const a = stops[k];
  const b = stops[k + 1];
  return [a[0] + (b[0] - a[0]) * u, a[1] + (b[1] - a[1]) * u, a[2] + (b[2] - a[2]) * u];
}
// viridis for the source's f, a blue-to-orange ramp for the target's g.
const VIRIDIS = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];
const ORANGES = [
  [40, 40, 120],
  [120, 60, 150],
  [200, 80, 100],
  [240, 140, 40],
  [250, 210, 80],
];

/** The 2nd and 98th percentiles of a sample of the values (a few outliers do not flatten the colours). */
function range(v: number[]): [number, number] {
  const step = Math.max(1, Math.floor(v.length / 4000));
  const sample: number[] = [];
  for (let i = 0; i < v.length; i += step) if (Number.isFinite(v[i])) sample.push(v[i]);
  if (sample.length === 0) return [0, 1];
  sample.sort((p, q) => p - q);
  const lo = sample[Math.floor(0.02 * (sample.length - 1))];
  const hi = sample[Math.ceil(0.98 * (sample.length - 1))];
  return hi > lo ? [lo, hi] : [lo - 1, lo + 1];
}

function render(req: RenderRequest): Rendered {
  const t0 = performance.now();
  const out = JSON.parse(new TextDecoder().decode(req.result)) as PlanResult;
  const t1 = performance.now();
  const { width: w, height: hgt } = req;
  const n = xs.length / 2;
  const m = ys.length / 2;
  let x0 = Number.POSITIVE_INFINITY;
  let x1 = Number.NEGATIVE_INFINITY;
  let y0 = Number.POSITIVE_INFINITY;
  let y1 = Number.NEGATIVE_INFINITY;
  for (const a of [xs, ys])
    for (let i = 0; i < a.length; i += 2) {
      x0 = Math.min(x0, a[i]);
      x1 = Math.max(x1, a[i]);
      y0 = Math.min(y0, a[i + 1]);
      y1 = Math.max(y1, a[i + 1]);
    }
  const pad = 8;
  const scale = (Math.min(w, hgt) - 2 * pad) / Math.max(x1 - x0, y1 - y0, 1e-9);
  const offX = (w - (x1 - x0) * scale) / 2;
  const offY = (hgt - (y1 - y0) * scale) / 2;
  const px = (v: number) => offX + (v - x0) * scale;
  const py = (v: number) => hgt - offY - (v - y0) * scale;

  const image = new Uint8ClampedArray(w * hgt * 4).fill(255);
  const plot = (a: Float64Array, values: number[] | undefined, stops: number[][]) => {
    const [lo, hi] = values ? range(values) : [0, 1];
    for (let i = 0; i < a.length / 2; i++) {
      const [r, g, b] = ramp(stops, values ? (values[i] - lo) / (hi - lo) : 0.5);
      const cx = Math.round(px(a[2 * i]));
      const cy = Math.round(py(a[2 * i + 1]));
      for (let dy = 0; dy < 2; dy++)
        for (let dx = 0; dx < 2; dx++) {
          const X = cx + dx;
          const Y = cy + dy;
          if (X < 0 || Y < 0 || X >= w || Y >= hgt) continue;
          const o = (Y * w + X) * 4;
          image[o] = r;
          image[o + 1] = g;
          image[o + 2] = b;
        }
    }
  };
  plot(xs, out.f, VIRIDIS);
  plot(ys, out.g, ORANGES);

  // A uniform random sample (without replacement) of the plan's pairs.
  const plan = out.plan;
  const nnz = plan ? plan.rows.length : 0;
  const take = Math.min(nnz, req.maxLines);
  const lines = new Float32Array(4 * take);
  if (plan && take > 0) {
    const rng = new Rng(7);
    const idx = Uint32Array.from({ length: nnz }, (_, k) => k);
    for (let k = 0; k < take; k++) {
      const r = k + rng.int(nnz - k);
      const tmp = idx[k];
      idx[k] = idx[r];
      idx[r] = tmp;
      const i = plan.rows[idx[k]];
      const j = plan.cols[idx[k]];
      lines.set([px(xs[2 * i]), py(xs[2 * i + 1]), px(ys[2 * j]), py(ys[2 * j + 1])], 4 * k);
    }
  }
  const summary = {
    solver: out.solver,
    backend: out.backend ?? '',
    cost: out.cost,
    iterations: out.iterations,
    converged: out.converged,
    status: out.status,
    marginalError: out.marginalError,
    totalMs: out.timings?.totalMs,
    warnings: out.warnings,
    fRange: out.f ? range(out.f) : null,
    gRange: out.g ? range(out.g) : null,
  };
  const t2 = performance.now();
  return {
    type: 'rendered',
    image: image.buffer,
    lines,
    points: n + m,
    nnz,
    history: out.errorHistory ?? [],
    summary,
    ms: { parse: t1 - t0, draw: t2 - t1 },
  };
}

scope.onmessage = (e) => {
  try {
    if (e.data.type === 'generate') scope.postMessage(generate(e.data));
    else {
      const r = render(e.data);
      scope.postMessage(r, [r.image, r.lines.buffer]);
    }
  } catch (err) {
    scope.postMessage({ type: 'error', message: (err as Error)?.message ?? String(err) });
  }
};
