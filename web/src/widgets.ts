/**
 * Pieces several pages share: a page section with its alert region, an image picker (file input that also takes
 * dropped files), a job progress bar, and a before/after comparison.
 */
import { h } from './dom.js';

export interface Page {
  section: HTMLElement;
  /** role="alert": API errors are announced and shown with their code, never swallowed. */
  errors: HTMLElement;
}

export function page(id: string, title: string, intro: string): Page {
  const errors = h('div', { class: 'error', role: 'alert', hidden: true, 'data-testid': `${id}-error` });
  const section = h(
    'section',
    { id: `page-${id}`, class: 'page', 'aria-labelledby': `${id}-title`, hidden: true },
    h('h2', { id: `${id}-title` }, title),
    h('p', { class: 'intro' }, intro),
    errors,
  );
  return { section, errors };
}

/** A file input with a visible label that also accepts files dropped on its box. */
export function imagePicker(label: string, onFiles: (files: File[]) => void, multiple = false): HTMLElement {
  const input = h('input', { type: 'file', accept: 'image/*', multiple });
  input.addEventListener('change', () => {
    if (input.files && input.files.length > 0) onFiles([...input.files]);
  });
  const box = h(
    'label',
    { class: 'drop' },
    h('span', {}, `${label} `, h('small', {}, '(or drop files here)')),
    input,
  );
  box.addEventListener('dragover', (e) => {
    e.preventDefault();
    box.classList.add('over');
  });
  box.addEventListener('dragleave', () => box.classList.remove('over'));
  box.addEventListener('drop', (e) => {
    e.preventDefault();
    box.classList.remove('over');
    const files = [...(e.dataTransfer?.files ?? [])].filter((f) => f.type.startsWith('image/'));
    if (files.length > 0) onFiles(multiple ? files : files.slice(0, 1));
  });
  return box;
}

export interface ProgressBar {
  el: HTMLElement;
  set(fraction: number | null, message: string): void;
}

export function progressBar(label: string): ProgressBar {
  const bar = h('progress', { max: 1, 'aria-label': label });
  const text = h('span', { class: 'progress-text', 'aria-live': 'polite' });
  const el = h('div', { class: 'progress', hidden: true }, bar, text);
  return {
    el,
    set(fraction, message) {
      el.hidden = false;
      if (fraction === null) bar.removeAttribute('value');
      else bar.value = fraction;
      text.textContent = message;
    },
  };
}

/**
 * Two images of the same size on top of each other; a slider reveals the second from the left, a button flips
 * between them (both work from the keyboard).
 */
export function comparison(before: HTMLImageElement, after: HTMLImageElement, labels: [string, string]) {
  const top = h('div', { class: 'compare-top' }, after);
  const slider = h('input', {
    type: 'range',
    min: 0,
    max: 100,
    value: 50,
    'aria-label': `Compare: left ${labels[1]}, right ${labels[0]}`,
  });
  const update = () => {
    top.style.clipPath = `inset(0 ${100 - Number(slider.value)}% 0 0)`;
  };
  slider.addEventListener('input', update);
  const flip = h('button', { type: 'button' }, `Show ${labels[0]} / ${labels[1]}`);
  flip.addEventListener('click', () => {
    slider.value = Number(slider.value) > 50 ? '0' : '100';
    update();
  });
  update();
  return h(
    'div',
    { class: 'compare' },
    h('div', { class: 'compare-stack' }, before, top),
    h('div', { class: 'compare-controls' }, slider, flip),
  );
}

/** A figure with a caption. */
export function figure(content: HTMLElement, caption: string, testid?: string): HTMLElement {
  return h('figure', { 'data-testid': testid }, content, h('figcaption', {}, caption));
}
