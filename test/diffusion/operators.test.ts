import { beforeAll, describe, expect, it } from 'vitest';
import {
  averagePoolOperator,
  bicubicDownsampleOperator,
  bicubicResizeMatrix,
  boxMask,
  centredBoxMask,
  countMissing,
  type DegradationOperator,
  gaussianBlurOperator,
  gaussianKernel1d,
  identityOperator,
  maskFromImage,
  maskOperator,
  measure,
  randomPixelMask,
  uniformBlurOperator,
} from '../../src/diffusion/operators.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';

type Tensor4D = import('@tensorflow/tfjs').Tensor4D;

let tf: Tf;
beforeAll(async () => {
  tf = (await initTfjs('wasm')).tf;
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** H H^+ H x = H x on random images. */
async function checkPseudoInverse(op: DegradationOperator, tolerance: number): Promise<void> {
  const x = tf.randomUniform([2, op.height, op.width, 1], -1, 1, 'float32', 7) as Tensor4D;
  const hx = op.forward(tf, x);
  expect(hx.shape).toEqual([2, op.outputHeight, op.outputWidth, 1]);
  const back = await op.pseudoInverse(tf, hx);
  expect(back.shape).toEqual([2, op.height, op.width, 1]);
  const again = op.forward(tf, back);
  expect(maxAbsDiff(again.dataSync(), hx.dataSync())).toBeLessThan(tolerance);
  tf.dispose([x, hx, back, again]);
}

describe('degradation operators', () => {
  it('identity: H = H^+ = I', async () => {
    await checkPseudoInverse(identityOperator(8, 6), 1e-7);
  });

  it('masks: exact missing count from a seed, boxes, uploaded images', async () => {
    const m = randomPixelMask(20, 10, 0.8, 3);
    expect(countMissing(m)).toBe(160);
    expect(Array.from(randomPixelMask(20, 10, 0.8, 3))).toEqual(Array.from(m));
    expect(Array.from(randomPixelMask(20, 10, 0.8, 4))).not.toEqual(Array.from(m));
    const box = centredBoxMask(32, 32, 12);
    expect(countMissing(box)).toBe(144);
    expect(box[16 * 32 + 16]).toBe(0);
    expect(box[0]).toBe(1);
    expect(box[10 * 32 + 10]).toBe(0);
    expect(box[9 * 32 + 10]).toBe(1);
    expect(countMissing(boxMask(4, 4, [{ top: 3, left: 3, height: 5, width: 5 }]))).toBe(1);
    expect(Array.from(maskFromImage(Float32Array.from([0, 1, 0.6, 0.2])))).toEqual([1, 0, 0, 1]);
    expect(Array.from(maskFromImage(Float32Array.from([0, 1]), 'black'))).toEqual([0, 1]);
  });

  it('mask operator zeroes missing pixels, keeps observed ones, and H H^+ H = H', async () => {
    const mask = randomPixelMask(8, 8, 0.5, 1);
    const op = maskOperator(mask, 8, 8);
    await checkPseudoInverse(op, 1e-7);
    const x = tf.randomNormal([1, 8, 8, 1]) as Tensor4D;
    const y = op.forward(tf, x).dataSync();
    const xs = x.dataSync();
    for (let i = 0; i < 64; i++) expect(y[i] + 0).toBe(mask[i] ? xs[i] : 0); // + 0 folds -0 into 0
    expect(() => maskOperator(mask, 8, 7)).toThrow(RangeError);
    expect(() => op.forward(tf, tf.zeros([1, 4, 4, 1]) as Tensor4D)).toThrow(RangeError);
    x.dispose();
  });

  it('mask operator with one mask per image applies each to its own image, and only to batches of that size', async () => {
    const first = randomPixelMask(4, 4, 0.5, 1);
    const second = randomPixelMask(4, 4, 0.5, 2);
    const masks = new Float32Array(32);
    masks.set(first, 0);
    masks.set(second, 16);
    const op = maskOperator(masks, 4, 4);
    const ones = tf.ones([2, 4, 4, 1]) as Tensor4D;
    const y = op.forward(tf, ones).dataSync();
    expect(Array.from(y)).toEqual(Array.from(masks));
    expect(Array.from((await op.pseudoInverse(tf, ones)).dataSync())).toEqual(Array.from(masks));
    expect(() => op.forward(tf, tf.ones([1, 4, 4, 1]) as Tensor4D)).toThrow(/2 masks/);
    expect(() => maskOperator(new Float32Array(20).fill(1), 4, 4)).toThrow(RangeError);
    ones.dispose();
    op.dispose();
  });

  it('average pooling x2 and x4: block means, nearest up-sampling, H H^+ = I', async () => {
    for (const factor of [2, 4]) {
      const op = averagePoolOperator(16, 8, factor);
      expect([op.outputHeight, op.outputWidth]).toEqual([16 / factor, 8 / factor]);
      await checkPseudoInverse(op, 1e-6);
      const y = tf.randomNormal([1, op.outputHeight, op.outputWidth, 1]) as Tensor4D;
      const roundTrip = op.forward(tf, await op.pseudoInverse(tf, y));
      expect(maxAbsDiff(roundTrip.dataSync(), y.dataSync())).toBeLessThan(1e-6);
      tf.dispose([y, roundTrip]);
    }
    const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 4, 1]);
    expect(Array.from(averagePoolOperator(2, 4, 2).forward(tf, x).dataSync())).toEqual([3.5, 5.5]);
    expect(() => averagePoolOperator(30, 32, 4)).toThrow(/not divisible/);
  });

  it('bicubic x2: MATLAB imresize weights (antialiased, a = -0.5), rows summing to 1', async () => {
    const n = 16;
    const d = bicubicResizeMatrix(n, 2);
    // The well-known taps of MATLAB's imresize(x, 0.5, 'bicubic') in the interior.
    const expected = [
      -0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875,
    ];
    const row = 4; // output sample 5 (1-based) covers input samples 6..13 (1-based)
    for (let j = 0; j < 8; j++) expect(d[row * n + 5 + j]).toBeCloseTo(expected[j], 10);
    for (let r = 0; r < n / 2; r++) {
      let sum = 0;
      for (let c = 0; c < n; c++) sum += d[r * n + c];
      expect(sum).toBeCloseTo(1, 12);
    }
  });

  it('bicubic x2 and x4: shapes, constants preserved, H H^+ H = H and H H^+ = I', async () => {
    for (const factor of [2, 4]) {
      const op = bicubicDownsampleOperator(16, 24, factor);
      expect([op.outputHeight, op.outputWidth]).toEqual([16 / factor, 24 / factor]);
      await checkPseudoInverse(op, 1e-4);
      const constant = tf.fill([1, 16, 24, 1], 0.3) as Tensor4D;
      for (const v of op.forward(tf, constant).dataSync()) expect(v).toBeCloseTo(0.3, 5);
      const y = tf.randomNormal([1, op.outputHeight, op.outputWidth, 1], 0, 1, 'float32', 2) as Tensor4D;
      const roundTrip = op.forward(tf, await op.pseudoInverse(tf, y));
      expect(maxAbsDiff(roundTrip.dataSync(), y.dataSync())).toBeLessThan(1e-4);
      tf.dispose([constant, y, roundTrip]);
    }
  });

  it('blur: circular separable convolution matching a direct computation', async () => {
    const h = 6;
    const w = 5;
    const kernel = gaussianKernel1d(5, 1.2);
    const op = gaussianBlurOperator(h, w, 5, 1.2);
    const x = tf.randomNormal([1, h, w, 1], 0, 1, 'float32', 3) as Tensor4D;
    const xs = x.dataSync();
    const got = op.forward(tf, x).dataSync();
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        let s = 0;
        for (let i = 0; i < 5; i++)
          for (let j = 0; j < 5; j++)
            s += kernel[i] * kernel[j] * xs[((r + i - 2 + h) % h) * w + ((c + j - 2 + w) % w)];
        expect(got[r * w + c]).toBeCloseTo(s, 5);
      }
    }
    x.dispose();
  });

  it('blur pseudo-inverse: H H^+ H = H (Gaussian and uniform, kernels wider than tiny images)', async () => {
    await checkPseudoInverse(gaussianBlurOperator(16, 12, 9, 1.5), 2e-3);
    // The 3-tap box filter has exact spectral zeros when 3 divides the size (k_hat(n/3) = 0).
    await checkPseudoInverse(uniformBlurOperator(12, 12, 3), 1e-4);
    await checkPseudoInverse(uniformBlurOperator(4, 4, 9), 1e-4);
    // Well-conditioned case: H^+ is the true inverse.
    const op = gaussianBlurOperator(8, 8, 3, 0.5);
    const x = tf.randomNormal([1, 8, 8, 1], 0, 1, 'float32', 5) as Tensor4D;
    const recovered = await op.pseudoInverse(tf, op.forward(tf, x));
    expect(maxAbsDiff(recovered.dataSync(), x.dataSync())).toBeLessThan(1e-4);
    tf.dispose([x, recovered]);
  });

  it('forward passes are differentiable (RED-Diff needs grad of ||y - H mu||^2)', async () => {
    const op = gaussianBlurOperator(8, 8, 5, 1);
    const y = tf.randomNormal([1, 8, 8, 1]) as Tensor4D;
    const mu = tf.zeros([1, 8, 8, 1]) as Tensor4D;
    const grad = tf.grad((m) => tf.sum(tf.square(tf.sub(y, op.forward(tf, m as Tensor4D)))))(mu);
    // d/dmu at mu = 0 is -2 H^T y, and H^T = H for a symmetric kernel.
    const expected = tf.mul(op.forward(tf, y), -2);
    expect(maxAbsDiff(grad.dataSync(), expected.dataSync())).toBeLessThan(1e-5);
    tf.dispose([y, mu, grad, expected]);
  });

  it('measure adds seeded noise, and none at missing pixels', async () => {
    const op = maskOperator(randomPixelMask(8, 8, 0.5, 2), 8, 8);
    const x = tf.zeros([1, 8, 8, 1]) as Tensor4D;
    const a = measure(tf, op, x, 0.1, 1).dataSync();
    const b = measure(tf, op, x, 0.1, 1).dataSync();
    expect(Array.from(a)).toEqual(Array.from(b));
    const mask = randomPixelMask(8, 8, 0.5, 2);
    let energy = 0;
    for (let i = 0; i < 64; i++) {
      if (!mask[i]) expect(a[i] + 0).toBe(0);
      else energy += a[i] * a[i];
    }
    expect(Math.sqrt(energy / 32)).toBeGreaterThan(0.05);
    x.dispose();
  });
});
