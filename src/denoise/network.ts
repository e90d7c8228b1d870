/**
 * The Noise2Score score network R: a small fully convolutional net that maps a grey image y (values ~[0,1]) to an
 * estimate of the score grad log p(y) of the noisy-image distribution, pixel for pixel.
 *
 * Speed on a CPU comes from working at reduced resolution (as FFDNet does): the image is first rearranged
 * space-to-depth by 2 (H x W x 1 -> H/2 x W/2 x 4, lossless), processed there, and rearranged back at the end.
 * Two bodies are offered (measured in the manifest written by training):
 *  - 'unet':  a 3-level U-Net at 1/2, 1/4, 1/8 resolution (strided-conv down, 1x1-conv + pixel-shuffle up, skip
 *             concatenations) - large receptive field for few multiply-adds; what the paper used, made cheaper;
 *  - 'plain': a stack of 3x3 convolutions at 1/2 resolution (FFDNet-like).
 * Only standard tf.layers plus three tiny custom layers (src/nn/layers.ts: Noise2ScoreSpaceToDepth,
 * Noise2ScoreDepthToSpace, Noise2ScoreConstantScale), so `model.json` loads through `tf.loadLayersModel(handler)`
 * once `registerNoise2ScoreLayers(tf)` has run; the U-Net body is src/nn/unet.ts's, shared with MID.
 * The model is fully convolutional (input [null, null, null, 1]); callers pad H and W to `networkMultiple(...)`.
 */

import { z } from 'zod';
import { customLayer, registerCustomLayerClasses } from '../nn/layers.js';
import { convFactory, pixelShuffleUnet } from '../nn/unet.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type SymbolicTensor = import('@tensorflow/tfjs').SymbolicTensor;

export type ScoreNetworkArchitecture =
  | {
      kind: 'unet';
      widths: [number, number, number];
      outputScale: number;
      /**
       * How the decoder meets the encoder's features at the same resolution: 'concat' (the default; the first
       * decoder convolution reads both) or 'add' (summed, so that convolution reads half the channels and no
       * concatenation is copied: cheaper on a CPU).
       */
      skip?: 'concat' | 'add';
      /**
       * 3x3 convolutions per stage: [level 1, level 2 (its first is the stride-2 one), bottom (likewise), decoder
       * level 2, decoder level 1]; each at least 1. Default [2, 2, 3, 2, 2].
       */
      convs?: [number, number, number, number, number];
    }
  | { kind: 'plain'; width: number; depth: number; outputScale: number };

/** The default: chosen from measured speed and training cost (see the manifest's `architecture.tradeoff`). */
export const DEFAULT_ARCHITECTURE: ScoreNetworkArchitecture = {
  kind: 'unet',
  widths: [32, 64, 128],
  outputScale: 32,
};

/** H and W must be multiples of this (space-to-depth by 2, then two more halvings for the U-Net). */
export function networkMultiple(architecture: ScoreNetworkArchitecture): number {
  return architecture.kind === 'unet' ? 8 : 2;
}

const positive = z.number().int().positive();
const architectureSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('unet'),
    widths: z.tuple([positive, positive, positive]),
    outputScale: z.number().positive().optional(),
    skip: z.enum(['concat', 'add']).optional(),
    convs: z.tuple([positive, positive, positive, positive, positive]).optional(),
  }),
  z.strictObject({
    kind: z.literal('plain'),
    width: positive,
    depth: z.number().int().min(2),
    outputScale: z.number().positive().optional(),
  }),
]);

/**
 * An architecture from JSON (the trainers' --architecture), checked; `outputScale` defaults to the noise family's.
 * Throws a RangeError that says what is wrong.
 */
export function parseScoreArchitecture(json: string, outputScale: number): ScoreNetworkArchitecture {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw new RangeError(`--architecture is not JSON: ${(error as Error).message}`);
  }
  const parsed = architectureSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RangeError(`--architecture: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return { outputScale, ...parsed.data } as ScoreNetworkArchitecture;
}

/** The U-Net's 3x3 convolutions per stage (see `convs`), checked. */
export function unetConvs(
  architecture: Extract<ScoreNetworkArchitecture, { kind: 'unet' }>,
): [number, number, number, number, number] {
  const convs = architecture.convs ?? [2, 2, 3, 2, 2];
  if (convs.length !== 5 || convs.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new RangeError(`unet convs must be 5 integers >= 1, got ${JSON.stringify(convs)}`);
  }
  return convs;
}

/**
 * Registers the custom layers (src/nn/layers.ts, class names Noise2Score*) with this tf instance's serialization
 * registry (idempotent). Must run before `tf.loadLayersModel` reads a saved score network.
 */
export function registerNoise2ScoreLayers(tf: Tf): void {
  registerCustomLayerClasses(tf);
}

/** Builds an untrained score network; with a seed the initial weights are reproducible (He-normal per layer). */
export function buildScoreNetwork(
  tf: Tf,
  architecture: ScoreNetworkArchitecture = DEFAULT_ARCHITECTURE,
  seed?: number,
): LayersModel {
  registerNoise2ScoreLayers(tf);
  const conv = convFactory(tf, { seed });
  const input = tf.input({ shape: [null, null, 1], name: 'noisy' });
  const packed = customLayer(tf, 'Noise2ScoreSpaceToDepth', { blockSize: 2, name: 'space_to_depth' }).apply(
    input,
  ) as SymbolicTensor;
  let features: SymbolicTensor;
  if (architecture.kind === 'plain') {
    features = conv(packed, architecture.width);
    for (let i = 0; i < architecture.depth - 2; i++) features = conv(features, architecture.width);
  } else {
    features = pixelShuffleUnet(tf, packed, {
      widths: architecture.widths,
      convs: unetConvs(architecture),
      skip: architecture.skip,
      conv,
      depthToSpace: 'Noise2ScoreDepthToSpace',
    });
  }
  const packedScore = conv(features, 4, { linear: true });
  const score = customLayer(tf, 'Noise2ScoreDepthToSpace', { blockSize: 2, name: 'depth_to_space' }).apply(
    packedScore,
  ) as SymbolicTensor;
  const scaled = customLayer(tf, 'Noise2ScoreConstantScale', {
    scale: architecture.outputScale,
    name: 'output_scale',
  }).apply(score) as SymbolicTensor;
  return tf.model({ inputs: input, outputs: scaled, name: 'noise2score' });
}
