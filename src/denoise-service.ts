/**
 * Denoising as the HTTP, GraphQL and jobs adapters use it: decode the image (sharp, in the calling process), run
 * the network in the compute pool, encode the answer. `denoisePipeline` needs only the pool and the config, so a
 * job worker process runs exactly what a synchronous request runs; `denoiseService` adds the model registry's
 * readiness check and the request's deadline/cancellation.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { DenoiseTaskInput } from './compute/handlers/denoise.js';
import type { ComputePool, RunOptions } from './compute/pool.js';
import type { Config } from './config.js';
import { fail } from './errors.js';
import { decodeImage, encodeImage, type FloatImage, negotiateFormat } from './imaging/codec.js';
import { type DenoiseParams, libraryLevel, userLevel } from './schemas/denoise.js';

export interface DenoiseOutcome {
  image: FloatImage;
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
  data: Float32Array;
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
  if (params.method === 'mid') return params.model ?? 'mid-rgb';
  return params.model ?? `noise2score-${params.noise}`;
}

export async function denoisePipeline(
  pool: ComputePool,
  cfg: Config,
  bytes: Uint8Array,
  params: DenoiseParams,
  opts: { model: { name: string; version?: string }; accept?: string; run?: RunOptions },
): Promise<DenoiseOutcome> {
  const t0 = performance.now();
  // Negotiate first: a client asking for a format we cannot write learns it before any work is done.
  const { format, contentType } = negotiateFormat(opts.accept, params.format);
  const decoded = await decodeImage(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), {
    maxPixels: cfg.MAX_IMAGE_PIXELS,
    mode: 'keep',
  });
  const tDecode = performance.now();
  const input: DenoiseTaskInput = {
    model: opts.model,
    image: decoded.image,
    noise: params.noise,
    level: libraryLevel(params.noise, params.level),
    estimator: params.estimator,
    ensemble: params.ensemble,
  };
  const isMid = params.method === 'mid';
  const result = (
    isMid
      ? {
          level: 0,
          levelEstimated: false,
          ...((await pool.run(
            'denoise.mid',
            { model: opts.model, image: decoded.image, masks: params.masks, seed: params.seed },
            { ...opts.run, transferInput: true },
          )) as object),
        }
      : await pool.run('denoise.noise2score', input, { ...opts.run, transferInput: true })
  ) as NetworkResult & { model: { name: string; version: string }; masks?: number };
  const tCompute = performance.now();
  const image: FloatImage = {
    data: result.data,
    width: result.width,
    height: result.height,
    channels: result.channels as FloatImage['channels'],
  };
  const out = await encodeImage(image, format);
  return {
    image,
    bytes: out,
    contentType,
    format,
    noise: isMid ? 'real-camera' : params.noise,
    level: isMid ? 0 : userLevel(params.noise, result.level),
    levelEstimated: result.levelEstimated,
    model: `${result.model.name}@${result.model.version}`,
    method: params.method,
    ...(isMid ? { masks: result.masks } : { ensemble: params.ensemble }),
    timings: {
      decodeMs: tDecode - t0,
      computeMs: tCompute - tDecode,
      encodeMs: performance.now() - tCompute,
      totalMs: performance.now() - t0,
      ...Object.fromEntries(Object.entries(result.timings).map(([k, v]) => [`network.${k}`, v])),
    },
  };
}

export function denoiseService(fastify: FastifyInstance, cfg: Config) {
  return {
    async denoise(
      reply: FastifyReply,
      bytes: Buffer,
      params: DenoiseParams,
      accept?: string,
    ): Promise<DenoiseOutcome> {
      negotiateFormat(accept, params.format);
      const name = denoiseModelName(params);
      const status = fastify.models.requireReady(name, params.version);
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
