/** The committed classifier: a valid manifest that tells the truth about the model's size and accuracy. */
import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  accuracy,
  buildClassifier,
  loadClassifier,
  loadFashionMnistLabels,
  predictClasses,
  unitImages,
} from '../../src/adversarial/classifier.js';
import { loadFashionMnistImages } from '../../src/diffusion/fashion-mnist.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { inspectModelFiles } from '../../src/nn/fs-io.js';
import { type ModelManifest, parseModelManifest } from '../../src/nn/manifest.js';

const MODEL_DIR = 'models/classifier-fashion-mnist/1';

let tf: Tf;
let manifest: ModelManifest;
beforeAll(async () => {
  tf = (await initTfjs('wasm')).tf;
  const parsed = parseModelManifest(JSON.parse(await readFile(`${MODEL_DIR}/manifest.json`, 'utf8')));
  if (!parsed.ok) throw new Error(parsed.error);
  manifest = parsed.manifest;
});

describe('classifier-fashion-mnist/1', () => {
  it('has a classifier manifest matching its files', async () => {
    expect(manifest.name).toBe('classifier-fashion-mnist');
    expect(manifest.task).toBe('classifier');
    expect(manifest.inputShape).toEqual([null, 28, 28, 1]);
    expect(manifest.valueRange).toEqual([0, 1]);
    expect(manifest.trainingCommand).toMatch(/^npm run train -- classifier /);
    expect(manifest.metrics.testAccuracy).toBeGreaterThanOrEqual(0.9);
    const files = await inspectModelFiles(MODEL_DIR);
    expect(files.format).toBe('layers');
    expect(files.weightBytes).toBe(manifest.parameters * 4);
  });

  it('reproduces its recorded accuracy on the first 2000 test images', async () => {
    const model = await loadClassifier(tf, MODEL_DIR);
    expect(model.countParams()).toBe(manifest.parameters);
    const images = await loadFashionMnistImages('t10k');
    const labels = (await loadFashionMnistLabels('t10k')).slice(0, 2000);
    const measured = accuracy(await predictClasses(tf, model, unitImages(images, 0, 2000)), labels);
    // 2000 images: binomial sd ~ 0.007 around the full-test-set figure.
    expect(Math.abs(measured - Number(manifest.metrics.testAccuracy))).toBeLessThan(0.025);
    model.dispose();
  });

  it('a freshly built network has the committed architecture and is seeded', async () => {
    const a = buildClassifier(tf, undefined, 1);
    const b = buildClassifier(tf, undefined, 1);
    expect(a.countParams()).toBe(manifest.parameters);
    const wa = a.getWeights()[0].dataSync();
    const wb = b.getWeights()[0].dataSync();
    expect(Array.from(wa)).toEqual(Array.from(wb));
    a.dispose();
    b.dispose();
  });
});
