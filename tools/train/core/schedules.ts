/**
 * Schedules shared by the trainers: the per-step random stream (so a resumed run replays the same batches), the
 * learning-rate warm-up + cosine decay, linear decay, geometric annealing, and setting Adam's rate between steps.
 */
import { Rng } from '../../../src/util/random.js';

/**
 * The random stream of one step: Rng(mix(seed, step[, round])). The same (seed, step, round) always gives the
 * same batch, which is what makes `--resume` continue the exact trajectory of an uninterrupted run.
 */
export function stepRng(seed: number, step: number, round?: number): Rng {
  let h = Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca77);
  if (round !== undefined) h ^= Math.imul(round + 1, 0xc2b2ae35);
  return new Rng(h >>> 0);
}

export interface WarmupCosine {
  /** Fraction of the steps spent warming up linearly from peak/warmup to the peak. */
  warmupFraction: number;
  /** At most this many warm-up steps. */
  maxWarmup?: number;
  /** The rate at the last step, as a fraction of the peak. */
  floor: number;
}

/** Linear warm-up, then cosine decay from the peak to `floor` x peak at the last step. */
export function warmupCosine(peak: number, step: number, steps: number, shape: WarmupCosine): number {
  const warmup = Math.max(1, Math.min(shape.maxWarmup ?? Infinity, Math.round(shape.warmupFraction * steps)));
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const t = Math.min(1, (step - warmup) / Math.max(1, steps - warmup));
  return peak * (shape.floor + (1 - shape.floor) * 0.5 * (1 + Math.cos(Math.PI * t)));
}

/** Linear decay from the peak (step 0) towards `floor` x peak (reached one step after the last). */
export function linearDecay(peak: number, step: number, steps: number, floor: number): number {
  return peak * (1 - ((1 - floor) * step) / steps);
}

/** Geometric annealing from `start` (step 0) to `end` (last step). */
export function geometric(start: number, end: number, step: number, steps: number): number {
  const t = steps <= 1 ? 1 : Math.min(1, step / (steps - 1));
  return start * (end / start) ** t;
}

/** tf.js optimizers read `learningRate` at each update but do not type it as writable. */
export function setLearningRate(optimizer: object, rate: number): void {
  (optimizer as { learningRate: number }).learningRate = rate;
}

export function getLearningRate(optimizer: object): number {
  return (optimizer as { learningRate: number }).learningRate;
}
