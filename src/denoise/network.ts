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
 * Only standard tf.layers plus three tiny custom layers registered with tf.serialization.registerClass, so
 * `model.json` loads through `tf.loadLayersModel(handler)` once `registerNoise2ScoreLayers(tf)` has run.
 * The model is fully convolutional (input [null, null, null, 1]); callers pad H and W to `networkMultiple(...)`.
 */

import { z } from 'zod';

type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
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

const registered = new WeakSet<object>();

/**
 * Registers the custom layers with this tf instance's serialization registry (idempotent). Must run before
 * `tf.loadLayersModel` reads a saved score network.
 */
export function registerNoise2ScoreLayers(tf: Tf): void {
  if (registered.has(tf)) return;
  registered.add(tf);

  // Rearrangements via reshape + transpose: both have gradients on every backend (DepthToSpace has none).
  class SpaceToDepth extends tf.layers.Layer {
    static className = 'Noise2ScoreSpaceToDepth';
    readonly blockSize: number;
    constructor(config: { blockSize: number; name?: string }) {
      super(config);
      this.blockSize = config.blockSize;
    }
    override computeOutputShape(inputShape: (number | null)[]): (number | null)[] {
      const [n, h, w, c] = inputShape;
      const b = this.blockSize;
      return [n, h == null ? null : h / b, w == null ? null : w / b, (c as number) * b * b];
    }
    override call(inputs: Tensor | Tensor[]): Tensor {
      return tf.tidy(() => {
        const x = Array.isArray(inputs) ? inputs[0] : inputs;
        const [n, h, w, c] = x.shape;
        const b = this.blockSize;
        return x
          .reshape([n, h / b, b, w / b, b, c])
          .transpose([0, 1, 3, 2, 4, 5])
          .reshape([n, h / b, w / b, b * b * c]);
      });
    }
    override getConfig() {
      return { ...super.getConfig(), blockSize: this.blockSize };
    }
  }

  class DepthToSpace extends tf.layers.Layer {
    static className = 'Noise2ScoreDepthToSpace';
    readonly blockSize: number;
    constructor(config: { blockSize: number; name?: string }) {
      super(config);
      this.blockSize = config.blockSize;
    }
    override computeOutputShape(inputShape: (number | null)[]): (number | null)[] {
      const [n, h, w, c] = inputShape;
      const b = this.blockSize;
      return [n, h == null ? null : h * b, w == null ? null : w * b, (c as number) / (b * b)];
    }
    override call(inputs: Tensor | Tensor[]): Tensor {
      return tf.tidy(() => {
        const x = Array.isArray(inputs) ? inputs[0] : inputs;
        const [n, h, w, c] = x.shape;
        const b = this.blockSize;
        const depth = c / (b * b);
        return x
          .reshape([n, h, w, b, b, depth])
          .transpose([0, 1, 3, 2, 4, 5])
          .reshape([n, h * b, w * b, depth]);
      });
    }
    override getConfig() {
      return { ...super.getConfig(), blockSize: this.blockSize };
    }
  }

  /** A fixed output gain, so the last conv starts at the score's natural magnitude (~1/sigma) instead of ~1. */
  class ConstantScale extends tf.layers.Layer {
    static className = 'Noise2ScoreConstantScale';
    readonly scale: number;
    constructor(config: { scale: number; name?: string }) {
      super(config);
      this.scale = config.scale;
    }
    override call(inputs: Tensor | Tensor[]): Tensor {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      return tf.mul(x, this.scale);
    }
    override getConfig() {
      return { ...super.getConfig(), scale: this.scale };
    }
  }

  tf.serialization.registerClass(SpaceToDepth);
  tf.serialization.registerClass(DepthToSpace);
  tf.serialization.registerClass(ConstantScale);
  layerFactories.set(tf, {
    spaceToDepth: (blockSize, name) => new SpaceToDepth({ blockSize, name }),
    depthToSpace: (blockSize, name) => new DepthToSpace({ blockSize, name }),
    constantScale: (scale, name) => new ConstantScale({ scale, name }),
  });
}

interface LayerFactories {
  spaceToDepth(blockSize: number, name: string): import('@tensorflow/tfjs').layers.Layer;
  depthToSpace(blockSize: number, name: string): import('@tensorflow/tfjs').layers.Layer;
  constantScale(scale: number, name: string): import('@tensorflow/tfjs').layers.Layer;
}
const layerFactories = new WeakMap<object, LayerFactories>();

/** Builds an untrained score network; with a seed the initial weights are reproducible (He-normal per layer). */
export function buildScoreNetwork(
  tf: Tf,
  architecture: ScoreNetworkArchitecture = DEFAULT_ARCHITECTURE,
  seed?: number,
): LayersModel {
  registerNoise2ScoreLayers(tf);
  const custom = layerFactories.get(tf)!;
  let convIndex = 0;
  const conv = (
    x: SymbolicTensor,
    filters: number,
    options: { kernel?: number; stride?: number; linear?: boolean } = {},
  ) =>
    tf.layers
      .conv2d({
        filters,
        kernelSize: options.kernel ?? 3,
        strides: options.stride ?? 1,
        padding: 'same',
        activation: options.linear ? 'linear' : 'relu',
        kernelInitializer:
          seed === undefined ? 'heNormal' : tf.initializers.heNormal({ seed: seed * 1000 + convIndex + 1 }),
        name: `conv${++convIndex}`,
      })
      .apply(x) as SymbolicTensor;

  const input = tf.input({ shape: [null, null, 1], name: 'noisy' });
  const packed = custom.spaceToDepth(2, 'space_to_depth').apply(input) as SymbolicTensor;
  let features: SymbolicTensor;
  if (architecture.kind === 'plain') {
    features = conv(packed, architecture.width);
    for (let i = 0; i < architecture.depth - 2; i++) features = conv(features, architecture.width);
  } else {
    const [c1, c2, c3] = architecture.widths;
    const [n1, n2, n3, m2, m1] = unetConvs(architecture);
    const stack = (x: SymbolicTensor, filters: number, count: number, stride = 1) => {
      let y = conv(x, filters, { stride });
      for (let i = 1; i < count; i++) y = conv(y, filters);
      return y;
    };
    const join = (a: SymbolicTensor, b: SymbolicTensor, name: string) =>
      (architecture.skip === 'add'
        ? tf.layers.add({ name }).apply([a, b])
        : tf.layers.concatenate({ name }).apply([a, b])) as SymbolicTensor;
    const e1 = stack(packed, c1, n1);
    const e2 = stack(e1, c2, n2, 2);
    const bottom = stack(e2, c3, n3, 2);
    const up2 = custom
      .depthToSpace(2, 'pixel_shuffle2')
      .apply(conv(bottom, 4 * c2, { kernel: 1 })) as SymbolicTensor;
    const d2 = stack(join(up2, e2, 'skip2'), c2, m2);
    const up1 = custom
      .depthToSpace(2, 'pixel_shuffle1')
      .apply(conv(d2, 4 * c1, { kernel: 1 })) as SymbolicTensor;
    features = stack(join(up1, e1, 'skip1'), c1, m1);
  }
  const packedScore = conv(features, 4, { linear: true });
  const score = custom.depthToSpace(2, 'depth_to_space').apply(packedScore) as SymbolicTensor;
  const scaled = custom
    .constantScale(architecture.outputScale, 'output_scale')
    .apply(score) as SymbolicTensor;
  return tf.model({ inputs: input, outputs: scaled, name: 'noise2score' });
}
