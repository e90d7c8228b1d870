/**
 * The epsilon-prediction U-Net eps_theta(x_t, t) of the diffusion models (DDPM's architecture, shrunk to run on a
 * CPU): a sinusoidal embedding of t fed through a small MLP, residual blocks (GroupNorm, SiLU, 3x3 conv, plus a
 * per-channel bias projected from the time embedding), strided-conv down-sampling, nearest up-sampling + conv,
 * (after a 1x1 channel reduction), skip concatenations, no attention (it buys little at these sizes and costs a lot on one core).
 *
 * The model is a plain tf.LayersModel with two inputs: x [b, h, w, 1] in [-1, 1] and t [b, 1] (the float value of
 * the integer timestep index 0..T-1, see schedule.ts). It is fully convolutional: h and w must be multiples of
 * `unetMultiple(architecture)` = 2^(levels-1). Three custom layers (GroupNorm, the sinusoidal embedding, and the
 * broadcast add of a [b, c] bias to a [b, h, w, c] map) are registered with tf.serialization by
 * `registerDiffusionLayers(tf)`, which both the trainer and every loader must call before `tf.loadLayersModel`.
 */

type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type SymbolicTensor = import('@tensorflow/tfjs').SymbolicTensor;
type Layer = import('@tensorflow/tfjs').layers.Layer;
type LayerVariable = import('@tensorflow/tfjs').LayerVariable;

export interface UnetArchitecture {
  kind: 'unet-eps';
  /** Channels at each resolution level, finest first; one fewer down-sampling than levels. */
  channels: number[];
  /** Residual blocks per level (encoder and decoder each). */
  resBlocks: number;
  /** Width of the time embedding (sinusoid size and MLP width). */
  timeEmbedding: number;
  /** Groups of GroupNorm (reduced to a divisor of the channel count where needed). */
  groups: number;
  /**
   * Rearrange the image space-to-depth by this factor first (1 = off, 2 = H x W x 1 -> H/2 x W/2 x 4, lossless)
   * and back at the end, as FFDNet and our Noise2Score network do: every layer then touches 4x fewer pixels,
   * which on one CPU core is the difference between trainable and not.
   */
  spaceToDepth: number;
  /** GroupNorm before the second conv of each residual block too (DDPM does; costs ~20% of a training step). */
  normTwicePerBlock: boolean;
}

/** Default for 32x32 Fashion-MNIST and grey patches: chosen by measured seconds per training step. */
export const DEFAULT_UNET: UnetArchitecture = {
  kind: 'unet-eps',
  channels: [32, 64, 64],
  resBlocks: 1,
  timeEmbedding: 64,
  groups: 8,
  spaceToDepth: 2,
  normTwicePerBlock: false,
};

/** Height and width must be multiples of this. */
export function unetMultiple(architecture: UnetArchitecture): number {
  return architecture.spaceToDepth * 2 ** (architecture.channels.length - 1);
}

interface DiffusionLayerFactories {
  groupNorm(groups: number, name: string): Layer;
  timeEmbedding(dim: number, name: string): Layer;
  addChannelBias(name: string): Layer;
  spaceToDepth(blockSize: number, name: string): Layer;
  depthToSpace(blockSize: number, name: string): Layer;
}
const factories = new WeakMap<object, DiffusionLayerFactories>();

/** Names under which the custom layers appear in model.json. */
export const DIFFUSION_LAYER_CLASSES = [
  'DiffusionGroupNorm',
  'DiffusionTimeEmbedding',
  'DiffusionAddChannelBias',
  'DiffusionSpaceToDepth',
  'DiffusionDepthToSpace',
];

/**
 * Registers the custom layers with this tf instance's serialisation registry (idempotent). Call before
 * `tf.loadLayersModel` on a diffusion model.
 */
export function registerDiffusionLayers(tf: Tf): void {
  if (factories.has(tf)) return;

  /**
   * GroupNorm (Wu & He, 2018) with a learned per-channel scale and offset. Statistics are per sample, so
   * training and inference behave the same at any batch size (unlike BatchNorm, which also leaks
   * information across the batch and the diffusion timesteps in it).
   */
  class GroupNorm extends tf.layers.Layer {
    static className = 'DiffusionGroupNorm';
    readonly groups: number;
    readonly epsilon: number;
    private gamma!: LayerVariable;
    private beta!: LayerVariable;
    constructor(config: { groups: number; epsilon?: number; name?: string }) {
      super(config);
      this.groups = config.groups;
      this.epsilon = config.epsilon ?? 1e-5;
    }
    override build(inputShape: (number | null)[] | (number | null)[][]): void {
      const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as (number | null)[];
      const channels = shape[shape.length - 1] as number;
      if (channels % this.groups !== 0)
        throw new Error(`GroupNorm: ${channels} channels do not split into ${this.groups} groups`);
      this.gamma = this.addWeight('gamma', [channels], 'float32', tf.initializers.ones());
      this.beta = this.addWeight('beta', [channels], 'float32', tf.initializers.zeros());
      this.built = true;
    }
    override call(inputs: Tensor | Tensor[]): Tensor {
      return tf.tidy(() => {
        const x = Array.isArray(inputs) ? inputs[0] : inputs;
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
  }

  /**
   * Transformer/DDPM sinusoidal embedding of a scalar timestep: [sin(t f_k), cos(t f_k)] with frequencies
   * f_k = maxPeriod^(-k / (dim/2)), k = 0 .. dim/2 - 1. Input [b, 1], output [b, dim]; no weights.
   */
  class TimeEmbedding extends tf.layers.Layer {
    static className = 'DiffusionTimeEmbedding';
    readonly dim: number;
    readonly maxPeriod: number;
    constructor(config: { dim: number; maxPeriod?: number; name?: string }) {
      super(config);
      if (config.dim % 2 !== 0) throw new Error('time embedding size must be even');
      this.dim = config.dim;
      this.maxPeriod = config.maxPeriod ?? 10000;
    }
    override computeOutputShape(inputShape: (number | null)[]): (number | null)[] {
      return [inputShape[0], this.dim];
    }
    override call(inputs: Tensor | Tensor[]): Tensor {
      return tf.tidy(() => {
        const t = (Array.isArray(inputs) ? inputs[0] : inputs).reshape([-1, 1]);
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
  }

  /** [x (b,h,w,c), bias (b,c)] -> x + bias broadcast over h and w: how the time embedding conditions a block. */
  class AddChannelBias extends tf.layers.Layer {
    static className = 'DiffusionAddChannelBias';
    override computeOutputShape(inputShape: (number | null)[][]): (number | null)[] {
      return inputShape[0];
    }
    override call(inputs: Tensor | Tensor[]): Tensor {
      return tf.tidy(() => {
        const [x, bias] = inputs as Tensor[];
        return x.add(bias.reshape([bias.shape[0], 1, 1, bias.shape[1] as number]));
      });
    }
  }

  // Rearrangements via reshape + transpose: both have gradients on every backend (DepthToSpace has none).
  class SpaceToDepth extends tf.layers.Layer {
    static className = 'DiffusionSpaceToDepth';
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
    static className = 'DiffusionDepthToSpace';
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

  tf.serialization.registerClass(SpaceToDepth);
  tf.serialization.registerClass(DepthToSpace);
  tf.serialization.registerClass(GroupNorm);
  tf.serialization.registerClass(TimeEmbedding);
  tf.serialization.registerClass(AddChannelBias);
  factories.set(tf, {
    groupNorm: (groups, name) => new GroupNorm({ groups, name }),
    timeEmbedding: (dim, name) => new TimeEmbedding({ dim, name }),
    addChannelBias: (name) => new AddChannelBias({ name }),
    spaceToDepth: (blockSize, name) => new SpaceToDepth({ blockSize, name }),
    depthToSpace: (blockSize, name) => new DepthToSpace({ blockSize, name }),
  });
}

function groupsFor(channels: number, wanted: number): number {
  let g = Math.min(wanted, channels);
  while (channels % g !== 0) g--;
  return g;
}

/** Builds an untrained eps-prediction U-Net (the final conv starts at zero, so eps_theta starts at 0). */
export function buildUnet(tf: Tf, architecture: UnetArchitecture = DEFAULT_UNET): LayersModel {
  registerDiffusionLayers(tf);
  const custom = factories.get(tf)!;
  const { channels, resBlocks, timeEmbedding, groups, spaceToDepth, normTwicePerBlock } = architecture;
  if (channels.length < 1) throw new Error('need at least one resolution level');
  let counter = 0;
  const id = (kind: string) => `${kind}_${++counter}`;
  const silu = (x: SymbolicTensor) =>
    tf.layers.activation({ activation: 'swish', name: id('silu') }).apply(x) as SymbolicTensor;
  const conv = (x: SymbolicTensor, filters: number, kernel = 3, stride = 1, zero = false) =>
    tf.layers
      .conv2d({
        filters,
        kernelSize: kernel,
        strides: stride,
        padding: 'same',
        kernelInitializer: zero ? 'zeros' : 'glorotUniform',
        name: id('conv'),
      })
      .apply(x) as SymbolicTensor;
  const norm = (x: SymbolicTensor) => {
    const c = x.shape[x.shape.length - 1] as number;
    return custom.groupNorm(groupsFor(c, groups), id('group_norm')).apply(x) as SymbolicTensor;
  };
  const dense = (x: SymbolicTensor, units: number) =>
    tf.layers.dense({ units, name: id('dense') }).apply(x) as SymbolicTensor;

  const x = tf.input({ shape: [null, null, 1], name: 'x' });
  const t = tf.input({ shape: [1], name: 't' });
  const embedding = silu(
    dense(
      silu(
        dense(custom.timeEmbedding(timeEmbedding, 'time_sinusoid').apply(t) as SymbolicTensor, timeEmbedding),
      ),
      timeEmbedding,
    ),
  );

  const resBlock = (input: SymbolicTensor, out: number) => {
    const inChannels = input.shape[input.shape.length - 1] as number;
    let h = conv(silu(norm(input)), out);
    h = custom.addChannelBias(id('time_bias')).apply([h, dense(embedding, out)]) as SymbolicTensor;
    h = conv(silu(normTwicePerBlock ? norm(h) : h), out);
    const skip = inChannels === out ? input : conv(input, out, 1);
    return tf.layers.add({ name: id('residual') }).apply([skip, h]) as SymbolicTensor;
  };

  const packed =
    spaceToDepth > 1 ? (custom.spaceToDepth(spaceToDepth, 'space_to_depth').apply(x) as SymbolicTensor) : x;
  let h = conv(packed, channels[0]);
  const skips: SymbolicTensor[] = [];
  channels.forEach((c, level) => {
    for (let b = 0; b < resBlocks; b++) h = resBlock(h, c);
    if (level < channels.length - 1) {
      skips.push(h);
      h = conv(h, c, 3, 2);
    }
  });
  h = resBlock(h, channels[channels.length - 1]);
  for (let level = channels.length - 2; level >= 0; level--) {
    // Channel reduction BEFORE up-sampling (1x1 at the coarse level): a 3x3 conv after it cost ~20% of a step.
    h = conv(h, channels[level], 1);
    h = tf.layers.upSampling2d({ size: [2, 2], name: id('upsample') }).apply(h) as SymbolicTensor;
    h = tf.layers.concatenate({ name: id('skip') }).apply([h, skips[level]]) as SymbolicTensor;
    for (let b = 0; b < resBlocks; b++) h = resBlock(h, channels[level]);
  }
  const packedEps = conv(silu(norm(h)), spaceToDepth * spaceToDepth, 3, 1, true);
  const eps =
    spaceToDepth > 1
      ? (custom.depthToSpace(spaceToDepth, 'depth_to_space').apply(packedEps) as SymbolicTensor)
      : packedEps;
  return tf.model({ inputs: [x, t], outputs: eps, name: 'ddpm_unet' });
}

/** eps_theta(x, t) for a batch at one timestep (t broadcast over the batch); the caller owns the result. */
export function predictEps(tf: Tf, model: LayersModel, x: Tensor, t: number | Tensor): Tensor {
  return tf.tidy(() => {
    const batch = x.shape[0];
    const times = typeof t === 'number' ? tf.fill([batch, 1], t) : t.reshape([batch, 1]);
    return model.predict([x, times]) as Tensor;
  });
}
