/**
 * Small DOM helpers: `h` builds an element with attributes, listeners and children; `field` pairs a control with
 * its label (every control in the console has one, for screen readers and for tests that find controls by label).
 */

type Child = Node | string | number | null | undefined | false;
type AttrValue = string | number | boolean | null | undefined | ((event: any) => void);

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, AttrValue> = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === 'function') el.addEventListener(name.replace(/^on/, '').toLowerCase(), value);
    else if (value === true) el.setAttribute(name, '');
    else if (name === 'value' && 'value' in el) (el as HTMLInputElement).value = String(value);
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: (Child | Child[])[]): void {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'number' ? String(c) : c);
  }
}

let uid = 0;
/** A unique element id with a readable prefix. */
export function newId(prefix: string): string {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A labelled control: <div class="field"><label for=id>text</label>control</div>. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLDivElement {
  if (!control.id) control.id = newId('f');
  const hintEl = hint ? h('small', { id: `${control.id}-hint`, class: 'hint' }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl);
}

export function select(
  options: (string | [string, string])[],
  value?: string,
  attrs = {},
): HTMLSelectElement {
  const el = h('select', attrs);
  for (const o of options) {
    const [v, text] = Array.isArray(o) ? o : [o, o];
    el.append(h('option', { value: v }, text));
  }
  if (value !== undefined) el.value = value;
  return el;
}

export function numberInput(value: number, attrs: Record<string, AttrValue> = {}): HTMLInputElement {
  return h('input', { type: 'number', value, ...attrs });
}

export function checkbox(
  label: string,
  checked = false,
): { wrap: HTMLLabelElement; input: HTMLInputElement } {
  const input = h('input', { type: 'checkbox' });
  input.checked = checked;
  return { wrap: h('label', { class: 'check' }, input, ` ${label}`), input };
}

export function clear(el: Element): void {
  while (el.firstChild) el.firstChild.remove();
}

/** Formats a number for display: fixed decimals for moderate values, exponent otherwise. */
export function fmt(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  return Number(v.toFixed(digits)).toString();
}

/** A definition list of key/value pairs. */
export function facts(pairs: [string, string][]): HTMLDListElement {
  return h('dl', { class: 'facts' }, ...pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}
