/**
 * The public API as the console calls it: fetch with the optional API key, errors turned into ApiError (code,
 * message, HTTP status, request id, details: the service's { error: {...} } shape), jobs followed to the end.
 * The console uses nothing else: what it shows, any client can get.
 */
import { append, clear, h } from './dom.js';

const KEY_STORAGE = 'tweedie.apiKey';

export function apiKey(): string {
  return sessionStorage.getItem(KEY_STORAGE) ?? '';
}

export function setApiKey(key: string): void {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly requestId?: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

async function toApiError(res: Response): Promise<ApiError> {
  const requestId = res.headers.get('x-request-id') ?? undefined;
  const text = await res.text();
  try {
    const body = JSON.parse(text) as {
      error?: { code?: string; message?: string; details?: unknown; requestId?: string };
    };
    if (body.error?.code)
      return new ApiError(
        body.error.code,
        body.error.message ?? res.statusText,
        res.status,
        body.error.requestId ?? requestId,
        body.error.details,
      );
  } catch {
    /* not our error shape */
  }
  return new ApiError(`HTTP_${res.status}`, text.slice(0, 300) || res.statusText, res.status, requestId);
}

/** fetch against the service; throws ApiError for any non-2xx answer. */
export async function api(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const key = apiKey();
  if (key) headers.set('authorization', `Bearer ${key}`);
  let res: Response;
  try {
    res = await fetch(path, { ...init, headers });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError('NETWORK', `The service could not be reached: ${(err as Error).message}`, 0);
  }
  if (!res.ok) throw await toApiError(res);
  return res;
}

export async function apiJson<T>(path: string, init: RequestInit = {}): Promise<T> {
  return (await api(path, init)).json() as Promise<T>;
}

export function postJson<T>(path: string, body: unknown, init: RequestInit = {}): Promise<T> {
  return apiJson<T>(path, {
    ...init,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(init.headers as Record<string, string>) },
    body: JSON.stringify(body),
  });
}

export interface JobView {
  id: string;
  state: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  operation: string;
  progress: { fraction: number; message: string };
  error?: { code: string; statusCode: number; message: string; details?: unknown };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls GET /v1/jobs/:id until the job ends, reporting each view; answers the result response (GET .../result)
 * of a succeeded job, throws the job's own error otherwise. Aborting the signal cancels the job (DELETE).
 */
export async function followJob(
  id: string,
  onView: (view: JobView) => void,
  signal?: AbortSignal,
  intervalMs = 200,
): Promise<Response> {
  const path = `/v1/jobs/${encodeURIComponent(id)}`;
  for (;;) {
    if (signal?.aborted) {
      await api(path, { method: 'DELETE' }).catch(() => undefined);
      throw new ApiError('CANCELLED', 'Cancelled from the console', 0);
    }
    const view = await apiJson<JobView>(path);
    onView(view);
    if (view.state === 'succeeded') return api(`${path}/result`);
    if (view.state === 'failed' || view.state === 'cancelled') {
      const e = view.error ?? { code: 'TW_INTERNAL', statusCode: 500, message: `The job ${view.state}` };
      throw new ApiError(e.code, e.message, e.statusCode, undefined, e.details);
    }
    await sleep(intervalMs);
  }
}

/**
 * A validation error reworded with the labels on screen: each detail whose API path (`body.solver.reg`) has a
 * label becomes "label: message", so the banner names the field the user sees rather than the request's path.
 * Other errors, and details without a label, are left as they are (the details still show the raw paths).
 */
export function withFieldLabels(err: unknown, labels: Record<string, string>): unknown {
  if (!(err instanceof ApiError) || !Array.isArray(err.details)) return err;
  const named = (err.details as { path?: unknown; message?: unknown }[])
    .map((d) => {
      const label = typeof d.path === 'string' ? labels[d.path] : undefined;
      return label ? `${label}: ${String(d.message ?? 'invalid')}` : null;
    })
    .filter((m): m is string => m !== null);
  if (named.length === 0) return err;
  return new ApiError(err.code, named.join('; '), err.status, err.requestId, err.details);
}

/** Shows an error in a page's alert region: code, message, status, request id and details. */
export function showError(region: HTMLElement, err: unknown): void {
  clear(region);
  region.hidden = false;
  const e =
    err instanceof ApiError ? err : new ApiError('CONSOLE_ERROR', (err as Error)?.message ?? String(err), 0);
  append(region, [
    h('strong', { class: 'error-code' }, e.code),
    e.status ? ` (HTTP ${e.status})` : '',
    ': ',
    h('span', { class: 'error-message' }, e.message),
    e.requestId ? h('small', { class: 'request-id' }, ` request ${e.requestId}`) : null,
    e.details !== undefined
      ? h('details', {}, h('summary', {}, 'details'), h('pre', {}, JSON.stringify(e.details, null, 2)))
      : null,
  ]);
  region.scrollIntoView?.({ block: 'nearest' });
}

export function clearError(region: HTMLElement): void {
  clear(region);
  region.hidden = true;
}
