/**
 * Custom TF.js layers of every model family, registered with the model repository's loader hook so that any
 * model.json in the repository can be loaded by any worker. Each registrar is idempotent.
 */
import { registerNoise2ScoreLayers } from '../../denoise/network.js';
import { registerDiffusionLayers } from '../../diffusion/unet.js';
import { registerMidLayers } from '../../mid/network.js';
import { registerCustomLayers } from '../../nn/repository.js';

registerCustomLayers((tf) => registerNoise2ScoreLayers(tf));
registerCustomLayers((tf) => registerDiffusionLayers(tf));
registerCustomLayers((tf) => registerMidLayers(tf));
