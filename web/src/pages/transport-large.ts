/**
 * Transport, large point clouds (1e3 to 1e5 points a cloud): too many pairs for a dense plan, so the service runs
 * online (matrix-free) Sinkhorn as a job, and the page draws what such a solve gives: every point coloured by its
 * potential (f for the source, g for the target), a random sample of the top-1 sparse plan's pairs as lines, and
 * the convergence curve. The page stays responsive at 1e5 points: a worker (ot-large-worker.ts) generates the
 * clouds, writes the request body, parses the result and rasterises the points; the page only sends, polls, puts
 * one ImageData and strokes at most MAX_LINES segments in one path.
 */
import { ApiError, api, clearError, followJob, type JobView, showError } from '../api.js';
import { lineChart } from '../charts.js';
import { clear, facts, field, fmt, h, numberInput } from '../dom.js';
import type { Failed, Generated, GenerateRequest, Rendered, RenderRequest } from '../ot-large-worker.js';
import { progressBar } from '../widgets.js';

/** Plan pairs drawn at most (a random sample of the top-1 pairs): more would only blacken the picture. */
const MAX_LINES = 2000;
const SIZE = 520;

/** One request/answer with the worker (started on first use, kept for the page's life). */
let worker: Worker | null = null;
function ask<T extends Generated | Rendered>(
  msg: GenerateRequest | RenderRequest,
  transfer: Transferable[] = [],
): Promise<T> {
  worker ??= new Worker(new URL('ot-large-worker.js', import.meta.url));
  const w = worker;
  return new Promise((resolve, reject) => {
    w.onmessage = (e: MessageEvent<T | Failed>) => {
      if (e.data.type === 'error') reject(new Error(`worker: ${e.data.message}`));
      else resolve(e.data as T);
    };
    w.onerror = (e) => reject(new Error(`worker: ${e.message}`));
    w.postMessage(msg, transfer);
  });
}

export function largeCloudsPanel(errors: HTMLElement): HTMLElement {
  const n = numberInput(10_000, { min: 1000, max: 100_000, step: 1000 });
  const reg = numberInput(0.01, { min: 0, step: 'any' });
  const maxIter = numberInput(1000, { min: 1, step: 1 });
  const seed = numberInput(1, { min: 0, step: 1 });
  const solve = h('button', { type: 'button', class: 'primary' }, 'Run online Sinkhorn');
  const progress = progressBar('Online Sinkhorn progress');
  const out = h('div', { class: 'ot-large-output', 'data-testid': 'ot-large-output' });

  solve.addEventListener('click', async () => {
    clearError(errors);
    clear(out);
    solve.disabled = true;
    out.setAttribute('data-state', 'running');
    const started = performance.now();
    const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
    try {
      const count = Math.round(Number(n.value));
      if (!(count >= 1000 && count <= 100_000)) throw new Error('N must be between 1000 and 100000');
      progress.set(null, `generating 2 x ${count} points`);
      const gen = await ask<Generated>({
        type: 'generate',
        n: count,
        seed: Number(seed.value),
        rest: {
          async: true,
          scaling: 'max',
          solver: {
            solver: 'sinkhorn',
            reg: Number(reg.value),
            maxIter: Number(maxIter.value),
            online: true,
          },
          output: { topK: 1, errorHistory: true },
        },
      });
      progress.set(null, `sending ${(gen.body.length / 1e6).toFixed(1)} MB`);
      const res = await api('/v1/ot/plan', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: gen.body,
      });
      const job = (await res.json()) as JobView;
      const result = await followJob(job.id, (view) => {
        const f = view.progress.fraction;
        progress.set(
          view.state === 'running' && f > 0 && f < 1 ? f : view.state === 'succeeded' ? 1 : null,
          `${view.state}: ${view.progress.message} (${elapsed()})`,
        );
      });
      const bytes = await result.arrayBuffer();
      progress.set(1, `drawing (${(bytes.byteLength / 1e6).toFixed(1)} MB of result)`);
      const r = await ask<Rendered>(
        { type: 'render', result: bytes, width: SIZE, height: SIZE, maxLines: MAX_LINES },
        [bytes],
      );
      const t0 = performance.now();
      const canvas = h('canvas', {
        width: SIZE,
        height: SIZE,
        class: 'ot-canvas',
        'data-testid': 'ot-large-canvas',
      });
      const ctx = canvas.getContext('2d');
      if (!ctx) throw new Error('no 2D canvas');
      ctx.putImageData(new ImageData(new Uint8ClampedArray(r.image), SIZE, SIZE), 0, 0);
      // The sample of the plan: one path, faint lines (their density shows where the mass goes).
      ctx.strokeStyle = 'rgba(0, 0, 0, 0.07)';
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (let k = 0; k < r.lines.length; k += 4) {
        ctx.moveTo(r.lines[k], r.lines[k + 1]);
        ctx.lineTo(r.lines[k + 2], r.lines[k + 3]);
      }
      ctx.stroke();
      const pageMs = performance.now() - t0;
      const s = r.summary as {
        solver: string;
        backend: string;
        cost: number;
        iterations: number;
        converged: boolean;
        status: string;
        marginalError?: number;
        totalMs?: number;
        warnings: string[];
        fRange: [number, number] | null;
        gRange: [number, number] | null;
      };
      const lines = r.lines.length / 4;
      canvas.setAttribute('data-points', String(r.points));
      canvas.setAttribute('data-lines', String(lines));
      canvas.setAttribute('data-backend', s.backend);
      canvas.setAttribute('data-draw-ms', (r.ms.draw + pageMs).toFixed(1));
      canvas.setAttribute(
        'aria-label',
        `${r.points} points coloured by their potentials, ${lines} of ${r.nnz} plan pairs drawn, cost ${fmt(s.cost)}`,
      );
      const chart = h('canvas', {
        width: 520,
        height: 220,
        class: 'chart',
        'data-testid': 'ot-large-convergence',
      });
      lineChart(
        chart,
        [
          {
            label: `online ${s.solver}`,
            color: '#1f6feb',
            points: r.history.map((e) => ({ x: e.iteration, y: e.error })),
          },
        ],
        { logY: true, xLabel: 'iteration', yLabel: 'marginal error (L1)' },
      );
      const range = (v: [number, number] | null) => (v ? `${fmt(v[0])} to ${fmt(v[1])}` : '—');
      out.append(
        h(
          'div',
          { class: 'columns' },
          h(
            'figure',
            {},
            canvas,
            h(
              'figcaption',
              {},
              `Source coloured by f (viridis), target by g (blue to yellow); ${lines} random pairs of the top-1 plan`,
            ),
          ),
          h(
            'div',
            {},
            facts([
              ['backend', s.backend || '—'],
              ['points', `2 x ${count}`],
              ['cost <C, P>', fmt(s.cost, 5)],
              ['status', `${s.status}${s.converged ? '' : ' (not converged)'}`],
              ['iterations', String(s.iterations)],
              ['marginal error', fmt(s.marginalError)],
              ['plan', `top-1 sparse, ${r.nnz} pairs, ${lines} drawn`],
              ['f (2nd-98th percentile)', range(s.fRange)],
              ['g (2nd-98th percentile)', range(s.gRange)],
              ['solve', s.totalMs !== undefined ? `${fmt(s.totalMs / 1000, 2)} s (job ${job.id})` : '—'],
              [
                'worker',
                `generate ${fmt(gen.ms, 0)} ms, parse ${fmt(r.ms.parse, 0)} ms, draw ${fmt(r.ms.draw, 0)} ms`,
              ],
              ['page draw', `${fmt(pageMs, 1)} ms`],
            ]),
            s.warnings.length > 0
              ? h('ul', { class: 'warnings' }, ...s.warnings.map((w) => h('li', {}, w)))
              : null,
          ),
        ),
        h('figure', {}, chart, h('figcaption', {}, 'Marginal error against iteration (log scale)')),
      );
      out.setAttribute('data-state', 'succeeded');
      progress.set(1, `done in ${elapsed()}`);
    } catch (err) {
      out.setAttribute('data-state', 'failed');
      progress.set(0, 'failed');
      showError(
        errors,
        err instanceof ApiError || !(err instanceof Error)
          ? err
          : new ApiError('CONSOLE_ERROR', err.message, 0),
      );
    } finally {
      solve.disabled = false;
    }
  });

  return h(
    'fieldset',
    { class: 'ot-large', 'data-testid': 'ot-large' },
    h('legend', {}, 'Large point clouds (online Sinkhorn)'),
    h(
      'p',
      { class: 'hint' },
      'Two clouds of N points each (one Gaussian against two), solved matrix-free on the service as a job: ' +
        'potentials, a top-1 sparse plan (a random sample of its pairs drawn) and the convergence curve.',
    ),
    h(
      'div',
      { class: 'controls' },
      field('N (points a cloud, 1000 to 100000)', n),
      field('Large: reg (epsilon)', reg),
      field('Large: max iterations', maxIter),
      field('Large: seed', seed),
      solve,
    ),
    progress.el,
    out,
  );
}
