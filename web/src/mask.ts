/**
 * The inpainting mask editor: the image drawn large on a canvas, missing pixels in red over it. Brush and eraser
 * paint with the mouse (or pen, or touch); the box tool drags a rectangle; random fill marks a fraction of the
 * pixels (seeded); a box can also be typed in (x, y, width, height), so a keyboard alone can make any mask.
 * The mask (1 = missing) goes to the service as a PNG where white = missing, the API's default convention.
 */
import { Rng } from '../../src/util/random.js';
import { field, h, numberInput, select } from './dom.js';
import type { Raster } from './image.js';

export interface MaskEditor {
  el: HTMLElement;
  canvas: HTMLCanvasElement;
  setImage(image: Raster): void;
  /** Marks a rectangle (image pixels) missing, as the box tool does. */
  addBox(x: number, y: number, width: number, height: number): void;
  /** 1 = missing, row-major, image size. */
  mask(): Uint8Array;
  missingCount(): number;
}

export function maskEditor(onChange: () => void): MaskEditor {
  const canvas = h('canvas', {
    class: 'mask-canvas',
    width: 256,
    height: 256,
    'aria-label': 'Mask: drag to paint missing pixels (red)',
    'data-testid': 'mask-canvas',
  });
  const tool = select(
    [
      ['brush', 'Brush (paint missing)'],
      ['box', 'Box (drag a rectangle)'],
      ['erase', 'Eraser'],
    ],
    'brush',
  );
  const brush = numberInput(2, { min: 1, max: 16, step: 1 });
  const ratio = numberInput(0.5, { min: 0, max: 1, step: 0.05 });
  const seed = numberInput(1, { min: 0, step: 1 });
  const bx = numberInput(8, { min: 0, step: 1 });
  const by = numberInput(8, { min: 0, step: 1 });
  const bw = numberInput(12, { min: 1, step: 1 });
  const bh = numberInput(12, { min: 1, step: 1 });
  const count = h('span', { class: 'mask-count', 'aria-live': 'polite' });

  let image: Raster | null = null;
  let mask = new Uint8Array(0);
  let scale = 1;
  let dragStart: { x: number; y: number } | null = null;
  let dragNow: { x: number; y: number } | null = null;

  function render() {
    if (!image) return;
    const ctx = canvas.getContext('2d');
    if (!ctx) return;
    canvas.width = image.width * scale;
    canvas.height = image.height * scale;
    const img = ctx.createImageData(image.width, image.height);
    for (let p = 0; p < image.width * image.height; p++) {
      const v = Math.round(image.data[p * image.channels] * 255);
      const missing = mask[p] === 1;
      img.data[p * 4] = missing ? Math.round(v * 0.35 + 255 * 0.65) : v;
      img.data[p * 4 + 1] = missing ? Math.round(v * 0.35) : v;
      img.data[p * 4 + 2] = missing ? Math.round(v * 0.35) : v;
      img.data[p * 4 + 3] = 255;
    }
    // Drawn at image size on a scratch canvas, then scaled up without smoothing.
    const scratch = document.createElement('canvas');
    scratch.width = image.width;
    scratch.height = image.height;
    scratch.getContext('2d')?.putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(scratch, 0, 0, canvas.width, canvas.height);
    if (dragStart && dragNow) {
      const r = rect(dragStart, dragNow);
      ctx.strokeStyle = '#ffeb3b';
      ctx.lineWidth = 2;
      ctx.strokeRect(r.x * scale, r.y * scale, r.w * scale, r.h * scale);
    }
    const missing = missingCount();
    count.textContent = `${missing} of ${mask.length} pixels missing (${((100 * missing) / Math.max(1, mask.length)).toFixed(1)}%)`;
    canvas.setAttribute('data-missing', String(missing));
  }

  function missingCount() {
    let n = 0;
    for (const v of mask) n += v;
    return n;
  }

  function rect(a: { x: number; y: number }, b: { x: number; y: number }) {
    const x = Math.min(a.x, b.x);
    const y = Math.min(a.y, b.y);
    return { x, y, w: Math.abs(a.x - b.x) + 1, h: Math.abs(a.y - b.y) + 1 };
  }

  function fillRect(x: number, y: number, w: number, hh: number, value: 0 | 1) {
    if (!image) return;
    for (let r = Math.max(0, y); r < Math.min(image.height, y + hh); r++)
      for (let c = Math.max(0, x); c < Math.min(image.width, x + w); c++) mask[r * image.width + c] = value;
  }

  function pixelAt(e: PointerEvent) {
    const box = canvas.getBoundingClientRect();
    const w = image?.width ?? 1;
    const hh = image?.height ?? 1;
    return {
      x: Math.min(w - 1, Math.max(0, Math.floor(((e.clientX - box.left) / box.width) * w))),
      y: Math.min(hh - 1, Math.max(0, Math.floor(((e.clientY - box.top) / box.height) * hh))),
    };
  }

  function paint(e: PointerEvent) {
    const { x, y } = pixelAt(e);
    const r = Number(brush.value);
    const half = Math.floor(r / 2);
    fillRect(x - half, y - half, r, r, tool.value === 'erase' ? 0 : 1);
  }

  canvas.addEventListener('pointerdown', (e) => {
    if (!image) return;
    canvas.setPointerCapture(e.pointerId);
    if (tool.value === 'box') {
      dragStart = pixelAt(e);
      dragNow = dragStart;
    } else paint(e);
    render();
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!image || !canvas.hasPointerCapture(e.pointerId)) return;
    if (tool.value === 'box') dragNow = pixelAt(e);
    else paint(e);
    render();
  });
  canvas.addEventListener('pointerup', (e) => {
    if (!image) return;
    if (tool.value === 'box' && dragStart) {
      const r = rect(dragStart, pixelAt(e));
      fillRect(r.x, r.y, r.w, r.h, 1);
    }
    dragStart = null;
    dragNow = null;
    render();
    onChange();
  });

  const button = (text: string, action: () => void) => {
    const b = h('button', { type: 'button' }, text);
    b.addEventListener('click', () => {
      if (!image) return;
      action();
      render();
      onChange();
    });
    return b;
  };

  const el = h(
    'div',
    { class: 'mask-editor' },
    canvas,
    count,
    h('div', { class: 'row' }, field('Tool', tool), field('Brush size (pixels)', brush)),
    h(
      'div',
      { class: 'row' },
      button('Clear mask', () => mask.fill(0)),
      button('Invert mask', () => {
        for (let i = 0; i < mask.length; i++) mask[i] = 1 - mask[i];
      }),
    ),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Random pixels'),
      field('Missing fraction', ratio),
      field('Seed', seed),
      button('Mark random pixels missing', () => {
        const rng = new Rng(Number(seed.value));
        const p = Math.min(1, Math.max(0, Number(ratio.value)));
        for (let i = 0; i < mask.length; i++) mask[i] = rng.uniform() < p ? 1 : 0;
      }),
    ),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Box (keyboard)'),
      field('x (column)', bx),
      field('y (row)', by),
      field('width', bw),
      field('height', bh),
      button('Add box', () =>
        fillRect(Number(bx.value), Number(by.value), Number(bw.value), Number(bh.value), 1),
      ),
    ),
  );

  return {
    el,
    canvas,
    setImage(next) {
      image = next;
      mask = new Uint8Array(next.width * next.height);
      scale = Math.max(1, Math.floor(256 / Math.max(next.width, next.height)));
      render();
    },
    addBox(x, y, width, height) {
      fillRect(x, y, width, height, 1);
      render();
      onChange();
    },
    mask: () => mask,
    missingCount,
  };
}
