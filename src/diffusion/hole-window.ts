/**
 * The window RED-Diff optimises when inpainting (issue 18): the bounding box of the missing pixels (over every mask
 * of a batch), widened by `margin` pixels of observed context on each side, its sides rounded up to multiples of the
 * network's down-sampling factor and kept inside the image. Outside it every pixel is observed, so the estimate
 * there is the measurement itself, and the prior only ever sees a neighbourhood of the holes.
 *
 * Why: the natural prior was trained on 64x64 crops, and its U-Net's GroupNorm normalises over the whole input, so a
 * 32x32 hole inside a 256x256 image is denoised under the statistics of the whole image rather than those of its
 * neighbourhood (on held-out photographs a 64x64 window gains inside the hole over the whole image: bench/RESULTS.md
 * "RED-Diff inside holes"); it also costs a fraction of the whole image's U-Net passes.
 */

export interface HoleWindow {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** One side of the window: [lo, hi] (inclusive) widened by margin, rounded up to `multiple`, inside [0, size). */
function side(lo: number, hi: number, size: number, margin: number, multiple: number) {
  const start = Math.max(0, lo - margin);
  const end = Math.min(size, hi + 1 + margin);
  const length = Math.ceil((end - start) / multiple) * multiple;
  if (length >= size) return { start: 0, length: size };
  // Grown evenly on both sides, then shifted back inside the image.
  const grown = start - Math.floor((length - (end - start)) / 2);
  return { start: Math.min(Math.max(0, grown), size - length), length };
}

/**
 * Which rows and columns of an h x w image hold a missing pixel (1) or not (0): all a window depends on. A mask
 * gives it (missingExtent); a request's boxes give it without any pixel (the job-cost estimate).
 */
export interface MissingExtent {
  rows: Uint8Array;
  cols: Uint8Array;
}

/** The rows and columns of `mask` (0 missing: one or more h x w masks) that hold a missing pixel. */
export function missingExtent(mask: Float32Array, height: number, width: number): MissingExtent {
  const size = height * width;
  if (mask.length === 0 || mask.length % size !== 0)
    throw new RangeError(`mask has ${mask.length} values, not a multiple of ${height}x${width}`);
  const rows = new Uint8Array(height);
  const cols = new Uint8Array(width);
  for (let i = 0; i < mask.length; i++) {
    if (mask[i] !== 0) continue;
    rows[Math.floor((i % size) / width)] = 1;
    cols[i % width] = 1;
  }
  return { rows, cols };
}

/**
 * The window around the missing pixels of `extent` (the image is extent.rows.length x extent.cols.length), or null
 * when nothing is missing or the window would be the whole image.
 */
export function extentWindow(extent: MissingExtent, margin: number, multiple: number): HoleWindow | null {
  if (!(Number.isInteger(margin) && margin >= 0))
    throw new RangeError(`margin must be an integer >= 0, got ${margin}`);
  if (!(Number.isInteger(multiple) && multiple >= 1))
    throw new RangeError(`multiple must be a positive integer, got ${multiple}`);
  const height = extent.rows.length;
  const width = extent.cols.length;
  const top = extent.rows.indexOf(1);
  const left = extent.cols.indexOf(1);
  if (top < 0 || left < 0) return null;
  const rows = side(top, extent.rows.lastIndexOf(1), height, margin, multiple);
  const cols = side(left, extent.cols.lastIndexOf(1), width, margin, multiple);
  if (rows.length === height && cols.length === width) return null;
  return { top: rows.start, left: cols.start, height: rows.length, width: cols.length };
}

/**
 * The window around the missing pixels (0 in `mask`: one or more h x w masks, 1 observed), or null when nothing is
 * missing or the window would be the whole image.
 */
export function holeWindow(
  mask: Float32Array,
  height: number,
  width: number,
  margin: number,
  multiple: number,
): HoleWindow | null {
  return extentWindow(missingExtent(mask, height, width), margin, multiple);
}

/**
 * Whether a masked run with `window` options optimises only the window (red-diff.ts): for exact
 * measurements only. With noise (sigmaY > 0) the whole-image run also smooths the observed pixels, which the window
 * would return as uploaded, noise and all. Shared with the job-cost plan (src/operations/restore/plan.ts).
 */
export function windowsMeasurements(sigmaY: number | undefined): boolean {
  return (sigmaY ?? 0) === 0;
}

/** More separate regions of missing pixels than this (scattered pixels, not holes): the one window of holeWindow. */
export const MAX_HOLE_WINDOWS = 64;

/** A region's bounding box: rows top..bottom and columns left..right, inclusive. */
export interface HoleBox {
  top: number;
  bottom: number;
  left: number;
  right: number;
}

function boxWindow(
  box: HoleBox,
  height: number,
  width: number,
  margin: number,
  multiple: number,
): HoleWindow {
  const rows = side(box.top, box.bottom, height, margin, multiple);
  const cols = side(box.left, box.right, width, margin, multiple);
  return { top: rows.start, left: cols.start, height: rows.length, width: cols.length };
}

const overlap = (a: HoleWindow, b: HoleWindow) =>
  a.top < b.top + b.height &&
  b.top < a.top + a.height &&
  a.left < b.left + b.width &&
  b.left < a.left + a.width;

/**
 * The bounding boxes of the 8-connected regions of missing pixels (over every mask of a batch), in the order of
 * their first pixel; null with more than MAX_HOLE_WINDOWS of them (scattered pixels, not holes).
 */
export function missingRegions(mask: Float32Array, height: number, width: number): HoleBox[] | null {
  const size = height * width;
  const missing = new Uint8Array(size);
  for (let i = 0; i < mask.length; i++) if (mask[i] === 0) missing[i % size] = 1;
  const boxes: HoleBox[] = [];
  const stack: number[] = [];
  for (let start = 0; start < size; start++) {
    if (missing[start] !== 1) continue;
    if (boxes.length === MAX_HOLE_WINDOWS) return null;
    const box = { top: height, bottom: -1, left: width, right: -1 };
    missing[start] = 2;
    stack.push(start);
    while (stack.length > 0) {
      const i = stack.pop() as number;
      const r = Math.floor(i / width);
      const c = i % width;
      box.top = Math.min(box.top, r);
      box.bottom = Math.max(box.bottom, r);
      box.left = Math.min(box.left, c);
      box.right = Math.max(box.right, c);
      for (let dr = -1; dr <= 1; dr++)
        for (let dc = -1; dc <= 1; dc++) {
          const rr = r + dr;
          const cc = c + dc;
          if (rr < 0 || rr >= height || cc < 0 || cc >= width) continue;
          const j = rr * width + cc;
          if (missing[j] === 1) {
            missing[j] = 2;
            stack.push(j);
          }
        }
    }
    boxes.push(box);
  }
  return boxes;
}

/**
 * The windows of regions of missing pixels (their bounding boxes, in an h x w image): each region gets the window of
 * its box (as holeWindow: margin, sides rounded up to `multiple`, inside the image), and regions whose windows
 * overlap share one (that of both boxes) until the windows are disjoint. Sorted by top, then left. Null when there
 * is no region or a window would be the whole image.
 */
export function regionWindows(
  regions: HoleBox[],
  height: number,
  width: number,
  margin: number,
  multiple: number,
): HoleWindow[] | null {
  const boxes = [...regions];
  if (boxes.length === 0) return null;
  // Merge the regions whose windows overlap, until none do.
  let merged = true;
  while (merged) {
    merged = false;
    const windows = boxes.map((b) => boxWindow(b, height, width, margin, multiple));
    search: for (let a = 0; a < boxes.length; a++)
      for (let b = a + 1; b < boxes.length; b++)
        if (overlap(windows[a], windows[b])) {
          const [p, q] = [boxes[a], boxes[b]];
          boxes[a] = {
            top: Math.min(p.top, q.top),
            bottom: Math.max(p.bottom, q.bottom),
            left: Math.min(p.left, q.left),
            right: Math.max(p.right, q.right),
          };
          boxes.splice(b, 1);
          merged = true;
          break search;
        }
  }
  const windows = boxes.map((b) => boxWindow(b, height, width, margin, multiple));
  if (windows.some((w) => w.height === height && w.width === width)) return null;
  return windows.sort((a, b) => a.top - b.top || a.left - b.left);
}

/**
 * One window per group of holes, for holes far apart (issue 18): the missing pixels (over every mask of a batch)
 * fall into 8-connected regions (missingRegions), whose windows are grouped until disjoint (regionWindows), so each
 * window holds only its own group's missing pixels. Null when nothing is missing or a window would be the whole
 * image; with more than MAX_HOLE_WINDOWS regions (scattered pixels), holeWindow's single window.
 */
export function holeWindows(
  mask: Float32Array,
  height: number,
  width: number,
  margin: number,
  multiple: number,
): HoleWindow[] | null {
  const single = holeWindow(mask, height, width, margin, multiple);
  const regions = missingRegions(mask, height, width);
  if (regions === null) return single ? [single] : null;
  return regionWindows(regions, height, width, margin, multiple);
}

/** The window of each h x w plane of `data` (planes stacked one after the other), stacked the same way. */
export function cropPlanes(data: Float32Array, height: number, width: number, win: HoleWindow): Float32Array {
  const planes = data.length / (height * width);
  const out = new Float32Array(planes * win.height * win.width);
  for (let p = 0; p < planes; p++)
    for (let r = 0; r < win.height; r++) {
      const from = p * height * width + (win.top + r) * width + win.left;
      out.set(data.subarray(from, from + win.width), (p * win.height + r) * win.width);
    }
  return out;
}

/** `base` (h x w planes) with each plane's window replaced by the matching plane of `inner` (a copy). */
export function pastePlanes(
  base: Float32Array,
  height: number,
  width: number,
  win: HoleWindow,
  inner: Float32Array,
): Float32Array {
  const out = Float32Array.from(base);
  const planes = base.length / (height * width);
  for (let p = 0; p < planes; p++)
    for (let r = 0; r < win.height; r++) {
      const from = (p * win.height + r) * win.width;
      out.set(inner.subarray(from, from + win.width), p * height * width + (win.top + r) * width + win.left);
    }
  return out;
}
