/**
 * EPS-AD detection in a worker: load the detector (phi through the model repository, then detector.json and the
 * float16 reference set from its folder; cached per worker) and its score model, compute the EPS of the images,
 * score each one against the reference, and test the batch as a whole when it has two images or more.
 */
import { type EpsAdDetector, loadEpsAdDetector } from '../../adversarial/detector.js';
import { ddpmEpsNetwork } from '../../adversarial/eps.js';
import { epsInChunks, scheduleFromManifest } from '../../adversarial/pipeline.js';
import { fail } from '../../errors.js';
import { getModel, onModelCacheClear } from '../../nn/repository.js';
import './layers.js';
import type { HandlerContext } from './context.js';

type LayersModel = import('@tensorflow/tfjs').LayersModel;

export interface DetectTaskInput {
  /** Version omitted: the latest valid version in the repository. */
  detector: { name: string; version?: string };
  /** count x 28 x 28 grey values in [0, 1] (the detector's image shape, checked by the caller). */
  images: Float32Array;
  count: number;
  /** T*; omitted: the detector's own. */
  timesteps?: number;
  seed: number;
  fpr: number;
  permutations: number;
}

export interface DetectTaskResult {
  detector: { name: string; version: string };
  scoreModel: { name: string; version: string };
  timesteps: number;
  threshold: number;
  scores: number[];
  pValues: number[];
  batch: { statistic: number; pValue: number; permutations: number; count: number } | null;
  timings: { loadMs: number; epsMs: number; kernelMs: number; totalMs: number };
}

/**
 * One EpsAdDetector per loaded phi model (the repository caches phi per worker; this caches the rest: the
 * reference set and its features, as tensors), freed when the repository's cache is cleared.
 */
const detectors = new Map<LayersModel, Promise<EpsAdDetector>>();
onModelCacheClear(async () => {
  const pending = [...detectors.values()];
  detectors.clear();
  for (const result of await Promise.allSettled(pending)) {
    if (result.status === 'fulfilled') result.value.dispose();
  }
});

/** Images per EPS chunk: progress granularity (each is T* network evaluations). */
const CHUNK = 16;

export async function detect(input: DetectTaskInput, ctx: HandlerContext): Promise<DetectTaskResult> {
  const started = performance.now();
  const { tf } = await ctx.tfjs();
  const loaded = await getModel(tf, ctx.options.modelsDir, input.detector.name, input.detector.version);
  let pending = detectors.get(loaded.model);
  if (!pending) {
    pending = loadEpsAdDetector(tf, loaded.dir, loaded.model);
    detectors.set(loaded.model, pending);
    pending.catch(() => detectors.delete(loaded.model));
  }
  const detector = await pending;
  const { config } = detector;
  const timesteps = input.timesteps ?? config.timesteps;
  if (timesteps !== config.timesteps)
    throw fail(
      'UNPROCESSABLE',
      `${loaded.name}@${loaded.version} is calibrated for timesteps (T*) = ${config.timesteps} only, got ${timesteps}`,
      { details: { calibratedTimesteps: [config.timesteps] } },
    );
  let threshold: number;
  try {
    threshold = detector.threshold(input.fpr);
  } catch {
    throw fail('UNPROCESSABLE', `fpr ${input.fpr} is not calibrated for ${loaded.name}@${loaded.version}`, {
      details: { calibratedFprs: config.calibration.fprs },
    });
  }
  const [height, width, channels] = config.imageShape;
  if (input.images.length !== input.count * height * width * channels)
    throw fail('VALIDATION', `expected ${input.count} images of ${height}x${width}x${channels} values`);
  const scoreModel = await getModel(
    tf,
    ctx.options.modelsDir,
    config.scoreModel.name,
    config.scoreModel.version,
  );
  const schedule = scheduleFromManifest(scoreModel.manifest.extra);
  const tLoad = performance.now();

  const eps = epsInChunks(tf, ddpmEpsNetwork(tf, scoreModel.model), schedule, input.images, input.count, {
    timesteps,
    seed: input.seed,
    chunk: CHUNK,
    side: width,
    onChunk: (done, total) => ctx.progress((0.9 * done) / total, `EPS of ${done}/${total} images`),
  });
  const tEps = performance.now();
  const scores = Array.from(detector.scores(eps, input.count));
  const batch =
    input.count >= 2
      ? detector.batchTest(eps, input.count, { permutations: input.permutations, seed: input.seed })
      : null;
  const tKernel = performance.now();
  return {
    detector: { name: loaded.name, version: loaded.version },
    scoreModel: { name: scoreModel.name, version: scoreModel.version },
    timesteps,
    threshold,
    scores,
    pValues: scores.map((s) => detector.pValue(s)),
    batch: batch
      ? {
          statistic: batch.statistic,
          pValue: batch.pValue,
          permutations: batch.permutations,
          count: batch.count,
        }
      : null,
    timings: {
      loadMs: tLoad - started,
      epsMs: tEps - tLoad,
      kernelMs: tKernel - tEps,
      totalMs: performance.now() - started,
    },
  };
}
