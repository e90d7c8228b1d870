import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  registerWasmGradKernels,
  unregisterWasmGradKernels,
  wasmGradKernelsRegistered,
} from '../../src/nn/wasm-grad-kernels.js';
import { Rng } from '../../src/util/random.js';

type Pad =
  | 'same'
  | 'valid'
  | number
  | [[number, number], [number, number], [number, number], [number, number]];
interface ConvCase {
  batch: number;
  height: number;
  width: number;
  inChannels: number;
  outChannels: number;
  kh: number;
  kw: number;
  stride: number;
  pad: Pad;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function relativeError(actual: Float32Array, expected: Float32Array): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < expected.length; i++) {
    diff += (actual[i] - expected[i]) ** 2;
    norm += expected[i] ** 2;
  }
  return Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-12);
}

function randomArray(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

interface GradData {
  x: Float32Array;
  filter: Float32Array;
  weights: Float32Array;
}

/** Gradients of sum(conv2d(x, filter) * weights) w.r.t. x and filter, on the current backend, via tf.grads. */
function conv2dGrads(c: ConvCase, data: GradData): { dx: Float32Array; dFilter: Float32Array } {
  return tf.tidy(() => {
    const x = tf.tensor4d(data.x, [c.batch, c.height, c.width, c.inChannels]);
    const filter = tf.tensor4d(data.filter, [c.kh, c.kw, c.inChannels, c.outChannels]);
    const outShape = tf.conv2d(x, filter, c.stride, c.pad, 'NHWC', 1, c.dimRoundingMode).shape;
    const weights = tf.tensor(
      data.weights.subarray(
        0,
        outShape.reduce((a, b) => a * b, 1),
      ),
      outShape,
    );
    const loss = (...args: tf.Tensor[]) =>
      tf.sum(
        tf.mul(
          tf.conv2d(
            args[0] as tf.Tensor4D,
            args[1] as tf.Tensor4D,
            c.stride,
            c.pad,
            'NHWC',
            1,
            c.dimRoundingMode,
          ),
          weights,
        ),
      );
    const [dx, dFilter] = tf.grads(loss)([x, filter]);
    return { dx: dx.dataSync() as Float32Array, dFilter: dFilter.dataSync() as Float32Array };
  });
}

function inputShapeOf(c: ConvCase): [number, number, number, number] {
  return c.dataFormat === 'NCHW'
    ? [c.batch, c.inChannels, c.height, c.width]
    : [c.batch, c.height, c.width, c.inChannels];
}

/** Runs the two backprop kernels directly (covers NCHW, which tf.conv2d's forward pass on wasm lacks). */
function backpropKernels(c: ConvCase, data: GradData) {
  const dataFormat = c.dataFormat ?? 'NHWC';
  const inputShape = inputShapeOf(c);
  const convInfo = tf.backend_util.computeConv2DInfo(
    inputShape,
    [c.kh, c.kw, c.inChannels, c.outChannels],
    c.stride,
    1,
    c.pad,
    c.dimRoundingMode,
    false,
    tf.backend_util.convertConv2DDataFormat(dataFormat),
  );
  const { outHeight: oh, outWidth: ow } = convInfo;
  const dyShape = dataFormat === 'NCHW' ? [c.batch, c.outChannels, oh, ow] : [c.batch, oh, ow, c.outChannels];
  return tf.tidy(() => {
    const x = tf.tensor4d(data.x, inputShape);
    const filter = tf.tensor4d(data.filter, [c.kh, c.kw, c.inChannels, c.outChannels]);
    const dy = tf.tensor(data.weights.subarray(0, c.batch * oh * ow * c.outChannels), dyShape);
    const common = { strides: c.stride, pad: c.pad, dataFormat, dimRoundingMode: c.dimRoundingMode };
    const dx = tf
      .engine()
      .runKernel('Conv2DBackpropInput', { dy, filter }, { ...common, inputShape } as never);
    const dFilter = tf
      .engine()
      .runKernel('Conv2DBackpropFilter', { x, dy }, { ...common, filterShape: filter.shape } as never);
    return {
      dx: (dx as tf.Tensor).dataSync() as Float32Array,
      dFilter: (dFilter as tf.Tensor).dataSync() as Float32Array,
      dxShape: (dx as tf.Tensor).shape,
      dFilterShape: (dFilter as tf.Tensor).shape,
    };
  });
}

function makeData(rng: Rng, c: ConvCase): GradData {
  const n = c.batch * c.height * c.width;
  return {
    x: randomArray(rng, n * c.inChannels),
    filter: randomArray(rng, c.kh * c.kw * c.inChannels * c.outChannels),
    // Large enough for any output shape: the output is never bigger than the padded input.
    weights: randomArray(rng, c.batch * (c.height + 2 * c.kh) * (c.width + 2 * c.kw) * c.outChannels),
  };
}

function randomCases(rng: Rng, count: number): ConvCase[] {
  const kernels = [1, 2, 3, 4, 5];
  const cases: ConvCase[] = [];
  for (let i = 0; i < count; i++) {
    const kh = kernels[rng.int(kernels.length)];
    const kw = rng.uniform() < 0.8 ? kh : kernels[rng.int(kernels.length)];
    cases.push({
      batch: 1 + rng.int(3),
      height: kh + rng.int(8),
      width: kw + rng.int(8),
      inChannels: 1 + rng.int(8),
      outChannels: 1 + rng.int(8),
      kh,
      kw,
      stride: 1,
      pad: rng.uniform() < 0.5 ? 'same' : 'valid',
    });
  }
  return cases;
}

const TOLERANCE = 1e-4;

describe('wasm conv2d gradient kernels', () => {
  beforeAll(async () => {
    await tf.setBackend('wasm');
    registerWasmGradKernels(tf);
  });
  afterAll(() => {
    unregisterWasmGradKernels(tf);
  });

  it('registers both kernels idempotently and can restore the originals', () => {
    expect(wasmGradKernelsRegistered(tf)).toBe(true);
    const ours = tf.getKernel('Conv2DBackpropInput', 'wasm');
    registerWasmGradKernels(tf);
    expect(tf.getKernel('Conv2DBackpropInput', 'wasm')).toBe(ours);
    unregisterWasmGradKernels(tf);
    expect(wasmGradKernelsRegistered(tf)).toBe(false);
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    expect(tf.getKernel('Conv2DBackpropInput', 'wasm')).toBeDefined();
    registerWasmGradKernels(tf);
    expect(wasmGradKernelsRegistered(tf)).toBe(true);
  });

  const fixed: ConvCase[] = [
    { batch: 1, height: 5, width: 5, inChannels: 1, outChannels: 1, kh: 3, kw: 3, stride: 1, pad: 'same' },
    { batch: 2, height: 8, width: 6, inChannels: 3, outChannels: 4, kh: 5, kw: 5, stride: 1, pad: 'same' },
    { batch: 3, height: 7, width: 9, inChannels: 8, outChannels: 2, kh: 5, kw: 5, stride: 1, pad: 'valid' },
    { batch: 2, height: 6, width: 6, inChannels: 4, outChannels: 8, kh: 1, kw: 1, stride: 1, pad: 'same' },
    { batch: 1, height: 9, width: 8, inChannels: 2, outChannels: 3, kh: 4, kw: 2, stride: 1, pad: 'same' },
    { batch: 2, height: 10, width: 9, inChannels: 3, outChannels: 5, kh: 3, kw: 3, stride: 2, pad: 'same' },
    { batch: 2, height: 9, width: 10, inChannels: 3, outChannels: 2, kh: 3, kw: 3, stride: 2, pad: 'valid' },
    { batch: 1, height: 11, width: 7, inChannels: 2, outChannels: 2, kh: 4, kw: 4, stride: 3, pad: 'same' },
    { batch: 1, height: 8, width: 8, inChannels: 3, outChannels: 2, kh: 3, kw: 3, stride: 1, pad: 1 },
    // Numeric padding only with square kernels: tfjs 4.22 sizes the output of a numerically padded conv from the
    // kernel height alone, and wasm's forward conv2d then writes past its output buffer for non-square kernels.
    { batch: 2, height: 9, width: 8, inChannels: 2, outChannels: 3, kh: 5, kw: 5, stride: 2, pad: 2 },
    {
      batch: 2,
      height: 7,
      width: 8,
      inChannels: 2,
      outChannels: 3,
      kh: 3,
      kw: 3,
      stride: 1,
      pad: [
        [0, 0],
        [2, 0],
        [1, 2],
        [0, 0],
      ],
    },
  ];

  it.each(fixed.map((c) => [JSON.stringify(c), c] as const))('matches cpu tf.grads for %s', async (_, c) => {
    const data = makeData(new Rng(c.height * 31 + c.kh), c);
    await tf.setBackend('cpu');
    const expected = conv2dGrads(c, data);
    await tf.setBackend('wasm');
    const actual = conv2dGrads(c, data);
    expect(relativeError(actual.dx, expected.dx)).toBeLessThan(TOLERANCE);
    expect(relativeError(actual.dFilter, expected.dFilter)).toBeLessThan(TOLERANCE);
  });

  it('matches cpu tf.grads on 40 random shapes (batch 1-3, channels 1-8, kernels 1-5, same/valid)', async () => {
    const rng = new Rng(20261127);
    const failures: string[] = [];
    for (const c of randomCases(rng, 40)) {
      const data = makeData(rng, c);
      await tf.setBackend('cpu');
      const expected = conv2dGrads(c, data);
      await tf.setBackend('wasm');
      const actual = conv2dGrads(c, data);
      const errX = relativeError(actual.dx, expected.dx);
      const errW = relativeError(actual.dFilter, expected.dFilter);
      if (!(errX < TOLERANCE && errW < TOLERANCE))
        failures.push(`${JSON.stringify(c)} dx ${errX} dw ${errW}`);
    }
    expect(failures).toEqual([]);
  });

  it.each([
    ['NCHW same stride 1', { pad: 'same', stride: 1, dataFormat: 'NCHW' }],
    ['NCHW valid stride 2', { pad: 'valid', stride: 2, dataFormat: 'NCHW' }],
    ['NHWC numeric pad with ceil rounding', { pad: 1, stride: 2, dimRoundingMode: 'ceil' }],
  ] as const)('direct kernels match cpu: %s', async (_, extra) => {
    const c: ConvCase = {
      batch: 2,
      height: 9,
      width: 8,
      inChannels: 3,
      outChannels: 4,
      kh: 3,
      kw: 3,
      ...(extra as Partial<ConvCase>),
    } as ConvCase;
    const data = makeData(new Rng(7), c);
    await tf.setBackend('cpu');
    const expected = backpropKernels(c, data);
    await tf.setBackend('wasm');
    const actual = backpropKernels(c, data);
    expect(actual.dxShape).toEqual(expected.dxShape);
    expect(actual.dFilterShape).toEqual(expected.dFilterShape);
    expect(relativeError(actual.dx, expected.dx)).toBeLessThan(TOLERANCE);
    expect(relativeError(actual.dFilter, expected.dFilter)).toBeLessThan(TOLERANCE);
  });

  it('leaks no tensors and no backend data', async () => {
    await tf.setBackend('wasm');
    const c: ConvCase = {
      batch: 2,
      height: 8,
      width: 8,
      inChannels: 3,
      outChannels: 4,
      kh: 3,
      kw: 3,
      stride: 2,
      pad: 'same',
    };
    const data = makeData(new Rng(3), c);
    conv2dGrads(c, data); // warm-up (kernel setup)
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const tensorsBefore = tf.memory().numTensors;
    const dataIdsBefore = backend.numDataIds();
    for (let i = 0; i < 5; i++) {
      conv2dGrads(c, data);
      backpropKernels({ ...c, dataFormat: 'NHWC' }, data);
    }
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(backend.numDataIds()).toBe(dataIdsBefore);
  });
});
