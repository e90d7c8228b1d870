/**
 * RED-Diff's 'smooth' starting points (src/diffusion/initial.ts): fills that keep the measurements and reproduce
 * the functions they are exact for.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  backProjectedUpsample,
  bicubicUpsample,
  biharmonicFill,
  harmonicFill,
  initialEstimate,
} from '../../src/diffusion/initial.js';
import {
  averagePoolOperator,
  centredBoxMask,
  gaussianBlurOperator,
  maskOperator,
  randomPixelMask,
} from '../../src/diffusion/operators.js';
import { redDiffRestore } from '../../src/diffusion/red-diff.js';
import { linearSchedule } from '../../src/diffusion/schedule.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { Rng } from '../../src/util/random.js';

const N = 24;

/** A linear ramp a + b r + c c: discrete harmonic and biharmonic in the interior. */
function ramp(): Float32Array {
  return Float32Array.from({ length: N * N }, (_, i) => -0.5 + 0.03 * Math.floor(i / N) + 0.02 * (i % N));
}

/** Random 50% missing pixels, but a 2-pixel observed frame (the fills use reflecting borders). */
function framedMask(seed: number): Float32Array {
  const mask = randomPixelMask(N, N, 0.5, seed);
  for (let r = 0; r < N; r++)
    for (let c = 0; c < N; c++) if (r < 2 || c < 2 || r >= N - 2 || c >= N - 2) mask[r * N + c] = 1;
  return mask;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

function averagePool(x: ArrayLike<number>, h: number, w: number, s: number): Float64Array {
  const out = new Float64Array((h / s) * (w / s));
  for (let r = 0; r < h; r++)
    for (let c = 0; c < w; c++)
      out[Math.floor(r / s) * (w / s) + Math.floor(c / s)] += x[r * w + c] / (s * s);
  return out;
}

describe('harmonicFill and biharmonicFill', () => {
  it('keep the observed pixels and reproduce a linear ramp inside an observed frame', async () => {
    const x = ramp();
    const mask = framedMask(5);
    const y = Float32Array.from(x, (v, i) => v * mask[i]);
    for (const fill of [harmonicFill, biharmonicFill]) {
      const out = fill(y, mask, N, N);
      for (let i = 0; i < x.length; i++) if (mask[i] === 1) expect(out[i]).toBe(y[i]);
      expect(maxAbsDiff(out, x)).toBeLessThan(1e-4);
      // Not the trivial answer: the missing pixels were 0 in y, up to ~0.9 away from the ramp.
      expect(maxAbsDiff(y, x)).toBeGreaterThan(0.5);
    }
  });

  it('fill a large hole in a constant image exactly, one mask per image in a batch', async () => {
    const mask = centredBoxMask(N, N, 16);
    const values = new Float32Array(2 * N * N);
    for (let i = 0; i < N * N; i++) {
      values[i] = 0.4 * mask[i];
      values[N * N + i] = -0.7 * mask[i];
    }
    const out = biharmonicFill(values, mask, N, N);
    expect(maxAbsDiff(out.subarray(0, N * N), new Float32Array(N * N).fill(0.4))).toBeLessThan(1e-5);
    expect(maxAbsDiff(out.subarray(N * N), new Float32Array(N * N).fill(-0.7))).toBeLessThan(1e-5);
  });

  it('beat the mid-grey H^+ y start on a smooth image with random holes', async () => {
    const x = Float32Array.from(
      { length: N * N },
      (_, i) => Math.sin(Math.floor(i / N) / 4) * Math.cos((i % N) / 5),
    );
    const mask = randomPixelMask(N, N, 0.7, 9);
    const y = Float32Array.from(x, (v, i) => v * mask[i]);
    const rms = (a: ArrayLike<number>) => {
      let t = 0;
      for (let i = 0; i < x.length; i++) t += (a[i] - x[i]) ** 2;
      return Math.sqrt(t / x.length);
    };
    // 70% missing on a 24x24 image: errors of a few percent, against ~0.45 for the mid-grey start.
    expect(rms(biharmonicFill(y, mask, N, N))).toBeLessThan(0.1);
    expect(rms(harmonicFill(y, mask, N, N))).toBeLessThan(0.1);
    expect(rms(y)).toBeGreaterThan(0.3);
  });
});

describe('backProjectedUpsample', () => {
  it('is consistent with the measurement (average pooling gives y back) and beats nearest up-sampling', async () => {
    const x = Float32Array.from({ length: N * N }, (_, i) => Math.sin(Math.floor(i / N) / 3 + (i % N) / 4));
    for (const s of [2, 4]) {
      const y = Float32Array.from(averagePool(x, N, N, s));
      const up = backProjectedUpsample(y, N / s, N / s, s);
      expect(maxAbsDiff(averagePool(up, N, N, s), y)).toBeLessThan(1e-5);
      const nearest = Float32Array.from(
        x,
        (_, i) => y[Math.floor(Math.floor(i / N) / s) * (N / s) + Math.floor((i % N) / s)],
      );
      const mse = (a: ArrayLike<number>) => {
        let t = 0;
        for (let i = 0; i < x.length; i++) t += (a[i] - x[i]) ** 2;
        return t / x.length;
      };
      expect(mse(up)).toBeLessThan(0.5 * mse(nearest));
    }
  });

  it('bicubic up-sampling reproduces a linear ramp away from the clamped edges', async () => {
    const h = 8;
    const y = Float32Array.from({ length: h * h }, (_, i) => Math.floor(i / h) + 2 * (i % h));
    const up = bicubicUpsample(y, h, h, 2);
    const W = 2 * h;
    for (let r = 4; r < W - 4; r++)
      for (let c = 4; c < W - 4; c++)
        expect(up[r * W + c]).toBeCloseTo((r + 0.5) / 2 - 0.5 + 2 * ((c + 0.5) / 2 - 0.5), 5);
  });
});

describe('initialEstimate and RED-Diff with a smooth start', () => {
  let tf: Tf;
  beforeAll(async () => {
    ({ tf } = await initTfjs('wasm'));
  });

  it("is H^+ y for 'pinv' and for operators without a smooth start", async () => {
    const rng = new Rng(3);
    const x = tf.tensor4d(
      Float32Array.from({ length: N * N }, () => rng.uniform()),
      [1, N, N, 1],
    );
    const blur = gaussianBlurOperator(N, N, 5, 1);
    const mask = maskOperator(randomPixelMask(N, N, 0.5, 1), N, N);
    try {
      for (const [op, init] of [
        [blur, 'smooth'],
        [mask, 'pinv'],
      ] as const) {
        const y = op.forward(tf, x);
        const start = await initialEstimate(tf, op, y, init);
        const pinv = await op.pseudoInverse(tf, y);
        expect(maxAbsDiff(start.dataSync(), pinv.dataSync())).toBe(0);
        tf.dispose([y, start, pinv]);
      }
    } finally {
      tf.dispose(x);
      blur.dispose();
      mask.dispose();
    }
  });

  it("'smooth' fits the measurements exactly for masks and average pooling", async () => {
    const x = tf.tensor4d(ramp(), [1, N, N, 1]);
    const ops = [maskOperator(framedMask(2), N, N), averagePoolOperator(N, N, 2)];
    try {
      for (const op of ops) {
        const y = op.forward(tf, x);
        const start = await initialEstimate(tf, op, y, 'smooth');
        const refit = op.forward(tf, start);
        expect(maxAbsDiff(refit.dataSync(), y.dataSync())).toBeLessThan(1e-5);
        tf.dispose([y, start, refit]);
      }
    } finally {
      tf.dispose(x);
      for (const op of ops) op.dispose();
    }
  });

  it('RED-Diff with lambda = 0 from the smooth start returns the start, and records init and tMax', async () => {
    const schedule = linearSchedule();
    const mask = framedMask(4);
    const op = maskOperator(mask, N, N);
    const x = tf.tensor4d(ramp(), [1, N, N, 1]);
    const y = op.forward(tf, x);
    try {
      const eps = () => {
        throw new Error('lambda = 0 must not evaluate the prior');
      };
      const result = await redDiffRestore(tf, eps, schedule, op, y, {
        steps: 10,
        lambda: 0,
        init: 'smooth',
        tMax: 200,
      });
      expect(result.params).toMatchObject({ init: 'smooth', tMax: 200 });
      expect(maxAbsDiff(result.x, ramp())).toBeLessThan(1e-4);
      await expect(async () =>
        redDiffRestore(tf, eps, schedule, op, y, { steps: 10, lambda: 0, tMax: 1000 }),
      ).rejects.toThrow(/tMax/);
    } finally {
      tf.dispose([x, y]);
      op.dispose();
    }
  });
});
