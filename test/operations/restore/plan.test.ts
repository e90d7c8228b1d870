/**
 * The RED-Diff run plan (src/operations/restore/plan.ts): the job-cost estimate counts what the worker runs, the
 * model's own `samples` and the hole window of the padded mask included, and a request's boxes give the same plan
 * as the mask built from them.
 */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { holeWindow, holeWindows } from '../../../src/diffusion/hole-window.js';
import { boxMask } from '../../../src/diffusion/operators.js';
import { restorePadding } from '../../../src/diffusion/padding.js';
import {
  estimateRestoreMs,
  RESTORE_MS_PER_PIXEL_STEP,
  restore,
} from '../../../src/operations/restore/operation.js';
import { PLAN_MAX_BOX_PIXELS, restoreRunPlan } from '../../../src/operations/restore/plan.js';
import { parseBoxes, restoreParams } from '../../../src/operations/restore/schema.js';
import { Rng } from '../../../src/util/random.js';

const extra = {
  redDiff: {
    init: 'smooth',
    tMax: 30,
    lambda: 0.05,
    lr: 0.01,
    samples: 2,
    holes: { minRadius: 9, tMax: 400, lr: 0.02, windowMargin: 16, samples: 3 },
  },
};
const multiple = 8;

/** What the worker does: the mask padded by the pipeline's padding, its hole windows (red-diff.ts). */
function runWindowPixels(mask: Float32Array, height: number, width: number, margin: number | undefined) {
  const padding = restorePadding(extra, height, width, 1, multiple);
  const padded = padding.pad(mask, height, width, 'x', 1);
  const wins =
    margin === undefined ? null : holeWindows(padded, padding.height, padding.width, margin, multiple);
  return wins ? wins.reduce((sum, w) => sum + w.height * w.width, 0) : padding.height * padding.width;
}

describe('restoreRunPlan', () => {
  it("a request's boxes give the plan of the mask built from them (settings, window), edges and overlaps too", () => {
    const rng = new Rng(3);
    for (let k = 0; k < 400; k++) {
      const height = 40 + Math.floor(rng.uniform() * 60);
      const width = 40 + Math.floor(rng.uniform() * 60);
      const boxes = Array.from({ length: 1 + Math.floor(rng.uniform() * 3) }, () => ({
        top: Math.floor(rng.uniform() * (height + 10)) - 10,
        left: Math.floor(rng.uniform() * (width + 10)) - 10,
        height: 1 + Math.floor(rng.uniform() * 30),
        width: 1 + Math.floor(rng.uniform() * 30),
      }));
      const mask = boxMask(height, width, boxes);
      const common = { extra, outHeight: height, outWidth: width, factor: 1, multiple, sigmaY: 0 };
      const fromMask = restoreRunPlan({ ...common, mask: { kind: 'mask', mask } });
      const fromBoxes = restoreRunPlan({ ...common, mask: { kind: 'boxes', boxes } });
      expect(fromBoxes, JSON.stringify({ height, width, boxes })).toEqual(fromMask);
      expect(fromMask.stepPixels).toBe(runWindowPixels(mask, height, width, fromMask.tuned.windowMargin));
    }
  });

  it("counts the model's own samples, the request's first, and an unknown mask as the largest", () => {
    const common = { extra, outHeight: 64, outWidth: 64, factor: 1, multiple, sigmaY: 0 };
    const hole = parseBoxes('16,16,32,32');
    expect(restoreRunPlan({ ...common, mask: undefined }).samples).toBe(2);
    expect(restoreRunPlan({ ...common, mask: { kind: 'boxes', boxes: hole } }).samples).toBe(3);
    expect(restoreRunPlan({ ...common, samples: 1, mask: { kind: 'boxes', boxes: hole } }).samples).toBe(1);
    const unknown = restoreRunPlan({ ...common, mask: { kind: 'unknown' } });
    expect(unknown).toMatchObject({ samples: 3, windows: null, stepPixels: 64 * 64 });
    // Boxes spread over more than PLAN_MAX_BOX_PIXELS are not measured on the main thread: the upper bound too.
    const side = Math.ceil(Math.sqrt(PLAN_MAX_BOX_PIXELS)) + 8;
    const spread = parseBoxes(`0,0,2,2;${side - 2},${side - 2},2,2`);
    expect(
      restoreRunPlan({ ...common, outHeight: side, outWidth: side, mask: { kind: 'boxes', boxes: spread } }),
    ).toMatchObject({ samples: 3, windows: null });
  });
});

describe('estimateRestoreMs', () => {
  const model = { extra, multiple };

  it('counts the half-resolution run of coarse-to-fine settings, on the window the worker uses', () => {
    const coarseExtra = {
      redDiff: { ...extra.redDiff, holes: { ...extra.redDiff.holes, coarse: { steps: 40, tMax: 400 } } },
    };
    const coarseModel = { extra: coarseExtra, multiple };
    const params = restoreParams.parse({ task: 'inpaint', box: '100,90,32,32', steps: 10 });
    const mask = boxMask(256, 256, parseBoxes(params.box ?? ''));
    // The worker's windows (red-diff.ts): sides multiples of 2 x 8 with a half-resolution run.
    const win = holeWindow(mask, 256, 256, extra.redDiff.holes.windowMargin, 2 * multiple);
    expect(win).not.toBeNull();
    const pixels = (win?.height ?? 0) * (win?.width ?? 0);
    const plan = restoreRunPlan({
      extra: coarseExtra,
      outHeight: 256,
      outWidth: 256,
      factor: 1,
      multiple,
      sigmaY: 0,
      mask: { kind: 'boxes', boxes: parseBoxes(params.box ?? '') },
    });
    expect(plan.windows).toEqual([win]);
    expect(plan.coarse).toEqual({ steps: 40, stepPixels: pixels / 4 });
    expect(estimateRestoreMs(params, 256, 256, coarseModel)).toBeCloseTo(
      3 * (10 * pixels + 40 * (pixels / 4)) * RESTORE_MS_PER_PIXEL_STEP,
      6,
    );
    // Without the coarse section: no half-resolution run.
    const boxes = { kind: 'boxes' as const, boxes: parseBoxes(params.box ?? '') };
    const base = { outHeight: 256, outWidth: 256, factor: 1, multiple, sigmaY: 0, mask: boxes };
    expect(restoreRunPlan({ ...base, extra }).coarse).toBeNull();
    // Noisy measurements: no window, no half-resolution run (red-diff.ts windows exact measurements only).
    expect(estimateRestoreMs({ ...params, sigmaY: 0.05 }, 256, 256, coarseModel)).toBeCloseTo(
      3 * 10 * 256 * 256 * RESTORE_MS_PER_PIXEL_STEP,
      6,
    );
    // An unknown mask: the upper bound counts the half-resolution run over a quarter of the whole image.
    expect(estimateRestoreMs(params, 256, 256, coarseModel, true)).toBeCloseTo(
      3 * (10 * 256 * 256 + 40 * 128 * 128) * RESTORE_MS_PER_PIXEL_STEP,
      6,
    );
  });

  it('plans a random mask as the worker builds it, not as an upper bound', () => {
    // A 50 % random-pixel mask has a hole radius of a few pixels: the general settings, no window, no half-resolution
    // run. Built here from maskRatio and seed (task.ts inpaintingMask), the estimate is that run's exactly; it used
    // to be the unknown mask's bound, whose half-resolution run made a 2-step 256x256 request a 35 s job.
    const coarseExtra = {
      redDiff: { ...extra.redDiff, holes: { ...extra.redDiff.holes, coarse: { steps: 100, tMax: 400 } } },
    };
    const coarseModel = { extra: coarseExtra, multiple };
    const params = restoreParams.parse({ task: 'inpaint', maskRatio: 0.5, seed: 1, steps: 2 });
    // The general settings' 2 averaged runs x 2 steps x the whole image.
    expect(estimateRestoreMs(params, 256, 256, coarseModel)).toBeCloseTo(
      2 * 2 * 256 * 256 * RESTORE_MS_PER_PIXEL_STEP,
      6,
    );
    // The same request with an uploaded mask is still the bound (the mask's pixels are not read here).
    expect(estimateRestoreMs(params, 256, 256, coarseModel, true)).toBeGreaterThan(
      10 * estimateRestoreMs(params, 256, 256, coarseModel),
    );
    // Past PLAN_MAX_RANDOM_MASK_PIXELS the random mask is not built on the main thread: the bound again.
    expect(estimateRestoreMs(params, 512, 512, coarseModel)).toBeCloseTo(
      estimateRestoreMs(params, 512, 512, coarseModel, true),
      6,
    );
  });

  it('counts no half-resolution run on a window as tall as the image, which the worker does not halve', () => {
    const coarseExtra = {
      redDiff: { ...extra.redDiff, holes: { ...extra.redDiff.holes, coarse: { steps: 40, tMax: 400 } } },
    };
    // 56 rows (a multiple of 8, not of 16): the hole's window spans them all, 64 of the 256 columns.
    const boxes = [{ top: 12, left: 112, height: 32, width: 32 }];
    const plan = restoreRunPlan({
      extra: coarseExtra,
      outHeight: 56,
      outWidth: 256,
      factor: 1,
      multiple,
      sigmaY: 0,
      mask: { kind: 'boxes', boxes },
    });
    expect(plan.windows).toEqual([{ top: 0, left: 96, height: 56, width: 64 }]);
    expect(plan.coarse).toBeNull();
  });

  it('counts the window of each hole far apart, as the worker runs them one after the other', () => {
    // Two 32x32 blemishes at opposite corners of a 1000x1000 photograph: the worker optimises two small windows
    // (holeWindows), not the bounding window of both (nearly the whole image).
    const params = restoreParams.parse({ task: 'inpaint', box: '50,50,32,32;900,900,32,32', steps: 10 });
    const boxes = parseBoxes(params.box ?? '');
    const mask = boxMask(1000, 1000, boxes);
    const pixels = runWindowPixels(mask, 1000, 1000, extra.redDiff.holes.windowMargin);
    expect(pixels).toBeLessThan(2 * 96 * 96);
    expect(estimateRestoreMs(params, 1000, 1000, model)).toBeCloseTo(
      3 * 10 * pixels * RESTORE_MS_PER_PIXEL_STEP,
      6,
    );
  });

  it('counts every averaged run a request asks for', () => {
    const base = restoreParams.parse({ task: 'inpaint', box: '1,1,4,4', steps: 10 });
    const one = estimateRestoreMs(base, 20, 14);
    expect(one).toBeGreaterThan(0);
    expect(estimateRestoreMs({ ...base, samples: 3 }, 20, 14)).toBeCloseTo(3 * one, 9);
  });

  it("counts the model's own samples and only the hole window a windowed run updates", () => {
    // A 32x32 hole near the corner of a 250x250 image (padded to 256 by reflection, which mirrors it too).
    const params = restoreParams.parse({ task: 'inpaint', box: '210,200,32,32', steps: 10 });
    const mask = boxMask(250, 250, parseBoxes(params.box ?? ''));
    const window = runWindowPixels(mask, 250, 250, extra.redDiff.holes.windowMargin);
    expect(window).toBeLessThan(256 * 256);
    expect(estimateRestoreMs(params, 250, 250, model)).toBeCloseTo(
      3 * 10 * window * RESTORE_MS_PER_PIXEL_STEP,
      6,
    );
    // Scattered pixels (small holes): the general settings, whole image, the model's 2 runs.
    const scattered = restoreParams.parse({ task: 'inpaint', box: '10,10,2,2;40,40,3,3', steps: 10 });
    expect(estimateRestoreMs(scattered, 250, 250, model)).toBeCloseTo(
      2 * 10 * 256 * 256 * RESTORE_MS_PER_PIXEL_STEP,
      6,
    );
    // Noisy measurements: the run is not windowed (windowsMeasurements), the estimate neither.
    expect(estimateRestoreMs({ ...params, sigmaY: 0.05 }, 250, 250, model)).toBeCloseTo(
      3 * 10 * 256 * 256 * RESTORE_MS_PER_PIXEL_STEP,
      6,
    );
    // An uploaded mask is not read here: the upper bound (3 runs over the whole padded image).
    expect(estimateRestoreMs(params, 250, 250, model, true)).toBeCloseTo(
      3 * 10 * 256 * 256 * RESTORE_MS_PER_PIXEL_STEP,
      6,
    );
  });

  it("reads the named model's manifest from the registry", async () => {
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    const image = Uint8Array.from(png);
    const input = restore.input.parse({
      image,
      params: { task: 'inpaint', box: '0,0,64,2', steps: 10, model: 'prior' },
    });
    const models = {
      get: (name: string) =>
        name === 'prior' ? ({ manifest: { extra, architecture: { multiple } } } as never) : undefined,
      requireReady: () => {
        throw new Error('not used');
      },
    };
    const withModel = await restore.estimateMs?.(input, {} as never, models);
    const without = await restore.estimateMs?.(input, {} as never, undefined);
    expect(withModel).toBeCloseTo(2 * (without ?? 0), 6);
  });
});
