/**
 * The denoise operation (POST /v1/denoise, GraphQL `denoise`, job `denoise`): Noise2Score (Gaussian, Poisson, Gamma
 * noise, level given or estimated) or MID (real camera noise). The main thread screens the image's header (format,
 * size, memory budget: src/imaging/budget.ts); decoding, the network and encoding run in the compute pool
 * (src/operations/denoise/task.ts), so no decoded pixel is ever held on the event loop. A job runs exactly what a
 * request runs. A request whose estimated cost exceeds its deadline becomes a job, as restore does.
 */
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import type { ComputePool, RunOptions } from '../../compute/pool.js';
import type { Config } from '../../config.js';
import { fail } from '../../errors.js';
import { type Admission, decodedBytes, imageBudgetFor } from '../../imaging/budget.js';
import { type FloatImage, negotiateFormat, screenImage } from '../../imaging/codec.js';
import { imagePipelineTimings } from '../../imaging/task-image.js';
import { ROUTE_MODEL_TASKS, requireModelTask } from '../../nn/manifest.js';
import { base64Image, imageHeaderSize, readImageParams, requireImage, toBuffer } from '../image-request.js';
import { asyncRequested, defineOperation, splitAsync } from '../spec.js';
import {
  DEFAULT_MID_MODEL,
  type DenoiseParams,
  denoiseParams,
  libraryLevel,
  noise2scoreModelName,
  resolvedRefine,
  userLevel,
} from './schema.js';

/** The model a request asks for (name by method and noise family unless given). */
export function denoiseModelName(params: DenoiseParams): string {
  // MID serves real camera noise with one colour model; `noise` and `level` do not apply to it.
  if (params.method === 'mid') return params.model ?? DEFAULT_MID_MODEL;
  return params.model ?? noise2scoreModelName(params.noise);
}

/** The manifest task the request's model must have (a blur or a diffusion prior does not denoise). */
export function denoiseModelTask(params: DenoiseParams) {
  return params.method === 'mid'
    ? { task: ROUTE_MODEL_TASKS.mid, use: 'method=mid' }
    : { task: ROUTE_MODEL_TASKS.noise2score, use: 'Noise2Score denoising' };
}

/**
 * Milliseconds per megapixel of one network pass on the wasm backend, from `npx tsx bench/denoise/cost.ts` (one
 * compute worker, the committed models, 2 cores shared with other jobs, load average ~12): Noise2Score
 * (noise2score-gaussian, level auto, ensemble 1) 16.8 s/MP at 512x512 and 34.2 s/MP at 1024x1024; MID (mid-rgb,
 * one mask) 2.9 s/MP at 512x512 and 7.2 s/MP at 1024x1024. A request costs this times its megapixels times its
 * passes (ensemble flips, or masks). Used only to decide when a request becomes a job (a 2048x2048 Noise2Score
 * request, ~84 s, now does; it used to answer 504 after 30 s); a GPU backend is much faster, so on it the estimate
 * errs towards jobs.
 */
export const DENOISE_MS_PER_MEGAPIXEL = { noise2score: 20_000, mid: 5_000 } as const;

/**
 * Milliseconds per megapixel of the Wiener stage after Noise2Score (refine=wiener, Gaussian; src/denoise/wiener.ts):
 * 42 ms of CPU (81 ms wall on the shared machine) at 512x512 (`npm run bench:wiener`, bench/RESULTS.md `wiener`),
 * that is 160-310 ms per megapixel, with room for a loaded machine. Run once per channel, whatever the ensemble.
 */
export const WIENER_MS_PER_MEGAPIXEL = 400;

/** MID's masks when the request names none and the manifest is not known here (the handler's own default). */
const MID_DEFAULT_MASKS = 4;

/** Estimated compute time of a denoise request for a width x height input. */
export function estimateDenoiseMs(params: DenoiseParams, width: number, height: number): number {
  const megapixels = (width * height) / 1e6;
  // Gaussian level=auto with the TV rule reads its level from a first pass, and an image with clipped pixels (not
  // known before decoding) then needs a second one: count both.
  const tvPasses =
    params.noise === 'gaussian' && params.level === 'auto' && params.estimator === 'tv' ? 2 : 1;
  const passes = params.method === 'mid' ? (params.masks ?? MID_DEFAULT_MASKS) : params.ensemble * tvPasses;
  const refineMs = resolvedRefine(params) === 'wiener' ? megapixels * WIENER_MS_PER_MEGAPIXEL : 0;
  return megapixels * passes * DENOISE_MS_PER_MEGAPIXEL[params.method] + refineMs;
}

export const denoiseInput = z.object({
  image: z.instanceof(Uint8Array).describe('The image file bytes'),
  params: denoiseParams.prefault({}),
  accept: z.string().optional(),
});
export type DenoiseInput = z.output<typeof denoiseInput>;

/** What a denoise answers (and a job stores): the encoded image and, apart, the JSON answer's other fields. */
export interface DenoiseResult {
  bytes: Uint8Array;
  contentType: string;
  width: number;
  height: number;
  channels: number;
  noise: string;
  /** Noise2Score's level; null for MID (its model has no noise level). */
  level: number | null;
  levelEstimated: boolean;
  model: string;
  /** MID: the number of masks averaged. */
  masks?: number;
  /** Noise2Score: the number of flips the score was averaged over. */
  ensemble?: number;
  /** Noise2Score: the stage run after Tweedie's formula ('wiener' or 'none'; 'none' for Poisson and Gamma). */
  refine?: string;
  /**
   * Noise2Score: pixel values (over all channels) read 0 or 255, taken as clipped by the upload and treated as
   * censored observations (Gaussian noise; src/denoise/censored.ts). 0 for Poisson and Gamma.
   */
  clippedPixels?: number;
  /** `output=json`: the answer is the JSON. Absent in results stored before: image. */
  output?: 'image' | 'json';
  /** What the caller should know about this answer (a level outside the model's training range). */
  warnings?: string[];
  /** The JSON answer's fields other than the image (kept as bytes). */
  json?: Omit<DenoiseJson, 'image'>;
}

export type DenoiseJson = ReturnType<typeof denoiseJson>;

/** Screen on the main thread, decode/run/encode in the pool (typed tasks `denoise.noise2score`, `denoise.mid`). */
export async function denoisePipeline(
  pool: ComputePool,
  cfg: Config,
  bytes: Uint8Array,
  params: DenoiseParams,
  opts: {
    model: { name: string; version?: string };
    accept?: string;
    run?: RunOptions;
    /** Beyond the image memory budget: refuse at once (requests, default) or wait for room (jobs). */
    admission?: Admission;
  },
): Promise<DenoiseResult> {
  const t0 = performance.now();
  // Negotiate first: a client asking for a format we cannot write learns it before any work is done.
  const { format, contentType } = negotiateFormat(opts.accept, params.format);
  // The header only (no pixel decoded here): refused formats, bombs, and the memory the pixels will take.
  const screened = await screenImage(toBuffer(bytes), cfg.MAX_IMAGE_PIXELS);
  const release = await imageBudgetFor(pool, cfg).reserve(
    decodedBytes(screened.width, screened.height, screened.header.channels ?? 4),
    { admission: opts.admission, signal: opts.run?.signal },
  );
  try {
    const tScreen = performance.now();
    // Decoded, run and encoded in the worker: the encoded bytes go there, the encoded answer comes back.
    const image = { encoded: bytes, maxPixels: cfg.MAX_IMAGE_PIXELS };
    const common = { model: opts.model, image, encode: format };
    const result =
      params.method === 'mid'
        ? {
            method: 'mid' as const,
            ...(await pool.run(
              'denoise.mid',
              { ...common, masks: params.masks, seed: params.seed },
              { ...opts.run },
            )),
          }
        : {
            method: 'noise2score' as const,
            ...(await pool.run(
              'denoise.noise2score',
              {
                ...common,
                noise: params.noise,
                level: libraryLevel(params.noise, params.level),
                estimator: params.estimator,
                ensemble: params.ensemble,
                refine: resolvedRefine(params),
              },
              { ...opts.run },
            )),
          };
    const tCompute = performance.now();
    if (!('bytes' in result)) throw new Error('the denoise task answered pixels, not the encoded image');
    const isMid = result.method === 'mid';
    const out: DenoiseResult = {
      bytes: toBuffer(result.bytes),
      contentType,
      width: result.width,
      height: result.height,
      channels: result.channels as FloatImage['channels'],
      noise: isMid ? 'real-camera' : params.noise,
      level: result.method === 'mid' ? null : userLevel(params.noise, result.level),
      levelEstimated: result.method === 'mid' ? false : result.levelEstimated,
      model: `${result.model.name}@${result.model.version}`,
      ...(result.method === 'mid'
        ? { masks: result.masks }
        : { ensemble: params.ensemble, refine: result.refine, clippedPixels: result.clippedPixels }),
      output: params.output,
      warnings:
        result.method === 'mid'
          ? []
          : levelRangeWarnings(
              params.noise,
              result.level,
              result.levelEstimated,
              result.model,
              result.trainedLevelRange,
            ),
    };
    const timings = imagePipelineTimings(t0, tScreen, tCompute, result.timings, 'network');
    const { image: _image, ...json } = denoiseJson(out, params.method, timings);
    return { ...out, json };
  } finally {
    release();
  }
}

/**
 * A warning when the level used (given or estimated) lies outside the levels the model was trained on (its
 * manifest's levelRange): the service still denoises with it, as Tweedie's formula takes any level, but the score
 * network was not fitted there, so the output may be under- or over-smoothed (bench/RESULTS.md, `gamma-blind`: the
 * Gamma model trained on k 50-150 still gains 5.9 dB at k 25 and 3.7 dB at k 400). None when the manifest has no
 * range.
 */
export function levelRangeWarnings(
  noise: DenoiseParams['noise'],
  level: number,
  estimated: boolean,
  model: { name: string; version: string },
  range: [number, number] | undefined,
): string[] {
  if (!range || (level >= range[0] && level <= range[1])) return [];
  const show = (v: number) => String(+userLevel(noise, v).toPrecision(4));
  return [
    `noise level ${show(level)} (${estimated ? 'estimated' : 'given'}) is outside the levels ` +
      `${model.name}@${model.version} was trained on (${show(range[0])} to ${show(range[1])}): the image was ` +
      'denoised with it, but the output may be under- or over-smoothed',
  ];
}

export function denoiseJson(o: DenoiseResult, method: string, timings: Record<string, number>) {
  return {
    image: Buffer.from(o.bytes).toString('base64'),
    contentType: o.contentType,
    width: o.width,
    height: o.height,
    channels: o.channels,
    method,
    noise: o.noise,
    level: o.level,
    levelEstimated: o.levelEstimated,
    model: o.model,
    ...(o.masks !== undefined && { masks: o.masks }),
    ...(o.ensemble !== undefined && { ensemble: o.ensemble }),
    ...(o.refine !== undefined && { refine: o.refine }),
    ...(o.clippedPixels !== undefined && { clippedPixels: o.clippedPixels }),
    warnings: o.warnings ?? [],
    timings,
  };
}

/** The JSON answer of a result (with the image in base64). */
function answerJson(result: DenoiseResult) {
  return { image: Buffer.from(result.bytes).toString('base64'), ...result.json };
}

export const denoise = defineOperation<DenoiseInput, DenoiseResult>({
  id: 'denoise',
  tag: 'denoise',
  input: denoiseInput,
  check: (ctx, input) => {
    const { params } = input;
    negotiateFormat(input.accept, params.format);
    const name = denoiseModelName(params);
    const { task, use } = denoiseModelTask(params);
    // A request needs the model ready; a job for a model still loading is accepted (its worker checks again).
    const status =
      ctx.mode === 'request'
        ? ctx.models?.requireReady(name, params.version, { task, use })
        : ctx.models?.get(name, params.version);
    if (!status) return undefined;
    requireModelTask(status, task, use);
    const family = status.manifest?.noiseFamily;
    if (family && family !== params.noise && params.method !== 'mid')
      throw fail('UNPROCESSABLE', `Model '${name}' is trained for ${family} noise, not ${params.noise}`, {
        details: { noiseFamily: family },
      });
    // The request runs the version checked here.
    return ctx.mode === 'request' ? { ...input, params: { ...params, version: status.version } } : undefined;
  },
  timeoutMs: (input) => input.params.timeoutMs,
  estimateMs: async (input) => {
    const size = await imageHeaderSize(input.image);
    return size && estimateDenoiseMs(input.params, size.width, size.height);
  },
  run: (rt, input) =>
    denoisePipeline(rt.pool, rt.config, input.image, input.params, {
      model: { name: denoiseModelName(input.params), version: input.params.version },
      accept: input.accept,
      run: rt.run,
      admission: rt.admission,
    }),
  reply: (result, reply: FastifyReply) => {
    // MID has no noise level: no x-noise-level header rather than a meaningless 0.
    if (result.level !== null) {
      reply.header('x-noise-level', String(result.level));
      reply.header('x-noise-level-estimated', String(result.levelEstimated));
    }
    reply.header('x-model', result.model);
    if (result.masks !== undefined) reply.header('x-masks', String(result.masks));
    if (result.ensemble !== undefined) reply.header('x-ensemble', String(result.ensemble));
    if (result.refine !== undefined) reply.header('x-refine', result.refine);
    if (result.clippedPixels !== undefined) reply.header('x-clipped-pixels', String(result.clippedPixels));
    if (result.warnings?.length) reply.header('x-warning', result.warnings.join('; '));
    const total = result.json?.timings.totalMs;
    if (total !== undefined) reply.header('x-timing-total-ms', total.toFixed(1));
    if (result.output === 'json' && result.json) return reply.send(answerJson(result));
    return reply.type(result.contentType).send(Buffer.from(result.bytes));
  },
  http: {
    routes: [
      {
        url: '/v1/denoise',
        summary: 'Denoise an image (Noise2Score: Gaussian, Poisson, Gamma noise; level given or auto)',
        description:
          'Send the image as a raw image/* body (PNG, JPEG, WebP, TIFF) or multipart/form-data with a file field ' +
          '`image`. Answers the denoised image (format from `format` or Accept; PNG by default) with headers ' +
          'x-noise-level, x-noise-level-estimated and x-model; `output=json` answers JSON with the image in base64. ' +
          '`method=mid` removes real camera noise (model mid-rgb, learned without clean/noisy pairs): `masks` random ' +
          "masks are averaged (default: the model's measured default, header x-masks), `seed` fixes them; " +
          '`ensemble` (1, 2, 4, 8) averages the Noise2Score score over that many flips of the image (header ' +
          'x-ensemble): better, at that many times the network time (bench/RESULTS.md); ' +
          'with Gaussian noise, `refine=wiener` (default) filters the input again with Wiener weights taken from ' +
          'the network output (+0.1 to +1.3 dB on held-out photographs, about 40 ms at 512x512), `refine=none` ' +
          'answers the network output ' +
          '(header x-refine, JSON refine); ' +
          'with Gaussian noise, pixels at 0 or 255 are taken as clipped by the 8-bit image and treated as censored ' +
          'observations (their count: header x-clipped-pixels, JSON clippedPixels); ' +
          '`noise`/`level` do not apply to MID, which answers no x-noise-level (level null in JSON). A level (given or ' +
          "estimated) outside the levels the model was trained on (its manifest's levelRange) is still used, and the " +
          'answer says so in header x-warning (JSON: `warnings`). Grey images are ' +
          'replicated to RGB and the output is the mean of the three output channels; an alpha channel is dropped ' +
          '(the answer is opaque). A request whose estimated cost exceeds its deadline (timeoutMs or the default) ' +
          'becomes a job (202, header x-async-reason), up to JOBS_AUTO_MAX_COST_MS (413 above it).',
      },
    ],
    schema: { querystring: denoiseParams },
    imageUpload: {
      files: [{ name: 'image', required: true, description: 'The noisy image (PNG, JPEG, WebP, TIFF)' }],
    },
    read: async (request, cfg) => {
      const { files, params } = await readImageParams(request, ['image'], cfg);
      const { rest, flag } = splitAsync(params);
      return {
        input: { image: requireImage(files), params: rest, accept: request.headers.accept },
        async: asyncRequested(request, flag),
      };
    },
  },
  graphql: {
    field: 'denoise',
    toInput: (args, cfg) => {
      const { image, level, method, noise, async: flag, ...rest } = args;
      const params = Object.fromEntries(
        Object.entries({
          ...rest,
          method: typeof method === 'string' ? method.toLowerCase() : undefined,
          noise: typeof noise === 'string' ? noise.toLowerCase() : undefined,
          level: level ?? 'auto',
          output: 'json',
        }).filter(([, v]) => v !== null && v !== undefined),
      );
      return {
        input: { image: base64Image(image, 'image', cfg), params },
        async: asyncRequested(undefined, flag ?? undefined),
      };
    },
    answer: (result) => ({ ...answerJson(result), jobId: null }),
    accepted: (view) => ({ jobId: view.id }),
  },
});
