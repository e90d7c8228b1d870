/**
 * Makes the console's example images (committed under web/public/examples, so the console needs neither the
 * dataset nor TF.js in the browser):
 *  - fashion-clean-<i>.png / fashion-pgd-<i>.png: Fashion-MNIST test images that the committed classifier gets
 *    right, and their PGD-Linf versions (eps 8/255, 5 steps of eps/5, random start, seed 1: the evaluation's
 *    setting) that it gets wrong; index.json lists them with the labels and the classifier's answers. The Detect
 *    page loads them; the Restore page uses the first clean one.
 *  - set12-01-96.png: Set12 image 01 scaled to 96x96, a clean grey photo for the Denoise page.
 *
 *   npx tsx web/scripts/make-examples.ts
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { runAttack } from '../../src/adversarial/attacks.js';
import {
  FASHION_MNIST_CLASSES,
  loadClassifier,
  loadFashionMnistLabels,
  predictClasses,
  unitImages,
} from '../../src/adversarial/classifier.js';
import { loadFashionMnistImages } from '../../src/diffusion/fashion-mnist.js';
import { initTfjs } from '../../src/nn/backend.js';

const OUT = 'web/public/examples';
const COUNT = 4;
// From the end of the test split: the evaluation and the detector's calibration draw from its start.
const FIRST_INDEX = 9900;
const EPS = 8 / 255;

async function png(pixels: Float32Array, width: number, height: number): Promise<Buffer> {
  const bytes = Buffer.from(Array.from(pixels, (v) => Math.round(Math.min(1, Math.max(0, v)) * 255)));
  return sharp(bytes, { raw: { width, height, channels: 1 } })
    .png()
    .toBuffer();
}

async function main() {
  mkdirSync(OUT, { recursive: true });
  const { tf } = await initTfjs('wasm');
  const model = await loadClassifier(tf, 'models/classifier-fashion-mnist/1');
  const images = await loadFashionMnistImages('t10k');
  const labels = await loadFashionMnistLabels('t10k');

  const examples: Record<string, string>[] = [];
  for (let index = FIRST_INDEX; index < images.count && examples.length < COUNT; index++) {
    const x = unitImages(images, index, 1);
    const label = labels[index];
    if ((await predictClasses(tf, model, x))[0] !== label) continue;
    const xt = tf.tensor4d(x, [1, 28, 28, 1]);
    const yt = tf.tensor1d([label], 'int32');
    const adv = runAttack(tf, model, 'pgd-linf', xt, yt, { eps: EPS, seed: 1 });
    // What the PNG will hold: 8-bit values (rounding can move a pixel by 0.5/255, still inside the budget's spirit).
    const advPixels = Float32Array.from(adv.dataSync() as Float32Array, (v) => Math.round(v * 255) / 255);
    tf.dispose([xt, yt, adv]);
    const predictedAdv = (await predictClasses(tf, model, advPixels))[0];
    if (predictedAdv === label) continue; // keep the examples where the attack works
    const i = examples.length;
    writeFileSync(path.join(OUT, `fashion-clean-${i}.png`), await png(x, 28, 28));
    writeFileSync(path.join(OUT, `fashion-pgd-${i}.png`), await png(advPixels, 28, 28));
    examples.push({
      testIndex: String(index),
      clean: `fashion-clean-${i}.png`,
      adversarial: `fashion-pgd-${i}.png`,
      label: FASHION_MNIST_CLASSES[label],
      predictedClean: FASHION_MNIST_CLASSES[label],
      predictedAdversarial: FASHION_MNIST_CLASSES[predictedAdv],
    });
    console.log(
      `example ${i}: test image ${index} (${FASHION_MNIST_CLASSES[label]}) -> ${FASHION_MNIST_CLASSES[predictedAdv]}`,
    );
  }
  writeFileSync(
    path.join(OUT, 'index.json'),
    `${JSON.stringify(
      {
        attack: 'PGD-Linf 8/255',
        made: 'npx tsx web/scripts/make-examples.ts (classifier-fashion-mnist/1, pgd-linf eps 8/255, 5 steps, seed 1)',
        examples,
      },
      null,
      2,
    )}\n`,
  );
  const photo = await sharp('/work/shared/data/set12/01.png').greyscale().resize(96, 96).png().toBuffer();
  writeFileSync(path.join(OUT, 'set12-01-96.png'), photo);
  model.dispose();
  console.log(`wrote ${examples.length * 2 + 1} images and index.json to ${OUT}`);
}

await main();
