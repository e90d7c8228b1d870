/**
 * The MID denoiser D: a small U-Net that takes a masked colour image and returns the clean colour image.
 *
 * Input: one tensor [n, h, w, 4] (one input, so the model repository's warm-up and `predict` work unchanged):
 *  - channels 0-2, `filled`: the noisy image with its dropped pixels filled by the mean of their kept neighbours
 *    (see mask.ts: fillMasked). Filling instead of zeroing lets the output be `filled + correction`: at the low
 *    noise levels of real cameras (PSNR ~36 dB) D is close to the identity on kept pixels, and a global skip makes
 *    that the starting point instead of something the net must learn.
 *  - channel 3, `mask`: 1 where the pixel was kept, 0 where it was dropped (D must know which pixels to inpaint).
 *
 * Body: space-to-depth by 2 (16 channels at half resolution), a 3-level U-Net (strided-conv down, 1x1 conv +
 * pixel-shuffle up, skip concatenations), a linear 12-channel head and depth-to-space back to 3 channels. Colour is
 * processed jointly, so D can use (and remove) the cross-channel correlation of camera noise.
 * Custom layers are registered with tf.serialization (class names Mid*) by `registerMidLayers(tf)`.
 */

type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type SymbolicTensor = import('@tensorflow/tfjs').SymbolicTensor;
type Layer = import('@tensorflow/tfjs').layers.Layer;

export interface MidArchitecture {
  kind: 'mid-unet';
  widths: [number, number, number];
}

export const DEFAULT_MID_ARCHITECTURE: MidArchitecture = { kind: 'mid-unet', widths: [16, 32, 64] };

/** H and W must be multiples of this (space-to-depth by 2, then two halvings). */
export const MID_MULTIPLE = 8;

interface MidLayerFactories {
  spaceToDepth(name: string): Layer;
  depthToSpace(name: string): Layer;
  takeColour(name: string): Layer;
}
const factories = new WeakMap<object, MidLayerFactories>();

/** Registers the custom layers with this tf instance (idempotent); needed before loading a saved MID model. */
export function registerMidLayers(tf: Tf): void {
  if (factories.has(tf)) return;

  // Reshape + transpose rearrangements: they have gradients on every backend (DepthToSpace has none on wasm).
  class MidSpaceToDepth extends tf.layers.Layer {
    static className = 'MidSpaceToDepth';
    override computeOutputShape(s: (number | null)[]): (number | null)[] {
      return [s[0], s[1] == null ? null : s[1] / 2, s[2] == null ? null : s[2] / 2, (s[3] as number) * 4];
    }
    override call(inputs: Tensor | Tensor[]): Tensor {
      return tf.tidy(() => {
        const x = Array.isArray(inputs) ? inputs[0] : inputs;
        const [n, h, w, c] = x.shape;
        return x
          .reshape([n, h / 2, 2, w / 2, 2, c])
          .transpose([0, 1, 3, 2, 4, 5])
          .reshape([n, h / 2, w / 2, 4 * c]);
      });
    }
  }
  class MidDepthToSpace extends tf.layers.Layer {
    static className = 'MidDepthToSpace';
    override computeOutputShape(s: (number | null)[]): (number | null)[] {
      return [s[0], s[1] == null ? null : s[1] * 2, s[2] == null ? null : s[2] * 2, (s[3] as number) / 4];
    }
    override call(inputs: Tensor | Tensor[]): Tensor {
      return tf.tidy(() => {
        const x = Array.isArray(inputs) ? inputs[0] : inputs;
        const [n, h, w, c] = x.shape;
        return x
          .reshape([n, h, w, 2, 2, c / 4])
          .transpose([0, 1, 3, 2, 4, 5])
          .reshape([n, h * 2, w * 2, c / 4]);
      });
    }
  }
  /** The first three channels (the filled colour image) of the 4-channel input, for the global skip. */
  class MidTakeColour extends tf.layers.Layer {
    static className = 'MidTakeColour';
    override computeOutputShape(s: (number | null)[]): (number | null)[] {
      return [s[0], s[1], s[2], 3];
    }
    override call(inputs: Tensor | Tensor[]): Tensor {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      return tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, 3]);
    }
  }
  tf.serialization.registerClass(MidSpaceToDepth);
  tf.serialization.registerClass(MidDepthToSpace);
  tf.serialization.registerClass(MidTakeColour);
  factories.set(tf, {
    spaceToDepth: (name) => new MidSpaceToDepth({ name }),
    depthToSpace: (name) => new MidDepthToSpace({ name }),
    takeColour: (name) => new MidTakeColour({ name }),
  });
}

/** An untrained MID denoiser; with a seed its initial weights are reproducible. */
export function buildMidNetwork(
  tf: Tf,
  architecture: MidArchitecture = DEFAULT_MID_ARCHITECTURE,
  seed?: number,
): LayersModel {
  registerMidLayers(tf);
  const custom = factories.get(tf)!;
  let index = 0;
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
        kernelInitializer: options.linear
          ? 'zeros' // the untrained net is the fill-in itself (global skip)
          : seed === undefined
            ? 'heNormal'
            : tf.initializers.heNormal({ seed: seed * 1000 + index + 1 }),
        name: `conv${++index}`,
      })
      .apply(x) as SymbolicTensor;

  const input = tf.input({ shape: [null, null, 4], name: 'filled_and_mask' });
  const filled = custom.takeColour('filled').apply(input) as SymbolicTensor;
  const packed = custom.spaceToDepth('space_to_depth').apply(input) as SymbolicTensor;
  const [c1, c2, c3] = architecture.widths;
  const e1 = conv(conv(packed, c1), c1);
  const e2 = conv(conv(e1, c2, { stride: 2 }), c2);
  const bottom = conv(conv(conv(e2, c3, { stride: 2 }), c3), c3);
  const up2 = custom
    .depthToSpace('pixel_shuffle2')
    .apply(conv(bottom, 4 * c2, { kernel: 1 })) as SymbolicTensor;
  const d2 = conv(conv(tf.layers.concatenate({ name: 'skip2' }).apply([up2, e2]) as SymbolicTensor, c2), c2);
  const up1 = custom.depthToSpace('pixel_shuffle1').apply(conv(d2, 4 * c1, { kernel: 1 })) as SymbolicTensor;
  const d1 = conv(conv(tf.layers.concatenate({ name: 'skip1' }).apply([up1, e1]) as SymbolicTensor, c1), c1);
  const packedCorrection = conv(d1, 12, { linear: true });
  const correction = custom.depthToSpace('depth_to_space').apply(packedCorrection) as SymbolicTensor;
  const output = tf.layers.add({ name: 'global_skip' }).apply([filled, correction]) as SymbolicTensor;
  return tf.model({ inputs: input, outputs: output, name: 'mid' });
}
