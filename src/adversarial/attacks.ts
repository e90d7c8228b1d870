/**
 * White-box evasion attacks on an image classifier, with TF.js gradients through the model. They make the adversarial
 * data EPS-AD is trained on (FGSM and FGSM-L2 at a small budget) and evaluated against (every attack here); they are
 * not exposed as an endpoint.
 *
 * Conventions, as in the EPS-AD paper's evaluation (torchattacks defaults):
 * - inputs are images [b, h, w, c] in [0, 1] and integer labels [b]; the model returns logits;
 * - iterative attacks take `steps` steps (default 5) of `stepSize` (default eps / steps);
 * - every iterate is projected onto the threat model's ball around the clean input and then clipped to [0, 1];
 *   clipping only moves a pixel toward its clean value (the clean value is inside [0, 1]), so the norm bound holds
 *   for the output exactly, not just before clipping.
 * Losses are summed over the batch, so each image's gradient does not depend on the batch size.
 */
type Tf = typeof import('@tensorflow/tfjs');
type Tensor = import('@tensorflow/tfjs').Tensor;
type Tensor4D = import('@tensorflow/tfjs').Tensor4D;
type LayersModel = import('@tensorflow/tfjs').LayersModel;

export const ATTACK_NAMES = ['fgsm', 'fgsm-l2', 'pgd-linf', 'bim', 'mim', 'pgd-l2', 'cw-linf'] as const;
export type AttackName = (typeof ATTACK_NAMES)[number];

/** The norm each attack's budget is measured in. */
export const ATTACK_NORM: Record<AttackName, 'linf' | 'l2'> = {
  fgsm: 'linf',
  'fgsm-l2': 'l2',
  'pgd-linf': 'linf',
  bim: 'linf',
  mim: 'linf',
  'pgd-l2': 'l2',
  'cw-linf': 'linf',
};

export interface AttackOptions {
  /** Budget: the Linf radius (e.g. 8/255) or the L2 radius, depending on the attack. */
  eps: number;
  /** Iterations of the iterative attacks (default 5). */
  steps?: number;
  /** Step length (default eps / steps). */
  stepSize?: number;
  /** Momentum decay of MIM (default 1, as in Dong et al. 2018). */
  momentum?: number;
  /** Confidence margin kappa of the CW loss (default 0). */
  kappa?: number;
  /** PGD's uniform random start inside the ball (default true for pgd-linf and pgd-l2). */
  randomStart?: boolean;
  /** Seed of the random start. */
  seed?: number;
}

/** Anything that maps a batch of images to logits: a LayersModel or a plain function (for tests). */
export type Logits = LayersModel | ((x: Tensor) => Tensor);

function logitsOf(model: Logits, x: Tensor): Tensor {
  return typeof model === 'function' ? model(x) : (model.apply(x, { training: false }) as Tensor);
}

const PER_IMAGE_AXES = [1, 2, 3];
// Keeps a zero gradient (or a zero perturbation) from dividing by zero in the L2 and L1 normalisations.
const TINY = 1e-12;

function crossEntropyLoss(tf: Tf, logits: Tensor, labels: Tensor): Tensor {
  const classes = logits.shape[logits.shape.length - 1] as number;
  const oneHot = tf.oneHot(labels.toInt(), classes);
  return tf.losses.softmaxCrossEntropy(oneHot, logits, undefined, undefined, tf.Reduction.SUM);
}

/**
 * The CW margin loss to ascend: min(max_{j != y} z_j - z_y, kappa). Ascending it pushes the best wrong logit above
 * the true one; the cap stops pushing once the margin reaches kappa (Carlini & Wagner's f6, under an Linf budget as in
 * PGD-CW).
 */
function cwMarginLoss(tf: Tf, logits: Tensor, labels: Tensor, kappa: number): Tensor {
  const classes = logits.shape[logits.shape.length - 1] as number;
  const oneHot = tf.oneHot(labels.toInt(), classes);
  const trueLogit = tf.sum(tf.mul(oneHot, logits), -1);
  // Mask the true class with a large negative value before taking the max over the others.
  const otherLogit = tf.max(tf.sub(logits, tf.mul(oneHot, 1e9)), -1);
  return tf.sum(tf.minimum(tf.sub(otherLogit, trueLogit), kappa));
}

function lossGradient(
  tf: Tf,
  model: Logits,
  x: Tensor,
  labels: Tensor,
  loss: 'ce' | 'cw',
  kappa: number,
): Tensor {
  const f = (input: Tensor) => {
    const logits = logitsOf(model, input);
    return loss === 'ce' ? crossEntropyLoss(tf, logits, labels) : cwMarginLoss(tf, logits, labels, kappa);
  };
  return tf.grad(f)(x);
}

function l2Norm(tf: Tf, t: Tensor): Tensor {
  return tf.sqrt(tf.sum(tf.square(t), PER_IMAGE_AXES, true));
}

/** Clips x_adv into the Linf ball of radius eps around x, then into [0, 1]. */
function projectLinf(tf: Tf, xAdv: Tensor, x: Tensor, eps: number): Tensor {
  const delta = tf.clipByValue(tf.sub(xAdv, x), -eps, eps);
  return tf.clipByValue(tf.add(x, delta), 0, 1);
}

/** Scales x_adv - x back onto the L2 ball of radius eps when outside it, then clips into [0, 1]. */
function projectL2(tf: Tf, xAdv: Tensor, x: Tensor, eps: number): Tensor {
  const delta = tf.sub(xAdv, x);
  // The factor is a little under eps / norm so that float32 rounding of the product cannot leave the ball.
  const factor = tf.minimum(1, tf.div(eps * (1 - 1e-6), tf.add(l2Norm(tf, delta), TINY)));
  return tf.clipByValue(tf.add(x, tf.mul(delta, factor)), 0, 1);
}

function l2Direction(tf: Tf, g: Tensor): Tensor {
  return tf.div(g, tf.add(l2Norm(tf, g), TINY));
}

/**
 * Runs `name` on a batch: x [b, h, w, c] in [0, 1], labels [b] (the true classes). Returns the adversarial batch,
 * owned by the caller; x and labels are not disposed.
 */
export function runAttack(
  tf: Tf,
  model: Logits,
  name: AttackName,
  x: Tensor4D,
  labels: Tensor,
  options: AttackOptions,
): Tensor4D {
  const { eps } = options;
  if (!(eps >= 0) || !Number.isFinite(eps))
    throw new RangeError(`eps must be a finite number >= 0, got ${eps}`);
  const steps = options.steps ?? 5;
  if (!Number.isInteger(steps) || steps < 1)
    throw new RangeError(`steps must be a positive integer, got ${steps}`);
  const stepSize = options.stepSize ?? eps / steps;
  const kappa = options.kappa ?? 0;
  const momentum = options.momentum ?? 1;
  const seed = options.seed ?? 0;
  const norm = ATTACK_NORM[name];
  if (norm === undefined)
    throw new RangeError(`unknown attack '${name}' (expected ${ATTACK_NAMES.join(', ')})`);
  const project = (xAdv: Tensor) =>
    norm === 'linf' ? projectLinf(tf, xAdv, x, eps) : projectL2(tf, xAdv, x, eps);

  return tf.tidy(() => {
    if (name === 'fgsm') {
      const g = lossGradient(tf, model, x, labels, 'ce', kappa);
      return project(tf.add(x, tf.mul(tf.sign(g), eps))) as Tensor4D;
    }
    if (name === 'fgsm-l2') {
      const g = lossGradient(tf, model, x, labels, 'ce', kappa);
      return project(tf.add(x, tf.mul(l2Direction(tf, g), eps))) as Tensor4D;
    }

    const randomStart = options.randomStart ?? (name === 'pgd-linf' || name === 'pgd-l2');
    let xAdv: Tensor = x;
    if (randomStart) {
      if (norm === 'linf') {
        xAdv = project(tf.add(x, tf.randomUniform(x.shape, -eps, eps, 'float32', seed)));
      } else {
        // Uniform direction, radius eps * u^(1/d): uniform in the L2 ball (torchattacks' PGDL2 start).
        const d = x.size / x.shape[0];
        const direction = l2Direction(tf, tf.randomNormal(x.shape, 0, 1, 'float32', seed));
        const radius = tf.mul(
          tf.pow(tf.randomUniform([x.shape[0], 1, 1, 1], 0, 1, 'float32', seed + 1), 1 / d),
          eps,
        );
        xAdv = project(tf.add(x, tf.mul(direction, radius)));
      }
    }
    let velocity: Tensor = tf.zerosLike(x);
    for (let step = 0; step < steps; step++) {
      const loss = name === 'cw-linf' ? 'cw' : 'ce';
      const g = lossGradient(tf, model, xAdv, labels, loss, kappa);
      let next: Tensor;
      if (name === 'mim') {
        // Momentum on the L1-normalised gradient (mean absolute value per image), sign step (Dong et al. 2018).
        const l1 = tf.add(tf.mean(tf.abs(g), PER_IMAGE_AXES, true), TINY);
        velocity = tf.add(tf.mul(velocity, momentum), tf.div(g, l1));
        next = tf.add(xAdv, tf.mul(tf.sign(velocity), stepSize));
      } else if (norm === 'l2') {
        next = tf.add(xAdv, tf.mul(l2Direction(tf, g), stepSize));
      } else {
        next = tf.add(xAdv, tf.mul(tf.sign(g), stepSize));
      }
      xAdv = project(next);
    }
    return xAdv as Tensor4D;
  });
}

/** Largest per-image perturbation of a batch in the attack's norm (Float64Array, one value per image). */
export async function perturbationNorms(
  tf: Tf,
  xAdv: Tensor,
  x: Tensor,
  norm: 'linf' | 'l2',
): Promise<Float64Array> {
  const norms = tf.tidy(() => {
    const delta = tf.sub(xAdv, x);
    return norm === 'linf'
      ? tf.max(tf.abs(delta), PER_IMAGE_AXES)
      : tf.sqrt(tf.sum(tf.square(delta), PER_IMAGE_AXES));
  });
  try {
    return Float64Array.from(await norms.data());
  } finally {
    norms.dispose();
  }
}
