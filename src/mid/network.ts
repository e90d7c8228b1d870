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
 * The U-Net body is src/nn/unet.ts's (shared with Noise2Score); the custom layers are src/nn/layers.ts's (class names
 * Mid*), registered with tf.serialization by `registerMidLayers(tf)`.
 */
import { customLayer, registerCustomLayerClasses } from '../nn/layers.js';
import { convFactory, pixelShuffleUnet } from '../nn/unet.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type SymbolicTensor = import('@tensorflow/tfjs').SymbolicTensor;

export interface MidArchitecture {
  kind: 'mid-unet';
  widths: [number, number, number];
}

export const DEFAULT_MID_ARCHITECTURE: MidArchitecture = { kind: 'mid-unet', widths: [16, 32, 64] };

/** H and W must be multiples of this (space-to-depth by 2, then two halvings). */
export const MID_MULTIPLE = 8;

/** Registers the custom layers (src/nn/layers.ts, class names Mid*) with this tf instance (idempotent). */
export function registerMidLayers(tf: Tf): void {
  registerCustomLayerClasses(tf);
}

/** An untrained MID denoiser; with a seed its initial weights are reproducible. */
export function buildMidNetwork(
  tf: Tf,
  architecture: MidArchitecture = DEFAULT_MID_ARCHITECTURE,
  seed?: number,
): LayersModel {
  registerMidLayers(tf);
  // The linear head starts at zero: the untrained net is the fill-in itself (global skip).
  const conv = convFactory(tf, { seed, linearInitializer: 'zeros' });
  const input = tf.input({ shape: [null, null, 4], name: 'filled_and_mask' });
  const filled = customLayer(tf, 'MidTakeColour', { name: 'filled' }).apply(input) as SymbolicTensor;
  const packed = customLayer(tf, 'MidSpaceToDepth', { name: 'space_to_depth' }).apply(
    input,
  ) as SymbolicTensor;
  const d1 = pixelShuffleUnet(tf, packed, {
    widths: architecture.widths,
    conv,
    depthToSpace: 'MidDepthToSpace',
  });
  const packedCorrection = conv(d1, 12, { linear: true });
  const correction = customLayer(tf, 'MidDepthToSpace', { name: 'depth_to_space' }).apply(
    packedCorrection,
  ) as SymbolicTensor;
  const output = tf.layers.add({ name: 'global_skip' }).apply([filled, correction]) as SymbolicTensor;
  return tf.model({ inputs: input, outputs: output, name: 'mid' });
}
