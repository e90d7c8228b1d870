import type { ModelManifestInput } from '../../src/nn/manifest.js';

/** A manifest that passes validation; override fields to break it. */
export function validManifest(overrides: Partial<ModelManifestInput> = {}): ModelManifestInput {
  return {
    name: 'tiny',
    version: '1',
    task: 'denoise',
    format: 'layers',
    inputShape: [null, null, null, 1],
    valueRange: [0, 1],
    channels: 1,
    architecture: 'one conv',
    parameters: 25,
    trainingData: 'none',
    trainingSteps: 0,
    trainingCommand: 'npx tsx make.ts',
    createdAt: '2026-11-27T21:00:00.000Z',
    ...overrides,
  };
}
