/**
 * Detect: pick images (or load the shipped Fashion-MNIST examples: test images and their PGD-Linf 8/255
 * versions against the committed classifier) and ask POST /v1/detect/adversarial about each one; every score is
 * drawn against the detector's threshold, with each p-value and, for several images, the batch's two-sample test.
 */
import { api, clearError, showError } from '../api.js';
import { type Bar, barChart } from '../charts.js';
import { checkbox, clear, facts, field, fmt, h, select } from '../dom.js';
import { blobImage } from '../image.js';
import { imagePicker, page, progressBar } from '../widgets.js';

interface Item {
  name: string;
  blob: Blob;
  /** Known truth for the shipped examples. */
  truth?: 'clean' | 'adversarial';
  note?: string;
}

interface Verdict {
  score: number;
  threshold: number;
  adversarial: boolean;
  pValue?: number;
}

/** POST /v1/detect/adversarial's answer (src/schemas/detect.ts, detectResponse). */
interface DetectResponse {
  detector?: string;
  scoreModel?: string;
  timesteps?: number;
  threshold?: number;
  results: Verdict[];
  batch: { statistic: number; pValue: number; permutations: number; adversarial: boolean } | null;
  timings?: Record<string, number>;
}

interface ExampleIndex {
  examples: {
    clean: string;
    adversarial: string;
    label: string;
    predictedClean: string;
    predictedAdversarial: string;
  }[];
  attack: string;
}

export function detectPage(): HTMLElement {
  const { section, errors } = page(
    'detect',
    'Detect',
    'EPS-AD adversarial detection: the expected perturbation score under the diffusion prior, compared by a ' +
      'learned-kernel MMD with clean references. A score above the threshold flags the image.',
  );
  let items: Item[] = [];
  const fpr = select(
    [
      ['0.01', '1%'],
      ['0.05', '5%'],
      ['0.1', '10%'],
    ],
    '0.05',
  );
  const resize = checkbox("resize images to the detector's size (otherwise other sizes are refused)", false);
  const list = h('ul', { class: 'thumbs', 'aria-label': 'images to check' });
  const run = h('button', { type: 'button', class: 'primary', disabled: true }, 'Detect');
  const progress = progressBar('Detection progress');
  const chart = h('canvas', {
    width: 640,
    height: 280,
    class: 'chart',
    'data-testid': 'detect-chart',
    hidden: true,
  });
  const table = h('div', { 'data-testid': 'detect-results' });

  function setItems(next: Item[]) {
    items = next;
    clear(list);
    for (const it of items) list.append(h('li', {}, blobImage(it.blob, it.name), h('span', {}, it.name)));
    run.disabled = items.length === 0;
  }

  const examples = h('button', { type: 'button' }, 'Load Fashion-MNIST examples (clean and PGD)');
  examples.addEventListener('click', async () => {
    try {
      clearError(errors);
      const index = (await (await fetch('examples/index.json')).json()) as ExampleIndex;
      const loaded: Item[] = [];
      for (const [i, e] of index.examples.entries()) {
        loaded.push({
          name: `clean ${i} (${e.label})`,
          blob: await (await fetch(`examples/${e.clean}`)).blob(),
          truth: 'clean',
          note: `classified ${e.predictedClean}`,
        });
        loaded.push({
          name: `${index.attack} ${i}`,
          blob: await (await fetch(`examples/${e.adversarial}`)).blob(),
          truth: 'adversarial',
          note: `classified ${e.predictedAdversarial}`,
        });
      }
      setItems(loaded);
    } catch (err) {
      showError(errors, err);
    }
  });

  run.addEventListener('click', async () => {
    clearError(errors);
    clear(table);
    run.disabled = true;
    progress.set(null, `testing ${items.length} image${items.length === 1 ? '' : 's'}…`);
    try {
      // One multipart request, the images as repeated `image` fields: EPS is batched over them on the server,
      // and two or more images also get the batch's two-sample test.
      const params = new URLSearchParams({ fpr: fpr.value });
      if (resize.input.checked) params.set('resize', 'true');
      const form = new FormData();
      for (const it of items) form.append('image', it.blob, it.name);
      const body = (await (
        await api(`/v1/detect/adversarial?${params}`, { method: 'POST', body: form })
      ).json()) as DetectResponse;
      const verdicts = body.results ?? [];
      if (verdicts.length !== items.length)
        throw new Error('The detection response does not list every image');
      const bars: Bar[] = verdicts.map((v, i) => ({
        label: items[i].name,
        value: v.score,
        flagged: v.adversarial,
      }));
      chart.hidden = false;
      barChart(chart, bars, body.threshold ?? verdicts[0]?.threshold ?? null);
      const rows = verdicts.map((v, i) =>
        h(
          'tr',
          {},
          h('td', {}, items[i].name),
          h('td', {}, items[i].truth ?? '?'),
          h('td', {}, fmt(v.score, 5)),
          h('td', {}, fmt(v.threshold, 5)),
          h('td', {}, v.pValue !== undefined ? fmt(v.pValue, 3) : '—'),
          h('td', { class: v.adversarial ? 'flagged' : '' }, v.adversarial ? 'adversarial' : 'clean'),
          h('td', {}, items[i].note ?? ''),
        ),
      );
      const flagged = verdicts.filter((v) => v.adversarial).length;
      progress.set(1, `${verdicts.length} images checked, ${flagged} flagged`);
      table.append(
        h(
          'table',
          {},
          h('caption', {}, `Scores against the threshold (fpr ${fpr.value})`),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ...['image', 'truth', 'score', 'threshold', 'p-value', 'verdict', 'classifier'].map((t) =>
                h('th', { scope: 'col' }, t),
              ),
            ),
          ),
          h('tbody', {}, ...rows),
        ),
        facts([
          ['detector', body.detector ?? '—'],
          ['score model', body.scoreModel ?? '—'],
          ['timesteps T*', String(body.timesteps ?? '—')],
          [
            'batch two-sample test',
            body.batch
              ? `MMD² ${fmt(body.batch.statistic, 5)}, p = ${fmt(body.batch.pValue, 3)} (${body.batch.permutations} permutations): ${body.batch.adversarial ? 'flagged' : 'not flagged'}`
              : '— (one image)',
          ],
          ['server time', body.timings?.totalMs !== undefined ? `${fmt(body.timings.totalMs, 0)} ms` : '—'],
        ]),
      );
    } catch (err) {
      progress.set(0, 'failed');
      showError(errors, err);
    } finally {
      run.disabled = items.length === 0;
    }
  });

  section.append(
    h(
      'div',
      { class: 'controls' },
      imagePicker(
        'Images to check',
        (files) => setItems(files.map((f) => ({ name: f.name, blob: f }))),
        true,
      ),
      examples,
      field('Target false-positive rate (calibrated thresholds)', fpr),
      resize.wrap,
      run,
    ),
    list,
    progress.el,
    chart,
    table,
  );
  return section;
}
