/**
 * Transport: generate (or paste) two point clouds or two histograms, choose one solver, or two to compare
 * (Sinkhorn against SNS, entropic against sparsity-constrained), POST /v1/ot/plan for each, and draw the points
 * with the plan: one line per transported pair, opacity proportional to its mass (sparse plans: every nonzero;
 * dense plans: every entry above 1/255 of the largest, below which a line would be invisible). Histograms get
 * the plan as an n x m heat map. Cost, iterations, convergence and the marginal-error history (log scale) beside.
 * Below, large point clouds (1e3 to 1e5 points) solved by online Sinkhorn as a job: see transport-large.ts.
 */
import { Rng } from '../../../src/util/random.js';
import { clearError, postJson, showError, withFieldLabels } from '../api.js';
import { lineChart, type Series } from '../charts.js';
import { checkbox, clear, facts, field, fmt, h, numberInput, select } from '../dom.js';
import { page } from '../widgets.js';
import { largeCloudsPanel } from './transport-large.js';

type Plan =
  | { format: 'dense'; n: number; m: number; data: number[] }
  | { format: 'sparse'; n: number; m: number; rows: number[]; cols: number[]; values: number[]; nnz: number };

interface PlanResponse {
  solver: string;
  cost: number;
  objective?: number;
  status: string;
  converged: boolean;
  iterations: number;
  marginalError?: number;
  errorHistory?: { iteration: number; error: number }[];
  warnings: string[];
  plan?: Plan;
  timings?: Record<string, number>;
}

interface Problem {
  kind: 'points' | 'histograms';
  x: number[][];
  y: number[][];
  a: number[];
  b: number[];
}

const SOLVERS = ['sinkhorn', 'sns', 'emd', 'sparse', 'quadratic', 'unbalanced', 'emd1d'];
const COLORS = ['#1f6feb', '#c2410c'];

// --- problem generation -------------------------------------------------------------------------------------------

function cloud(shape: string, count: number, rng: Rng, shift: number): number[][] {
  const pts: number[][] = [];
  for (let i = 0; i < count; i++) {
    const u = rng.uniform();
    switch (shape) {
      case 'ring': {
        const t = 2 * Math.PI * u;
        pts.push([Math.cos(t) + 0.08 * rng.normal() + shift, Math.sin(t) + 0.08 * rng.normal()]);
        break;
      }
      case 'two-blobs': {
        const c = u < 0.5 ? -0.8 : 0.8;
        pts.push([c * 0.6 + 0.25 * rng.normal() + shift, c + 0.25 * rng.normal()]);
        break;
      }
      case 'uniform':
        pts.push([2 * rng.uniform() - 1 + shift, 2 * rng.uniform() - 1]);
        break;
      default:
        pts.push([0.45 * rng.normal() + shift, 0.45 * rng.normal()]);
    }
  }
  return pts;
}

function histogram(bins: number, centres: number[], width: number): number[] {
  const v = Array.from({ length: bins }, (_, i) =>
    centres.reduce((s, c) => s + Math.exp(-(((i + 0.5) / bins - c) ** 2) / (2 * width * width)), 0),
  );
  const total = v.reduce((a, b) => a + b, 0);
  return v.map((x) => x / total);
}

// --- drawing ------------------------------------------------------------------------------------------------------

/** Plan entries as (i, j, mass) triples. */
function entries(plan: Plan): [number, number, number][] {
  if (plan.format === 'sparse') return plan.rows.map((r, k) => [r, plan.cols[k], plan.values[k]]);
  const out: [number, number, number][] = [];
  for (let i = 0; i < plan.n; i++)
    for (let j = 0; j < plan.m; j++) {
      const v = plan.data[i * plan.m + j];
      if (v > 0) out.push([i, j, v]);
    }
  return out;
}

/** Draws the points and the plan lines; returns how many lines were drawn. */
function drawPointPlan(canvas: HTMLCanvasElement, p: Problem, plan: Plan | undefined): number {
  const ctx = canvas.getContext('2d');
  if (!ctx) return 0;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const all = [...p.x, ...p.y];
  const xs = all.map((q) => q[0]);
  const ys = all.map((q) => q[1] ?? 0);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const span = Math.max(x1 - x0, y1 - y0, 1e-9);
  const pad = 16;
  const scale = (Math.min(canvas.width, canvas.height) - 2 * pad) / span;
  // Centred in both directions, one scale for both axes (distances keep their meaning).
  const offX = (canvas.width - (x1 - x0) * scale) / 2;
  const offY = (canvas.height - (y1 - y0) * scale) / 2;
  const px = (q: number[]) => [offX + (q[0] - x0) * scale, canvas.height - offY - ((q[1] ?? 0) - y0) * scale];
  let lines = 0;
  if (plan) {
    const list = entries(plan);
    const top = Math.max(...list.map((e) => e[2]), 1e-300);
    const exact = plan.format === 'sparse';
    ctx.strokeStyle = '#333';
    ctx.lineWidth = 1.2;
    for (const [i, j, v] of list) {
      const alpha = v / top;
      if (!exact && alpha < 1 / 255) continue;
      ctx.globalAlpha = Math.max(alpha, exact ? 0.08 : 0);
      const [ax, ay] = px(p.x[i]);
      const [bx, by] = px(p.y[j]);
      ctx.beginPath();
      ctx.moveTo(ax, ay);
      ctx.lineTo(bx, by);
      ctx.stroke();
      lines++;
    }
    ctx.globalAlpha = 1;
  }
  const aMax = Math.max(...p.a);
  const bMax = Math.max(...p.b);
  p.x.forEach((q, i) => {
    const [cx, cy] = px(q);
    ctx.fillStyle = COLORS[0];
    ctx.beginPath();
    ctx.arc(cx, cy, 2 + 3 * Math.sqrt(p.a[i] / aMax), 0, 2 * Math.PI);
    ctx.fill();
  });
  p.y.forEach((q, j) => {
    const [cx, cy] = px(q);
    const r = 2 + 3 * Math.sqrt(p.b[j] / bMax);
    ctx.fillStyle = COLORS[1];
    ctx.fillRect(cx - r, cy - r, 2 * r, 2 * r);
  });
  return lines;
}

/**
 * The plan of two histograms as a heat map (rows: source bins, columns: target bins), with the source histogram a
 * drawn along the left edge and the target b along the top; returns the cells drawn.
 */
function drawHeatmap(canvas: HTMLCanvasElement, p: Problem, plan: Plan | undefined): number {
  const ctx = canvas.getContext('2d');
  if (!ctx) return 0;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const strip = 40;
  const w = canvas.width - strip;
  const hh = canvas.height - strip;
  const cw = w / p.b.length;
  const ch = hh / p.a.length;
  const aMax = Math.max(...p.a, 1e-300);
  const bMax = Math.max(...p.b, 1e-300);
  ctx.fillStyle = COLORS[0];
  p.a.forEach((v, i) => {
    const len = (v / aMax) * (strip - 4);
    ctx.fillRect(strip - 2 - len, strip + i * ch, len, Math.max(ch - 1, 1));
  });
  ctx.fillStyle = COLORS[1];
  p.b.forEach((v, j) => {
    const len = (v / bMax) * (strip - 4);
    ctx.fillRect(strip + j * cw, strip - 2 - len, Math.max(cw - 1, 1), len);
  });
  ctx.strokeStyle = '#999';
  ctx.strokeRect(strip, strip, w, hh);
  if (!plan) return 0;
  const list = entries(plan);
  const top = Math.max(...list.map((e) => e[2]), 1e-300);
  let drawn = 0;
  for (const [i, j, v] of list) {
    const t = v / top;
    if (t < 1 / 255) continue;
    ctx.fillStyle = `rgba(31, 111, 235, ${t})`;
    ctx.fillRect(strip + j * cw, strip + i * ch, Math.max(cw, 1), Math.max(ch, 1));
    drawn++;
  }
  return drawn;
}

// --- solver panel -------------------------------------------------------------------------------------------------

function solverPanel(label: string, initial: string) {
  const solver = select(SOLVERS, initial);
  const reg = numberInput(0.01, { min: 0, step: 'any' });
  const maxIter = numberInput(1000, { min: 1, step: 1 });
  const method = select(['auto', 'log', 'kernel'], 'auto');
  const scalingEps = checkbox('epsilon scaling', false);
  const k = numberInput(3, { min: 1, step: 1 });
  const regM = numberInput(1, { min: 0, step: 'any' });
  const formulation = select(['dual', 'semiDual'], 'dual');
  const newton = numberInput(50, { min: 0, step: 1 });
  const sinkhornFirst = numberInput(20, { min: 0, step: 1 });
  const parts = {
    reg: field('reg (epsilon / gamma)', reg),
    maxIter: field('max iterations', maxIter),
    method: field('Sinkhorn domain', method),
    eps: scalingEps.wrap,
    k: field('k (nonzeros per column)', k),
    regM: field('regM (marginal relaxation)', regM),
    formulation: field('formulation', formulation),
    newton: field('Newton steps (max)', newton),
    sinkhornFirst: field('Sinkhorn steps first', sinkhornFirst),
  };
  const uses: Record<string, (keyof typeof parts)[]> = {
    emd: ['maxIter'],
    emd1d: [],
    sinkhorn: ['reg', 'maxIter', 'method', 'eps'],
    sns: ['reg', 'sinkhornFirst', 'newton'],
    sparse: ['reg', 'k', 'maxIter'],
    quadratic: ['reg', 'formulation', 'maxIter'],
    unbalanced: ['reg', 'regM', 'maxIter'],
  };
  const show = () => {
    for (const [name, el] of Object.entries(parts))
      el.hidden = !uses[solver.value].includes(name as keyof typeof parts);
  };
  solver.addEventListener('change', show);
  show();
  const el = h(
    'fieldset',
    { class: 'solver' },
    h('legend', {}, label),
    field('Solver', solver),
    ...Object.values(parts),
  );
  // The API's path of each solver parameter -> the label on screen (error messages name what the user sees).
  const labels: Record<string, string> = {
    'body.solver': 'Solver',
    'body.solver.solver': 'Solver',
    'body.solver.reg': 'reg (epsilon / gamma)',
    'body.solver.maxIter': 'max iterations',
    'body.solver.method': 'Sinkhorn domain',
    'body.solver.epsilonScaling': 'epsilon scaling',
    'body.solver.k': 'k (nonzeros per column)',
    'body.solver.regM': 'regM (marginal relaxation)',
    'body.solver.formulation': 'formulation',
    'body.solver.maxNewtonIterations': 'Newton steps (max)',
    'body.solver.sinkhornIterations': 'Sinkhorn steps first',
  };
  for (const key of Object.keys(labels)) labels[key] = `${label}, ${labels[key]}`;
  return {
    el,
    labels,
    name: () => solver.value,
    spec(): Record<string, unknown> {
      const s = solver.value;
      const r = Number(reg.value);
      const it = Number(maxIter.value);
      switch (s) {
        case 'emd':
          return { solver: s, maxIter: it };
        case 'emd1d':
          return { solver: s };
        case 'sinkhorn':
          return {
            solver: s,
            reg: r,
            maxIter: it,
            method: method.value,
            epsilonScaling: scalingEps.input.checked,
          };
        case 'sns':
          return {
            solver: s,
            reg: r,
            sinkhornIterations: Number(sinkhornFirst.value),
            maxNewtonIterations: Number(newton.value),
          };
        case 'sparse':
          return { solver: s, reg: r, k: Number(k.value), maxIter: it };
        case 'quadratic':
          return { solver: s, reg: r, formulation: formulation.value, maxIter: it };
        default:
          return { solver: s, reg: r, regM: Number(regM.value), maxIter: it };
      }
    },
  };
}

// --- the page -----------------------------------------------------------------------------------------------------

export function transportPage(): HTMLElement {
  const { section, errors } = page(
    'transport',
    'Transport',
    'Optimal transport between two point clouds (2-D) or two histograms (1-D). Compare two solvers side by side.',
  );
  const kind = select(
    [
      ['points', 'two point clouds (2-D)'],
      ['histograms', 'two histograms (1-D bins)'],
    ],
    'points',
  );
  const n = numberInput(24, { min: 1, max: 400, step: 1 });
  const m = numberInput(24, { min: 1, max: 400, step: 1 });
  const shapes = ['gaussian', 'two-blobs', 'ring', 'uniform'];
  const shapeA = select(shapes, 'gaussian');
  const shapeB = select(shapes, 'ring');
  const seed = numberInput(1, { min: 0, step: 1 });
  const scaling = select(['none', 'max', 'mean', 'median'], 'max');
  const text = h('textarea', { rows: 5, cols: 60, spellcheck: 'false' });
  const compare = checkbox('compare with a second solver', false);
  const panelA = solverPanel('Solver A', 'sinkhorn');
  const panelB = solverPanel('Solver B', 'sns');
  panelB.el.hidden = true;
  compare.input.addEventListener('change', () => {
    panelB.el.hidden = !compare.input.checked;
  });
  const generate = h('button', { type: 'button' }, 'Generate');
  const fromText = h('button', { type: 'button' }, 'Use the pasted problem');
  const solve = h('button', { type: 'button', class: 'primary' }, 'Solve');
  const results = h('div', { class: 'ot-results', 'data-testid': 'ot-results' });
  const chart = h('canvas', { width: 560, height: 260, class: 'chart', 'data-testid': 'ot-convergence' });
  const chartFigure = h(
    'figure',
    { hidden: true },
    chart,
    h('figcaption', {}, 'Marginal error against iteration (log scale)'),
  );

  let problem: Problem = makeProblem();

  function makeProblem(): Problem {
    const rng = new Rng(Number(seed.value));
    const nn = Math.max(1, Number(n.value));
    const mm = Math.max(1, Number(m.value));
    if (kind.value === 'histograms') {
      return {
        kind: 'histograms',
        x: Array.from({ length: nn }, (_, i) => [(i + 0.5) / nn]),
        y: Array.from({ length: mm }, (_, j) => [(j + 0.5) / mm]),
        a: histogram(nn, [0.25, 0.6], 0.08),
        b: histogram(mm, [0.45, 0.8], 0.1),
      };
    }
    return {
      kind: 'points',
      x: cloud(shapeA.value, nn, rng, -1.2),
      y: cloud(shapeB.value, mm, rng, 1.2),
      a: Array(nn).fill(1 / nn),
      b: Array(mm).fill(1 / mm),
    };
  }

  function showProblem() {
    text.value = JSON.stringify({ x: problem.x, y: problem.y, a: problem.a, b: problem.b });
    clear(results);
    chartFigure.hidden = true;
  }

  generate.addEventListener('click', () => {
    problem = makeProblem();
    showProblem();
  });
  fromText.addEventListener('click', () => {
    clearError(errors);
    try {
      const parsed = JSON.parse(text.value) as { x: number[][]; y: number[][]; a?: number[]; b?: number[] };
      if (!Array.isArray(parsed.x) || !Array.isArray(parsed.y))
        throw new Error('give {"x": [[...]], "y": [[...]]}');
      problem = {
        kind: parsed.x[0]?.length === 1 ? 'histograms' : 'points',
        x: parsed.x,
        y: parsed.y,
        a: parsed.a ?? Array(parsed.x.length).fill(1 / parsed.x.length),
        b: parsed.b ?? Array(parsed.y.length).fill(1 / parsed.y.length),
      };
      clear(results);
    } catch (err) {
      showError(errors, err);
    }
  });

  solve.addEventListener('click', async () => {
    clearError(errors);
    clear(results);
    // The previous run's convergence chart goes with its plans: an error must not leave it on screen.
    chartFigure.hidden = true;
    solve.disabled = true;
    let inFlight = panelA;
    const panels = compare.input.checked ? [panelA, panelB] : [panelA];
    const series: Series[] = [];
    try {
      // Sequential: the second solve should not compete with the first for the service's workers (timings).
      for (const [idx, panel] of panels.entries()) {
        inFlight = panel;
        const body = {
          x: problem.x,
          y: problem.y,
          a: problem.a,
          b: problem.b,
          scaling: scaling.value,
          solver: panel.spec(),
          output: { plan: 'auto', errorHistory: true },
        };
        const out = await postJson<PlanResponse>('/v1/ot/plan', body);
        const canvas = h('canvas', {
          width: 360,
          height: 360,
          class: 'ot-canvas',
          'data-testid': `ot-plan-${idx}`,
        });
        const lines =
          problem.kind === 'histograms'
            ? drawHeatmap(canvas, problem, out.plan)
            : drawPointPlan(canvas, problem, out.plan);
        canvas.setAttribute('data-lines', String(lines));
        canvas.setAttribute(
          'aria-label',
          `${out.solver} plan: ${lines} ${problem.kind === 'histograms' ? 'cells' : 'lines'} drawn, cost ${fmt(out.cost)}`,
        );
        const nnz = out.plan
          ? out.plan.format === 'sparse'
            ? out.plan.nnz
            : out.plan.data.filter((v) => v > 0).length
          : 0;
        results.append(
          h(
            'div',
            { class: 'ot-result' },
            h('h3', {}, `${String.fromCharCode(65 + idx)}: ${out.solver}`),
            canvas,
            facts([
              ['cost <C, P>', fmt(out.cost, 5)],
              ['objective', fmt(out.objective, 5)],
              ['status', `${out.status}${out.converged ? '' : ' (not converged)'}`],
              ['iterations', String(out.iterations)],
              ['marginal error', fmt(out.marginalError)],
              [
                'plan',
                out.plan ? `${out.plan.format}, ${nnz} nonzeros of ${out.plan.n * out.plan.m}` : 'none',
              ],
              ['time', out.timings?.totalMs !== undefined ? `${fmt(out.timings.totalMs, 1)} ms` : '—'],
            ]),
            out.warnings.length > 0
              ? h('ul', { class: 'warnings' }, ...out.warnings.map((w) => h('li', {}, w)))
              : null,
          ),
        );
        if (out.errorHistory && out.errorHistory.length > 0)
          series.push({
            label: `${String.fromCharCode(65 + idx)}: ${out.solver}`,
            color: COLORS[idx],
            points: out.errorHistory.map((e) => ({ x: e.iteration, y: e.error })),
          });
      }
      // Exact and closed-form solvers have no iterations to plot.
      chartFigure.hidden = series.length === 0;
      lineChart(chart, series, { logY: true, xLabel: 'iteration', yLabel: 'marginal error (L1)' });
    } catch (err) {
      showError(
        errors,
        withFieldLabels(err, {
          ...inFlight.labels,
          'body.x': 'Problem as JSON (x)',
          'body.y': 'Problem as JSON (y)',
          'body.a': 'Problem as JSON (a)',
          'body.b': 'Problem as JSON (b)',
          'body.scaling': 'Cost scaling',
        }),
      );
    } finally {
      solve.disabled = false;
    }
  });

  showProblem();
  section.append(
    h(
      'div',
      { class: 'controls' },
      field('Problem', kind),
      field('n (source points or bins)', n),
      field('m (target points or bins)', m),
      field('Source shape', shapeA),
      field('Target shape', shapeB),
      field('Seed', seed),
      generate,
      field('Problem as JSON (x, y, optional a, b)', text),
      fromText,
      field('Cost scaling', scaling),
    ),
    h('div', { class: 'columns' }, panelA.el, panelB.el),
    h('div', { class: 'row' }, compare.wrap, solve),
    results,
    chartFigure,
    largeCloudsPanel(errors),
  );
  return section;
}
