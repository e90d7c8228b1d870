/**
 * Denoising as the HTTP and GraphQL adapters use it: pick the model, decode the image (main thread, sharp),
 * run the network in the compute pool, encode the answer.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { DenoiseTaskInput } from './compute/handlers/denoise.js';
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
  timings: Record<string, number>;
}

export function denoiseService(fastify: FastifyInstance, cfg: Config) {
  return {
    async denoise(
      reply: FastifyReply,
      bytes: Buffer,
      params: DenoiseParams,
      accept?: string,
    ): Promise<DenoiseOutcome> {
      const t0 = performance.now();
      // Negotiate first: a client asking for a format we cannot write learns it before any work is done.
      const { format, contentType } = negotiateFormat(accept, params.format);
      if (params.method === 'mid') {
        throw fail(
          'MODEL_NOT_FOUND',
          "Method 'mid' needs the model 'mid-rgb', which is not in the repository",
        );
      }
      const name = params.model ?? `noise2score-${params.noise}`;
      const status = fastify.models.requireReady(name, params.version);
      const family = status.manifest?.noiseFamily;
      if (family && family !== params.noise) {
        throw fail('UNPROCESSABLE', `Model '${name}' is trained for ${family} noise, not ${params.noise}`);
      }
      const decoded = await decodeImage(bytes, { maxPixels: cfg.MAX_IMAGE_PIXELS, mode: 'keep' });
      const tDecode = performance.now();
      const input: DenoiseTaskInput = {
        model: { name: status.name, version: status.version },
        image: decoded.image,
        noise: params.noise,
        level: libraryLevel(params.noise, params.level),
        estimator: params.estimator,
      };
      const result = (await fastify.compute.runFor(reply, 'denoise.noise2score', input, {
        timeoutMs: params.timeoutMs,
        transferInput: true,
      })) as {
        data: Float32Array;
        width: number;
        height: number;
        channels: number;
        level: number;
        levelEstimated: boolean;
        timings: Record<string, number>;
      };
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
        noise: params.noise,
        level: userLevel(params.noise, result.level),
        levelEstimated: result.levelEstimated,
        model: `${status.name}@${status.version}`,
        method: params.method,
        timings: {
          decodeMs: tDecode - t0,
          computeMs: tCompute - tDecode,
          encodeMs: performance.now() - tCompute,
          totalMs: performance.now() - t0,
          ...Object.fromEntries(Object.entries(result.timings).map(([k, v]) => [`network.${k}`, v])),
        },
      };
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
    timings: o.timings,
  };
}
