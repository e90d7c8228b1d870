/**
 * Every attack against the committed Fashion-MNIST classifier on 50 test images: accuracy must drop well below the
 * clean accuracy, the output must stay in [0, 1], and the perturbation must respect the budget in the attack's norm
 * (to float32 rounding) while actually using a good part of it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ATTACK_NAMES,
  ATTACK_NORM,
  type AttackName,
  perturbationNorms,
  runAttack,
} from '../../src/adversarial/attacks.js';
import {
  accuracy,
  loadClassifier,
  loadFashionMnistLabels,
  unitImages,
} from '../../src/adversarial/classifier.js';
import { loadFashionMnistImages } from '../../src/diffusion/fashion-mnist.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';

const MODEL_DIR = 'models/classifier-fashion-mnist/1';
const COUNT = 50;
const LINF_EPS = 8 / 255;
// The L2 radius matching 8/255 in Linf over a 28x28 image is 8/255 * 28 = 0.88; use 1 for a round figure.
const L2_EPS = 1;

let tf: Tf;
let model: import('@tensorflow/tfjs').LayersModel;
let x: import('@tensorflow/tfjs').Tensor4D;
let labels: import('@tensorflow/tfjs').Tensor1D;
let labelArray: Uint8Array;
let cleanAccuracy: number;

function predicted(batch: import('@tensorflow/tfjs').Tensor): Int32Array {
  const classes = tf.tidy(() => (model.apply(batch) as import('@tensorflow/tfjs').Tensor).argMax(-1));
  const out = classes.dataSync() as Int32Array;
  classes.dispose();
  return out;
}

beforeAll(async () => {
  tf = (await initTfjs('wasm')).tf;
  model = await loadClassifier(tf, MODEL_DIR);
  const images = await loadFashionMnistImages('t10k');
  labelArray = (await loadFashionMnistLabels('t10k')).slice(0, COUNT);
  x = tf.tensor4d(unitImages(images, 0, COUNT), [COUNT, 28, 28, 1]);
  labels = tf.tensor1d(Int32Array.from(labelArray), 'int32');
  cleanAccuracy = accuracy(predicted(x), labelArray);
});

afterAll(() => {
  x?.dispose();
  labels?.dispose();
  model?.dispose();
});

describe('attacks on the Fashion-MNIST classifier', () => {
  it('the classifier is accurate on the clean images', async () => {
    expect(cleanAccuracy).toBeGreaterThanOrEqual(0.85);
  });

  it.each(ATTACK_NAMES)('%s lowers accuracy and respects its norm bound', async (name: AttackName) => {
    const norm = ATTACK_NORM[name];
    const eps = norm === 'linf' ? LINF_EPS : L2_EPS;
    const xAdv = runAttack(tf, model, name, x, labels, { eps, seed: 1 });
    try {
      expect(xAdv.shape).toEqual(x.shape);
      const values = xAdv.dataSync();
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of values) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      expect(lo).toBeGreaterThanOrEqual(0);
      expect(hi).toBeLessThanOrEqual(1);

      const norms = await perturbationNorms(tf, xAdv, x, norm);
      const largest = Math.max(...norms);
      expect(largest).toBeLessThanOrEqual(eps + (norm === 'linf' ? 1e-6 : 1e-5));
      // The budget is used, not ignored: a no-op attack would fail here.
      expect(largest).toBeGreaterThan(0.5 * eps);

      // Measured on these 50 images: clean 0.86, every attack 0.32..0.52 (5 steps of eps/5 on a plain CNN).
      const adversarialAccuracy = accuracy(predicted(xAdv), labelArray);
      expect(adversarialAccuracy).toBeLessThan(cleanAccuracy - 0.2);
    } finally {
      xAdv.dispose();
    }
  });

  it('iterative attacks are stronger than FGSM at the same budget, and PGD is reproducible for a seed', async () => {
    const accuracyOf = (name: AttackName) => {
      const xAdv = runAttack(tf, model, name, x, labels, { eps: 2 / 255, seed: 3 });
      const acc = accuracy(predicted(xAdv), labelArray);
      xAdv.dispose();
      return acc;
    };
    expect(accuracyOf('pgd-linf')).toBeLessThanOrEqual(accuracyOf('fgsm'));
    const a = runAttack(tf, model, 'pgd-linf', x, labels, { eps: LINF_EPS, seed: 5 });
    const b = runAttack(tf, model, 'pgd-linf', x, labels, { eps: LINF_EPS, seed: 5 });
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    a.dispose();
    b.dispose();
  });

  it('refuses a bad budget or step count', async () => {
    expect(() => runAttack(tf, model, 'fgsm', x, labels, { eps: -1 })).toThrow(RangeError);
    expect(() => runAttack(tf, model, 'bim', x, labels, { eps: 0.1, steps: 0 })).toThrow(RangeError);
  });
});
