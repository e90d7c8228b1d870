/**
 * RED-Diff inpainting on a window around the holes (src/diffusion/hole-window.ts, the `window` option of
 * redDiffRestore): the window's geometry on synthetic masks, and a run with a prior that records what it was shown.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { EpsModel } from '../../src/diffusion/eps-model.js';
import {
  cropPlanes,
  holeWindow,
  holeWindows,
  MAX_HOLE_WINDOWS,
  pastePlanes,
} from '../../src/diffusion/hole-window.js';
import { boxMask, maskOperator, randomPixelMask } from '../../src/diffusion/operators.js';
import { redDiffRestore } from '../../src/diffusion/red-diff.js';
import { linearSchedule } from '../../src/diffusion/schedule.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { Rng } from '../../src/util/random.js';

const hole = (h: number, w: number, top: number, left: number, side: number) =>
  boxMask(h, w, [{ top, left, height: side, width: side }]);

describe('holeWindow', () => {
  it('widens the holes bounding box by the margin and rounds its sides up to the multiple', () => {
    // Rows 100..131 and columns 40..71 missing; margin 16 -> rows 84..147 (64), columns 24..87 (64).
    expect(holeWindow(hole(256, 256, 100, 40, 32), 256, 256, 16, 8)).toEqual({
      top: 84,
      left: 24,
      height: 64,
      width: 64,
    });
    // A 30x30 hole with margin 5 spans 40 pixels -> 40 (a multiple of 8); margin 6: 42 -> 48, grown evenly.
    expect(holeWindow(hole(128, 128, 50, 50, 30), 128, 128, 5, 8)).toEqual({
      top: 45,
      left: 45,
      height: 40,
      width: 40,
    });
    expect(holeWindow(hole(128, 128, 50, 50, 30), 128, 128, 6, 8)).toEqual({
      top: 41,
      left: 41,
      height: 48,
      width: 48,
    });
  });

  it('stays inside the image at its edges', () => {
    // A hole in the top-left corner: the window starts at 0 and keeps its rounded size.
    expect(holeWindow(hole(256, 256, 0, 2, 20), 256, 256, 16, 8)).toEqual({
      top: 0,
      left: 0,
      height: 40,
      width: 40,
    });
    // Bottom-right corner: shifted back inside.
    expect(holeWindow(hole(100, 120, 90, 110, 10), 100, 120, 7, 8)).toEqual({
      top: 76,
      left: 96,
      height: 24,
      width: 24,
    });
  });

  it('covers the holes of every mask of a batch', () => {
    const a = hole(64, 64, 4, 4, 8);
    const b = hole(64, 64, 40, 30, 8);
    const both = new Float32Array(2 * 64 * 64);
    both.set(a, 0);
    both.set(b, 64 * 64);
    // Rows 4..47, columns 4..37, margin 0 -> 44 -> 48 rows, 34 -> 40 columns.
    expect(holeWindow(both, 64, 64, 0, 8)).toEqual({ top: 2, left: 1, height: 48, width: 40 });
  });

  it('is null when nothing is missing or the window would be the whole image', () => {
    expect(holeWindow(new Float32Array(32 * 32).fill(1), 32, 32, 4, 8)).toBeNull();
    expect(holeWindow(randomPixelMask(64, 64, 0.5, 1), 64, 64, 4, 8)).toBeNull();
    expect(holeWindow(hole(64, 64, 16, 16, 32), 64, 64, 16, 8)).toBeNull();
    // Only one side full: still a window.
    expect(holeWindow(boxMask(64, 64, [{ top: 0, left: 20, height: 64, width: 8 }]), 64, 64, 4, 8)).toEqual({
      top: 0,
      left: 16,
      height: 64,
      width: 16,
    });
    expect(() => holeWindow(new Float32Array(10), 4, 4, 1, 8)).toThrow(RangeError);
    expect(() => holeWindow(new Float32Array(16), 4, 4, -1, 8)).toThrow(RangeError);
  });

  it('holeWindows: one window per group of holes far apart, shared where their windows would overlap', () => {
    const two = (a: [number, number], b: [number, number], side = 8) =>
      boxMask(128, 128, [
        { top: a[0], left: a[1], height: side, width: side },
        { top: b[0], left: b[1], height: side, width: side },
      ]);
    // Opposite corners, margin 8: 24x24 each (their common bounding box would be the whole image).
    const corners = two([4, 4], [116, 110]);
    expect(holeWindow(corners, 128, 128, 8, 8)).toBeNull();
    expect(holeWindows(corners, 128, 128, 8, 8)).toEqual([
      { top: 0, left: 0, height: 24, width: 24 },
      { top: 104, left: 102, height: 24, width: 24 },
    ]);
    // Close holes (rows 40..47 and 60..67, their windows overlap): one window, that of holeWindow.
    const close = two([40, 40], [60, 44]);
    expect(holeWindows(close, 128, 128, 8, 8)).toEqual([holeWindow(close, 128, 128, 8, 8)]);
    // Three holes in a row whose windows overlap in turn: one window, that of all three.
    const row = boxMask(128, 128, [
      { top: 10, left: 10, height: 8, width: 8 },
      { top: 10, left: 30, height: 8, width: 8 },
      { top: 10, left: 50, height: 8, width: 8 },
    ]);
    expect(holeWindows(row, 128, 128, 6, 8)).toEqual([{ top: 2, left: 2, height: 24, width: 64 }]);
    // Disjoint windows, each holding only its own holes, whatever the layout.
    const rng = new Rng(11);
    for (let trial = 0; trial < 20; trial++) {
      const boxes = Array.from({ length: 4 }, () => ({
        top: Math.floor(rng.uniform() * 110),
        left: Math.floor(rng.uniform() * 110),
        height: 2 + Math.floor(rng.uniform() * 16),
        width: 2 + Math.floor(rng.uniform() * 16),
      }));
      const mask = boxMask(128, 128, boxes);
      const found = holeWindows(mask, 128, 128, 5, 8);
      if (found === null) continue;
      for (const [i, a] of found.entries())
        for (const b of found.slice(i + 1))
          expect(
            a.top + a.height <= b.top ||
              b.top + b.height <= a.top ||
              a.left + a.width <= b.left ||
              b.left + b.width <= a.left,
          ).toBe(true);
      for (let i = 0; i < mask.length; i++)
        if (mask[i] === 0) {
          const r = Math.floor(i / 128);
          const c = i % 128;
          expect(
            found.filter((w) => r >= w.top && r < w.top + w.height && c >= w.left && c < w.left + w.width),
          ).toHaveLength(1);
        }
    }
    // Scattered pixels (more regions than MAX_HOLE_WINDOWS) inside a part of the image: holeWindow's one window.
    const scattered = new Float32Array(128 * 128).fill(1);
    for (let k = 0; k <= MAX_HOLE_WINDOWS; k++)
      scattered[(20 + 2 * (k % 16)) * 128 + 20 + 2 * Math.floor(k / 16)] = 0;
    expect(holeWindows(scattered, 128, 128, 4, 8)).toEqual([holeWindow(scattered, 128, 128, 4, 8)]);
    expect(holeWindows(new Float32Array(64 * 64).fill(1), 64, 64, 4, 8)).toBeNull();
  });

  it('crops and pastes planes consistently', () => {
    const data = Float32Array.from({ length: 2 * 6 * 5 }, (_, i) => i);
    const win = { top: 1, left: 2, height: 3, width: 2 };
    const inner = cropPlanes(data, 6, 5, win);
    expect(Array.from(inner.subarray(0, 6))).toEqual([7, 8, 12, 13, 17, 18]);
    expect(Array.from(inner.subarray(6))).toEqual([37, 38, 42, 43, 47, 48]);
    expect(pastePlanes(data, 6, 5, win, inner)).toEqual(data);
    const zeroed = pastePlanes(data, 6, 5, win, new Float32Array(inner.length));
    expect(zeroed[7]).toBe(0);
    expect(zeroed[36]).toBe(36);
  });
});

describe('redDiffRestore with a window', () => {
  let tf: Tf;
  const schedule = linearSchedule();
  const H = 48;
  const W = 40;
  beforeAll(async () => {
    ({ tf } = await initTfjs('wasm'));
  });

  /**
   * A prior that pulls towards the mean of its whole input (as a network whose normalisation spans the whole image
   * would), and records the shapes it was called with.
   */
  function globalMeanPrior(shapes: number[][]): EpsModel {
    return (x, timesteps) => {
      shapes.push(x.shape.slice());
      const t = timesteps.dataSync()[0];
      const ab = schedule.alphaBars[t];
      return tf.tidy(() => tf.mul(tf.sub(x, tf.mean(x)), Math.sqrt(1 - ab)));
    };
  }

  it('optimises only the window, returns y outside it and equals the run on the cropped problem', async () => {
    const rng = new Rng(5);
    const image = Float32Array.from({ length: 2 * H * W }, () => rng.uniform() * 2 - 1);
    const mask = new Float32Array(2 * H * W);
    mask.set(hole(H, W, 20, 12, 6), 0);
    mask.set(hole(H, W, 24, 14, 6), H * W);
    const op = maskOperator(mask, H, W);
    const y = op.forward(tf, tf.tensor4d(image, [2, H, W, 1]));
    const options = { steps: 6, lambda: 0.5, lr: 0.05, seed: 3, init: 'smooth' as const, trace: 2 };
    const shapes: number[][] = [];
    const before = tf.memory().numTensors;
    const windowed = await redDiffRestore(tf, globalMeanPrior(shapes), schedule, op, y, {
      ...options,
      window: { margin: 4, multiple: 8 },
    });
    expect(tf.memory().numTensors).toBe(before);
    // Rows 20..29 and columns 12..19 missing, margin 4 -> rows 16..33 (18 -> 24), columns 8..23 (16).
    const win = { top: 13, left: 8, height: 24, width: 16 };
    expect(windowed.params.window).toEqual(win);
    expect(shapes.every((s) => s.join() === '2,24,16,1')).toBe(true);
    expect(windowed.shape).toEqual([2, H, W, 1]);
    const yValues = await y.data();
    const inWindow = (i: number) => {
      const r = Math.floor((i % (H * W)) / W);
      const c = i % W;
      return r >= win.top && r < win.top + win.height && c >= win.left && c < win.left + win.width;
    };
    for (let i = 0; i < yValues.length; i++) if (!inWindow(i)) expect(windowed.x[i]).toBe(yValues[i]);
    // The same run on the cropped problem gives the window's values bit for bit.
    const cropped = maskOperator(cropPlanes(mask, H, W, win), win.height, win.width);
    const yCropped = tf.tensor4d(cropPlanes(Float32Array.from(yValues), H, W, win), [2, 24, 16, 1]);
    const direct = await redDiffRestore(tf, globalMeanPrior([]), schedule, cropped, yCropped, options);
    expect(cropPlanes(windowed.x, H, W, win)).toEqual(direct.x);
    // The residual is the whole image's: ||y - H x|| / ||y||.
    let misfit = 0;
    let norm = 0;
    for (let i = 0; i < yValues.length; i++) {
      misfit += (yValues[i] - mask[i] * windowed.x[i]) ** 2;
      norm += yValues[i] ** 2;
    }
    expect(windowed.residual).toBeCloseTo(Math.sqrt(misfit / norm), 6);
    // Trace entries are whole images too.
    expect(windowed.trace?.map((e) => e.x.length)).toEqual([2 * H * W, 2 * H * W]);
    // Without the window the prior sees (and normalises over) the whole image: a different answer.
    const whole = await redDiffRestore(tf, globalMeanPrior(shapes), schedule, op, y, options);
    expect(whole.params.window).toBeUndefined();
    expect(shapes.at(-1)).toEqual([2, H, W, 1]);
    expect(cropPlanes(whole.x, H, W, win)).not.toEqual(direct.x);
    tf.dispose([y, yCropped]);
    op.dispose();
    cropped.dispose();
  });

  it('optimises holes far apart in a window each, one after the other', async () => {
    const rng = new Rng(6);
    const image = Float32Array.from({ length: H * W }, () => rng.uniform() * 2 - 1);
    // Two 4x4 holes in opposite corners: margin 4 -> 16x16 windows at (0, 0) and (32, 24).
    const mask = boxMask(H, W, [
      { top: 2, left: 3, height: 4, width: 4 },
      { top: 40, left: 33, height: 4, width: 4 },
    ]);
    const op = maskOperator(mask, H, W);
    const y = op.forward(tf, tf.tensor4d(image, [1, H, W, 1]));
    const options = { steps: 4, lambda: 0.5, lr: 0.05, seed: 2, init: 'smooth' as const, trace: 2 };
    const shapes: number[][] = [];
    const seen: number[] = [];
    const before = tf.memory().numTensors;
    const r = await redDiffRestore(tf, globalMeanPrior(shapes), schedule, op, y, {
      ...options,
      window: { margin: 4, multiple: 8 },
      onProgress: (p) => seen.push(p.step / p.steps),
    });
    expect(tf.memory().numTensors).toBe(before);
    const wins = [
      { top: 0, left: 0, height: 16, width: 16 },
      { top: 32, left: 24, height: 16, width: 16 },
    ];
    expect(r.params.windows).toEqual(wins);
    expect(r.params.window).toBeUndefined();
    expect(shapes).toEqual(Array.from({ length: 8 }, () => [1, 16, 16, 1]));
    expect(seen.at(-1)).toBe(1);
    expect(seen).toHaveLength(8);
    // Each window is the run on its own cropped problem; the rest is y.
    const yValues = Float32Array.from(await y.data());
    let expected: Float32Array = yValues;
    for (const win of wins) {
      const cropped = maskOperator(cropPlanes(mask, H, W, win), win.height, win.width);
      const yCropped = tf.tensor4d(cropPlanes(yValues, H, W, win), [1, win.height, win.width, 1]);
      const direct = await redDiffRestore(tf, globalMeanPrior([]), schedule, cropped, yCropped, options);
      expected = pastePlanes(expected, H, W, win, direct.x);
      tf.dispose(yCropped);
      cropped.dispose();
    }
    expect(r.x).toEqual(expected);
    expect(r.trace?.at(-1)?.x).toEqual(r.x);
    let misfit = 0;
    let norm = 0;
    for (let i = 0; i < yValues.length; i++) {
      misfit += (yValues[i] - mask[i] * r.x[i]) ** 2;
      norm += yValues[i] ** 2;
    }
    expect(r.residual).toBeCloseTo(Math.sqrt(misfit / norm), 6);
    tf.dispose(y);
    op.dispose();
  });

  it('leaves random-pixel masks (whose window is the whole image) and other operators alone', async () => {
    const mask = randomPixelMask(16, 16, 0.5, 2);
    const op = maskOperator(mask, 16, 16);
    const y = op.forward(tf, tf.fill([1, 16, 16, 1], 0.2));
    const shapes: number[][] = [];
    const r = await redDiffRestore(tf, globalMeanPrior(shapes), schedule, op, y, {
      steps: 2,
      window: { margin: 2, multiple: 8 },
    });
    expect(r.params.window).toBeUndefined();
    expect(shapes[0]).toEqual([1, 16, 16, 1]);
    tf.dispose(y);
    op.dispose();
  });

  it('runs on the whole image when the measurements are noisy (sigmaY > 0)', async () => {
    const op = maskOperator(hole(H, W, 20, 12, 6), H, W);
    const y = op.forward(tf, tf.fill([1, H, W, 1], 0.2));
    const shapes: number[][] = [];
    const r = await redDiffRestore(tf, globalMeanPrior(shapes), schedule, op, y, {
      steps: 2,
      sigmaY: 0.05,
      window: { margin: 4, multiple: 8 },
    });
    expect(r.params.window).toBeUndefined();
    expect(shapes[0]).toEqual([1, H, W, 1]);
    tf.dispose(y);
    op.dispose();
  });
});
