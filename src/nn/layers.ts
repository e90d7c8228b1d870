/**
 * The custom TF.js layers of every model family, defined once.
 *
 * A saved model.json names each custom layer by its class name, and the families named theirs apart
 * (Noise2ScoreSpaceToDepth, DiffusionSpaceToDepth, MidSpaceToDepth are the same rearrangement). Those names are
 * kept: CUSTOM_LAYER_CLASSES binds each to one implementation, and `layerClass` (the one factory) makes a class of
 * that name for it, so every model under models/ loads and computes as before (test/nn/custom-layers.test.ts
 * compares their outputs with those of the code before the move).
 *
 * - spaceToDepth / depthToSpace (pixel unshuffle / shuffle by `blockSize`): reshape + transpose, which have
 *   gradients on every backend (tf.depthToSpace has none on wasm). MID's classes predate the option: block 2, not
 *   written to their config.
 * - constantScale: a fixed output gain (Noise2Score: the score's natural magnitude ~1/sigma).
 * - takeChannels: the first channels of the input (MID: the filled colour image, for its global skip).
 * - groupNorm (Wu & He, 2018), timeEmbedding (sinusoidal, DDPM) and addChannelBias (a [b, c] bias broadcast over
 *   a [b, h, w, c] map): the diffusion U-Net's.
 *
 * `registerCustomLayerClasses(tf)` registers them all with tf.serialization (idempotent); the model repository's
 * loader calls it before every load.
 */

type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type Layer = import('@tensorflow/tfjs').layers.Layer;
type LayerVariable = import('@tensorflow/tfjs').LayerVariable;
type Shape = (number | null)[];

export type CustomLayerKind =
  | 'spaceToDepth'
  | 'depthToSpace'
  | 'constantScale'
  | 'takeChannels'
  | 'groupNorm'
  | 'timeEmbedding'
  | 'addChannelBias';

interface ClassSpec {
  kind: CustomLayerKind;
  /** spaceToDepth / depthToSpace: a block size fixed by the class (and absent from its config). */
  fixedBlockSize?: number;
  /** takeChannels: how many. */
  channels?: number;
}

/** Every custom class name of the saved models, and what it is. */
export const CUSTOM_LAYER_CLASSES = {
  Noise2ScoreSpaceToDepth: { kind: 'spaceToDepth' },
  Noise2ScoreDepthToSpace: { kind: 'depthToSpace' },
  Noise2ScoreConstantScale: { kind: 'constantScale' },
  DiffusionSpaceToDepth: { kind: 'spaceToDepth' },
  DiffusionDepthToSpace: { kind: 'depthToSpace' },
  DiffusionGroupNorm: { kind: 'groupNorm' },
  DiffusionTimeEmbedding: { kind: 'timeEmbedding' },
  DiffusionAddChannelBias: { kind: 'addChannelBias' },
  MidSpaceToDepth: { kind: 'spaceToDepth', fixedBlockSize: 2 },
  MidDepthToSpace: { kind: 'depthToSpace', fixedBlockSize: 2 },
  MidTakeColour: { kind: 'takeChannels', channels: 3 },
} as const satisfies Record<string, ClassSpec>;

export type CustomLayerClassName = keyof typeof CUSTOM_LAYER_CLASSES;

/** The options of a custom layer (what its constructor and its config hold). */
export interface CustomLayerConfig {
  name?: string;
  /** spaceToDepth / depthToSpace, unless the class fixes it. */
  blockSize?: number;
  /** constantScale. */
  scale?: number;
  /** groupNorm. */
  groups?: number;
  epsilon?: number;
  /** timeEmbedding. */
  dim?: number;
  maxPeriod?: number;
}

const first = (inputs: Tensor | Tensor[]) => (Array.isArray(inputs) ? inputs[0] : inputs);

/** The one factory: a tf.layers.Layer subclass named `className`, implementing its kind. */
function layerClass(tf: Tf, className: string, spec: ClassSpec) {
  switch (spec.kind) {
    case 'spaceToDepth':
    case 'depthToSpace': {
      const down = spec.kind === 'spaceToDepth';
      const fixed = spec.fixedBlockSize;
      return class PixelShuffle extends tf.layers.Layer {
        static className = className;
        readonly blockSize: number;
        constructor(config: CustomLayerConfig) {
          super(config);
          this.blockSize = fixed ?? (config.blockSize as number);
        }
        override computeOutputShape(inputShape: Shape): Shape {
          const [n, h, w, c] = inputShape;
          const b = this.blockSize;
          return down
            ? [n, h == null ? null : h / b, w == null ? null : w / b, (c as number) * b * b]
            : [n, h == null ? null : h * b, w == null ? null : w * b, (c as number) / (b * b)];
        }
        override call(inputs: Tensor | Tensor[]): Tensor {
          return tf.tidy(() => {
            const x = first(inputs);
            const [n, h, w, c] = x.shape;
            const b = this.blockSize;
            if (down) {
              return x
                .reshape([n, h / b, b, w / b, b, c])
                .transpose([0, 1, 3, 2, 4, 5])
                .reshape([n, h / b, w / b, b * b * c]);
            }
            const depth = c / (b * b);
            return x
              .reshape([n, h, w, b, b, depth])
              .transpose([0, 1, 3, 2, 4, 5])
              .reshape([n, h * b, w * b, depth]);
          });
        }
        override getConfig() {
          return fixed === undefined
            ? { ...super.getConfig(), blockSize: this.blockSize }
            : super.getConfig();
        }
      };
    }
    case 'constantScale':
      return class ConstantScale extends tf.layers.Layer {
        static className = className;
        readonly scale: number;
        constructor(config: CustomLayerConfig) {
          super(config);
          this.scale = config.scale as number;
        }
        override call(inputs: Tensor | Tensor[]): Tensor {
          return tf.mul(first(inputs), this.scale);
        }
        override getConfig() {
          return { ...super.getConfig(), scale: this.scale };
        }
      };
    case 'takeChannels': {
      const channels = spec.channels as number;
      return class TakeChannels extends tf.layers.Layer {
        static className = className;
        override computeOutputShape(s: Shape): Shape {
          return [s[0], s[1], s[2], channels];
        }
        override call(inputs: Tensor | Tensor[]): Tensor {
          return tf.slice(first(inputs), [0, 0, 0, 0], [-1, -1, -1, channels]);
        }
      };
    }
    case 'groupNorm':
      /**
       * A learned per-channel scale and offset; statistics per sample, so training and inference behave the same
       * at any batch size (unlike BatchNorm, which also leaks information across the batch and its timesteps).
       */
      return class GroupNorm extends tf.layers.Layer {
        static className = className;
        readonly groups: number;
        readonly epsilon: number;
        private gamma!: LayerVariable;
        private beta!: LayerVariable;
        constructor(config: CustomLayerConfig) {
          super(config);
          this.groups = config.groups as number;
          this.epsilon = config.epsilon ?? 1e-5;
        }
        override build(inputShape: Shape | Shape[]): void {
          const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
          const channels = shape[shape.length - 1] as number;
          if (channels % this.groups !== 0)
            throw new Error(`GroupNorm: ${channels} channels do not split into ${this.groups} groups`);
          this.gamma = this.addWeight('gamma', [channels], 'float32', tf.initializers.ones());
          this.beta = this.addWeight('beta', [channels], 'float32', tf.initializers.zeros());
          this.built = true;
        }
        override call(inputs: Tensor | Tensor[]): Tensor {
          return tf.tidy(() => {
            const x = first(inputs);
            const [n, h, w, c] = x.shape;
            const grouped = x.reshape([n, h * w, this.groups, c / this.groups]);
            const { mean, variance } = tf.moments(grouped, [1, 3], true);
            const normalised = grouped
              .sub(mean)
              .mul(tf.rsqrt(variance.add(this.epsilon)))
              .reshape([n, h, w, c]);
            return normalised.mul(this.gamma.read()).add(this.beta.read());
          });
        }
        override getConfig() {
          return { ...super.getConfig(), groups: this.groups, epsilon: this.epsilon };
        }
      };
    case 'timeEmbedding':
      /**
       * [sin(t f_k), cos(t f_k)] with f_k = maxPeriod^(-k / (dim/2)), k = 0 .. dim/2 - 1. Input [b, 1], output
       * [b, dim]; no weights.
       */
      return class TimeEmbedding extends tf.layers.Layer {
        static className = className;
        readonly dim: number;
        readonly maxPeriod: number;
        constructor(config: CustomLayerConfig) {
          super(config);
          if ((config.dim as number) % 2 !== 0) throw new Error('time embedding size must be even');
          this.dim = config.dim as number;
          this.maxPeriod = config.maxPeriod ?? 10000;
        }
        override computeOutputShape(inputShape: Shape): Shape {
          return [inputShape[0], this.dim];
        }
        override call(inputs: Tensor | Tensor[]): Tensor {
          return tf.tidy(() => {
            const t = first(inputs).reshape([-1, 1]);
            const half = this.dim / 2;
            const frequencies = new Float32Array(half);
            for (let k = 0; k < half; k++) frequencies[k] = Math.exp((-Math.log(this.maxPeriod) * k) / half);
            const angles = t.mul(tf.tensor2d(frequencies, [1, half]));
            return tf.concat([tf.sin(angles), tf.cos(angles)], 1);
          });
        }
        override getConfig() {
          return { ...super.getConfig(), dim: this.dim, maxPeriod: this.maxPeriod };
        }
      };
    case 'addChannelBias':
      return class AddChannelBias extends tf.layers.Layer {
        static className = className;
        override computeOutputShape(inputShape: Shape[]): Shape {
          return inputShape[0];
        }
        override call(inputs: Tensor | Tensor[]): Tensor {
          return tf.tidy(() => {
            const [x, bias] = inputs as Tensor[];
            return x.add(bias.reshape([bias.shape[0], 1, 1, bias.shape[1] as number]));
          });
        }
      };
  }
}

type LayerConstructor = new (config: CustomLayerConfig) => Layer;
const registries = new WeakMap<object, Map<string, LayerConstructor>>();

/**
 * Registers every custom layer class with this tf instance's serialization registry (idempotent). Must run before
 * `tf.loadLayersModel` reads a model that has one; the model repository's loader does.
 */
export function registerCustomLayerClasses(tf: Tf): void {
  if (registries.has(tf)) return;
  const classes = new Map<string, LayerConstructor>();
  for (const [className, spec] of Object.entries(CUSTOM_LAYER_CLASSES)) {
    const cls = layerClass(tf, className, spec);
    tf.serialization.registerClass(cls);
    classes.set(className, cls as unknown as LayerConstructor);
  }
  registries.set(tf, classes);
}

/** A new custom layer of class `className` (registering the classes first). */
export function customLayer(tf: Tf, className: CustomLayerClassName, config: CustomLayerConfig): Layer {
  registerCustomLayerClasses(tf);
  const cls = registries.get(tf)?.get(className);
  if (!cls) throw new Error(`unknown custom layer class ${className}`);
  return new cls(config);
}
