/**
 * RED-Diff with a prior whose answer is known: data x_0 ~ N(m, s^2 I), for which the exact eps-prediction is
 * E[eps | x_t] = sqrt(1 - ab) (x_t - sqrt(ab) m) / (ab s^2 + 1 - ab). The prior term then pulls every pixel
 * towards m in expectation, while the data term pins the observed pixels to y.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ddpmEpsModel, type EpsModel } from '../../src/diffusion/eps-model.js';
import {
  averagePoolOperator,
  centredBoxMask,
  maskOperator,
  randomPixelMask,
} from '../../src/diffusion/operators.js';
import { redDiffRestore } from '../../src/diffusion/red-diff.js';
import { linearSchedule } from '../../src/diffusion/schedule.js';
import { buildUnet } from '../../src/diffusion/unet.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { Rng } from '../../src/util/random.js';

const schedule = linearSchedule();
const PRIOR_MEAN = 0.3;
const PRIOR_STD = 0.2;
const SIZE = 16;

/** The exact eps-prediction of the Gaussian prior N(PRIOR_MEAN, PRIOR_STD^2 I) (one timestep per batch). */
const gaussianEps =
  (tf: Tf): EpsModel =>
  (x, timesteps) => {
    const t = timesteps.dataSync()[0];
    const ab = schedule.alphaBars[t];
    const variance = ab * PRIOR_STD ** 2 + (1 - ab);
    return tf.tidy(() => tf.mul(tf.sub(x, Math.sqrt(ab) * PRIOR_MEAN), Math.sqrt(1 - ab) / variance));
  };

function testImage(): Float32Array {
  const rng = new Rng(7);
  // Observed values far from the prior mean, so "moved towards the prior" and "kept the observation" differ.
  return Float32Array.from({ length: SIZE * SIZE }, () => -0.8 + 0.3 * rng.uniform());
}

describe('redDiffRestore', () => {
  let tf: Tf;
  const mask = randomPixelMask(SIZE, SIZE, 0.5, 3);
  // One operator for every run: it keeps its mask tensor for its lifetime.
  const op = maskOperator(mask, SIZE, SIZE);
  beforeAll(async () => {
    ({ tf } = await initTfjs('wasm'));
  });

  async function inpaint(lambda: number, seed = 1, steps = 100) {
    const x = tf.tensor4d(testImage(), [1, SIZE, SIZE, 1]);
    const y = op.forward(tf, x);
    try {
      return {
        mask,
        result: await redDiffRestore(tf, gaussianEps(tf), schedule, op, y, { steps, lambda, lr: 0.1, seed }),
      };
    } finally {
      tf.dispose([x, y]);
    }
  }

  it('keeps the observed pixels (noise-free inpainting) and pulls the missing ones towards the prior mean', async () => {
    const image = testImage();
    const { mask, result } = await inpaint(0.25);
    // The official algorithm's constant-lr Adam keeps the estimate jittering by ~lr under the prior term's noise
    // (Adam's step is scale-free), so "exact" is up to that jitter: a few percent, against ~60% if the data term
    // were missing (the observed pixels would drift to the prior mean) and 0 with lambda = 0 (next test).
    expect(result.residual).toBeLessThan(0.08);
    let worstObserved = 0;
    let missingSum = 0;
    let missing = 0;
    for (let i = 0; i < mask.length; i++) {
      if (mask[i] === 1) worstObserved = Math.max(worstObserved, Math.abs(result.x[i] - image[i]));
      else {
        missingSum += result.x[i];
        missing++;
      }
    }
    expect(worstObserved).toBeLessThan(0.15);
    // H^+ y starts the missing pixels at 0; the Gaussian prior's answer for them is its mean 0.3.
    const missingMean = missingSum / missing;
    expect(missingMean).toBeGreaterThan(0.15);
    expect(Math.abs(missingMean - PRIOR_MEAN)).toBeLessThan(0.1);
  });

  it('with lambda = 0 leaves the missing pixels at their H^+ initialisation', async () => {
    const { mask, result } = await inpaint(0);
    // H^+ y = m . y is 0 (or -0) at the missing pixels.
    for (let i = 0; i < mask.length; i++) if (mask[i] === 0) expect(Math.abs(result.x[i])).toBe(0);
    expect(result.residual).toBeLessThan(1e-6);
  });

  it('is deterministic for a seed, depends on it, and disposes every tensor', async () => {
    const before = tf.memory().numTensors;
    const a = (await inpaint(0.25, 5, 20)).result;
    const b = (await inpaint(0.25, 5, 20)).result;
    const c = (await inpaint(0.25, 6, 20)).result;
    expect(tf.memory().numTensors).toBe(before);
    expect(Buffer.from(a.x.buffer).equals(Buffer.from(b.x.buffer))).toBe(true);
    expect(Buffer.from(a.x.buffer).equals(Buffer.from(c.x.buffer))).toBe(false);
  });

  it('runs a U-Net prior on super-resolution, reports progress and a trace, and honours abort', async () => {
    const model = buildUnet(tf, {
      kind: 'unet-eps',
      channels: [4, 8],
      resBlocks: 1,
      timeEmbedding: 8,
      groups: 2,
      spaceToDepth: 2,
      normTwicePerBlock: false,
    });
    const op = averagePoolOperator(SIZE, SIZE, 2);
    const x = tf.tensor4d(testImage(), [1, SIZE, SIZE, 1]);
    const y = op.forward(tf, x);
    const before = tf.memory().numTensors;
    const seen: number[] = [];
    const result = await redDiffRestore(tf, ddpmEpsModel(tf, model), schedule, op, y, {
      steps: 10,
      progressEvery: 3,
      trace: 4,
      onProgress: (p) => seen.push(p.step),
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(seen).toEqual([3, 6, 9, 10]);
    expect(result.trace?.map((e) => e.step)).toEqual([3, 5, 8, 10]);
    expect(result.trace?.at(-1)?.x).toEqual(result.x);
    expect(result.shape).toEqual([1, SIZE, SIZE, 1]);
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await expect(async () =>
      redDiffRestore(tf, ddpmEpsModel(tf, model), schedule, op, y, { steps: 10, signal: controller.signal }),
    ).rejects.toThrow('stop');
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, y]);
    model.dispose();
  });

  it('with samples = K returns the mean of K runs seeded seed + 1000 k, and its residual', async () => {
    const x = tf.tensor4d(testImage(), [1, SIZE, SIZE, 1]);
    const y = op.forward(tf, x);
    const options = { steps: 8, lambda: 0.25, lr: 0.1, progressEvery: 4, trace: 2 };
    const before = tf.memory().numTensors;
    const seen: number[] = [];
    const averaged = await redDiffRestore(tf, gaussianEps(tf), schedule, op, y, {
      ...options,
      seed: 4,
      samples: 3,
      onProgress: (p) => seen.push(p.step / p.steps),
    });
    expect(tf.memory().numTensors).toBe(before);
    const runs = await Promise.all(
      [4, 1004, 2004].map((seed) =>
        redDiffRestore(tf, gaussianEps(tf), schedule, op, y, { ...options, seed }),
      ),
    );
    for (let i = 0; i < averaged.x.length; i++)
      expect(averaged.x[i]).toBeCloseTo((runs[0].x[i] + runs[1].x[i] + runs[2].x[i]) / 3, 6);
    // The runs differ (the mean is not one of them), and the mean's residual is its own.
    expect(runs[1].x).not.toEqual(runs[0].x);
    const yValues = await y.data();
    let misfit = 0;
    let norm = 0;
    for (let i = 0; i < yValues.length; i++) {
      misfit += (yValues[i] - mask[i] * averaged.x[i]) ** 2;
      norm += yValues[i] ** 2;
    }
    expect(averaged.residual).toBeCloseTo(Math.sqrt(misfit / norm), 6);
    expect(averaged.params).toMatchObject({ seed: 4, samples: 3 });
    expect(runs[0].params.samples).toBeUndefined();
    // Progress runs over the three runs' steps once; the trace is the mean's.
    expect(seen).toEqual([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1]);
    expect(averaged.trace?.at(-1)?.x).toEqual(averaged.x);
    await expect(
      redDiffRestore(tf, gaussianEps(tf), schedule, op, y, { steps: 2, samples: 0 }),
    ).rejects.toThrow(RangeError);
    tf.dispose([x, y]);
  });

  it('coarse to fine: starts the full-resolution run from the half-resolution estimate inside the window', async () => {
    // A centred 8x8 hole: the window (margin 2, sides multiples of 2 x 2) is rows and columns 2..13, 12x12; at
    // half resolution 6x6 with a 4x4 hole.
    const hole = centredBoxMask(SIZE, SIZE, 8);
    const boxOp = maskOperator(hole, SIZE, SIZE);
    const image = testImage();
    const x = tf.tensor4d(image, [1, SIZE, SIZE, 1]);
    const y = boxOp.forward(tf, x);
    // The full-resolution run barely moves (one step of 1e-6): what it returns in the hole is its start.
    const options = {
      steps: 1,
      lambda: 0.25,
      lr: 1e-6,
      init: 'smooth' as const,
      window: { margin: 2, multiple: 2 },
    };
    const before = tf.memory().numTensors;
    const seen: [number, number][] = [];
    const result = await redDiffRestore(tf, gaussianEps(tf), schedule, boxOp, y, {
      ...options,
      coarse: { steps: 60, lr: 0.1, fineTMax: 5 },
      onProgress: (p) => seen.push([p.step, p.steps]),
    });
    const plain = await redDiffRestore(tf, gaussianEps(tf), schedule, boxOp, y, options);
    expect(tf.memory().numTensors).toBe(before);
    expect(result.params.window).toEqual({ top: 2, left: 2, height: 12, width: 12 });
    expect(result.params.coarse).toMatchObject({ steps: 60, lr: 0.1, tMax: schedule.timesteps - 1 });
    // The full-resolution run starts from fineTMax; without the half-resolution run, from the run's tMax.
    expect(result.params.tMax).toBe(5);
    expect(plain.params.tMax).toBe(schedule.timesteps - 1);
    expect(plain.params.coarse).toBeUndefined();
    expect(seen.at(-1)).toEqual([61, 61]);
    const holeMean = (r: { x: Float32Array }) => {
      let sum = 0;
      let n = 0;
      for (let i = 0; i < hole.length; i++)
        if (hole[i] === 0) {
          sum += r.x[i];
          n++;
        }
      return sum / n;
    };
    // The smooth fill stays near the observed values (-0.8 to -0.5); the half-resolution run pulled the hole
    // towards the prior's mean 0.3, and the full-resolution run started there.
    expect(holeMean(plain)).toBeLessThan(-0.4);
    expect(holeMean(result)).toBeGreaterThan(0);
    // The observed pixels are the measurement (exactly outside the window).
    for (let i = 0; i < hole.length; i++)
      if (hole[i] === 1) expect(Math.abs(result.x[i] - image[i])).toBeLessThan(1e-4);
    await expect(
      redDiffRestore(tf, gaussianEps(tf), schedule, boxOp, y, { ...options, coarse: { steps: 0 } }),
    ).rejects.toThrow(RangeError);
    tf.dispose([x, y]);
    boxOp.dispose();
  });

  it('coarse to fine: a window as tall as the image runs with sides the network takes', async () => {
    // 14 x 32, a 4x4 hole in the middle, margin 6: the window spans every row (14, a multiple of the network's 2
    // but not of 2 x 2) and 16 columns; halved, its 7 rows would not be a multiple of 2.
    const [h, w] = [14, 32];
    const hole = new Float32Array(h * w).fill(1);
    for (let r = 5; r < 9; r++) for (let c = 14; c < 18; c++) hole[r * w + c] = 0;
    const boxOp = maskOperator(hole, h, w);
    const x = tf.tensor4d(
      Float32Array.from({ length: h * w }, (_, i) => -0.8 + 0.001 * i),
      [1, h, w, 1],
    );
    const y = boxOp.forward(tf, x);
    const shapes: number[][] = [];
    // A network whose sides must be multiples of 2 (as a U-Net's of its down-sampling factor).
    const strict: EpsModel = (input, timesteps) => {
      const [, sh = 0, sw = 0] = input.shape;
      shapes.push([sh, sw]);
      if (sh % 2 !== 0 || sw % 2 !== 0) throw new Error(`network input ${sh}x${sw}`);
      return gaussianEps(tf)(input, timesteps);
    };
    const result = await redDiffRestore(tf, strict, schedule, boxOp, y, {
      steps: 2,
      lambda: 0.25,
      lr: 0.1,
      window: { margin: 6, multiple: 2 },
      coarse: { steps: 2 },
    });
    expect(result.x).toHaveLength(h * w);
    expect(shapes.length).toBeGreaterThan(0);
    for (const [sh, sw] of shapes) expect([sh % 2, sw % 2]).toEqual([0, 0]);
    tf.dispose([x, y]);
    boxOp.dispose();
  });
});
