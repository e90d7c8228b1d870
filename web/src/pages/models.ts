/**
 * Models: the repository as GET /v1/models reports it (state, backend, manifest), and each model's sample grid
 * when its manifest names one (extra.samples.file; served by the console route, read with the same API key as
 * everything else). Models without samples are not asked for them (no 404s).
 */
import { api, apiJson, clearError, showError } from '../api.js';
import { clear, h } from '../dom.js';
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
      for (const m of res.models) {
        const details = h(
          'details',
          {},
          h('summary', {}, `${m.name}@${m.version}: manifest`),
          h('pre', {}, JSON.stringify(m.manifest, null, 2)),
        );
        body.append(details);
        // Only models whose manifest names a sample grid have one: the others are not asked (no 404s).
        if (samplesFile(m)) void sampleGrid(m).then((img) => img && details.after(img));
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

/** The sample grid's file name when the manifest names one (extra.samples.file). */
function samplesFile(m: ModelView): string | null {
  const extra = m.manifest?.extra as { samples?: { file?: unknown } } | undefined;
  return typeof extra?.samples?.file === 'string' ? extra.samples.file : null;
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
