/**
 * MID training (Chihaoui & Favaro, "Unsupervised Real-World Denoising: Sparsity is All You Need", arXiv 2503.21377):
 *
 *   round r = 0..R-1:
 *     1. train D on synthetic pairs (x, x + n), n ~ sampler_r, with the input masked (a random `maskRatio` of the
 *        pixels dropped and filled from their neighbours); loss: mean squared error to x over all pixels;
 *     2. apply D to the real noisy training crops in blind-spot form (pixels split into `residualMasks` random
 *        groups, each dropped once; every pixel predicted only from its neighbours): residuals n = y - D(y);
 *        with D's ordinary output the residual would hold only the part of the noise D removes (measured: 1.9/255
 *        against ~4.6/255 of real noise after round 0), and the sampler would shrink round after round;
 *     3. refit the sampler on them (residual bank, src/mid/sampler.ts) -> sampler_{r+1}.
 *   sampler_0 is Gaussian with per-channel sigma estimated (wavelet MAD) from the noisy set; round r > 0 fine-tunes
 *   round r-1's weights with a fresh Adam at a lower peak rate.
 *
 * Clean and noisy images are never paired: the clean set is the means of PolyU scenes not used as noisy scenes
 * (plus scikit-image's colour photos), the noisy set the noisy shots of other scenes; validation scenes are
 * held out (noisy shot vs mean). The manifest records the split, per round the validation PSNR, and the
 * statistics of the noise dataset, of the sampler and of the reference real noise (validation noisy - mean).
 *
 * Resumable: <checkpointDir>/latest.json points at the newest checkpoint (round, step, weights, Adam state); the
 * end-of-round weights are kept as round-<r>/, from which the next round's sampler is rebuilt on resume (the noise
 * dataset is recomputed rather than stored: it is 100 MB and takes a minute to make).
 */

import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type ColourImage,
  listPolyuPairs,
  loadColourImage,
  type PolyuPair,
  sampleColourPatch,
  splitPolyuScenes,
} from '../../src/mid/data.js';
import { midRgb } from '../../src/mid/denoise.js';
import { fillMasked, randomPixelMask } from '../../src/mid/mask.js';
import {
  buildMidNetwork,
  DEFAULT_MID_ARCHITECTURE,
  MID_MULTIPLE,
  type MidArchitecture,
} from '../../src/mid/network.js';
import {
  estimateSigmaCoarse,
  fitResidualBank,
  gaussianSampler,
  type NoiseSampler,
  type NoiseStatistics,
  noiseStatistics,
  type ResidualImage,
} from '../../src/mid/sampler.js';
import { type BackendPreference, initTfjs } from '../../src/nn/backend.js';
import { type ModelManifestInput, parseModelManifest } from '../../src/nn/manifest.js';
import { Rng } from '../../src/util/random.js';
import { type NamedArray, readTensors, writeTensors } from './tensor-file.js';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Optimizer = import('@tensorflow/tfjs').AdamOptimizer;

export interface TrainMidOptions {
  polyuDir: string;
  /** Extra clean colour photos (files), unpaired with anything. */
  extraClean: string[];
  /** Steps of each round (its length is R). */
  roundSteps: number[];
  batch: number;
  patch: number;
  /** Peak learning rate of round 0 and of the fine-tuning rounds. */
  lr: number;
  fineTuneLr: number;
  maskRatio: number;
  /** Masks averaged when computing the noise dataset and the per-round validation. */
  residualMasks: number;
  validationMasks: number;
  /** Per-round validation and the noise dataset use the centre evalCrop x evalCrop of each crop (0: whole). */
  evalCrop: number;
  out: string;
  round0Out?: string;
  checkpointDir: string;
  checkpointMinutes: number;
  seed: number;
  version: string;
  commandLine: string;
  architecture?: MidArchitecture;
  backend?: string;
  log?: (line: string) => void;
  /** Stop after this many total steps (tests). */
  stopAtStep?: number;
}

interface RoundRecord {
  round: number;
  steps: number;
  sampler: string;
  samplerSigma255?: number[];
  finalLoss: number;
  validationPsnr: number;
  validationPerImage: { name: string; psnr: number }[];
  noiseDataset: NoiseStatistics;
  samplerStatistics: NoiseStatistics;
  seconds: number;
}

interface CheckpointState {
  round: number;
  /** Steps done within `round`. */
  step: number;
  rounds: RoundRecord[];
  losses: number[];
  elapsedSeconds: number;
}

/** Linear warm-up over the first 3% of steps, then cosine decay to 2% of the peak. */
export function midLearningRate(peak: number, step: number, steps: number): number {
  const warmup = Math.max(1, Math.round(0.03 * steps));
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const t = (step - warmup) / Math.max(1, steps - warmup);
  return peak * (0.02 + 0.98 * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, t))));
}

function stepRng(seed: number, round: number, step: number): Rng {
  return new Rng(
    (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(round + 1, 0xc2b2ae35) ^ Math.imul(step + 1, 0x85ebca77)) >>>
      0,
  );
}

/** One synthetic batch: masked-and-filled noisy patches (4 channels) and their clean targets (3 channels). */
export function makeMidBatch(
  clean: ColourImage[],
  sampler: NoiseSampler,
  options: Pick<TrainMidOptions, 'batch' | 'patch' | 'maskRatio'>,
  rng: Rng,
): { input: Float32Array; target: Float32Array } {
  const { batch, patch } = options;
  const pixels = patch * patch;
  const input = new Float32Array(batch * pixels * 4);
  const target = new Float32Array(batch * pixels * 3);
  for (let b = 0; b < batch; b++) {
    const x = sampleColourPatch(clean, patch, rng);
    const n = sampler.sample(x, patch, patch, rng);
    const y = new Float32Array(x.length);
    for (let i = 0; i < y.length; i++) y[i] = x[i] + n[i];
    const mask = randomPixelMask(patch, patch, options.maskRatio, rng);
    const filled = fillMasked(y, patch, patch, 3, mask);
    target.set(x, b * pixels * 3);
    const base = b * pixels * 4;
    for (let i = 0; i < pixels; i++) {
      input[base + i * 4] = filled[i * 3];
      input[base + i * 4 + 1] = filled[i * 3 + 1];
      input[base + i * 4 + 2] = filled[i * 3 + 2];
      input[base + i * 4 + 3] = mask[i];
    }
  }
  return { input, target };
}

function psnr(x: Float32Array, xhat: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += (Math.min(1, Math.max(0, xhat[i])) - x[i]) ** 2;
  return 10 * Math.log10(1 / (sum / x.length));
}

// -------------------------------------------------------------------------------------------------------------
// Checkpoints

async function modelArrays(model: LayersModel): Promise<NamedArray[]> {
  return model.weights.map((w) => {
    const value = w.read();
    return { name: `model/${w.name}`, shape: value.shape, values: Float32Array.from(value.dataSync()) };
  });
}

async function saveDir(dir: string, arrays: NamedArray[], state: object): Promise<void> {
  const staging = `${dir}.partial`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  await writeTensors(staging, arrays);
  await writeFile(join(staging, 'state.json'), JSON.stringify(state, null, 2));
  await rm(dir, { recursive: true, force: true });
  await rename(staging, dir);
}

function setModelWeights(tf: Tf, model: LayersModel, arrays: NamedArray[]): void {
  const weights = arrays.filter((a) => a.name.startsWith('model/'));
  if (weights.length !== model.weights.length) {
    throw new Error(`checkpoint has ${weights.length} weights, the model ${model.weights.length}`);
  }
  model.setWeights(weights.map((a) => tf.tensor(a.values, a.shape)));
}

// -------------------------------------------------------------------------------------------------------------

async function exportModel(
  model: LayersModel,
  out: string,
  manifest: Omit<ModelManifestInput, 'createdAt'>,
): Promise<void> {
  await mkdir(out, { recursive: true });
  const { fileSystemIO } = await import('../../src/nn/fs-io.js');
  await model.save(fileSystemIO(out));
  const full = { ...manifest, createdAt: new Date().toISOString() };
  const parsed = parseModelManifest(full);
  if (!parsed.ok) throw new Error(`invalid manifest: ${parsed.error}`);
  await writeFile(join(out, 'manifest.json'), `${JSON.stringify(full, null, 2)}\n`);
}

/** The centre size x size of an image (the image itself when size is 0 or not smaller). */
export function centreCrop(image: ColourImage, size: number): ColourImage {
  if (size <= 0 || (size >= image.width && size >= image.height)) return image;
  const w = Math.min(size, image.width);
  const h = Math.min(size, image.height);
  const top = (image.height - h) >> 1;
  const left = (image.width - w) >> 1;
  const data = new Float32Array(w * h * 3);
  for (let r = 0; r < h; r++) {
    data.set(
      image.data.subarray(((top + r) * image.width + left) * 3, ((top + r) * image.width + left + w) * 3),
      r * w * 3,
    );
  }
  return { name: image.name, data, width: w, height: h };
}

function formatDuration(seconds: number): string {
  const m = Math.floor(seconds / 60);
  return `${m}m${String(Math.round(seconds - 60 * m)).padStart(2, '0')}s`;
}

export async function trainMid(tf: Tf, options: TrainMidOptions): Promise<void> {
  const log = options.log ?? ((line: string) => console.log(`[mid] ${line}`));
  const architecture = options.architecture ?? DEFAULT_MID_ARCHITECTURE;
  const rounds = options.roundSteps.length;

  // Data, split by scene.
  const pairs = await listPolyuPairs(options.polyuDir);
  const split = splitPolyuScenes(pairs);
  const inScenes = (scenes: string[]) => pairs.filter((p) => scenes.includes(p.scene));
  const load = (p: PolyuPair, which: 'real' | 'mean') =>
    loadColourImage(p[which], `${p.scene}_${p.crop}_${which}`);
  const noisy = (await Promise.all(inScenes(split.noisyScenes).map((p) => load(p, 'real')))).map((im) =>
    centreCrop(im, options.evalCrop),
  );
  const cleanPolyu = await Promise.all(inScenes(split.cleanScenes).map((p) => load(p, 'mean')));
  const extra = await Promise.all(options.extraClean.map((f) => loadColourImage(f, f)));
  const clean = [
    ...cleanPolyu,
    ...extra.filter((im) => im.width >= options.patch && im.height >= options.patch),
  ];
  const validationPairs = inScenes(split.validationScenes);
  const validation = await Promise.all(
    validationPairs.map(async (p) => ({
      noisy: centreCrop(await load(p, 'real'), options.evalCrop),
      mean: centreCrop(await load(p, 'mean'), options.evalCrop),
    })),
  );
  log(
    `split: ${noisy.length} noisy crops (${split.noisyScenes.length} scenes), ${clean.length} clean images ` +
      `(${cleanPolyu.length} PolyU means of ${split.cleanScenes.length} scenes + ${extra.length} photos), ` +
      `${validation.length} validation crops (${split.validationScenes.length} scenes)`,
  );

  // Reference statistics of real noise (measurement only): validation noisy - mean, on the mean.
  const reference = noiseStatistics(
    validation.map((v) => ({
      noise: v.noisy.data.map((y, i) => y - v.mean.data[i]),
      signal: v.mean.data,
      width: v.mean.width,
      height: v.mean.height,
    })),
    3,
  );
  const noisyPsnr = validation.map((v) => psnr(v.mean.data, v.noisy.data));
  const validationNoisyPsnr = noisyPsnr.reduce((a, b) => a + b, 0) / noisyPsnr.length;
  log(
    `validation noisy PSNR ${validationNoisyPsnr.toFixed(3)} dB; reference noise ${JSON.stringify(reference)}`,
  );

  // Round-0 sampler: per-channel Gaussian sigma, median over the noisy crops of estimateSigmaCoarse.
  const sigma0 = [0, 1, 2].map((c) => {
    const values = noisy
      .map((im) => {
        const plane = new Float32Array(im.width * im.height);
        for (let i = 0; i < plane.length; i++) plane[i] = im.data[i * 3 + c];
        return estimateSigmaCoarse(plane, im.width, im.height);
      })
      .sort((a, b) => a - b);
    return values[values.length >> 1];
  });
  log(`round-0 Gaussian sigma (0-255): ${sigma0.map((s) => (255 * s).toFixed(3)).join(', ')}`);

  const model = buildMidNetwork(tf, architecture, options.seed);
  const midOptions = (masks: number, seed: number) => ({
    masks,
    dropRatio: options.maskRatio,
    seed,
    multiple: MID_MULTIPLE,
  });

  const noiseDataset = async (m: LayersModel): Promise<ResidualImage[]> => {
    const out: ResidualImage[] = [];
    for (const [i, im] of noisy.entries()) {
      const { data: d } = await midRgb(tf, m, im.data, im.width, im.height, {
        ...midOptions(1, 1000 + i),
        partition: options.residualMasks,
      });
      out.push({ noise: im.data.map((y, j) => y - d[j]), signal: d, width: im.width, height: im.height });
    }
    return out;
  };

  const samplerStatistics = (sampler: NoiseSampler): NoiseStatistics => {
    const rng = new Rng(777);
    const images: ResidualImage[] = [];
    for (let i = 0; i < 48; i++) {
      const x = sampleColourPatch(clean, 128, rng);
      images.push({ noise: sampler.sample(x, 128, 128, rng), signal: x, width: 128, height: 128 });
    }
    return noiseStatistics(images, 3);
  };

  // Resume.
  let state: CheckpointState = { round: 0, step: 0, rounds: [], losses: [], elapsedSeconds: 0 };
  let optimizerArrays: NamedArray[] | null = null;
  try {
    const latest = JSON.parse(await readFile(join(options.checkpointDir, 'latest.json'), 'utf8')) as {
      dir: string;
    };
    state = JSON.parse(await readFile(join(latest.dir, 'state.json'), 'utf8')) as CheckpointState;
    const arrays = await readTensors(latest.dir);
    setModelWeights(tf, model, arrays);
    optimizerArrays = arrays.filter((a) => a.name.startsWith('optimizer/'));
    log(`resumed at round ${state.round}, step ${state.step}`);
  } catch {
    log('starting from scratch');
  }

  const runStart = performance.now();
  const elapsed = () => state.elapsedSeconds + (performance.now() - runStart) / 1000;
  const elapsedBefore = state.elapsedSeconds;
  let totalSteps = state.rounds.reduce((s, r) => s + r.steps, 0) + state.step;

  // The noise dataset made at the end of a round feeds the next round's sampler (rebuilt from the saved round
  // weights when resuming).
  let carriedDataset: ResidualImage[] | null = null;
  for (let round = state.round; round < rounds; round++) {
    const roundStart = performance.now();
    // The sampler of this round.
    let sampler: NoiseSampler;
    if (round === 0) {
      sampler = gaussianSampler(sigma0);
    } else if (carriedDataset) {
      sampler = fitResidualBank(carriedDataset, 3);
      carriedDataset = null;
      log(`round ${round}: sampler refit on the noise dataset of round ${round - 1}`);
    } else {
      const previous = buildMidNetwork(tf, architecture, options.seed);
      setModelWeights(tf, previous, await readTensors(join(options.checkpointDir, `round-${round - 1}`)));
      const t = performance.now();
      const dataset = await noiseDataset(previous);
      sampler = fitResidualBank(dataset, 3);
      previous.dispose();
      // The record of round r-1 describes the dataset this run actually fits to.
      const before = state.rounds.find((r) => r.round === round - 1);
      if (before) before.noiseDataset = noiseStatistics(dataset, 3);
      log(
        `round ${round}: sampler refit on the noise dataset of round ${round - 1} (${((performance.now() - t) / 1000).toFixed(0)} s)`,
      );
    }
    const steps = options.roundSteps[round];
    const peak = round === 0 ? options.lr : options.fineTuneLr;
    const optimizer = tf.train.adam(peak) as Optimizer;
    if (optimizerArrays && optimizerArrays.length > 0 && state.step > 0 && round === state.round) {
      // Create the optimizer's slots with a zero-rate step, then overwrite them.
      (optimizer as unknown as { learningRate: number }).learningRate = 0;
      tf.tidy(() => {
        const x = tf.zeros([1, 8, 8, 4]);
        optimizer.minimize(
          () =>
            tf.mean(model.apply(x) as import('@tensorflow/tfjs').Tensor) as import('@tensorflow/tfjs').Scalar,
        );
      });
      await optimizer.setWeights(
        optimizerArrays.map((a) => ({
          name: a.name.slice('optimizer/'.length),
          tensor: tf.tensor(a.values, a.shape),
        })),
      );
    }
    const startStep = round === state.round ? state.step : 0;
    if (round !== state.round) state.losses = [];
    let lastCheckpoint = performance.now();
    const checkpoint = async (step: number) => {
      const arrays = [
        ...(await modelArrays(model)),
        ...(await optimizer.getWeights()).map((w) => ({
          name: `optimizer/${w.name}`,
          shape: w.tensor.shape,
          values: Float32Array.from(w.tensor.dataSync()),
        })),
      ];
      const dir = join(options.checkpointDir, 'current');
      await saveDir(dir, arrays, { ...state, round, step, elapsedSeconds: elapsed() });
      await writeFile(join(options.checkpointDir, 'latest.json'), JSON.stringify({ dir, round, step }));
    };
    let recent = 0;
    let recentCount = 0;
    const stepStart = performance.now();
    for (let step = startStep; step < steps; step++) {
      (optimizer as unknown as { learningRate: number }).learningRate = midLearningRate(peak, step, steps);
      const batch = makeMidBatch(clean, sampler, options, stepRng(options.seed, round, step));
      const loss = tf.tidy(() => {
        const x = tf.tensor4d(batch.input, [options.batch, options.patch, options.patch, 4]);
        const y = tf.tensor4d(batch.target, [options.batch, options.patch, options.patch, 3]);
        const cost = optimizer.minimize(() => {
          const out = model.apply(x, { training: true }) as import('@tensorflow/tfjs').Tensor;
          return tf.mean(tf.square(tf.sub(out, y))) as import('@tensorflow/tfjs').Scalar;
        }, true);
        return cost!.dataSync()[0];
      });
      if (!Number.isFinite(loss))
        throw new Error(`loss is ${loss} at round ${round} step ${step}: lower --lr`);
      state.losses.push(loss);
      if (state.losses.length > 400) state.losses.splice(0, state.losses.length - 400);
      recent += loss;
      recentCount++;
      totalSteps++;
      const done = step + 1;
      if (done % 50 === 0 || done === steps) {
        const perStep = (performance.now() - stepStart) / 1000 / (done - startStep);
        log(
          `round ${round} step ${done}/${steps} loss ${(recent / recentCount).toExponential(3)} ` +
            `(PSNR-equivalent ${(-10 * Math.log10(recent / recentCount)).toFixed(2)} dB) ${perStep.toFixed(2)} s/step ` +
            `round ETA ${formatDuration(perStep * (steps - done))}`,
        );
        recent = 0;
        recentCount = 0;
      }
      if (options.stopAtStep !== undefined && totalSteps >= options.stopAtStep && done < steps) {
        await checkpoint(done);
        log(`stopped at round ${round} step ${done} (resume with --resume)`);
        return;
      }
      if (performance.now() - lastCheckpoint > options.checkpointMinutes * 60_000 && done < steps) {
        await checkpoint(done);
        lastCheckpoint = performance.now();
      }
    }
    optimizer.dispose();
    optimizerArrays = null;

    // End of round: keep the weights, validate, measure the noise dataset.
    await saveDir(join(options.checkpointDir, `round-${round}`), await modelArrays(model), { round });
    const perImage: { name: string; psnr: number }[] = [];
    for (const [i, v] of validation.entries()) {
      const { data } = await midRgb(
        tf,
        model,
        v.noisy.data,
        v.noisy.width,
        v.noisy.height,
        midOptions(options.validationMasks, 5000 + i),
      );
      perImage.push({
        name: `${v.mean.name.replace(/_mean$/, '')}`,
        psnr: +psnr(v.mean.data, data).toFixed(3),
      });
    }
    const validationPsnr = perImage.reduce((s, p) => s + p.psnr, 0) / perImage.length;
    const dataset = await noiseDataset(model);
    const record: RoundRecord = {
      round,
      steps,
      sampler: sampler.kind,
      ...(round === 0 && { samplerSigma255: sigma0.map((s) => +(255 * s).toFixed(3)) }),
      finalLoss: +(
        state.losses.slice(-100).reduce((a, b) => a + b, 0) / Math.min(100, state.losses.length)
      ).toExponential(4),
      validationPsnr: +validationPsnr.toFixed(3),
      validationPerImage: perImage,
      noiseDataset: noiseStatistics(dataset, 3),
      samplerStatistics: samplerStatistics(sampler),
      seconds: Math.round((performance.now() - roundStart) / 1000),
    };
    state.rounds.push(record);
    log(
      `round ${round} done: validation PSNR ${validationPsnr.toFixed(3)} dB (noisy ${validationNoisyPsnr.toFixed(3)}) ` +
        `noise dataset ${JSON.stringify(record.noiseDataset)} sampler ${JSON.stringify(record.samplerStatistics)}`,
    );

    const manifestFor = (name: string, roundsIncluded: RoundRecord[], status: string) => ({
      name,
      version: options.version,
      task: 'denoise',
      format: 'layers' as const,
      required: false,
      inputShape: [null, null, null, 4],
      valueRange: [0, 1] as [number, number],
      channels: 4,
      noiseFamily: 'real-camera',
      description:
        'MID real-noise denoiser: input = noisy RGB with a random maskRatio of pixels dropped and filled from kept ' +
        'neighbours (channels 0-2) + the keep mask (channel 3); output = clean RGB. Average over K masks.',
      architecture: {
        ...architecture,
        multiple: MID_MULTIPLE,
        inputs: 'filled RGB + keep mask (4 channels)',
        outputs: 'RGB',
        parameters: model.countParams(),
      },
      parameters: model.countParams(),
      trainingData:
        `PolyU (${options.polyuDir}) split by scene: noisy set = noisy shots of ${split.noisyScenes.length} scenes; ` +
        `clean set = means of ${split.cleanScenes.length} other scenes + ${extra.length} scikit-image colour photos; ` +
        `validation = ${split.validationScenes.length} held-out scenes. Never paired.`,
      trainingSteps: roundsIncluded.reduce((s, r) => s + r.steps, 0),
      trainingCommand: options.commandLine,
      metrics: {
        status,
        backend: options.backend ?? 'unknown',
        rounds: roundsIncluded.length,
        maskRatio: options.maskRatio,
        validationMasks: options.validationMasks,
        residualMasks: options.residualMasks,
        evalCrop: options.evalCrop,
        validationPsnr: roundsIncluded.at(-1)!.validationPsnr,
        validationNoisyPsnr: +validationNoisyPsnr.toFixed(3),
        ...Object.fromEntries(roundsIncluded.map((r) => [`validationPsnrRound${r.round}`, r.validationPsnr])),
        batch: options.batch,
        patch: options.patch,
        learningRate: options.lr,
        fineTuneLearningRate: options.fineTuneLr,
        trainingSeconds: Math.round(elapsed()),
        loss: 'MSE to the clean patch over all pixels (masked and kept)',
      },
      extra: {
        maskRatio: options.maskRatio,
        masksDefault: 4,
        split: { ...split, polyuDir: options.polyuDir, extraClean: options.extraClean },
        sampler:
          'round 0: Gaussian, per-channel sigma = median over noisy crops of estimateSigmaCoarse (scale-2 trimmed Haar RMS; the wavelet MAD gives ~0 on these JPEGs); rounds >= 1: ' +
          'residual bank (n = y - D(y) of the noisy set, normalised by a 16-bin per-channel std curve of D(y); ' +
          'sampled as random shifted/flipped patches rescaled by the curve at the clean intensity)',
        statisticsNote:
          'std per intensity bin (8 bins of [0,1], 0-255 units), lag-1 neighbour correlation, cross-channel ' +
          'correlation [R-G, G-B, R-B]; referenceRealNoise = validation noisy - mean (measured, never trained on)',
        referenceRealNoise: reference,
        rounds: roundsIncluded,
        seed: options.seed,
        validationProtocol:
          'PolyU validation crops: x = mean/255, y = noisy/255; output clipped to [0,1]; PSNR per image on the ' +
          'RGB values, no border crop; mean; masks seeded 5000 + image index; per-round figures on the centre ' +
          'evalCrop x evalCrop of each crop (CPU budget), the full crops are in bench/RESULTS.md',
      },
    });
    if (round === 0 && options.round0Out) {
      await exportModel(
        model,
        options.round0Out,
        manifestFor('mid-rgb-round0', [record], 'final (round 0 only: Gaussian sampler)'),
      );
      log(`exported ${options.round0Out}`);
    }
    await exportModel(
      model,
      options.out,
      manifestFor(
        'mid-rgb',
        state.rounds,
        round === rounds - 1 ? 'final' : `partial (round ${round + 1} of ${rounds})`,
      ),
    );
    log(
      `exported ${options.out} after round ${round} (${formatDuration(elapsed() - elapsedBefore)} this run)`,
    );
    // Only now (models exported) does the checkpoint move on to the next round.
    state.round = round + 1;
    state.step = 0;
    state.losses = [];
    await saveDir(join(options.checkpointDir, 'current'), await modelArrays(model), {
      ...state,
      elapsedSeconds: elapsed(),
    });
    await writeFile(
      join(options.checkpointDir, 'latest.json'),
      JSON.stringify({ dir: join(options.checkpointDir, 'current'), round: round + 1, step: 0 }),
    );
    carriedDataset = dataset;
  }
}

const USAGE = `usage: npm run train -- mid [--polyu-dir ../shared/data/polyu] [--extra-clean a.png,b.jpg]
  [--round-steps 500,300,300] [--batch 12] [--patch 48] [--lr 1e-3] [--fine-tune-lr 3e-4] [--mask-ratio 0.3]
  [--residual-masks 3] [--validation-masks 2] [--eval-crop 256] [--widths 16,32,64] [--out models/mid-rgb/<version>] [--round0-out models/mid-rgb-round0/<version>]
  [--checkpoint-dir checkpoints/mid-rgb] [--checkpoint-minutes 5] [--seed 1] [--version V] [--backend auto|wasm|cpu] [--resume]`;

const SKIMAGE_PHOTOS = ['astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg'].map(
  (n) => `/usr/lib/python3/dist-packages/skimage/data/${n}`,
);

export async function runMidCli(args: string[], commandLine: string): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      'polyu-dir': { type: 'string', default: '../shared/data/polyu' },
      'extra-clean': { type: 'string' },
      'round-steps': { type: 'string', default: '500,300,300' },
      batch: { type: 'string', default: '12' },
      patch: { type: 'string', default: '48' },
      lr: { type: 'string', default: '1e-3' },
      'fine-tune-lr': { type: 'string', default: '3e-4' },
      'mask-ratio': { type: 'string', default: '0.3' },
      'residual-masks': { type: 'string', default: '3' },
      'validation-masks': { type: 'string', default: '2' },
      'eval-crop': { type: 'string', default: '256' },
      widths: { type: 'string', default: '16,32,64' },
      out: { type: 'string' },
      'round0-out': { type: 'string' },
      'checkpoint-dir': { type: 'string', default: 'checkpoints/mid-rgb' },
      'checkpoint-minutes': { type: 'string', default: '5' },
      'stop-at-step': { type: 'string' },
      seed: { type: 'string', default: '1' },
      version: { type: 'string' },
      backend: { type: 'string', default: 'auto' },
      resume: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const version = values.version ?? new Date().toISOString().slice(0, 10).replaceAll('-', '');
  const roundSteps = values['round-steps'].split(',').map(Number);
  if (!roundSteps.every((s) => Number.isInteger(s) && s > 0)) throw new Error(`bad --round-steps\n${USAGE}`);
  const maskRatio = Number(values['mask-ratio']);
  if (!(maskRatio >= 0 && maskRatio < 1)) throw new Error('--mask-ratio must be in [0, 1)');
  if (!values.resume) {
    try {
      await readFile(join(values['checkpoint-dir'], 'latest.json'));
      throw new Error(`${values['checkpoint-dir']} holds a checkpoint: pass --resume, or remove it`);
    } catch (error) {
      if (error instanceof Error && /holds a checkpoint/.test(error.message)) throw error;
    }
  }
  const runtime = await initTfjs(values.backend as BackendPreference);
  await trainMid(runtime.tf, {
    polyuDir: values['polyu-dir'],
    extraClean:
      values['extra-clean'] === undefined ? SKIMAGE_PHOTOS : values['extra-clean'].split(',').filter(Boolean),
    roundSteps,
    batch: Number(values.batch),
    patch: Number(values.patch),
    lr: Number(values.lr),
    fineTuneLr: Number(values['fine-tune-lr']),
    maskRatio,
    residualMasks: Number(values['residual-masks']),
    validationMasks: Number(values['validation-masks']),
    evalCrop: Number(values['eval-crop']),
    architecture: {
      kind: 'mid-unet',
      widths: values.widths.split(',').map(Number) as [number, number, number],
    },
    out: values.out ?? `models/mid-rgb/${version}`,
    round0Out: values['round0-out'] ?? `models/mid-rgb-round0/${version}`,
    checkpointDir: values['checkpoint-dir'],
    checkpointMinutes: Number(values['checkpoint-minutes']),
    stopAtStep: values['stop-at-step'] === undefined ? undefined : Number(values['stop-at-step']),
    seed: Number(values.seed),
    version,
    commandLine,
    backend: runtime.backend,
  });
}
