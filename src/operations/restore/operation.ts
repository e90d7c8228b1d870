/**
 * The restore operation (POST /v1/restore and its alias POST /v1/inpaint, GraphQL `restore`, job `restore`):
 * RED-Diff with a diffusion prior. Screen the image's (and mask's) header on the main thread (format, size, memory
 * budget: src/imaging/budget.ts), then decode them as grey on [0, 1], build the mask, run RED-Diff and encode the
 * answer (and its trace strip) in the compute pool (src/operations/restore/task.ts): no decoded pixel on the event
 * loop. A job runs exactly what a request runs; a request whose estimated cost exceeds its deadline becomes one.
 *
 * The image is the measurement y by default (an image with holes, a low-resolution image, a blurred or noisy one);
 * with `simulate=true` it is the clean reference, degraded here and compared with the restoration (PSNR).
 * Images whose side is not a multiple of the model's down-sampling factor are padded by reflection and cropped
 * back (src/operations/restore/task.ts).
 */

import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import type { ComputePool, RunOptions } from '../../compute/pool.js';
import type { Config } from '../../config.js';
import { randomPixelMask } from '../../diffusion/operators.js';
import type { RestorePipelineResult } from '../../diffusion/restore-pipeline.js';
import { fail } from '../../errors.js';
import { type Admission, decodedBytes, imageBudgetFor } from '../../imaging/budget.js';
import { type FloatImage, negotiateFormat, screenImage } from '../../imaging/codec.js';
import { imagePipelineTimings } from '../../imaging/task-image.js';
import { ROUTE_MODEL_TASKS } from '../../nn/manifest.js';
import { architectureMultiple } from '../../nn/manifest-sections.js';
import { base64Image, imageHeaderSize, readImageParams, requireImage, toBuffer } from '../image-request.js';
import { asyncRequested, defineOperation, splitAsync } from '../spec.js';
import { PLAN_MAX_RANDOM_MASK_PIXELS, type PlanMask, restoreRunPlan } from './plan.js';
import {
  defaultRestoreModel,
  MAX_RESTORE_STEPS,
  parseBoxes,
  type RestoreParams,
  restoreParams,
} from './schema.js';
import type { InpaintRequestSpec, RestoreOperatorSpec, RestoreTaskInput } from './task.js';

export interface RestoreOutcome {
  /** The output's shape (its pixels stay in the worker that encoded them). */
  image: Omit<FloatImage, 'data'>;
  bytes: Buffer;
  contentType: string;
  format: string;
  task: RestoreParams['task'];
  simulate: boolean;
  model: string;
  residual: number;
  psnr: number | null;
  pseudoInversePsnr: number | null;
  padding: RestorePipelineResult['padding'];
  operator: Record<string, unknown>;
  params: Record<string, unknown>;
  /** PNG strip of the intermediate estimates (left to right), when `trace` > 0. */
  trace: { png: Buffer; steps: number[] } | null;
  timings: Record<string, number>;
}

/**
 * Milliseconds per pixel per RED-Diff step, measured with ddpm-fashion-mnist (32x32, batch 8) on the wasm backend
 * on 2 shared cores: ~16 ms per image-step, i.e. 0.016 ms per pixel-step; rounded up, since single images batch
 * worse. Used only to decide when a synchronous request should become a job; a native backend is much faster, so
 * on it the estimate errs towards jobs.
 */
export const RESTORE_MS_PER_PIXEL_STEP = 0.02;

/**
 * Estimated compute time of a restore request for a width x height input (padding and SR output included): the
 * runs averaged x (steps x pixels each step updates + the half-resolution run's steps x its pixels, when the
 * settings start at half resolution), from the same plan the worker runs (plan.ts restoreRunPlan:
 * the model's own `samples` and hole window when its manifest is known). A random mask (`maskRatio`) is built here
 * as the worker builds it, up to PLAN_MAX_RANDOM_MASK_PIXELS; an uploaded mask (or a larger random one) is not (no
 * pixel on the main thread): the estimate is then the plan's upper bound.
 */
export function estimateRestoreMs(
  params: RestoreParams,
  width: number,
  height: number,
  model: { extra?: Record<string, unknown>; multiple: number } = { multiple: 8 },
  maskUploaded = false,
): number {
  const sr = params.task === 'super-resolution';
  const factor = sr && !params.simulate ? params.factor : 1;
  const mask: PlanMask =
    params.task !== 'inpaint'
      ? undefined
      : params.box !== undefined && !maskUploaded
        ? { kind: 'boxes', boxes: parseBoxes(params.box) }
        : params.maskRatio !== undefined && !maskUploaded && width * height <= PLAN_MAX_RANDOM_MASK_PIXELS
          ? // The worker's random mask (task.ts inpaintingMask), cheap to build here: the plan is then exact.
            { kind: 'mask', mask: randomPixelMask(height, width, params.maskRatio, params.seed) }
          : { kind: 'unknown' };
  const plan = restoreRunPlan({
    extra: model.extra,
    outHeight: height * factor,
    outWidth: width * factor,
    factor: sr ? params.factor : 1,
    multiple: model.multiple,
    samples: params.samples,
    sigmaY: params.sigmaY,
    mask,
  });
  const coarse = plan.coarse ? plan.coarse.steps * plan.coarse.stepPixels : 0;
  return plan.samples * (params.steps * plan.stepPixels + coarse) * RESTORE_MS_PER_PIXEL_STEP;
}

function operatorSpec(
  cfg: Config,
  params: RestoreParams,
  maskBytes: Uint8Array | undefined,
): RestoreOperatorSpec | InpaintRequestSpec {
  switch (params.task) {
    case 'inpaint':
      // What needs no pixel is checked here; the mask is built in the worker, once the image is decoded there.
      if (maskBytes && (params.maskRatio !== undefined || params.box !== undefined))
        throw fail('VALIDATION', 'Give one mask: an uploaded `mask` image, maskRatio or box');
      if (!maskBytes && params.maskRatio === undefined && params.box === undefined)
        throw fail(
          'VALIDATION',
          'task=inpaint needs a mask: upload a `mask` image (white = missing), or give maskRatio or box=x,y,w,h',
        );
      return {
        kind: 'inpaint',
        ...(maskBytes ? { maskImage: maskBytes } : {}),
        maxPixels: cfg.MAX_IMAGE_PIXELS,
        request: {
          maskRatio: params.maskRatio,
          box: params.box,
          maskMissing: params.maskMissing,
          seed: params.seed,
        },
      };
    case 'super-resolution':
      return { kind: 'super-resolution', factor: params.factor, kernel: params.kernel };
    case 'deblur':
      return { kind: 'blur', blur: params.blur, size: params.size, width: params.width };
    case 'denoise':
      return { kind: 'identity' };
  }
}

export async function restorePipeline(
  pool: ComputePool,
  cfg: Config,
  bytes: Uint8Array,
  maskBytes: Uint8Array | undefined,
  params: RestoreParams,
  opts: {
    model: { name?: string; version?: string };
    accept?: string;
    run?: RunOptions;
    /** Beyond the image memory budget: refuse at once (requests, default) or wait for room (jobs). */
    admission?: Admission;
  },
): Promise<RestoreOutcome> {
  const t0 = performance.now();
  // Negotiate first: a client asking for a format we cannot write learns it before any work is done.
  const { format, contentType } = negotiateFormat(opts.accept, params.format);
  if (params.task !== 'inpaint' && maskBytes)
    throw fail('VALIDATION', 'A mask image applies to task=inpaint only');
  // Headers only (no pixel decoded here): refused formats, bombs, the output's size and the memory it all takes.
  const { width, height, header } = await screenImage(toBuffer(bytes), cfg.MAX_IMAGE_PIXELS);
  const maskHeader = maskBytes ? await screenImage(toBuffer(maskBytes), cfg.MAX_IMAGE_PIXELS) : undefined;
  const operator = operatorSpec(cfg, params, maskBytes);
  const factor = params.task === 'super-resolution' && !params.simulate ? params.factor : 1;
  if (width * factor * height * factor > cfg.MAX_IMAGE_PIXELS)
    throw fail(
      'IMAGE_TOO_LARGE',
      `The restored image would be ${width * factor}x${height * factor}, above MAX_IMAGE_PIXELS = ${cfg.MAX_IMAGE_PIXELS}`,
    );
  const release = await imageBudgetFor(pool, cfg).reserve(
    decodedBytes(width, height, header.channels ?? 4) +
      (maskHeader ? decodedBytes(maskHeader.width, maskHeader.height, maskHeader.header.channels ?? 4) : 0) +
      decodedBytes(width * factor, height * factor, 1),
    { admission: opts.admission, signal: opts.run?.signal },
  );
  try {
    return await restoreScreened(pool, cfg, bytes, operator, params, opts, {
      t0,
      format,
      contentType,
      width,
      height,
    });
  } finally {
    release();
  }
}

async function restoreScreened(
  pool: ComputePool,
  cfg: Config,
  bytes: Uint8Array,
  operator: RestoreOperatorSpec | InpaintRequestSpec,
  params: RestoreParams,
  opts: { model: { name?: string; version?: string }; run?: RunOptions },
  screened: {
    t0: number;
    format: ReturnType<typeof negotiateFormat>['format'];
    contentType: string;
    width: number;
    height: number;
  },
): Promise<RestoreOutcome> {
  const { t0, format, contentType, width, height } = screened;
  const tDecode = performance.now();
  const input: RestoreTaskInput = {
    model: { name: opts.model.name ?? defaultRestoreModel(width, height), version: opts.model.version },
    // Decoded (grey) in the worker, the mask built there.
    image: { encoded: bytes, maxPixels: cfg.MAX_IMAGE_PIXELS },
    operator,
    simulate: params.simulate,
    sigmaY: params.sigmaY,
    steps: params.steps,
    lambda: params.lambda,
    lr: params.lr,
    init: params.init,
    tMax: params.tMax,
    samples: params.samples,
    seed: params.seed,
    trace: params.trace,
    // Encoded in the worker too: only the encoded answer comes back.
    encode: format,
  };
  const result = await pool.run('restore.reddiff', input, { ...opts.run });
  const tCompute = performance.now();
  const image = { width: result.width, height: result.height, channels: 1 as const };
  const out = toBuffer(result.bytes as Uint8Array);
  const trace = result.traceStrip
    ? { png: toBuffer(result.traceStrip.png), steps: result.traceStrip.steps }
    : null;
  return {
    image,
    bytes: out,
    contentType,
    format,
    task: params.task,
    simulate: params.simulate,
    model: `${result.model.name}@${result.model.version}`,
    residual: result.residual,
    psnr: result.psnr,
    pseudoInversePsnr: result.pseudoInversePsnr,
    padding: result.padding,
    operator: result.operator,
    params: result.params,
    trace,
    timings: imagePipelineTimings(t0, tDecode, tCompute, result.timings, 'reddiff'),
  };
}

/** JSON numbers cannot be Infinity (a perfect reconstruction has infinite PSNR): null then. */
function finiteOrNull(v: number | null): number | null {
  return v === null || Number.isFinite(v) ? v : null;
}

export function restoreJson(o: RestoreOutcome) {
  return {
    image: o.bytes.toString('base64'),
    contentType: o.contentType,
    width: o.image.width,
    height: o.image.height,
    channels: o.image.channels,
    task: o.task,
    simulate: o.simulate,
    model: o.model,
    residual: o.residual,
    psnr: finiteOrNull(o.psnr),
    pseudoInversePsnr: finiteOrNull(o.pseudoInversePsnr),
    padding: o.padding,
    operator: o.operator,
    params: o.params,
    trace: o.trace ? { image: o.trace.png.toString('base64'), steps: o.trace.steps } : null,
    timings: o.timings,
  };
}

export const restoreInput = z.object({
  image: z.instanceof(Uint8Array).describe('The image file bytes'),
  mask: z.instanceof(Uint8Array).optional().describe('Inpainting: the mask image bytes'),
  params: restoreParams.prefault({}),
  accept: z.string().optional(),
});
export type RestoreInput = z.output<typeof restoreInput>;

/** What a restore answers (and a job stores): the encoded image, the trace strip, and the JSON answer's fields. */
export interface RestoreResult {
  bytes: Uint8Array;
  contentType: string;
  width: number;
  height: number;
  task: string;
  model: string;
  residual: number;
  psnr: number | null;
  steps: number;
  /** `output=json`: the answer is the JSON. Absent in results stored before: image. */
  output?: 'image' | 'json';
  /** The JSON answer's fields other than the two images (which are kept as bytes). */
  json?: Omit<ReturnType<typeof restoreJson>, 'image' | 'trace'>;
  /** `trace` > 0: the PNG strip of intermediate estimates and their steps. */
  trace?: { png: Uint8Array; steps: number[] } | null;
}

/** The JSON answer of a result (images in base64). */
function answerJson(result: RestoreResult) {
  const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
  return {
    image: base64(result.bytes),
    ...result.json,
    trace: result.trace ? { image: base64(result.trace.png), steps: result.trace.steps } : null,
  };
}

const GRAPHQL_TASKS: Record<string, string> = {
  INPAINT: 'inpaint',
  SUPER_RESOLUTION: 'super-resolution',
  DEBLUR: 'deblur',
  DENOISE: 'denoise',
};

export const restore = defineOperation<RestoreInput, RestoreResult>({
  id: 'restore',
  tag: 'restore',
  input: restoreInput,
  /** The prior this request uses (named, or the default for the image's size), which must be ready and grey. */
  check: async (ctx, input) => {
    const { params } = input;
    negotiateFormat(input.accept, params.format);
    if (!ctx.models) return undefined;
    // The default model depends on the image's size, read from its header (an undecodable image falls to the
    // pipeline's decode error, whatever model is named here).
    const size = params.model ? undefined : await imageHeaderSize(input.image);
    const name = params.model ?? defaultRestoreModel(size?.width ?? 0, size?.height ?? 0);
    const status = ctx.models.requireReady(name, params.version, {
      task: ROUTE_MODEL_TASKS.restore,
      use: 'restoration (RED-Diff)',
    });
    if (status.manifest && status.manifest.channels !== 1)
      throw fail(
        'UNPROCESSABLE',
        `Model '${status.name}' has ${status.manifest.channels} channels; restore is grey only`,
      );
    // A request runs the model checked here; a job chooses again when it runs.
    return ctx.mode === 'request'
      ? { ...input, params: { ...params, model: status.name, version: status.version } }
      : undefined;
  },
  timeoutMs: (input) => input.params.timeoutMs,
  estimateMs: async (input, _config, models) => {
    const size = await imageHeaderSize(input.image);
    if (!size) return undefined;
    // The model the request names, or the default for its size: its manifest gives the run's own settings.
    const name = input.params.model ?? defaultRestoreModel(size.width, size.height);
    const manifest = models?.get(name, input.params.version)?.manifest;
    const model = manifest ? { extra: manifest.extra, multiple: architectureMultiple(manifest) } : undefined;
    return estimateRestoreMs(input.params, size.width, size.height, model, input.mask !== undefined);
  },
  run: async (rt, input) => {
    const out = await restorePipeline(rt.pool, rt.config, input.image, input.mask, input.params, {
      model: { name: input.params.model, version: input.params.version },
      accept: input.accept,
      run: rt.run,
      admission: rt.admission,
    });
    const { image: _image, trace: _trace, ...json } = restoreJson(out);
    return {
      output: input.params.output,
      json,
      trace: out.trace,
      bytes: out.bytes,
      contentType: out.contentType,
      width: out.image.width,
      height: out.image.height,
      task: out.task,
      model: out.model,
      residual: out.residual,
      psnr: finiteOrNull(out.psnr),
      steps: input.params.steps,
    };
  },
  reply: (result, reply: FastifyReply) => {
    reply
      .header('x-model', result.model)
      .header('x-residual', result.residual.toExponential(3))
      .header('x-steps', String(result.steps));
    const total = result.json?.timings.totalMs;
    if (total !== undefined) reply.header('x-timing-total-ms', total.toFixed(1));
    if (result.output === 'json' && result.json) return reply.send(answerJson(result));
    return reply.type(result.contentType).send(Buffer.from(result.bytes));
  },
  http: {
    routes: [
      {
        url: '/v1/restore',
        summary:
          'Restore a grey image with a diffusion prior (RED-Diff): inpaint, super-resolution, deblur, denoise',
      },
      {
        url: '/v1/inpaint',
        summary:
          'Inpaint a grey image with a diffusion prior (RED-Diff); alias of POST /v1/restore?task=inpaint',
        fixed: { task: 'inpaint' },
      },
    ].map((r) => ({
      ...r,
      description:
        'Send the image as a raw image/* body or multipart/form-data with a file field `image` (and `mask` for ' +
        'inpainting: white = missing unless maskMissing=black; or maskRatio with seed, or box=x,y,w,h). The image ' +
        'is the measurement (holes, low resolution, blur, noise) unless simulate=true (then it is the clean ' +
        'reference, degraded by the service, and JSON reports PSNR against it). Colour is converted to grey. A ' +
        "side that is not a multiple of the model's down-sampling factor (8 for ddpm-fashion-mnist) is padded by " +
        `reflection and cropped back. steps <= ${MAX_RESTORE_STEPS}. A request whose estimated cost exceeds its deadline (timeoutMs or the default) becomes a job (202, header x-async-reason), up to JOBS_AUTO_MAX_COST_MS (413 above it). Answers the image (headers x-model, ` +
        'x-residual = ||y - H x|| / ||y||, x-steps); output=json adds residual, PSNR, parameters and timings.',
    })),
    schema: { querystring: restoreParams },
    imageUpload: {
      files: [
        {
          name: 'image',
          required: true,
          description: 'The grey image (measurement, or clean with simulate=true)',
        },
        {
          name: 'mask',
          description: 'Inpainting mask, image size: white = missing (unless maskMissing=black)',
        },
      ],
    },
    read: async (request, cfg, route) => {
      const { files, params } = await readImageParams(request, ['image', 'mask'], cfg);
      const fixedTask = route.fixed?.task;
      if (fixedTask) {
        if (params.task !== undefined && params.task !== fixedTask)
          throw fail(
            'VALIDATION',
            `POST ${route.url} is task=${fixedTask} (got task=${String(params.task)})`,
          );
        params.task = fixedTask;
      }
      const { rest, flag } = splitAsync(params);
      const mask = files.get('mask');
      return {
        input: {
          image: requireImage(files),
          ...(mask ? { mask } : {}),
          params: rest,
          accept: request.headers.accept,
        },
        async: asyncRequested(request, flag),
      };
    },
  },
  graphql: {
    field: 'restore',
    toInput: (args, cfg) => {
      const { image, mask, task, async: flag, ...rest } = args;
      const params = Object.fromEntries(
        Object.entries({
          ...rest,
          task: typeof task === 'string' ? (GRAPHQL_TASKS[task] ?? task) : undefined,
          output: 'json',
        }).filter(([, v]) => v !== null && v !== undefined),
      );
      const maskBytes = mask === null || mask === undefined ? undefined : base64Image(mask, 'mask', cfg);
      return {
        input: { image: base64Image(image, 'image', cfg), ...(maskBytes ? { mask: maskBytes } : {}), params },
        async: asyncRequested(undefined, flag ?? undefined),
      };
    },
    answer: (result) => ({ ...answerJson(result), jobId: null }),
    accepted: (view) => ({ jobId: view.id }),
  },
});
