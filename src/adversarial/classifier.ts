/**
 * The Fashion-MNIST classifier that EPS-AD protects: a small CNN on 28x28x1 images in [0, 1] that outputs logits
 * over the 10 classes. It is the model under attack in the evaluation (src/adversarial/attacks.ts differentiates
 * through it) and a second example model in the repository (`models/classifier-fashion-mnist/<version>`).
 *
 * Sized for one wasm core: two 3x3 conv blocks with max-pooling and one hidden dense layer reach ~91% test accuracy
 * in about three epochs. No dropout or batch norm, so inference and attack gradients are deterministic and
 * identical in training and evaluation mode.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FASHION_MNIST_DIR, type IdxImages, parseIdxLabels } from '../diffusion/fashion-mnist.js';
import { fileSystemIO } from '../nn/fs-io.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Tensor = import('@tensorflow/tfjs').Tensor;

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

export const CLASSIFIER_IMAGE_SIZE = 28;
export const CLASSIFIER_CLASSES = FASHION_MNIST_CLASSES.length;

export interface ClassifierArchitecture {
  /** Filters of the two conv blocks (3x3 same conv, ReLU, 2x2 max-pool). */
  filters: [number, number];
  /** Width of the hidden dense layer. */
  hidden: number;
}

export const DEFAULT_CLASSIFIER: ClassifierArchitecture = { filters: [16, 32], hidden: 128 };

/** Builds the CNN with seeded Glorot initialisation; output: logits [b, 10] (no softmax, attacks want logits). */
export function buildClassifier(
  tf: Tf,
  architecture: ClassifierArchitecture = DEFAULT_CLASSIFIER,
  seed = 1,
): LayersModel {
  const init = (offset: number) => tf.initializers.glorotUniform({ seed: seed * 101 + offset });
  const model = tf.sequential({ name: 'fashion_mnist_cnn' });
  model.add(
    tf.layers.conv2d({
      inputShape: [CLASSIFIER_IMAGE_SIZE, CLASSIFIER_IMAGE_SIZE, 1],
      filters: architecture.filters[0],
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      kernelInitializer: init(1),
      name: 'conv1',
    }),
  );
  model.add(tf.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }));
  model.add(
    tf.layers.conv2d({
      filters: architecture.filters[1],
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      kernelInitializer: init(2),
      name: 'conv2',
    }),
  );
  model.add(tf.layers.maxPooling2d({ poolSize: 2, name: 'pool2' }));
  model.add(tf.layers.flatten({ name: 'flatten' }));
  model.add(
    tf.layers.dense({
      units: architecture.hidden,
      activation: 'relu',
      kernelInitializer: init(3),
      name: 'fc1',
    }),
  );
  model.add(tf.layers.dense({ units: CLASSIFIER_CLASSES, kernelInitializer: init(4), name: 'logits' }));
  return model;
}

export async function loadClassifier(tf: Tf, dir: string): Promise<LayersModel> {
  return tf.loadLayersModel(fileSystemIO(dir));
}

/** Logits for a batch [b, 28, 28, 1] in [0, 1]; the caller owns the result. */
export function classifierLogits(tf: Tf, model: LayersModel, x: Tensor): Tensor {
  return tf.tidy(() => model.apply(x, { training: false }) as Tensor);
}

/**
 * Images `start .. start + count - 1` of an IDX file as a Float32Array [count, 28, 28, 1] in [0, 1] (byte / 255),
 * the classifier's input domain.
 */
export function unitImages(images: IdxImages, start: number, count: number): Float32Array {
  const size = images.height * images.width;
  const out = new Float32Array(count * size);
  const pixels = images.pixels.subarray(start * size, (start + count) * size);
  for (let i = 0; i < out.length; i++) out[i] = pixels[i] / 255;
  return out;
}

/** Predicted classes (argmax of the logits) for a batch of [0, 1] images, evaluated in chunks to bound memory. */
export async function predictClasses(
  tf: Tf,
  model: LayersModel,
  x: Float32Array,
  chunk = 500,
): Promise<Int32Array> {
  const size = CLASSIFIER_IMAGE_SIZE * CLASSIFIER_IMAGE_SIZE;
  const count = x.length / size;
  const out = new Int32Array(count);
  for (let start = 0; start < count; start += chunk) {
    const n = Math.min(chunk, count - start);
    const classes = tf.tidy(() => {
      const batch = tf.tensor4d(x.subarray(start * size, (start + n) * size), [
        n,
        CLASSIFIER_IMAGE_SIZE,
        CLASSIFIER_IMAGE_SIZE,
        1,
      ]);
      return classifierLogits(tf, model, batch).argMax(-1);
    });
    try {
      out.set((await classes.data()) as Int32Array, start);
    } finally {
      classes.dispose();
    }
  }
  return out;
}

/** Fraction of predictions equal to the labels. */
export function accuracy(predicted: ArrayLike<number>, labels: ArrayLike<number>): number {
  if (predicted.length !== labels.length) throw new RangeError('predictions and labels differ in length');
  let correct = 0;
  for (let i = 0; i < predicted.length; i++) if (predicted[i] === labels[i]) correct++;
  return predicted.length === 0 ? 0 : correct / predicted.length;
}

/** The labels of a Fashion-MNIST split (IDX1 file next to the images). */
export async function loadFashionMnistLabels(
  split: 'train' | 't10k',
  dir = FASHION_MNIST_DIR,
): Promise<Uint8Array> {
  return parseIdxLabels(new Uint8Array(await readFile(join(dir, `${split}-labels-idx1-ubyte.gz`))));
}
