/**
 * Denoising as the HTTP, GraphQL and jobs adapters use it: screen the image's header on the main thread (format,
 * size, memory budget: src/imaging/budget.ts), then decode, run the network and encode the answer in the compute
 * pool, so no decoded pixel is ever held or converted on the event loop. `denoisePipeline` needs only the pool and
 * the config, so a job worker process runs exactly what a synchronous request runs; `denoiseService` adds the model
 * registry's readiness check and the request's deadline/cancellation.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { DenoiseTaskInput } from './compute/handlers/denoise.js';
import { imagePipelineTimings } from './compute/handlers/image-input.js';
import type { ComputePool, RunOptions } from './compute/pool.js';
import type { Config } from './config.js';
import { fail } from './errors.js';
import { type Admission, decodedBytes, imageBudgetFor } from './imaging/budget.js';
import { type FloatImage, negotiateFormat, screenImage } from './imaging/codec.js';
import { ROUTE_MODEL_TASKS, requireModelTask } from './nn/manifest.js';
import {
  DEFAULT_MID_MODEL,
  type DenoiseParams,
  libraryLevel,
  noise2scoreModelName,
  userLevel,
} from './schemas/denoise.js';

export interface DenoiseOutcome {
  /** The output's shape (its pixels stay in the worker that encoded them). */
  image: Omit<FloatImage, 'data'>;
  bytes: Buffer;
  contentType: string;
  format: string;
  noise: string;
  level: number;
  levelEstimated: boolean;
  model: string;
  method: string;
  /** MID: the number of masks averaged. */
  masks?: number;
  /** Noise2Score: the number of flips the score was averaged over. */
  ensemble?: number;
  timings: Record<string, number>;
}

interface NetworkResult {
  /** The output encoded by the worker. */
  bytes: Uint8Array;
  width: number;
  height: number;
  channels: number;
  level: number;
  levelEstimated: boolean;
  timings: Record<string, number>;
}

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
): Promise<DenoiseOutcome> {
  const t0 = performance.now();
  // Negotiate first: a client asking for a format we cannot write learns it before any work is done.
  const { format, contentType } = negotiateFormat(opts.accept, params.format);
  // The header only (no pixel decoded here): refused formats, bombs, and the memory the pixels will take.
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const screened = await screenImage(buffer, cfg.MAX_IMAGE_PIXELS);
  const release = await imageBudgetFor(pool, cfg).reserve(
    decodedBytes(screened.width, screened.height, screened.header.channels ?? 4),
    { admission: opts.admission, signal: opts.run?.signal },
  );
  try {
    const tScreen = performance.now();
    // Decoded, run and encoded in the worker: the encoded bytes go there, the encoded answer comes back.
    const image = { encoded: bytes, maxPixels: cfg.MAX_IMAGE_PIXELS };
    const isMid = params.method === 'mid';
    const result = (
      isMid
        ? {
            level: 0,
            levelEstimated: false,
            ...((await pool.run(
              'denoise.mid',
              { model: opts.model, image, encode: format, masks: params.masks, seed: params.seed },
              { ...opts.run },
            )) as object),
          }
        : await pool.run(
            'denoise.noise2score',
            {
              model: opts.model,
              image,
              encode: format,
              noise: params.noise,
              level: libraryLevel(params.noise, params.level),
              estimator: params.estimator,
              ensemble: params.ensemble,
            } satisfies DenoiseTaskInput,
            { ...opts.run },
          )
    ) as NetworkResult & { model: { name: string; version: string }; masks?: number };
    const tCompute = performance.now();
    return {
      image: {
        width: result.width,
        height: result.height,
        channels: result.channels as FloatImage['channels'],
      },
      bytes: Buffer.from(result.bytes.buffer, result.bytes.byteOffset, result.bytes.byteLength),
      contentType,
      format,
      noise: isMid ? 'real-camera' : params.noise,
      level: isMid ? 0 : userLevel(params.noise, result.level),
      levelEstimated: result.levelEstimated,
      model: `${result.model.name}@${result.model.version}`,
      method: params.method,
      ...(isMid ? { masks: result.masks } : { ensemble: params.ensemble }),
      timings: imagePipelineTimings(t0, tScreen, tCompute, result.timings, 'network'),
    };
  } finally {
    release();
  }
}

export function denoiseService(fastify: FastifyInstance, cfg: Config) {
  return {
    /**
     * Before a job is queued: a model the registry knows must be of the right kind (a job for a model still
     * loading is accepted; its worker checks the kind again).
     */
    checkModel(params: DenoiseParams): void {
      const status = fastify.models.get(denoiseModelName(params), params.version);
      const { task, use } = denoiseModelTask(params);
      if (status) requireModelTask(status, task, use);
    },
    async denoise(
      reply: FastifyReply,
      bytes: Buffer,
      params: DenoiseParams,
      accept?: string,
    ): Promise<DenoiseOutcome> {
      negotiateFormat(accept, params.format);
      const name = denoiseModelName(params);
      const status = fastify.models.requireReady(name, params.version, denoiseModelTask(params));
      const family = status.manifest?.noiseFamily;
      if (family && family !== params.noise && params.method !== 'mid') {
        throw fail('UNPROCESSABLE', `Model '${name}' is trained for ${family} noise, not ${params.noise}`);
      }
      // Deadline and client-disconnect cancellation, as for every request.
      return fastify.compute.withRequest(reply, params.timeoutMs, (run) =>
        denoisePipeline(fastify.compute.pool, cfg, bytes, params, {
          model: { name: status.name, version: status.version },
          accept,
          run,
        }),
      );
    },
  };
}

export function denoiseJson(o: DenoiseOutcome) {
  return {
    image: o.bytes.toString('base64'),
    contentType: o.contentType,
    width: o.image.width,
    height: o.image.height,
    channels: o.image.channels,
    method: o.method,
    noise: o.noise,
    level: o.level,
    levelEstimated: o.levelEstimated,
    model: o.model,
    ...(o.masks !== undefined && { masks: o.masks }),
    ...(o.ensemble !== undefined && { ensemble: o.ensemble }),
    timings: o.timings,
  };
}
