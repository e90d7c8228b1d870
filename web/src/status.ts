/**
 * The status strip on every page: the compute backend (wasm, webgpu with its adapter when /readyz reports one),
 * the compute workers, the compute queue and the jobs queue, from GET /readyz, polled every few seconds while the
 * page is visible. /readyz answers 503 with the same body while not ready, so that body is shown too; when the
 * service cannot be reached the strip says so quietly (no alert, no console error) and keeps polling.
 */
import { apiKey } from './api.js';
import { clear, h } from './dom.js';

interface Readiness {
  status?: string;
  ready?: boolean;
  reasons?: string[];
  backend?: string | null;
  native?: boolean;
  adapter?: unknown;
  gpu?: { adapter?: unknown } | null;
  compute?: { up?: boolean; workers?: number; queued?: number; running?: number; queueMax?: number };
  jobs?: { backend?: string; queued?: number; running?: number; concurrency?: number };
}

/** A readable adapter name from whatever /readyz reports (a string, or an object with vendor/architecture/description). */
function adapterName(r: Readiness): string | null {
  const a = r.adapter ?? r.gpu?.adapter;
  if (!a) return null;
  if (typeof a === 'string') return a;
  if (typeof a === 'object') {
    const o = a as Record<string, unknown>;
    const parts = [o.vendor, o.architecture, o.device, o.description].filter(
      (v): v is string => typeof v === 'string' && v !== '',
    );
    return parts.length > 0 ? parts.join(' ') : null;
  }
  return null;
}

function item(key: string, value: string, testId: string): HTMLElement {
  return h(
    'span',
    { class: 'status-item', 'data-testid': testId },
    h('span', { class: 'status-key' }, key),
    value,
  );
}

/** Renders one /readyz answer into the strip (exported for the page's first paint and for tests). */
export function renderStatus(strip: HTMLElement, r: Readiness | null): void {
  clear(strip);
  if (!r) {
    strip.setAttribute('data-state', 'unreachable');
    strip.append(item('service', 'unreachable (retrying)', 'status-service'));
    return;
  }
  strip.setAttribute('data-state', r.ready ? 'ready' : 'not-ready');
  const adapter = adapterName(r);
  const backend = r.backend
    ? `${r.backend}${r.native ? ' (native)' : ''}${adapter ? `, ${adapter}` : ''}`
    : '—';
  const c = r.compute ?? {};
  const j = r.jobs;
  strip.append(
    item(
      'service',
      r.ready ? 'ready' : `not ready${r.reasons?.length ? `: ${r.reasons.join(', ')}` : ''}`,
      'status-service',
    ),
    item('backend', backend, 'status-backend'),
    item('workers', `${c.running ?? 0} busy of ${c.workers ?? '—'}`, 'status-workers'),
    item('queue', `${c.queued ?? 0}${c.queueMax ? ` of ${c.queueMax}` : ''}`, 'status-queue'),
  );
  if (j)
    strip.append(
      item(
        'jobs',
        `${j.queued ?? '—'} queued, ${j.running ?? '—'} running (${j.backend ?? '?'})`,
        'status-jobs',
      ),
    );
}

/** Starts polling /readyz into `strip`; answers a function that stops it. */
export function startStatusStrip(strip: HTMLElement, intervalMs = 5000): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  // One poll at a time: showing the page again while a fetch is in flight must not start a second loop.
  let inFlight = false;
  const poll = async () => {
    timer = undefined;
    if (inFlight) return;
    inFlight = true;
    let r: Readiness | null = null;
    try {
      const headers: Record<string, string> = {};
      const key = apiKey();
      if (key) headers.authorization = `Bearer ${key}`;
      const res = await fetch('../readyz', { headers, cache: 'no-store' });
      // 200 ready, 503 not ready: both carry the report.
      if (res.status === 200 || res.status === 503) r = (await res.json()) as Readiness;
    } catch {
      r = null;
    } finally {
      inFlight = false;
    }
    if (stopped) return;
    renderStatus(strip, r);
    if (!document.hidden) timer = setTimeout(poll, intervalMs);
  };
  const onVisibility = () => {
    if (!document.hidden && timer === undefined && !inFlight && !stopped) void poll();
    else if (document.hidden && timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
  };
  document.addEventListener('visibilitychange', onVisibility);
  void poll();
  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
    document.removeEventListener('visibilitychange', onVisibility);
  };
}
