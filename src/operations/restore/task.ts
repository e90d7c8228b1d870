/**
 * RED-Diff restoration in a worker: load the diffusion model (cached per worker), build the degradation operator,
 * pad the problem so the image side is a multiple of the U-Net's down-sampling factor, run redDiffRestore, crop.
 *
 * Padding (src/diffusion/padding.ts): as the prior's manifest says it was trained (`extra.padding`: a 28x28
 * Fashion-MNIST upload centred on a 32x32 black canvas whose border counts as observed), else the measurement y
 * (and the mask with it) is extended at the bottom and right by REFLECTION until the image side is a multiple of
 * lcm(multiple, factor); the estimate is cropped back.
 */

import { ddpmEpsModel } from '../../diffusion/eps-model.js';
import type { RedDiffInit } from '../../diffusion/initial.js';
import { boxMask, countMissing, maskFromImage, randomPixelMask } from '../../diffusion/operators.js';
import {
  type RestoreOperatorSpec,
  type RestorePipelineResult,
  redDiffMemoryProbe,
  redDiffPipeline,
  restoreShape,
} from '../../diffusion/restore-pipeline.js';
import { schedulerFor } from '../../diffusion/scheduler.js';
import { fail } from '../../errors.js';
import { decodeImage, encodeImage, type OutputFormat } from '../../imaging/codec.js';
import { admitDeviceMemory, releaseDeviceMemory } from '../../nn/batcher.js';
import { ROUTE_MODEL_TASKS, requireModelTask } from '../../nn/manifest.js';
import { architectureMultiple, diffusionSection, extraSection } from '../../nn/manifest-sections.js';
import { getModel } from '../../nn/repository.js';
import { restoreRunPlan } from './plan.js';
import { parseBoxes, type RestoreParams } from './schema.js';
import '../../compute/handlers/layers.js';
import type { HandlerContext } from '../../compute/handlers/context.js';
import { encodeTaskImage, type TaskImage, taskPixels } from '../../imaging/task-image.js';

export { type MaskShape, type ModelRedDiffDefaults, modelRedDiffDefaults } from './plan.js';
export type { RestoreOperatorSpec };

/**
 * Inpainting as a request describes it: an uploaded mask image (encoded; decoded here), a random ratio or boxes.
 * The worker builds the mask (src/compute/handlers/restore.ts inpaintingMask) once it knows the image's size.
 */
export interface InpaintRequestSpec {
  kind: 'inpaint';
  /** The uploaded mask file (white = missing unless maskMissing = black). */
  maskImage?: Uint8Array;
  maxPixels: number;
  request: Pick<RestoreParams, 'maskRatio' | 'box' | 'maskMissing' | 'seed'>;
}

export interface RestoreTaskInput {
  model: { name: string; version?: string };
  /**
   * Grey image on [0, 1]: the measurement y, or (simulate) the clean reference x; or the encoded file, decoded
   * here as grey.
   */
  image: { data: Float32Array; width: number; height: number } | TaskImage;
  /** For masks: the mask has the image's size (1 observed, 0 missing). */
  operator: RestoreOperatorSpec | InpaintRequestSpec;
  simulate: boolean;
  /** On [0, 1]. */
  sigmaY: number;
  steps: number;
  /** lambda, lr, init, tMax: absent means the model's measured defaults (modelRedDiffDefaults). */
  lambda?: number;
  lr?: number;
  init?: RedDiffInit;
  tMax?: number;
  /** The mean of this many runs; absent: the model's (modelRedDiffDefaults), else one. */
  samples?: number;
  seed: number;
  trace: number;
  /**
   * Encode the answer here in this format: the result then carries `bytes` and `traceStrip` (the trace estimates
   * side by side, one grey PNG), and `data` and the trace's pixels are left empty.
   */
  encode?: OutputFormat;
}

export interface RestoreTaskResult {
  /** Restored grey image on [0, 1]. */
  data: Float32Array;
  width: number;
  height: number;
  residual: number;
  /** Simulate only: PSNR (dB) of the restoration and of H^+ y against the reference. */
  psnr: number | null;
  pseudoInversePsnr: number | null;
  padding: RestorePipelineResult['padding'];
  operator: Record<string, unknown>;
  params: Record<string, unknown>;
  trace: { step: number; t: number; data: Float32Array }[];
  timings: Record<string, number>;
  model: { name: string; version: string };
  /** With `encode`: the restored image, encoded. */
  bytes?: Uint8Array;
  /** With `encode` and `trace` > 0: the trace estimates side by side (left to right), one grey PNG. */
  traceStrip?: { png: Uint8Array; steps: number[] } | null;
}

/** The trace estimates side by side, one grey PNG; null without a trace. */
export async function traceStrip(
  result: Pick<RestoreTaskResult, 'trace' | 'width' | 'height'>,
): Promise<{ png: Uint8Array; steps: number[] } | null> {
  if (result.trace.length === 0) return null;
  const { width, height } = result;
  const n = result.trace.length;
  const strip = new Float32Array(width * n * height);
  result.trace.forEach((entry, k) => {
    for (let r = 0; r < height; r++)
      strip.set(entry.data.subarray(r * width, (r + 1) * width), r * width * n + k * width);
  });
  const png = await encodeImage({ data: strip, width: width * n, height, channels: 1 }, 'png');
  return { png: new Uint8Array(png), steps: result.trace.map((e) => e.step) };
}

/** RED-Diff, and with `encode` the answer encoded here (the main thread then holds no pixel of it). */
export async function restore(input: RestoreTaskInput, ctx: HandlerContext): Promise<RestoreTaskResult> {
  const result = await restorePixels(input, ctx);
  if (!input.encode) return result;
  const t0 = performance.now();
  const bytes = await encodeTaskImage({ ...result, channels: 1 }, input.encode);
  const strip = await traceStrip(result);
  return {
    ...result,
    data: new Float32Array(0),
    trace: result.trace.map((e) => ({ ...e, data: new Float32Array(0) })),
    bytes,
    traceStrip: strip,
    timings: { ...result.timings, encodeMs: performance.now() - t0 },
  };
}

/** The mask (1 observed, 0 missing) of an inpainting request; refuses a mask that leaves nothing to do. */
export async function inpaintingMask(
  maxPixels: number,
  params: InpaintRequestSpec['request'],
  width: number,
  height: number,
  maskBytes?: Uint8Array,
): Promise<Float32Array> {
  let mask: Float32Array;
  if (maskBytes) {
    if (params.maskRatio !== undefined || params.box !== undefined)
      throw fail('VALIDATION', 'Give one mask: an uploaded `mask` image, maskRatio or box');
    const decoded = await decodeImage(
      Buffer.from(maskBytes.buffer, maskBytes.byteOffset, maskBytes.byteLength),
      { maxPixels, mode: 'grey' },
    );
    if (decoded.image.width !== width || decoded.image.height !== height)
      throw fail(
        'UNPROCESSABLE',
        `The mask is ${decoded.image.width}x${decoded.image.height}, the image ${width}x${height}: they must match`,
      );
    mask = maskFromImage(decoded.image.data, params.maskMissing);
  } else if (params.maskRatio !== undefined) {
    mask = randomPixelMask(height, width, params.maskRatio, params.seed);
  } else if (params.box !== undefined) {
    mask = boxMask(height, width, parseBoxes(params.box));
  } else {
    throw fail(
      'VALIDATION',
      'task=inpaint needs a mask: upload a `mask` image (white = missing), or give maskRatio or box=x,y,w,h',
    );
  }
  if (countMissing(mask) === 0)
    throw fail(
      'UNPROCESSABLE',
      `The mask marks no pixel as missing (missing = ${params.maskMissing}${maskBytes ? ' in the uploaded mask' : ''}): nothing to inpaint`,
    );
  return mask;
}

async function restorePixels(input: RestoreTaskInput, ctx: HandlerContext): Promise<RestoreTaskResult> {
  const started = performance.now();
  const { tf } = await ctx.tfjs();
  const loaded = await getModel(tf, ctx.options.modelsDir, input.model.name, input.model.version);
  requireModelTask(loaded, ROUTE_MODEL_TASKS.restore, 'restoration (RED-Diff)');
  const manifest = loaded.manifest;
  // The scheduler is built once per model, from its manifest's schedule section.
  const schedule = schedulerFor(manifest, extraSection(diffusionSection, manifest).schedule);
  const tLoad = performance.now();
  // Decoded here when it came encoded (grey), and the inpainting mask built here: the main thread holds no pixels.
  const tDecode0 = performance.now();
  const { data, width, height } = await taskPixels({ channels: 1, ...input.image } as TaskImage, 'grey');
  const operator: RestoreOperatorSpec =
    input.operator.kind === 'inpaint'
      ? {
          kind: 'mask',
          mask: await inpaintingMask(
            input.operator.maxPixels,
            input.operator.request,
            width,
            height,
            input.operator.maskImage,
          ),
        }
      : input.operator;
  const decodeMs = performance.now() - tDecode0;
  // The model's measured settings for this mask's structure, and the runs averaged: the plan the job-cost
  // estimate counts too (plan.ts).
  const factor = operator.kind === 'super-resolution' && !input.simulate ? operator.factor : 1;
  const plan = restoreRunPlan({
    extra: manifest.extra,
    outHeight: height * factor,
    outWidth: width * factor,
    factor: operator.kind === 'super-resolution' ? operator.factor : 1,
    multiple: architectureMultiple(manifest),
    samples: input.samples,
    sigmaY: input.sigmaY,
    mask: operator.kind === 'mask' ? { kind: 'mask', mask: operator.mask } : undefined,
  });
  const { tuned } = plan;
  const tMax = input.tMax ?? tuned.tMax ?? schedule.timesteps - 1;
  if (tMax > schedule.timesteps - 1)
    throw fail('VALIDATION', `tMax ${tMax} is beyond this model's last timestep ${schedule.timesteps - 1}`);
  const geometry = {
    width,
    height,
    operator,
    simulate: input.simulate,
    multiple: architectureMultiple(manifest),
    manifestExtra: manifest.extra,
  };
  // Admitted under GPU_MEMORY_BUDGET_MB (src/nn/batcher.ts) for one step at its padded shape, held for the run.
  const reservedBytes = await admitDeviceMemory(
    tf,
    loaded.model,
    restoreShape(geometry),
    redDiffMemoryProbe(tf, loaded.model, schedule),
    'Send a smaller image',
  );
  const result = await redDiffPipeline(tf, ddpmEpsModel(tf, loaded.model), schedule, {
    ...geometry,
    data,
    sigmaY: input.sigmaY,
    steps: input.steps,
    lambda: input.lambda ?? tuned.lambda,
    lr: input.lr ?? tuned.lr,
    init: input.init ?? tuned.init,
    tMax,
    windowMargin: tuned.windowMargin,
    samples: plan.samples,
    // A request's own tMax is the full-resolution run's, after the half-resolution one too.
    coarse:
      tuned.coarse && input.tMax !== undefined ? { ...tuned.coarse, fineTMax: undefined } : tuned.coarse,
    seed: input.seed,
    trace: input.trace,
    onProgress: (p) => ctx.progress(p.step / p.steps, `RED-Diff step ${p.step}/${p.steps} (t = ${p.t})`),
  }).finally(() => releaseDeviceMemory(reservedBytes));
  const { timings, ...rest } = result;
  return {
    ...rest,
    params: {
      ...rest.params,
      settings: tuned.settings,
      ...(tuned.holeRadius !== undefined ? { holeRadius: tuned.holeRadius } : {}),
    },
    timings: {
      loadMs: tLoad - started,
      decodeMs,
      prepareMs: timings.prepareMs,
      optimiseMs: timings.optimiseMs,
      msPerStep: timings.msPerStep,
      totalMs: performance.now() - started,
    },
    model: { name: loaded.name, version: loaded.version },
  };
}
