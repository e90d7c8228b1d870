/**
 * The pieces every EPS-AD caller composes (the trainer, the benchmark, the worker handler and the tests): the
 * score model's schedule from its manifest, EPS over many images in seeded chunks, and the attack of a batch of
 * images. Pure functions of their inputs.
 */
import type { DdpmSchedule } from '../diffusion/schedule.js';
import { linearSchedule } from '../diffusion/schedule.js';
import { diffusionSection, extraSection } from '../nn/manifest-sections.js';
import { type AttackName, type AttackOptions, runAttack } from './attacks.js';
import { type EpsNetwork, expectedPerturbationScore } from './eps.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;

/**
 * The linear schedule recorded in a diffusion model's manifest (extra.schedule), read through its typed section:
 * a field that is absent or malformed takes its default.
 */
export function scheduleFromManifest(extra: Record<string, unknown> | undefined): DdpmSchedule {
  const s = extraSection(diffusionSection, { extra }).schedule ?? {};
  return linearSchedule({ timesteps: s.timesteps, betaStart: s.betaStart, betaEnd: s.betaEnd });
}

export interface ChunkedEpsOptions {
  timesteps: number;
  /** Chunk c of the images uses noise seed `seed + c`; a chunk is `chunk` images. */
  seed: number;
  chunk?: number;
  side?: number;
  onChunk?: (done: number, total: number) => void;
}

/**
 * EPS of `count` 28x28x1 images in [0, 1], computed `chunk` images at a time. The noise of chunk c is seeded with
 * seed + c, so a prefix of the images always gets the same EPS whatever the total (a cache can grow).
 */
export async function epsInChunks(
  tf: Tf,
  network: EpsNetwork,
  schedule: DdpmSchedule,
  images: Float32Array,
  count: number,
  options: ChunkedEpsOptions,
): Promise<Float32Array> {
  const side = options.side ?? 28;
  const chunk = options.chunk ?? 50;
  const pixels = side * side;
  let out: Float32Array | undefined;
  let epsSize = 0;
  for (let start = 0, c = 0; start < count; start += chunk, c++) {
    const n = Math.min(chunk, count - start);
    const result = await expectedPerturbationScore(
      tf,
      network,
      schedule,
      {
        data: images.subarray(start * pixels, (start + n) * pixels),
        count: n,
        height: side,
        width: side,
        channels: 1,
      },
      { timesteps: options.timesteps, seed: options.seed + c },
    );
    if (!out) {
      epsSize = result.height * result.width * result.channels;
      out = new Float32Array(count * epsSize);
    }
    out.set(result.eps, start * epsSize);
    options.onChunk?.(start + n, count);
  }
  return out ?? new Float32Array(0);
}

/** Adversarial versions of [0, 1] 28x28x1 images (labels = true classes), attacked in chunks of 250. */
export async function attackImages(
  tf: Tf,
  classifier: LayersModel,
  attack: AttackName,
  images: Float32Array,
  labels: ArrayLike<number>,
  options: AttackOptions,
  chunk = 250,
): Promise<Float32Array> {
  const pixels = 28 * 28;
  const count = labels.length;
  const out = new Float32Array(count * pixels);
  for (let start = 0; start < count; start += chunk) {
    const n = Math.min(chunk, count - start);
    const adversarial = tf.tidy(() => {
      const x = tf.tensor4d(images.subarray(start * pixels, (start + n) * pixels), [n, 28, 28, 1]);
      const y = tf.tensor1d(
        Int32Array.from({ length: n }, (_, i) => labels[start + i]),
        'int32',
      );
      return runAttack(tf, classifier, attack, x, y, { ...options, seed: (options.seed ?? 0) + start });
    });
    try {
      out.set((await adversarial.data()) as Float32Array, start * pixels);
    } finally {
      adversarial.dispose();
    }
  }
  return out;
}
