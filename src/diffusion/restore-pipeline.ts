/**
 * The RED-Diff restoration pipeline, diffusers' split: a model (an eps network), a scheduler (built once per model
 * from its manifest), and this pipeline composing them with a degradation operator. It owns what surrounds the
 * optimisation: padding to the network's down-sampling unit (and the super-resolution factor; by reflection, or as
 * the prior was trained when its manifest says so, src/diffusion/padding.ts), the
 * [0, 1] <-> [-1, 1] scaling, the operator, the simulated measurement, cropping back, and PSNR against a reference.
 * Pure library code on planar grey images: the service runs it in a compute worker
 * (src/operations/restore/task.ts), a script or a test can call it directly.
 */

import type { MemoryProbe } from '../nn/batcher.js';
import { tidyValues } from '../nn/read.js';
import { ddpmEpsModel, type EpsModel } from './eps-model.js';
import type { RedDiffInit } from './initial.js';
import {
  averagePoolOperator,
  bicubicDownsampleOperator,
  type DegradationOperator,
  gaussianBlurOperator,
  identityOperator,
  maskOperator,
  measure,
  uniformBlurOperator,
} from './operators.js';
import { restorePadding } from './padding.js';
import { type RedDiffCoarse, redDiffRestore } from './red-diff.js';
import type { DdpmSchedule } from './schedule.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Tensor4D = import('@tensorflow/tfjs').Tensor4D;

/** The degradation, as a request gives it (the inpainting mask already built, image size). */
export type RestoreOperatorSpec =
  | { kind: 'mask'; mask: Float32Array }
  | { kind: 'super-resolution'; factor: number; kernel: 'avg' | 'bicubic' }
  | { kind: 'blur'; blur: 'gaussian' | 'uniform'; size: number; width: number }
  | { kind: 'identity' };

export interface RestorePipelineInput {
  /** The grey image on [0, 1] (h x w, row-major): the measurement y, or (simulate) the clean reference. */
  data: Float32Array;
  width: number;
  height: number;
  operator: RestoreOperatorSpec;
  /** Degrade the image here (it is the clean reference) and report PSNR against it. */
  simulate: boolean;
  /** Measurement noise on [0, 1]. */
  sigmaY: number;
  steps: number;
  lambda: number;
  lr: number;
  init: RedDiffInit;
  tMax: number;
  /**
   * Masks: optimise only a window around the missing pixels with this margin (src/diffusion/hole-window.ts; its
   * sides are multiples of `multiple`); the answer's params.window gives it in the padded image. Undefined: whole.
   */
  windowMargin?: number;
  /** With windowMargin: a half-resolution run first (red-diff.ts `coarse`; the answer's params.coarse). */
  coarse?: RedDiffCoarse;
  /** The mean of this many runs (red-diff.ts `samples`; the answer's params.samples); undefined: one. */
  samples?: number;
  seed: number;
  /** Intermediate estimates to keep (0: none). */
  trace: number;
  /** The network's down-sampling factor: padded sides are multiples of it. */
  multiple: number;
  /** The prior's manifest `extra` (its `padding` section says how the model was trained), if any. */
  manifestExtra?: Record<string, unknown>;
  onProgress?: (p: { step: number; steps: number; t: number }) => void;
}

export interface RestorePipelineResult {
  data: Float32Array;
  width: number;
  height: number;
  residual: number;
  psnr: number | null;
  pseudoInversePsnr: number | null;
  padding: { mode: 'reflect' | 'constant'; top: number; left: number; bottom: number; right: number };
  operator: Record<string, unknown>;
  params: Record<string, unknown>;
  trace: { step: number; t: number; data: Float32Array }[];
  timings: { prepareMs: number; optimiseMs: number; msPerStep: number };
}

type PaddingInput = Pick<
  RestorePipelineInput,
  'width' | 'height' | 'operator' | 'simulate' | 'multiple' | 'manifestExtra'
>;

function pipelinePadding(input: PaddingInput) {
  const { width, height, operator, multiple } = input;
  const factor = operator.kind === 'super-resolution' ? operator.factor : 1;
  // The size of the estimate x before padding, and the unit its padded side must be a multiple of.
  const outHeight = input.simulate ? height : height * factor;
  const outWidth = input.simulate ? width : width * factor;
  const padding = restorePadding(input.manifestExtra, outHeight, outWidth, factor, multiple);
  return { factor, outHeight, outWidth, padding };
}

/** The shape [1, h, w, 1] of the estimate the pipeline optimises (padded): what each step runs the network on. */
export function restoreShape(input: PaddingInput): [number, number, number, number] {
  const { padding } = pipelinePadding(input);
  return [1, padding.height, padding.width, 1];
}

/**
 * The device-memory probe of a RED-Diff run with the DDPM U-Net `model` (src/nn/batcher.ts MemoryProbe): one whole
 * step (the eps network, the data gradient, Adam's moments, a mask operator) at a given shape, so that a run is
 * admitted at restoreShape() for its per-step peak.
 */
export function redDiffMemoryProbe(tf: Tf, model: LayersModel, schedule: DdpmSchedule): MemoryProbe {
  return {
    name: 'red-diff-step',
    run: async ([n, h, w]) => {
      const op = maskOperator(new Float32Array(h * w).fill(1), h, w);
      const y = tf.zeros([n, h, w, 1]) as Tensor4D;
      try {
        await redDiffRestore(tf, ddpmEpsModel(tf, model), schedule, op, y, { steps: 1, lambda: 1 });
      } finally {
        y.dispose();
        op.dispose();
      }
    },
  };
}

/** RED-Diff restoration of one grey image with the eps-model `model` (`ddpmEpsModel` of a U-Net) under `schedule`. */
export async function redDiffPipeline(
  tf: Tf,
  model: EpsModel,
  schedule: DdpmSchedule,
  input: RestorePipelineInput,
): Promise<RestorePipelineResult> {
  const t0 = performance.now();
  const { data, width, height, operator } = input;
  const { factor, outHeight, outWidth, padding } = pipelinePadding(input);
  const { height: paddedHeight, width: paddedWidth } = padding;
  const mask = operator.kind === 'mask' ? padding.pad(operator.mask, height, width, 'x', 1) : null;
  const op = buildOperator(operator, mask, paddedHeight, paddedWidth);
  const sigmaY = 2 * input.sigmaY; // [0, 1] -> [-1, 1] scale

  const reference = input.simulate ? data : null;
  const y = tf.tidy(() => {
    if (input.simulate) {
      const x = tf.tensor4d(toModelRange(padding.pad(data, height, width, 'x')), [
        1,
        paddedHeight,
        paddedWidth,
        1,
      ]);
      return measure(tf, op, x, sigmaY, input.seed);
    }
    // Observed: y is the image itself; padded to the measurement size that matches the padded estimate.
    const yh = paddedHeight / factor;
    const yw = paddedWidth / factor;
    const observed = tf.tensor4d(toModelRange(padding.pad(data, height, width, 'y')), [1, yh, yw, 1]);
    // Missing pixels carry no measurement: zero them so y = H y holds (the mask's H^+ is H).
    return op.kind === 'mask' ? op.forward(tf, observed) : observed;
  });
  const tPrepare = performance.now();

  try {
    let pseudoInversePsnr: number | null = null;
    if (reference) {
      const pinvTensor = await op.pseudoInverse(tf, y);
      const pinv = await tidyValues(tf, () => pinvTensor);
      pseudoInversePsnr = psnr01(toUnitRange(padding.crop(pinv)), reference);
    }
    const result = await redDiffRestore(tf, model, schedule, op, y, {
      steps: input.steps,
      lambda: input.lambda,
      lr: input.lr,
      init: input.init,
      tMax: input.tMax,
      ...(input.windowMargin !== undefined
        ? { window: { margin: input.windowMargin, multiple: input.multiple } }
        : {}),
      ...(input.windowMargin !== undefined && input.coarse !== undefined ? { coarse: input.coarse } : {}),
      ...(input.samples !== undefined ? { samples: input.samples } : {}),
      seed: input.seed,
      sigmaY,
      trace: input.trace,
      onProgress: input.onProgress,
    });
    const restored = toUnitRange(padding.crop(result.x));
    if (!restored.every(Number.isFinite)) throw new Error('RED-Diff diverged (non-finite values)');
    return {
      data: restored,
      width: outWidth,
      height: outHeight,
      residual: result.residual,
      psnr: reference ? psnr01(restored, reference) : null,
      pseudoInversePsnr,
      padding: padding.summary(),
      operator: op.describe(),
      params: { ...result.params, sigmaY: input.sigmaY, steps: input.steps, simulate: input.simulate },
      trace: (result.trace ?? []).map((e) => ({
        step: e.step,
        t: e.t,
        data: toUnitRange(padding.crop(e.x)),
      })),
      timings: {
        prepareMs: tPrepare - t0,
        optimiseMs: result.timings.loopMs,
        msPerStep: result.timings.msPerStep,
      },
    };
  } finally {
    y.dispose();
    // The operator keeps small constant tensors (mask, resize matrices); it lives for this task only.
    op.dispose();
  }
}

function psnr01(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  const mse = s / a.length;
  return mse === 0 ? Number.POSITIVE_INFINITY : 10 * Math.log10(1 / mse);
}

function toModelRange(data: Float32Array): Float32Array {
  return Float32Array.from(data, (v) => 2 * v - 1);
}

function toUnitRange(data: ArrayLike<number>): Float32Array {
  return Float32Array.from(data, (v) => Math.min(1, Math.max(0, (v + 1) / 2)));
}

function buildOperator(
  spec: RestoreOperatorSpec,
  mask: Float32Array | null,
  h: number,
  w: number,
): DegradationOperator {
  switch (spec.kind) {
    case 'mask':
      return maskOperator(mask as Float32Array, h, w);
    case 'super-resolution':
      return spec.kernel === 'avg'
        ? averagePoolOperator(h, w, spec.factor)
        : bicubicDownsampleOperator(h, w, spec.factor);
    case 'blur':
      return spec.blur === 'gaussian'
        ? gaussianBlurOperator(h, w, spec.size, spec.width)
        : uniformBlurOperator(h, w, spec.size);
    case 'identity':
      return identityOperator(h, w);
  }
}
