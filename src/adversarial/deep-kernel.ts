/**
 * The deep kernel of EPS-AD (Liu et al., 2020, "Learning Deep Kernels for Non-Parametric Two-Sample Tests", as the
 * EPS-AD code uses it) on EPS images, in TF.js so that it can be trained by gradient ascent:
 *
 *   k(a, b) = (1 - e) exp(-||phi(a) - phi(b)||^2 / s_phi - ||a - b||^2 / s_q) + e exp(-||a - b||^2 / s_q),
 *
 * with phi a small conv net (two strided convs + a linear layer, as in the paper) and s_phi, s_q, e learned.
 * EPS values are large (the score at small noise levels is ~1 / sqrt(1 - alphaBar) ~ 10-100 per pixel), so every
 * kernel input is first divided by one constant `inputScale` (the RMS of natural training EPS), recorded with the
 * kernel: the bandwidths then start near 1-ish numbers and the net sees unit-scale inputs.
 *
 * Training maximises the test-power proxy MMD^2_u / sqrt(Var) (Liu et al.'s J criterion) between a batch of natural
 * EPS and a batch of adversarial EPS. Detection uses the biased single-sample MMD^2 between a reference set of
 * natural EPS and one test EPS (src/adversarial/detector.ts).
 */
type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type Tensor2D = import('@tensorflow/tfjs').Tensor2D;
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Variable = import('@tensorflow/tfjs').Variable;

export interface KernelNetArchitecture {
  /** Side of the (square, single-channel) EPS image: 32 for ddpm-fashion-mnist's padded 28x28. */
  inputSize: number;
  /** Filters of the two 3x3 stride-2 convolutions. */
  filters: [number, number];
  /** Output width of the final linear layer (300 in the paper). */
  features: number;
}

export const DEFAULT_KERNEL_NET: KernelNetArchitecture = { inputSize: 32, filters: [16, 32], features: 300 };

/** phi: EPS [b, s, s, 1] (already divided by inputScale) -> features [b, features]. */
export function buildKernelNet(
  tf: Tf,
  architecture: KernelNetArchitecture = DEFAULT_KERNEL_NET,
  seed = 1,
): LayersModel {
  const init = (offset: number) => tf.initializers.glorotUniform({ seed: seed * 131 + offset });
  const model = tf.sequential({ name: 'eps_ad_kernel_phi' });
  const { inputSize, filters, features } = architecture;
  model.add(
    tf.layers.conv2d({
      inputShape: [inputSize, inputSize, 1],
      filters: filters[0],
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      kernelInitializer: init(1),
      name: 'conv1',
    }),
  );
  model.add(tf.layers.leakyReLU({ alpha: 0.2, name: 'act1' }));
  model.add(
    tf.layers.conv2d({
      filters: filters[1],
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      kernelInitializer: init(2),
      name: 'conv2',
    }),
  );
  model.add(tf.layers.leakyReLU({ alpha: 0.2, name: 'act2' }));
  model.add(tf.layers.flatten({ name: 'flatten' }));
  model.add(tf.layers.dense({ units: features, kernelInitializer: init(3), name: 'features' }));
  return model;
}

/** The learned scalars of the kernel, in their natural (constrained) form. */
export interface KernelScalars {
  sigmaPhi: number;
  sigmaQ: number;
  epsilon: number;
}

/**
 * Unconstrained variables of the scalars: s = exp(log s) keeps bandwidths positive, e = sigmoid(logit e) keeps the
 * mixing weight in (0, 1).
 */
export interface KernelVariables {
  logSigmaPhi: Variable;
  logSigmaQ: Variable;
  logitEpsilon: Variable;
}

export function kernelVariables(tf: Tf, initial: KernelScalars): KernelVariables {
  const logit = Math.log(initial.epsilon / (1 - initial.epsilon));
  return {
    logSigmaPhi: tf.variable(tf.scalar(Math.log(initial.sigmaPhi)), true, 'log_sigma_phi'),
    logSigmaQ: tf.variable(tf.scalar(Math.log(initial.sigmaQ)), true, 'log_sigma_q'),
    logitEpsilon: tf.variable(tf.scalar(logit), true, 'logit_epsilon'),
  };
}

export async function readKernelScalars(variables: KernelVariables): Promise<KernelScalars> {
  const [phi, q, eps] = await Promise.all([
    variables.logSigmaPhi.data(),
    variables.logSigmaQ.data(),
    variables.logitEpsilon.data(),
  ]);
  return {
    sigmaPhi: Math.exp(phi[0]),
    sigmaQ: Math.exp(q[0]),
    epsilon: 1 / (1 + Math.exp(-eps[0])),
  };
}

/** ||a_i - b_j||^2 as an [n, m] tensor (clamped at 0 against cancellation). */
export function squaredDistances(tf: Tf, a: Tensor2D, b: Tensor2D): Tensor2D {
  return tf.tidy(() => {
    const aa = tf.sum(tf.square(a), 1, true);
    const bb = tf.sum(tf.square(b), 1, true).transpose();
    return tf.relu(tf.sub(tf.add(aa, bb), tf.mul(2, tf.matMul(a, b, false, true)))) as Tensor2D;
  });
}

/** Kernel scalars as tensors (constants or the trainable variables). */
export interface KernelScalarTensors {
  sigmaPhi: Tensor;
  sigmaQ: Tensor;
  epsilon: Tensor;
}

export function scalarTensors(tf: Tf, source: KernelScalars | KernelVariables): KernelScalarTensors {
  if ('logSigmaPhi' in source) {
    return {
      sigmaPhi: tf.exp(source.logSigmaPhi),
      sigmaQ: tf.exp(source.logSigmaQ),
      epsilon: tf.sigmoid(source.logitEpsilon),
    };
  }
  return {
    sigmaPhi: tf.scalar(source.sigmaPhi),
    sigmaQ: tf.scalar(source.sigmaQ),
    epsilon: tf.scalar(source.epsilon),
  };
}

/**
 * k(a_i, b_j) as an [n, m] tensor from features (phi outputs) and flattened scaled inputs of both sides.
 */
export function deepKernelTensor(
  tf: Tf,
  featuresA: Tensor2D,
  featuresB: Tensor2D,
  inputsA: Tensor2D,
  inputsB: Tensor2D,
  scalars: KernelScalarTensors,
): Tensor2D {
  return tf.tidy(() => {
    const dPhi = squaredDistances(tf, featuresA, featuresB);
    const dQ = squaredDistances(tf, inputsA, inputsB);
    const q = tf.exp(tf.neg(tf.div(dQ, scalars.sigmaQ)));
    const phiTerm = tf.exp(tf.neg(tf.div(dPhi, scalars.sigmaPhi)));
    const mix = tf.add(tf.mul(tf.sub(1, scalars.epsilon), phiTerm), scalars.epsilon);
    return tf.mul(mix, q) as Tensor2D;
  });
}

/**
 * Liu et al.'s J criterion for equal-size samples X, Y (row i of each may be paired): the unbiased MMD^2 (cross
 * term without its diagonal, as in their MMDu) over the square root of the estimated variance of the statistic
 * (h-statistic variance: 4 (mean_i (mean_j H_ij)^2 - (mean H)^2) with H = Kxx + Kyy - Kxy - Kyx). Returns
 * [mmd2, variance, ratio] scalars.
 */
export function mmdRatio(tf: Tf, kxx: Tensor2D, kyy: Tensor2D, kxy: Tensor2D): [Tensor, Tensor, Tensor] {
  return tf.tidy(() => {
    const n = kxx.shape[0];
    const offDiagonalMean = (k: Tensor2D) =>
      tf.div(tf.sub(tf.sum(k), tf.sum(tf.mul(k, tf.eye(n)))), n * (n - 1));
    const mmd2 = tf.sub(tf.add(offDiagonalMean(kxx), offDiagonalMean(kyy)), tf.mul(2, offDiagonalMean(kxy)));
    const h = tf.sub(tf.add(kxx, kyy), tf.add(kxy, kxy.transpose()));
    const rowMeans = tf.mean(h, 1);
    const v1 = tf.mean(tf.square(rowMeans));
    const v2 = tf.square(tf.mean(h));
    const variance = tf.mul(4, tf.sub(v1, v2));
    const ratio = tf.div(mmd2, tf.sqrt(tf.add(tf.relu(variance), 1e-8)));
    return [mmd2, variance, ratio];
  });
}

/** Median of the off-diagonal entries of a square distance matrix (bandwidth initialisation). */
export function medianOffDiagonal(distances: Float32Array | Float64Array, n: number): number {
  const off: number[] = [];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off.push(distances[i * n + j]);
  off.sort((a, b) => a - b);
  const median = off[Math.floor(off.length / 2)] ?? 1;
  return median > 0 ? median : 1;
}
