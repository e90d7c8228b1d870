/**
 * Loading a diffusion U-Net from a model folder (model.json + weights.bin, as the trainer exports it), with its
 * custom layers registered first. The service's model repository loads the same files once
 * `registerCustomLayers(registerDiffusionLayers)` (src/nn/repository.ts) has been called in the worker.
 */
import { fileSystemIO } from '../nn/fs-io.js';
import { registerDiffusionLayers } from './unet.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;

export async function loadDiffusionModel(tf: Tf, dir: string): Promise<LayersModel> {
  registerDiffusionLayers(tf);
  return tf.loadLayersModel(fileSystemIO(dir));
}

export async function saveDiffusionModel(model: LayersModel, dir: string): Promise<void> {
  await model.save(fileSystemIO(dir));
}
