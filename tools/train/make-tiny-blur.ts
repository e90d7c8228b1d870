/**
 * Builds the tiny reference model `models/gaussian-blur/1/`: one 5x5 Conv2D, 1 -> 1 channel, 'same' (zero) padding,
 * no bias, whose weights are a Gaussian of sigma 1 normalised to sum 1. Nothing is trained; it exists so the model
 * repository, the loaders and the warm-up path always have a real, required model to exercise.
 *
 * Run: npx tsx tools/train/make-tiny-blur.ts [--models-dir models]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { initTfjs } from '../../src/nn/backend.js';
import { fileSystemIO } from '../../src/nn/fs-io.js';
import type { ModelManifestInput } from '../../src/nn/manifest.js';
import { MANIFEST_FILE } from '../../src/nn/repository.js';

export const BLUR_SIZE = 5;
export const BLUR_SIGMA = 1;

/** Row-major KxK Gaussian of the given sigma, normalised to sum 1 (computed in double precision). */
export function gaussianKernel(size = BLUR_SIZE, sigma = BLUR_SIGMA): Float64Array {
  const kernel = new Float64Array(size * size);
  const centre = (size - 1) / 2;
  let total = 0;
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) {
      const value = Math.exp(-((r - centre) ** 2 + (c - centre) ** 2) / (2 * sigma * sigma));
      kernel[r * size + c] = value;
      total += value;
    }
  }
  for (let i = 0; i < kernel.length; i++) kernel[i] /= total;
  return kernel;
}

async function main(): Promise<void> {
  const argIndex = process.argv.indexOf('--models-dir');
  const modelsDir = argIndex > 0 ? process.argv[argIndex + 1] : 'models';
  const out = path.join(modelsDir, 'gaussian-blur', '1');
  const { tf } = await initTfjs('cpu');

  const model = tf.sequential({ name: 'gaussian_blur' });
  model.add(
    tf.layers.conv2d({
      inputShape: [null, null, 1],
      filters: 1,
      kernelSize: BLUR_SIZE,
      padding: 'same',
      useBias: false,
      name: 'blur',
    }),
  );
  const weights = tf.tensor4d(Float32Array.from(gaussianKernel()), [BLUR_SIZE, BLUR_SIZE, 1, 1]);
  model.layers[0].setWeights([weights]);
  weights.dispose();

  await mkdir(out, { recursive: true });
  await model.save(fileSystemIO(out));
  const manifest: ModelManifestInput = {
    name: 'gaussian-blur',
    version: '1',
    task: 'blur',
    format: 'layers',
    required: true,
    inputShape: [null, null, null, 1],
    valueRange: [0, 1],
    channels: 1,
    architecture: `Conv2D ${BLUR_SIZE}x${BLUR_SIZE}, 1 -> 1 channel, 'same' zero padding, no bias`,
    parameters: model.countParams(),
    trainingData: 'none: the weights are set analytically',
    trainingSteps: 0,
    trainingCommand: 'npx tsx tools/train/make-tiny-blur.ts',
    metrics: { sigma: BLUR_SIGMA, kernelSize: BLUR_SIZE, kernelSum: 1 },
    description:
      `Gaussian blur (sigma ${BLUR_SIGMA}, ${BLUR_SIZE}x${BLUR_SIZE}, normalised to sum 1) as a one-layer TF.js ` +
      'model. A smoke-test model: proves the repository, loader and warm-up path end to end. Borders are ' +
      'zero-padded, so they darken.',
    createdAt: new Date().toISOString(),
  };
  await writeFile(path.join(out, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  model.dispose();
  console.log(`wrote ${out}`);
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('make-tiny-blur.ts')) {
  await main();
}
