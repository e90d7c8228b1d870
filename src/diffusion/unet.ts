/**
 * The epsilon-prediction U-Net eps_theta(x_t, t) of the diffusion models (DDPM's architecture, shrunk to run on a
 * CPU): a sinusoidal embedding of t fed through a small MLP, residual blocks (GroupNorm, SiLU, 3x3 conv, plus a
 * per-channel bias projected from the time embedding), strided-conv down-sampling, nearest up-sampling + conv,
 * (after a 1x1 channel reduction), skip concatenations, no attention (it buys little at these sizes and costs a lot on one core).
 *
 * The model is a plain tf.LayersModel with two inputs: x [b, h, w, 1] in [-1, 1] and t [b, 1] (the float value of
 * the integer timestep index 0..T-1, see schedule.ts). It is fully convolutional: h and w must be multiples of
 * `unetMultiple(architecture)` = 2^(levels-1). Its custom layers (GroupNorm, the sinusoidal embedding, the
 * broadcast add of a [b, c] bias to a [b, h, w, c] map and the pixel (un)shuffle) are src/nn/layers.ts's (class names
 * Diffusion*), registered with tf.serialization by `registerDiffusionLayers(tf)`, which the trainer and every loader
 * call before `tf.loadLayersModel`.
 */

import { CUSTOM_LAYER_CLASSES, customLayer, registerCustomLayerClasses } from '../nn/layers.js';

type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type SymbolicTensor = import('@tensorflow/tfjs').SymbolicTensor;

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

/** Names under which the custom layers appear in model.json. */
export const DIFFUSION_LAYER_CLASSES = Object.keys(CUSTOM_LAYER_CLASSES).filter((c) =>
  c.startsWith('Diffusion'),
);

/**
 * Registers the custom layers (src/nn/layers.ts) with this tf instance's serialisation registry (idempotent). Call
 * before `tf.loadLayersModel` on a diffusion model.
 */
export function registerDiffusionLayers(tf: Tf): void {
  registerCustomLayerClasses(tf);
}

function groupsFor(channels: number, wanted: number): number {
  let g = Math.min(wanted, channels);
  while (channels % g !== 0) g--;
  return g;
}

/** Builds an untrained eps-prediction U-Net (the final conv starts at zero, so eps_theta starts at 0). */
export function buildUnet(tf: Tf, architecture: UnetArchitecture = DEFAULT_UNET): LayersModel {
  registerDiffusionLayers(tf);
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
    return customLayer(tf, 'DiffusionGroupNorm', {
      groups: groupsFor(c, groups),
      name: id('group_norm'),
    }).apply(x) as SymbolicTensor;
  };
  const dense = (x: SymbolicTensor, units: number) =>
    tf.layers.dense({ units, name: id('dense') }).apply(x) as SymbolicTensor;

  const x = tf.input({ shape: [null, null, 1], name: 'x' });
  const t = tf.input({ shape: [1], name: 't' });
  const embedding = silu(
    dense(
      silu(
        dense(
          customLayer(tf, 'DiffusionTimeEmbedding', { dim: timeEmbedding, name: 'time_sinusoid' }).apply(
            t,
          ) as SymbolicTensor,
          timeEmbedding,
        ),
      ),
      timeEmbedding,
    ),
  );

  const resBlock = (input: SymbolicTensor, out: number) => {
    const inChannels = input.shape[input.shape.length - 1] as number;
    let h = conv(silu(norm(input)), out);
    h = customLayer(tf, 'DiffusionAddChannelBias', { name: id('time_bias') }).apply([
      h,
      dense(embedding, out),
    ]) as SymbolicTensor;
    h = conv(silu(normTwicePerBlock ? norm(h) : h), out);
    const skip = inChannels === out ? input : conv(input, out, 1);
    return tf.layers.add({ name: id('residual') }).apply([skip, h]) as SymbolicTensor;
  };

  const packed =
    spaceToDepth > 1
      ? (customLayer(tf, 'DiffusionSpaceToDepth', { blockSize: spaceToDepth, name: 'space_to_depth' }).apply(
          x,
        ) as SymbolicTensor)
      : x;
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
      ? (customLayer(tf, 'DiffusionDepthToSpace', { blockSize: spaceToDepth, name: 'depth_to_space' }).apply(
          packedEps,
        ) as SymbolicTensor)
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
