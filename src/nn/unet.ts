/**
 * The pixel-shuffle U-Net body of the Noise2Score score network and of the MID denoiser, built once.
 *
 * Three levels over an already packed (space-to-depth) input: at its resolution, 1/2 and 1/4 of it. Down: a
 * stride-2 3x3 convolution starts each lower level. Up: a 1x1 convolution to 4x the channels, then a pixel shuffle
 * (depth-to-space by 2); the result meets the encoder's features of that level (concatenated, or summed), and 3x3
 * convolutions follow. Layer names (conv<k> in creation order, pixel_shuffle2 / pixel_shuffle1, skip2 / skip1) are
 * those of the saved models, so a trainer builds exactly the model it built before.
 */
import { type CustomLayerClassName, customLayer } from './layers.js';

type Tf = typeof import('@tensorflow/tfjs');
type SymbolicTensor = import('@tensorflow/tfjs').SymbolicTensor;

export interface ConvOptions {
  kernel?: number;
  stride?: number;
  /** No activation (a head); else ReLU. */
  linear?: boolean;
}

export type Conv = (x: SymbolicTensor, filters: number, options?: ConvOptions) => SymbolicTensor;

/**
 * Convolutions named conv1, conv2, ... in creation order, 'same' padding, ReLU unless linear. He-normal weights,
 * seeded per layer (seed * 1000 + k for conv<k>) when a seed is given; `linearInitializer: 'zeros'` starts the
 * linear ones at zero instead (MID's head, so that the untrained net is its global skip).
 */
export function convFactory(
  tf: Tf,
  options: { seed?: number; linearInitializer?: 'heNormal' | 'zeros' } = {},
): Conv {
  const { seed, linearInitializer = 'heNormal' } = options;
  let index = 0;
  return (x, filters, o = {}) => {
    const k = ++index;
    return tf.layers
      .conv2d({
        filters,
        kernelSize: o.kernel ?? 3,
        strides: o.stride ?? 1,
        padding: 'same',
        activation: o.linear ? 'linear' : 'relu',
        kernelInitializer:
          o.linear && linearInitializer === 'zeros'
            ? 'zeros'
            : seed === undefined
              ? 'heNormal'
              : tf.initializers.heNormal({ seed: seed * 1000 + k }),
        name: `conv${k}`,
      })
      .apply(x) as SymbolicTensor;
  };
}

export interface PixelShuffleUnetOptions {
  /** Channels at the three levels, finest first. */
  widths: [number, number, number];
  /**
   * 3x3 convolutions per stage: [level 1, level 2 (its first is the stride-2 one), bottom (likewise), decoder
   * level 2, decoder level 1]. Default [2, 2, 3, 2, 2].
   */
  convs?: [number, number, number, number, number];
  /** How the decoder meets the encoder's features: 'concat' (default) or 'add'. */
  skip?: 'concat' | 'add';
  /** The family's convolutions (see convFactory). */
  conv: Conv;
  /** The family's depth-to-space class (its saved models name it). */
  depthToSpace: CustomLayerClassName;
}

/** The decoder's features at the input's resolution (`widths[0]` channels), for the family's head. */
export function pixelShuffleUnet(
  tf: Tf,
  packed: SymbolicTensor,
  options: PixelShuffleUnetOptions,
): SymbolicTensor {
  const { conv, depthToSpace } = options;
  const [c1, c2, c3] = options.widths;
  const [n1, n2, n3, m2, m1] = options.convs ?? [2, 2, 3, 2, 2];
  const stack = (x: SymbolicTensor, filters: number, count: number, stride = 1) => {
    let y = conv(x, filters, { stride });
    for (let i = 1; i < count; i++) y = conv(y, filters);
    return y;
  };
  const join = (a: SymbolicTensor, b: SymbolicTensor, name: string) =>
    (options.skip === 'add'
      ? tf.layers.add({ name }).apply([a, b])
      : tf.layers.concatenate({ name }).apply([a, b])) as SymbolicTensor;
  const up = (x: SymbolicTensor, filters: number, name: string) =>
    customLayer(tf, depthToSpace, { blockSize: 2, name }).apply(
      conv(x, 4 * filters, { kernel: 1 }),
    ) as SymbolicTensor;
  const e1 = stack(packed, c1, n1);
  const e2 = stack(e1, c2, n2, 2);
  const bottom = stack(e2, c3, n3, 2);
  const d2 = stack(join(up(bottom, c2, 'pixel_shuffle2'), e2, 'skip2'), c2, m2);
  return stack(join(up(d2, c1, 'pixel_shuffle1'), e1, 'skip1'), c1, m1);
}
