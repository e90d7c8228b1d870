/**
 * Restoration (RED-Diff with a diffusion prior) as the HTTP, GraphQL and jobs adapters use it: screen the image's
 * (and mask's) header on the main thread (format, size, memory budget: src/imaging/budget.ts), then decode them as
 * grey on [0, 1], build the mask, run RED-Diff and encode the answer (and its trace strip) in the compute pool: no
 * decoded pixel on the event loop. `restorePipeline` needs only the pool and the config, so a job worker process
 * runs exactly what a synchronous request runs; `restoreService` adds the model registry's readiness check and the
 * request's deadline/cancellation.
 *
 * The image is the measurement y by default (an image with holes, a low-resolution image, a blurred or noisy one);
 * with `simulate=true` it is the clean reference, degraded here and compared with the restoration (PSNR).
 * Images whose side is not a multiple of the model's down-sampling factor are padded by reflection and cropped
 * back (src/compute/handlers/restore.ts).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import sharp from 'sharp';
import { imagePipelineTimings } from './compute/handlers/image-input.js';
import type {
  InpaintRequestSpec,
  RestoreOperatorSpec,
  RestoreTaskInput,
} from './compute/handlers/restore.js';
import type { ComputePool, RunOptions } from './compute/pool.js';
import type { Config } from './config.js';
import { fail } from './errors.js';
import { type Admission, decodedBytes, imageBudgetFor } from './imaging/budget.js';
import { type FloatImage, negotiateFormat, screenImage } from './imaging/codec.js';
import { ROUTE_MODEL_TASKS } from './nn/manifest.js';
import { defaultRestoreModel, type RestoreParams } from './schemas/restore.js';

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
  padding: { bottom: number; right: number };
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

/** Estimated compute time of a restore request for a width x height input (padding and SR output included). */
export function estimateRestoreMs(
  params: RestoreParams,
  width: number,
  height: number,
  multiple = 8,
): number {
  const factor = params.task === 'super-resolution' && !params.simulate ? params.factor : 1;
  const side = (n: number) => Math.ceil((n * factor) / multiple) * multiple;
  return params.steps * side(width) * side(height) * RESTORE_MS_PER_PIXEL_STEP;
}

/** Width and height from the image header (no pixel is decoded); undefined when it is not an image we read. */
export async function imageSize(bytes: Buffer): Promise<{ width: number; height: number } | undefined> {
  try {
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    return meta.width && meta.height ? { width: meta.width, height: meta.height } : undefined;
  } catch {
    return undefined; // the pipeline's decode reports it properly
  }
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
  const toBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
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
    seed: params.seed,
    trace: params.trace,
    // Encoded in the worker too: only the encoded answer comes back.
    encode: format,
  };
  const result = await pool.run('restore.reddiff', input, { ...opts.run });
  const tCompute = performance.now();
  const image = { width: result.width, height: result.height, channels: 1 as const };
  const toBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
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

export function restoreService(fastify: FastifyInstance, cfg: Config) {
  /** The prior this request uses (named, or the default for the image's size), which must be ready and grey. */
  const requirePrior = (params: RestoreParams, size: { width: number; height: number } | undefined) => {
    const name = params.model ?? defaultRestoreModel(size?.width ?? 0, size?.height ?? 0);
    const status = fastify.models.requireReady(name, params.version, {
      task: ROUTE_MODEL_TASKS.restore,
      use: 'restoration (RED-Diff)',
    });
    if (status.manifest && status.manifest.channels !== 1)
      throw fail(
        'UNPROCESSABLE',
        `Model '${status.name}' has ${status.manifest.channels} channels; restore is grey only`,
      );
    return status;
  };
  return {
    requirePrior,
    async restore(
      reply: FastifyReply,
      bytes: Buffer,
      maskBytes: Buffer | undefined,
      params: RestoreParams,
      accept?: string,
    ): Promise<RestoreOutcome> {
      negotiateFormat(accept, params.format);
      // The default model depends on the image's size: read from its header (an undecodable image falls to the
      // pipeline's decode error, whatever model is named here).
      const size = params.model ? undefined : await imageSize(bytes);
      const status = requirePrior(params, size);
      // Deadline and client-disconnect cancellation, as for every request.
      return fastify.compute.withRequest(reply, params.timeoutMs, (run) =>
        restorePipeline(fastify.compute.pool, cfg, bytes, maskBytes, params, {
          model: { name: status.name, version: status.version },
          accept,
          run,
        }),
      );
    },
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
