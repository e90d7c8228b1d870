/**
 * Loading a trained Noise2Score score network from a model folder (model.json, weights, manifest.json), with what
 * the denoiser needs to know about it: its noise family and the size multiple its input must have.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileSystemIO } from '../nn/fs-io.js';
import { type ModelManifest, parseModelManifest } from '../nn/manifest.js';
import { registerNoise2ScoreLayers } from './network.js';
import { NOISE_FAMILIES, type NoiseFamily } from './noise.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;

export interface LoadedScoreNetwork {
  model: LayersModel;
  manifest: ModelManifest;
  noise: NoiseFamily;
  /** Height and width are padded to a multiple of this before the network runs. */
  multiple: number;
}

/** Reads and checks the manifest, registers the custom layers, and loads the layers model. */
export async function loadNoise2ScoreModel(tf: Tf, dir: string): Promise<LoadedScoreNetwork> {
  const parsed = parseModelManifest(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')));
  if (!parsed.ok) throw new Error(`${dir}/manifest.json: ${parsed.error}`);
  const manifest = parsed.manifest;
  if (manifest.task !== 'denoise-score')
    throw new Error(`${dir}: task is '${manifest.task}', not 'denoise-score'`);
  const noise = manifest.noiseFamily as NoiseFamily;
  if (!NOISE_FAMILIES.includes(noise))
    throw new Error(`${dir}: unknown noiseFamily '${manifest.noiseFamily}'`);
  const architecture = typeof manifest.architecture === 'object' ? manifest.architecture : {};
  const multiple = typeof architecture.multiple === 'number' ? architecture.multiple : 8;
  registerNoise2ScoreLayers(tf);
  const model = await tf.loadLayersModel(fileSystemIO(dir));
  return { model, manifest, noise, multiple };
}
