/**
 * Custom TF.js layers of every model family (defined once, src/nn/layers.ts), registered with the model repository's
 * loader hook so that any model.json in the repository can be loaded by any worker. Idempotent.
 */
import { registerCustomLayerClasses } from '../../nn/layers.js';
import { registerCustomLayers } from '../../nn/repository.js';

registerCustomLayers(registerCustomLayerClasses);
