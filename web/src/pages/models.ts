/**
 * Models: the repository as GET /v1/models reports it (state, backend, manifest), a card per model from
 * GET /v1/models/{name} (task, tier, training data, command, validation figures, lineage), how to train one's own,
 * and each model's sample grid when its manifest names one (extra.samples.file; served by the console route, read
 * with the same API key as everything else). Models without samples are not asked for them (no 404s).
 */
import { api, apiJson, clearError, showError } from '../api.js';
import { clear, facts, fmt, h } from '../dom.js';
import { showBlob } from '../image.js';
import { page } from '../widgets.js';

interface ModelView {
  name: string;
  version: string;
  state: string;
  required: boolean;
  isDefault: boolean;
  reason?: string;
  loadMs?: number;
  manifest: Record<string, unknown> | null;
}

export function modelsPage(): HTMLElement {
  const { section, errors } = page(
    'models',
    'Models',
    'The model repository: every model, its state and manifest.',
  );
  const backend = h('p', { 'data-testid': 'models-backend' });
  const body = h('div', { 'data-testid': 'models-list' });
  const refresh = h('button', { type: 'button' }, 'Refresh');

  async function load() {
    clearError(errors);
    clear(body);
    try {
      const res = await apiJson<{ backend: string; native: boolean; models: ModelView[] }>('/v1/models');
      backend.textContent = `TF.js backend: ${res.backend}${res.native ? ' (native)' : ''}`;
      const rows = res.models.map((m) =>
        h(
          'tr',
          {},
          h('th', { scope: 'row' }, m.name),
          h('td', {}, m.version, m.isDefault ? ' (default)' : ''),
          h('td', { class: `state-${m.state}` }, m.state, m.reason ? `: ${m.reason}` : ''),
          h('td', {}, m.required ? 'yes' : 'no'),
          h('td', {}, String(m.manifest?.task ?? '—')),
          h('td', {}, m.loadMs !== undefined ? `${Math.round(m.loadMs)} ms` : '—'),
        ),
      );
      body.append(
        h(
          'table',
          {},
          h('caption', {}, `${res.models.length} models`),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ...['name', 'version', 'state', 'required', 'task', 'load time'].map((t) =>
                h('th', { scope: 'col' }, t),
              ),
            ),
          ),
          h('tbody', {}, ...rows),
        ),
      );
      body.append(trainYourOwn());
      // One card per model name: its default version, as GET /v1/models/{name} answers it.
      const names = [...new Set(res.models.map((m) => m.name))];
      const cards = h('div', { class: 'model-cards', 'data-testid': 'model-cards' });
      body.append(cards);
      const views = await Promise.all(
        names.map((name) =>
          apiJson<ModelView & { versions?: { version: string; state: string }[] }>(
            `/v1/models/${encodeURIComponent(name)}`,
          ).catch(() => res.models.find((m) => m.name === name && m.isDefault) ?? null),
        ),
      );
      for (const m of views) {
        if (!m) continue;
        const card = modelCard(m);
        cards.append(card);
        if (samplesFile(m)) void sampleGrid(m).then((img) => img && card.append(img));
      }
    } catch (err) {
      showError(errors, err);
    }
  }

  refresh.addEventListener('click', load);
  section.append(refresh, backend, body);
  // Loaded when first shown (main.ts calls it), so the other pages do not wait for it.
  (section as HTMLElement & { onShow?: () => void }).onShow = () => {
    if (!body.firstChild) void load();
  };
  return section;
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

/** The sample grid's file name when the manifest names one (extra.samples.file). */
function samplesFile(m: ModelView): string | null {
  return str(obj(obj(m.manifest?.extra).samples).file);
}

/** The figures a manifest reports about validation (numbers whose name says what they measure). */
function validationFigures(metrics: Json): [string, string][] {
  const rows: [string, string][] = [];
  for (const [k, v] of Object.entries(metrics)) {
    if (typeof v !== 'number') continue;
    if (!/validation|psnr|auroc|accuracy|auc|fpr|tpr|loss/i.test(k)) continue;
    rows.push([k, fmt(v, 4)]);
  }
  for (const k of ['validationSet', 'validationLevel', 'validationProtocol']) {
    const v = str(metrics[k]);
    if (v) rows.push([k, v]);
  }
  return rows;
}

/**
 * The per-image validation figures a trainer recorded (extra.validationPerImage, or the last round's of a MID
 * run: extra.rounds[-1].validationPerImage), as a table; null when there are none.
 */
function perImageTable(extra: Json): HTMLElement | null {
  const rounds = Array.isArray(extra.rounds) ? extra.rounds : [];
  const rows = Array.isArray(extra.validationPerImage)
    ? extra.validationPerImage
    : obj(rounds[rounds.length - 1]).validationPerImage;
  if (!Array.isArray(rows) || rows.length === 0) return null;
  const body = rows.map((row) => {
    const r = obj(row);
    const cell = (v: unknown) => h('td', {}, typeof v === 'number' ? fmt(v, 4) : '—');
    return h('tr', {}, h('td', {}, str(r.name) ?? '—'), cell(r.psnr), cell(r.noisyPsnr));
  });
  return h(
    'details',
    { class: 'per-image', 'data-testid': 'per-image-validation' },
    h('summary', {}, `PSNR per validation image (${rows.length})`),
    h(
      'table',
      {},
      h('thead', {}, h('tr', {}, h('th', {}, 'image'), h('th', {}, 'PSNR (dB)'), h('th', {}, 'noisy (dB)'))),
      h('tbody', {}, ...body),
    ),
  );
}

/**
 * The manifest's held-out figures (`heldout`, written by bench/heldout-manifests.ts): one block per entry with its
 * role, data, figures, command and date; or the reason none applies. Null when the manifest has no such section.
 */
function heldoutBlock(heldout: Json): HTMLElement | null {
  const none = str(heldout.none);
  const entries = Array.isArray(heldout.entries) ? heldout.entries.map(obj) : [];
  if (!none && entries.length === 0) return null;
  return h(
    'div',
    { class: 'heldout', 'data-testid': 'heldout-figures' },
    h('h4', {}, 'Held-out figures'),
    none ? h('p', {}, none) : null,
    ...entries.map((e) =>
      h(
        'section',
        { 'data-role': str(e.role) ?? '' },
        h('p', {}, h('strong', {}, `${str(e.role) ?? '?'}: `), str(e.data) ?? ''),
        facts(Object.entries(obj(e.figures)).map(([k, v]) => [k, typeof v === 'number' ? fmt(v, 4) : '—'])),
        h(
          'p',
          { class: 'heldout-source' },
          `${str(e.source) ?? ''} ${str(e.date)?.slice(0, 10) ?? ''} by `,
          h('code', {}, str(e.command) ?? ''),
          str(e.note) ? `. ${e.note}` : '',
        ),
      ),
    ),
  );
}

/** A model card: what the model is for, what it learned from, how it was made, and how well it does. */
function modelCard(m: ModelView & { versions?: { version: string; state: string }[] }): HTMLElement {
  const man = obj(m.manifest);
  const metrics = obj(man.metrics);
  const extra = obj(man.extra);
  const lineage = str(extra.lineage) ?? str(metrics.initialisedFrom) ?? str(extra.initialisedFrom);
  const rows: [string, string][] = [
    ['task', str(man.task) ?? '—'],
    ['tier', str(man.tier) ?? str(extra.tier) ?? '—'],
    ['state', `${m.state}${m.reason ? `: ${m.reason}` : ''}`],
    ['versions', m.versions?.map((v) => `${v.version} (${v.state})`).join(', ') ?? m.version],
    ['parameters', typeof man.parameters === 'number' ? man.parameters.toLocaleString('en') : '—'],
    ['training data', str(man.trainingData) ?? '—'],
    ['training steps', typeof man.trainingSteps === 'number' ? String(man.trainingSteps) : '—'],
  ];
  const figures = validationFigures(metrics);
  return h(
    'article',
    { class: 'model-card', 'data-testid': `model-card-${m.name}`, 'aria-labelledby': `card-${m.name}` },
    h('h3', { id: `card-${m.name}` }, `${m.name}@${m.version}`),
    str(man.description) ? h('p', {}, String(man.description)) : null,
    facts(rows),
    h('h4', {}, 'Made by'),
    h('pre', { class: 'command' }, str(man.trainingCommand) ?? 'no training command recorded'),
    lineage ? h('p', { class: 'lineage' }, h('strong', {}, 'Lineage: '), lineage) : null,
    h('h4', {}, 'Validation'),
    figures.length > 0 ? facts(figures) : h('p', {}, 'No validation figures in the manifest.'),
    perImageTable(extra),
    heldoutBlock(obj(man.heldout)),
    h(
      'details',
      {},
      h('summary', {}, `${m.name}@${m.version}: manifest`),
      h('pre', {}, JSON.stringify(m.manifest, null, 2)),
    ),
  );
}

/** How to make a model of one's own: the README's Models section says it in full. */
function trainYourOwn(): HTMLElement {
  return h(
    'aside',
    { class: 'train-own', 'data-testid': 'train-your-own' },
    h('h3', {}, 'Train your own'),
    h(
      'p',
      {},
      'Every card shows the exact command that made the model. ',
      h('code', {}, 'npm run train -- <kind> ...'),
      ' (noise2score, mid, ddpm, classifier, eps-ad) writes a model folder with its manifest under ',
      h('code', {}, 'models/<name>/<version>/'),
      '; drop it in MODELS_DIR and the service loads it. Training commands resume with ',
      h('code', {}, '--resume'),
      '. The repository README, section ',
      h('code', {}, 'README.md#models'),
      ' (\u201cModels\u201d), lists each model with the command that makes it, and how to train on a GPU.',
    ),
    h(
      'p',
      {},
      'From a folder of your own noisy images (no clean ones needed), then serve it with ',
      h('code', {}, 'model=my-denoiser'),
      ':',
    ),
    h(
      'pre',
      { class: 'command' },
      'npm run train -- noise2score --images ./my-noisy --noise gaussian --out models/my-denoiser/1\n' +
        'npm run train -- mid --images ./my-noisy --clean ./clean-photos --out models/my-camera/1\n' +
        'npm run train -- ddpm --images ./my-photos --out models/my-prior/1',
    ),
  );
}

async function sampleGrid(m: ModelView): Promise<HTMLElement | null> {
  try {
    const res = await api(
      `/console/models/${encodeURIComponent(m.name)}/${encodeURIComponent(m.version)}/samples.png`,
    );
    const img = h('img', {
      alt: `samples drawn from ${m.name}@${m.version}`,
      class: 'pixelated samples',
    });
    showBlob(img as HTMLImageElement, await res.blob());
    return h('figure', {}, img, h('figcaption', {}, `${m.name}@${m.version}: samples`));
  } catch {
    return null; // most models have no sample grid
  }
}
