/**
 * What a RED-Diff restore run does, in one place for the worker that runs it (src/operations/restore/task.ts) and
 * the job-cost estimate on the main thread (operation.ts estimateRestoreMs), so that they cannot drift: the model's
 * settings for the mask (modelRedDiffDefaults: its `extra.redDiff`, general or `holes`), the runs averaged (the
 * request's `samples`, else the model's) and the pixels each step updates (the hole windows of the padded mask, one
 * per group of holes far apart, when the settings window the run and the measurements are exact,
 * src/diffusion/hole-window.ts holeWindows; else the whole padded estimate).
 *
 * The main thread holds no pixel: there the mask is known from a request's boxes (its rows, columns and hole radius
 * follow from them, the radius measured on their bounding box only, up to PLAN_MAX_BOX_PIXELS), or not at all (an
 * uploaded mask, a random one, boxes spread wider: the plan is then an upper bound, the largest `samples` any
 * setting may use over the whole padded estimate).
 */

import {
  extentWindow,
  type HoleBox,
  type HoleWindow,
  type MissingExtent,
  missingExtent,
  missingRegions,
  regionWindows,
  windowsMeasurements,
} from '../../diffusion/hole-window.js';
import { RED_DIFF_INITS, type RedDiffInit } from '../../diffusion/initial.js';
import { holeRadius } from '../../diffusion/mask-structure.js';
import { boxMask } from '../../diffusion/operators.js';
import { reflectIndex, restorePadding } from '../../diffusion/padding.js';
import type { RedDiffCoarse } from '../../diffusion/red-diff.js';
import { diffusionSection, extraSection } from '../../nn/manifest-sections.js';
import { RESTORE_DEFAULTS } from './schema.js';

export interface ModelRedDiffDefaults {
  lambda: number;
  lr: number;
  init: RedDiffInit;
  /** Undefined: the whole schedule (T - 1). */
  tMax?: number;
  /**
   * Inpainting: RED-Diff optimises only a window around the missing pixels with this margin of observed context
   * (src/diffusion/hole-window.ts); undefined: the whole image.
   */
  windowMargin?: number;
  /** The mean of this many runs (red-diff.ts `samples`); undefined: one. */
  samples?: number;
  /** Inpainting with a window: a half-resolution run first (red-diff.ts `coarse`); undefined: none. */
  coarse?: RedDiffCoarse;
  /** Which of the manifest's settings apply: 'holes' for a mask with a deep enough hole, else 'general'. */
  settings: 'general' | 'holes';
  /** The inpainting mask's hole radius (src/diffusion/mask-structure.ts), when a mask was given. */
  holeRadius?: number;
}

/** An inpainting mask (1 observed, 0 missing), h x w or a batch of such masks. */
export interface MaskShape {
  mask: Float32Array;
  height: number;
  width: number;
}

/**
 * The RED-Diff settings a model's manifest recommends (`extra.redDiff`, chosen by bench:restore for that prior),
 * each falling back to the service's RESTORE_DEFAULTS (the official algorithm's start, H^+ y from t = T - 1). With
 * an inpainting `mask` whose hole radius (the largest distance from a missing pixel to an observed one,
 * src/diffusion/mask-structure.ts) reaches the manifest's `extra.redDiff.holes.minRadius`, the `holes` settings
 * apply instead (each absent field: the general one): one rule for every mask, whatever route or benchmark built it.
 * `{ radius }`: the mask's hole radius, when it is known without the mask (restoreRunPlan's boxes).
 */
export function modelRedDiffDefaults(
  extra: Record<string, unknown> | undefined,
  mask?: MaskShape | { radius: number },
): ModelRedDiffDefaults {
  const general = extraSection(diffusionSection, { extra }).redDiff ?? {};
  const radius = !mask
    ? undefined
    : 'radius' in mask
      ? mask.radius
      : holeRadius(mask.mask, mask.height, mask.width);
  const holes = general.holes;
  const useHoles = holes !== undefined && radius !== undefined && radius >= holes.minRadius;
  const pick = <K extends 'lambda' | 'lr' | 'init' | 'tMax' | 'windowMargin' | 'samples' | 'coarse'>(
    key: K,
  ) => (useHoles ? holes[key] : undefined) ?? general[key];
  const init = RED_DIFF_INITS.find((i) => i === pick('init'));
  const tMax = pick('tMax');
  const windowMargin = mask ? pick('windowMargin') : undefined;
  const samples = pick('samples');
  const coarse = windowMargin !== undefined ? pick('coarse') : undefined;
  return {
    lambda: pick('lambda') ?? RESTORE_DEFAULTS.lambda,
    lr: pick('lr') ?? RESTORE_DEFAULTS.lr,
    init: init ?? RESTORE_DEFAULTS.init,
    ...(tMax !== undefined ? { tMax } : {}),
    ...(windowMargin !== undefined ? { windowMargin } : {}),
    ...(samples !== undefined ? { samples } : {}),
    ...(coarse !== undefined ? { coarse } : {}),
    settings: useHoles ? 'holes' : 'general',
    ...(radius !== undefined ? { holeRadius: radius } : {}),
  };
}

/** A request's boxes (clipped to the image when the mask is built: src/diffusion/operators.ts boxMask). */
export interface MaskBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** The mask as far as the plan knows it; undefined: no mask (not inpainting). */
export type PlanMask =
  | { kind: 'mask'; mask: Float32Array }
  | { kind: 'boxes'; boxes: MaskBox[] }
  | { kind: 'unknown' }
  | undefined;

export interface RestoreRunPlan {
  /** The model's settings for this mask (for an unknown mask: the general ones). */
  tuned: ModelRedDiffDefaults;
  /** Runs averaged: the request's samples, else the model's, else one. */
  samples: number;
  /** The windows each step updates in the padded estimate (one after the other: red-diff.ts); null: all of it. */
  windows: HoleWindow[] | null;
  /** Pixels each step updates (the windows', or the padded estimate's). */
  stepPixels: number;
  /**
   * The half-resolution run before each full-resolution one (the settings' `coarse`, red-diff.ts), as the worker
   * runs it on the windows whose sides allow it (or the padded estimate's): its steps and the pixels each updates
   * (a quarter of those windows'); null without.
   */
  coarse: { steps: number; stepPixels: number } | null;
}

/**
 * Most pixels of the boxes' bounding box whose hole radius the main thread measures (a few milliseconds); boxes
 * spread wider are planned as an unknown mask (the upper bound).
 */
export const PLAN_MAX_BOX_PIXELS = 1 << 20;

/**
 * Most pixels of a random inpainting mask (`maskRatio`) the main thread builds and plans as the worker will (about
 * 7 ms at 256x256; 1M pixels took 110 ms, too long for the event loop): a larger one is planned as an unknown mask.
 * The bound's excess (the hole settings' half-resolution run) matters for small images, where it could turn a
 * one-second request into a job.
 */
export const PLAN_MAX_RANDOM_MASK_PIXELS = 1 << 16;

/**
 * The rows and columns that hold a missing pixel of boxes in an h x w image, their hole radius and their regions
 * (missingRegions, in the image; null: too many); null when the boxes' bounding box is over PLAN_MAX_BOX_PIXELS.
 */
function boxesExtent(
  boxes: MaskBox[],
  height: number,
  width: number,
): { extent: MissingExtent; radius: number; regions: HoleBox[] | null } | null {
  const rows = new Uint8Array(height);
  const cols = new Uint8Array(width);
  let r0 = height;
  let r1 = -1;
  let c0 = width;
  let c1 = -1;
  for (const box of boxes) {
    const top = Math.max(0, box.top);
    const bottom = Math.min(height, box.top + box.height);
    const left = Math.max(0, box.left);
    const right = Math.min(width, box.left + box.width);
    if (!(top < bottom && left < right)) continue;
    rows.fill(1, top, bottom);
    cols.fill(1, left, right);
    r0 = Math.min(r0, top);
    r1 = Math.max(r1, bottom - 1);
    c0 = Math.min(c0, left);
    c1 = Math.max(c1, right - 1);
  }
  if (r1 < 0) return { extent: { rows, cols }, radius: 0, regions: [] };
  // The hole radius on the boxes' bounding box with one pixel of (observed) border, cut at the image's edges:
  // every missing pixel is in it, and its nearest observed pixel too, so the radius is the whole mask's.
  const top = Math.max(0, r0 - 1);
  const left = Math.max(0, c0 - 1);
  const h = Math.min(height, r1 + 2) - top;
  const w = Math.min(width, c1 + 2) - left;
  if (h * w > PLAN_MAX_BOX_PIXELS) return null;
  const crop = boxMask(
    h,
    w,
    boxes.map((b) => ({ ...b, top: b.top - top, left: b.left - left })),
  );
  const regions = missingRegions(crop, h, w);
  return {
    extent: { rows, cols },
    radius: holeRadius(crop, h, w),
    regions:
      regions === null
        ? null
        : regions.map((r) => ({
            top: r.top + top,
            bottom: r.bottom + top,
            left: r.left + left,
            right: r.right + left,
          })),
  };
}

/**
 * `regions` of an outHeight x outWidth estimate, padded as the pipeline pads the mask (padding.ts `pad`): shifted
 * (constant), or with their reflections into the padded rows and columns (reflect: a hole near the bottom or right
 * edge is mirrored there, the edge not repeated): a reflection next to its region (within a pixel) grows it, one
 * further off is a region of its own, as the worker's regions of the padded mask are. Regions are taken as their
 * bounding boxes here: with a window margin of a few pixels (below the models' 16 to 64) the windows of oddly
 * shaped holes at the edge may come out a little larger than the worker's.
 */
function padRegions(
  regions: HoleBox[],
  padding: { mode: 'reflect' | 'constant'; top: number; left: number; height: number; width: number },
  outHeight: number,
  outWidth: number,
): HoleBox[] {
  if (padding.mode === 'constant')
    return regions.map((r) => ({
      top: r.top + padding.top,
      bottom: r.bottom + padding.top,
      left: r.left + padding.left,
      right: r.right + padding.left,
    }));
  // The padded indices whose reflection falls in [lo, hi], as [first, last]; null when none does.
  const mirror = (lo: number, hi: number, n: number, size: number): [number, number] | null => {
    let first = -1;
    let last = -1;
    for (let i = n; i < size; i++) {
      const j = reflectIndex(i, n);
      if (j < lo || j > hi) continue;
      if (first < 0) first = i;
      last = i;
    }
    return first < 0 ? null : [first, last];
  };
  const out: HoleBox[] = [];
  for (const r of regions) {
    // Per axis: the region's span, grown by an adjacent reflection, and a reflection further off.
    const axis = (lo: number, hi: number, n: number, size: number) => {
      const m = mirror(lo, hi, n, size);
      if (m && m[0] <= hi + 1) return { span: [lo, m[1]] as [number, number], apart: null };
      return { span: [lo, hi] as [number, number], apart: m };
    };
    const rows = axis(r.top, r.bottom, outHeight, padding.height);
    const cols = axis(r.left, r.right, outWidth, padding.width);
    const box = (rs: [number, number], cs: [number, number]) => ({
      top: rs[0],
      bottom: rs[1],
      left: cs[0],
      right: cs[1],
    });
    out.push(box(rows.span, cols.span));
    if (rows.apart) out.push(box(rows.apart, cols.span));
    if (cols.apart) out.push(box(rows.span, cols.apart));
    if (rows.apart && cols.apart) out.push(box(rows.apart, cols.apart));
  }
  return out;
}

/** `extent` of an outHeight x outWidth estimate, padded as the pipeline pads the mask (padding.ts `pad`). */
function padExtent(
  extent: MissingExtent,
  padding: { mode: 'reflect' | 'constant'; top: number; left: number; height: number; width: number },
): MissingExtent {
  const side = (occupied: Uint8Array, size: number, offset: number) =>
    Uint8Array.from({ length: size }, (_, i) => {
      if (padding.mode === 'reflect') return occupied[reflectIndex(i, occupied.length)];
      const j = i - offset;
      return j >= 0 && j < occupied.length ? occupied[j] : 0;
    });
  return {
    rows: side(extent.rows, padding.height, padding.top),
    cols: side(extent.cols, padding.width, padding.left),
  };
}

/**
 * The plan of a run on an outHeight x outWidth estimate (super-resolution: the output's size) with a measurement
 * `factor` times smaller, for a network whose sides are multiples of `multiple`: see the top of this file.
 */
export function restoreRunPlan(args: {
  extra: Record<string, unknown> | undefined;
  outHeight: number;
  outWidth: number;
  factor: number;
  multiple: number;
  /** The request's `samples`, if it gave one. */
  samples?: number;
  /** The measurement noise (any scale: only whether it is 0 matters, windowsMeasurements). */
  sigmaY: number;
  mask: PlanMask;
}): RestoreRunPlan {
  const { extra, outHeight, outWidth, factor, multiple, mask } = args;
  const padding = restorePadding(extra, outHeight, outWidth, factor, multiple);
  const whole = padding.height * padding.width;
  const boxes = mask?.kind === 'boxes' ? boxesExtent(mask.boxes, outHeight, outWidth) : undefined;
  if (mask?.kind === 'unknown' || boxes === null) {
    const general = modelRedDiffDefaults(extra);
    const holes = modelRedDiffDefaults(extra, { radius: Number.POSITIVE_INFINITY });
    const samples = args.samples ?? Math.max(general.samples ?? 1, holes.samples ?? 1);
    // The holes settings' half-resolution run too, at its largest (a quarter of the whole padded estimate).
    const coarse =
      holes.coarse && windowsMeasurements(args.sigmaY)
        ? { steps: holes.coarse.steps, stepPixels: whole / 4 }
        : null;
    return { tuned: general, samples, windows: null, stepPixels: whole, coarse };
  }
  let tuned: ModelRedDiffDefaults;
  let extent: MissingExtent | undefined;
  let regions: HoleBox[] | null = null;
  if (boxes) {
    tuned = modelRedDiffDefaults(extra, { radius: boxes.radius });
    extent = boxes.extent;
    regions = boxes.regions;
  } else if (mask?.kind === 'mask') {
    tuned = modelRedDiffDefaults(extra, { mask: mask.mask, height: outHeight, width: outWidth });
    extent = missingExtent(mask.mask, outHeight, outWidth);
    regions = missingRegions(mask.mask, outHeight, outWidth);
  } else {
    tuned = modelRedDiffDefaults(extra);
  }
  const windowed =
    extent !== undefined && tuned.windowMargin !== undefined && windowsMeasurements(args.sigmaY);
  // A half-resolution run first halves the window: its sides are then multiples of twice the network's factor.
  const windowMultiple = tuned.coarse ? 2 * multiple : multiple;
  // The worker's windows (red-diff.ts holeWindows): one per group of holes far apart, or (too many regions) the
  // single window of them all.
  let windows: HoleWindow[] | null = null;
  if (windowed && extent && tuned.windowMargin !== undefined) {
    if (regions) {
      const padded = padRegions(regions, padding, outHeight, outWidth);
      windows = regionWindows(padded, padding.height, padding.width, tuned.windowMargin, windowMultiple);
    } else {
      const single = extentWindow(padExtent(extent, padding), tuned.windowMargin, windowMultiple);
      windows = single ? [single] : null;
    }
  }
  const area = (w: { height: number; width: number }) => w.height * w.width;
  const stepPixels = windows ? windows.reduce((sum, w) => sum + area(w), 0) : whole;
  // The worker halves only sides that are multiples of 2 x the network's factor (a window as tall or as wide as
  // the padded estimate has its side, a multiple of the factor only).
  const halved = (windows ?? [padding]).filter(
    (w) => w.height % windowMultiple === 0 && w.width % windowMultiple === 0,
  );
  const coarse =
    tuned.coarse && windowed && halved.length > 0
      ? { steps: tuned.coarse.steps, stepPixels: halved.reduce((sum, w) => sum + area(w), 0) / 4 }
      : null;
  return {
    tuned,
    samples: args.samples ?? tuned.samples ?? 1,
    windows,
    stepPixels,
    coarse,
  };
}
