/**
 * Quality of the committed detector (models/eps-ad-fashion-mnist/1) on a small set the detector never saw and the
 * benchmark does not use: 50 clean Fashion-MNIST test images (t10k 9950..9999) and their PGD-Linf 8/255 versions
 * against classifier-fashion-mnist. The AUROC must stay above a floor a little below the benchmark's figure
 * (bench/RESULTS.md, eps section): 50 + 50 images estimate an AUROC near 1 to about +-0.02. Fails when a model is
 * missing (it is committed).
 */

import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadClassifier, loadFashionMnistLabels, unitImages } from '../../src/adversarial/classifier.js';
import { auroc, type EpsAdDetector, loadEpsAdDetector } from '../../src/adversarial/detector.js';
import { ddpmEpsNetwork } from '../../src/adversarial/eps.js';
import { attackImages, epsInChunks, scheduleFromManifest } from '../../src/adversarial/pipeline.js';
import { loadFashionMnistImages } from '../../src/diffusion/fashion-mnist.js';
import { loadDiffusionModel } from '../../src/diffusion/model.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { fileSystemIO } from '../../src/nn/fs-io.js';

const DETECTOR = 'models/eps-ad-fashion-mnist/1';
const SCORE_MODEL = 'models/ddpm-fashion-mnist/20261127';
const CLASSIFIER = 'models/classifier-fashion-mnist/1';
/** bench:eps figure for PGD-Linf 8/255 minus a margin for the small sample (see bench/RESULTS.md). */
const MIN_AUROC = 0.95;
const FIRST = 9950;
const COUNT = 50;

describe('EPS-AD quality (committed detector)', () => {
  let tf: Tf;
  let detector: EpsAdDetector;
  beforeAll(async () => {
    tf = (await initTfjs('wasm')).tf;
    const phi = await tf.loadLayersModel(fileSystemIO(DETECTOR));
    detector = await loadEpsAdDetector(tf, DETECTOR, phi);
  }, 60_000);

  it(`separates ${COUNT} clean from ${COUNT} PGD-Linf 8/255 test images (AUROC >= ${MIN_AUROC})`, async () => {
    const [images, labels] = await Promise.all([
      loadFashionMnistImages('t10k'),
      loadFashionMnistLabels('t10k'),
    ]);
    const clean = unitImages(images, FIRST, COUNT);
    const classifier = await loadClassifier(tf, CLASSIFIER);
    const adversarial = await attackImages(
      tf,
      classifier,
      'pgd-linf',
      clean,
      labels.subarray(FIRST, FIRST + COUNT),
      {
        eps: 8 / 255,
        seed: 1,
      },
    );
    const manifest = JSON.parse(readFileSync(`${SCORE_MODEL}/manifest.json`, 'utf8'));
    const network = ddpmEpsNetwork(tf, await loadDiffusionModel(tf, SCORE_MODEL));
    const schedule = scheduleFromManifest(manifest.extra);
    const options = { timesteps: detector.config.timesteps, chunk: COUNT };
    const cleanScores = await detector.scores(
      await epsInChunks(tf, network, schedule, clean, COUNT, { ...options, seed: 1 }),
      COUNT,
    );
    const adversarialScores = await detector.scores(
      await epsInChunks(tf, network, schedule, adversarial, COUNT, { ...options, seed: 2 }),
      COUNT,
    );
    const area = auroc(cleanScores, adversarialScores);
    console.log(`quality: AUROC ${area.toFixed(3)} on ${COUNT} + ${COUNT} images`);
    expect(area).toBeGreaterThanOrEqual(MIN_AUROC);
    // The served threshold (5% FPR) flags most of the attacked images and few clean ones.
    const threshold = detector.threshold(0.05);
    const flagged = (s: Float64Array) => s.filter((v) => v > threshold).length / s.length;
    expect(flagged(adversarialScores)).toBeGreaterThan(flagged(cleanScores));
  }, 600_000);
});
