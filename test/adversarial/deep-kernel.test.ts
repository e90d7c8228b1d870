/**
 * The TF.js deep kernel and training criterion against the float64 reference of src/adversarial/mmd.ts, and the
 * detector's small numerics: float16 round trip, thresholds at an FPR, conformal p-values, AUROC.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildKernelNet,
  deepKernelTensor,
  mmdRatio,
  scalarTensors,
} from '../../src/adversarial/deep-kernel.js';
import {
  auroc,
  conformalPValue,
  decodeFloat16,
  encodeFloat16,
  fromFloat16Bits,
  thresholdAtFpr,
  toFloat16Bits,
} from '../../src/adversarial/detector.js';
import { deepKernelMatrix, mmd2FromKernel } from '../../src/adversarial/mmd.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { Rng } from '../../src/util/random.js';

let tf: Tf;
beforeAll(async () => {
  tf = (await initTfjs('wasm')).tf;
});

function sample(count: number, dim: number, seed: number, shift = 0): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: count * dim }, () => rng.normal() + shift);
}

describe('deep kernel (TF.js)', () => {
  it('equals the float64 deep kernel of mmd.ts, and its J numerator is the unbiased MMD^2', () => {
    const n = 6;
    const dim = 16 * 16;
    const phi = buildKernelNet(tf, { inputSize: 16, filters: [2, 3], features: 5 }, 2);
    const x = sample(n, dim, 1);
    const y = sample(n, dim, 2, 0.3);
    const scalars = { sigmaPhi: 3, sigmaQ: 2 * dim, epsilon: 0.2 };
    const featuresOf = (v: Float32Array, count: number) =>
      Array.from(
        { length: count },
        (_, i) =>
          tf.tidy(() =>
            (
              phi.apply(
                tf.tensor4d(v.subarray(i * dim, (i + 1) * dim), [1, 16, 16, 1]),
              ) as import('@tensorflow/tfjs').Tensor
            ).dataSync(),
          ) as Float32Array,
      );
    const pooled = [
      ...Array.from({ length: n }, (_, i) => Float64Array.from(x.subarray(i * dim, (i + 1) * dim))),
      ...Array.from({ length: n }, (_, i) => Float64Array.from(y.subarray(i * dim, (i + 1) * dim))),
    ];
    const features = [...featuresOf(x, n), ...featuresOf(y, n)].map((f) => Float64Array.from(f));
    const lookup = new Map<Float64Array, Float64Array>(pooled.map((p, i) => [p, features[i]]));
    const reference = deepKernelMatrix(
      pooled,
      (s) => s.map((p) => lookup.get(p as Float64Array) as Float64Array),
      scalars,
    );

    const [kxx, kyy, kxy, mmd2] = tf.tidy(() => {
      const tx = tf.tensor2d(x, [n, dim]);
      const ty = tf.tensor2d(y, [n, dim]);
      const fx = phi.apply(tx.reshape([n, 16, 16, 1])) as import('@tensorflow/tfjs').Tensor2D;
      const fy = phi.apply(ty.reshape([n, 16, 16, 1])) as import('@tensorflow/tfjs').Tensor2D;
      const s = scalarTensors(tf, scalars);
      const a = deepKernelTensor(tf, fx, fx, tx, tx, s);
      const b = deepKernelTensor(tf, fy, fy, ty, ty, s);
      const c = deepKernelTensor(tf, fx, fy, tx, ty, s);
      const [m] = mmdRatio(tf, a, b, c);
      return [a.dataSync(), b.dataSync(), c.dataSync(), m.dataSync()[0]] as const;
    });
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        expect(kxx[i * n + j]).toBeCloseTo(reference.values[i * 2 * n + j], 4);
        expect(kyy[i * n + j]).toBeCloseTo(reference.values[(n + i) * 2 * n + n + j], 4);
        expect(kxy[i * n + j]).toBeCloseTo(reference.values[i * 2 * n + n + j], 4);
      }
    // J's numerator drops the cross diagonal too (paired samples); the remaining terms match mmd.ts.
    let crossDiagonal = 0;
    for (let i = 0; i < n; i++) crossDiagonal += reference.values[i * 2 * n + n + i];
    let cross = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) cross += reference.values[i * 2 * n + n + j];
    const unbiased = mmd2FromKernel(reference, n, 'unbiased');
    const expected = unbiased + (2 * cross) / (n * n) - (2 * (cross - crossDiagonal)) / (n * (n - 1));
    expect(mmd2).toBeCloseTo(expected, 4);
  });

  it('gives a larger J for separated samples than for samples of one distribution', () => {
    const n = 24;
    const dim = 16 * 16;
    const phi = buildKernelNet(tf, { inputSize: 16, filters: [2, 3], features: 5 }, 3);
    const j = (shift: number) =>
      tf.tidy(() => {
        const tx = tf.tensor2d(sample(n, dim, 5), [n, dim]);
        const ty = tf.tensor2d(sample(n, dim, 6, shift), [n, dim]);
        const fx = phi.apply(tx.reshape([n, 16, 16, 1])) as import('@tensorflow/tfjs').Tensor2D;
        const fy = phi.apply(ty.reshape([n, 16, 16, 1])) as import('@tensorflow/tfjs').Tensor2D;
        const s = scalarTensors(tf, { sigmaPhi: 10, sigmaQ: 2 * dim, epsilon: 0.1 });
        const [, , ratio] = mmdRatio(
          tf,
          deepKernelTensor(tf, fx, fx, tx, tx, s),
          deepKernelTensor(tf, fy, fy, ty, ty, s),
          deepKernelTensor(tf, fx, fy, tx, ty, s),
        );
        return ratio.dataSync()[0];
      });
    expect(j(0.5)).toBeGreaterThan(j(0) + 1);
  });
});

describe('detector numerics', () => {
  it('rounds to float16 and back within half a unit in the last place, with specials', () => {
    const rng = new Rng(4);
    const values = Float32Array.from({ length: 2000 }, () => rng.normal() * 10 ** (rng.int(8) - 4));
    const back = decodeFloat16(encodeFloat16(values));
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      const ulp = Math.abs(v) < 6.1e-5 ? 2 ** -24 : 2 ** (Math.floor(Math.log2(Math.abs(v))) - 10);
      expect(Math.abs(back[i] - v)).toBeLessThanOrEqual(ulp / 2 + 1e-12);
    }
    expect(fromFloat16Bits(toFloat16Bits(1))).toBe(1);
    expect(fromFloat16Bits(toFloat16Bits(65504))).toBe(65504);
    expect(fromFloat16Bits(toFloat16Bits(1e6))).toBe(Number.POSITIVE_INFINITY);
    expect(fromFloat16Bits(toFloat16Bits(-2.5))).toBe(-2.5);
  });

  it('puts the threshold so that at most fpr of the calibration scores lie above it', () => {
    const scores = Array.from({ length: 200 }, (_, i) => i / 10);
    for (const fpr of [0.01, 0.05, 0.1]) {
      const t = thresholdAtFpr(scores, fpr);
      const above = scores.filter((s) => s > t).length / scores.length;
      expect(above).toBeLessThanOrEqual(fpr);
      expect(above).toBeGreaterThan(fpr - 1 / scores.length - 1e-12);
    }
  });

  it('gives conformal p-values (1 + #{s >= score}) / (1 + n)', () => {
    const scores = [1, 2, 3, 4];
    expect(conformalPValue(scores, 0)).toBe(1);
    expect(conformalPValue(scores, 2.5)).toBeCloseTo(3 / 5, 12);
    expect(conformalPValue(scores, 4)).toBeCloseTo(2 / 5, 12);
    expect(conformalPValue(scores, 9)).toBeCloseTo(1 / 5, 12);
  });

  it('computes AUROC with ties as one half', () => {
    expect(auroc([0, 1, 2], [3, 4, 5])).toBe(1);
    expect(auroc([3, 4, 5], [0, 1, 2])).toBe(0);
    expect(auroc([1, 1], [1, 1])).toBe(0.5);
    expect(auroc([0, 2], [1, 3])).toBe(0.75);
  });
});
