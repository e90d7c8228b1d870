/**
 * Canvas charts, drawn by hand (a charting library would outweigh the whole console): a line chart with an
 * optional log-scale y axis (convergence curves) and a bar chart against a threshold (detection scores).
 * Each chart also writes a text summary into the canvas' aria-label, for readers who cannot see it.
 */

export interface Series {
  label: string;
  color: string;
  points: { x: number; y: number }[];
}

const AXIS = '#444';
const GRID = '#ddd';
const FONT = '12px system-ui, sans-serif';

function prepare(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('no 2D canvas');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.font = FONT;
  // A canvas keeps its drawing state between charts: start from the defaults.
  ctx.textAlign = 'left';
  ctx.textBaseline = 'alphabetic';
  ctx.lineWidth = 1;
  ctx.setLineDash([]);
  ctx.globalAlpha = 1;
  return ctx;
}

export function lineChart(
  canvas: HTMLCanvasElement,
  series: Series[],
  opts: { logY?: boolean; xLabel: string; yLabel: string },
): void {
  const ctx = prepare(canvas);
  const pad = { left: 58, right: 12, top: 12, bottom: 36 };
  const w = canvas.width - pad.left - pad.right;
  const hgt = canvas.height - pad.top - pad.bottom;
  const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.y) && (!opts.logY || p.y > 0));
  if (all.length === 0) {
    ctx.fillStyle = AXIS;
    ctx.fillText('no convergence history returned', pad.left, pad.top + 20);
    canvas.setAttribute('aria-label', 'no convergence history');
    return;
  }
  const fy = (v: number) => (opts.logY ? Math.log10(v) : v);
  let xMin = Math.min(...all.map((p) => p.x));
  let xMax = Math.max(...all.map((p) => p.x));
  let yMin = Math.min(...all.map((p) => fy(p.y)));
  let yMax = Math.max(...all.map((p) => fy(p.y)));
  if (xMax === xMin) xMax = xMin + 1;
  if (opts.logY) {
    yMin = Math.floor(yMin);
    yMax = Math.ceil(yMax);
  }
  if (yMax === yMin) {
    yMax += 1;
    yMin -= opts.logY ? 0 : 1;
  }
  xMin = Math.min(xMin, 0);
  const px = (x: number) => pad.left + ((x - xMin) / (xMax - xMin)) * w;
  const py = (y: number) => pad.top + (1 - (fy(y) - yMin) / (yMax - yMin)) * hgt;

  // Grid and y ticks: decades on a log axis, 5 steps otherwise.
  ctx.strokeStyle = GRID;
  ctx.fillStyle = AXIS;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  const yTicks = opts.logY
    ? Array.from({ length: yMax - yMin + 1 }, (_, i) => yMin + i)
    : Array.from({ length: 6 }, (_, i) => yMin + ((yMax - yMin) * i) / 5);
  const step = Math.max(1, Math.ceil(yTicks.length / 8));
  yTicks.forEach((t, i) => {
    const y = pad.top + (1 - (t - yMin) / (yMax - yMin)) * hgt;
    ctx.beginPath();
    ctx.moveTo(pad.left, y);
    ctx.lineTo(pad.left + w, y);
    ctx.stroke();
    if (i % step === 0) ctx.fillText(opts.logY ? `1e${t}` : t.toPrecision(3), pad.left - 4, y);
  });
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (let i = 0; i <= 4; i++) {
    const x = xMin + ((xMax - xMin) * i) / 4;
    ctx.fillText(String(Math.round(x)), px(x), pad.top + hgt + 4);
  }
  ctx.fillText(opts.xLabel, pad.left + w / 2, pad.top + hgt + 20);
  ctx.save();
  ctx.translate(12, pad.top + hgt / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(opts.yLabel, 0, -6);
  ctx.restore();
  ctx.strokeStyle = AXIS;
  ctx.strokeRect(pad.left, pad.top, w, hgt);

  series.forEach((s, k) => {
    const pts = s.points.filter((p) => Number.isFinite(p.y) && (!opts.logY || p.y > 0));
    ctx.strokeStyle = s.color;
    ctx.fillStyle = s.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    pts.forEach((p, i) => {
      if (i === 0) ctx.moveTo(px(p.x), py(p.y));
      else ctx.lineTo(px(p.x), py(p.y));
    });
    ctx.stroke();
    for (const p of pts) ctx.fillRect(px(p.x) - 2, py(p.y) - 2, 4, 4);
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.fillText(s.label, pad.left + w - 6, pad.top + 10 + k * 16);
  });
  canvas.setAttribute(
    'aria-label',
    `${opts.yLabel} against ${opts.xLabel}: ` +
      series
        .map((s) => {
          const last = s.points[s.points.length - 1];
          return last ? `${s.label} ends at ${last.y.toExponential(2)} after ${last.x}` : `${s.label}: none`;
        })
        .join('; '),
  );
}

export interface Bar {
  label: string;
  value: number;
  flagged: boolean;
}

/** One bar per item, a dashed line at the threshold; flagged bars in the warning colour. */
export function barChart(canvas: HTMLCanvasElement, bars: Bar[], threshold: number | null): void {
  const ctx = prepare(canvas);
  // x-axis labels: the file name without its extension, shortened in the middle only when longer than a third of
  // the canvas; the bottom and left margins grow to fit the longest one, slanted at 30 degrees (none is cut off).
  const maxLabel = canvas.width / 3;
  const labels = bars.map((b) => fitLabel(ctx, b.label.replace(/\.[a-z0-9]{2,5}$/i, ''), maxLabel));
  const widest = Math.max(0, ...labels.map((l) => ctx.measureText(l).width));
  const slant = Math.PI / 6;
  const slot0 = (canvas.width - 70) / Math.max(1, bars.length);
  const pad = {
    left: Math.max(58, Math.ceil(widest * Math.cos(slant) - slot0 * 0.5 + 6)),
    right: 12,
    top: 12,
    bottom: Math.min(Math.floor(canvas.height / 2), Math.ceil(widest * Math.sin(slant) + 24)),
  };
  const w = canvas.width - pad.left - pad.right;
  const hgt = canvas.height - pad.top - pad.bottom;
  const top = Math.max(...bars.map((b) => b.value), threshold ?? 0, 1e-12) * 1.1;
  const py = (v: number) => pad.top + (1 - v / top) * hgt;
  ctx.strokeStyle = AXIS;
  ctx.strokeRect(pad.left, pad.top, w, hgt);
  ctx.fillStyle = AXIS;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) ctx.fillText(((top * i) / 4).toPrecision(2), pad.left - 4, py((top * i) / 4));
  const slot = w / Math.max(1, bars.length);
  bars.forEach((b, i) => {
    const x = pad.left + i * slot + slot * 0.15;
    ctx.fillStyle = b.flagged ? '#b3261e' : '#1f6feb';
    ctx.fillRect(x, py(Math.max(0, b.value)), slot * 0.7, pad.top + hgt - py(Math.max(0, b.value)));
    ctx.save();
    ctx.fillStyle = AXIS;
    ctx.translate(x + slot * 0.35, pad.top + hgt + 4);
    ctx.rotate(-slant);
    ctx.textAlign = 'right';
    ctx.textBaseline = 'top';
    ctx.fillText(labels[i], 0, 0);
    ctx.restore();
  });
  if (threshold !== null) {
    ctx.strokeStyle = '#000';
    ctx.setLineDash([6, 4]);
    ctx.beginPath();
    ctx.moveTo(pad.left, py(threshold));
    ctx.lineTo(pad.left + w, py(threshold));
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = '#000';
    ctx.textAlign = 'left';
    ctx.fillText(`threshold ${threshold.toPrecision(3)}`, pad.left + 4, py(threshold) - 8);
  }
  canvas.setAttribute('data-labels', JSON.stringify(labels));
  canvas.setAttribute(
    'aria-label',
    `scores: ${bars.map((b) => `${b.label} ${b.value.toPrecision(3)}${b.flagged ? ' (adversarial)' : ''}`).join(', ')}`,
  );
}

/** The label itself when it fits in `max` pixels, else its start and end around an ellipsis. */
function fitLabel(ctx: CanvasRenderingContext2D, label: string, max: number): string {
  if (ctx.measureText(label).width <= max) return label;
  let keep = label.length - 1;
  for (; keep > 2; keep--) {
    const head = label.slice(0, Math.ceil(keep / 2));
    const tail = label.slice(label.length - Math.floor(keep / 2));
    const text = `${head}\u2026${tail}`;
    if (ctx.measureText(text).width <= max) return text;
  }
  return `${label.slice(0, 2)}\u2026`;
}
