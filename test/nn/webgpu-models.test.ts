import { afterAll, describe, expect, it } from 'vitest';
import { classifierLogits } from '../../src/adversarial/classifier.js';
import { loadEpsAdDetector } from '../../src/adversarial/detector.js';
import { ddpmEpsNetwork, expectedPerturbationScore } from '../../src/adversarial/eps.js';
import '../../src/compute/handlers/layers.js';
import { scheduleFromManifest } from '../../src/adversarial/pipeline.js';
import { denoiseNoise2Score } from '../../src/denoise/noise2score.js';
import { predictEps } from '../../src/diffusion/unet.js';
import { releaseWebGpu } from '../../src/gpu/device.js';
import { denoiseMid } from '../../src/mid/denoise.js';
import { initTfjs } from '../../src/nn/backend.js';
import { tidyValues } from '../../src/nn/read.js';
import { loadModelFromEntry, resolveModel, scanModelRepository } from '../../src/nn/repository.js';
import { Rng } from '../../src/util/random.js';
import { repoRoot } from '../helpers.js';

// Every model family of the service on TF.js WebGPU against wasm, on tiny inputs: lavapipe (Mesa's software Vulkan
// driver) on CI and on machines without a GPU is slow, and this is a correctness check, not a benchmark. Each model
// is loaded once per backend (tensors are not shared) and runs the service's own code path; outputs agree within
// 1e-3 relative (max |webgpu - wasm| over max |wasm|). Skipped when there is no adapter, unless TEST_WEBGPU=1.
type LayersModel = import('@tensorflow/tfjs').LayersModel;

const runtime = await initTfjs('webgpu');
const { tf } = runtime;
const onGpu = runtime.backend === 'webgpu';
if (onGpu) {
  await import('@tensorflow/tfjs-backend-wasm');
}
afterAll(releaseWebGpu);

const entries = await scanModelRepository(`${repoRoot}/models`);

async function load(name: string) {
  const entry = resolveModel(entries, name);
  if (!entry?.manifest) throw new Error(`model ${name} not found`);
  const model = await loadModelFromEntry<LayersModel>(tf, entry.dir, entry.manifest);
  return { model, manifest: entry.manifest, dir: entry.dir };
}

/** Runs `fn` with model `name` loaded on each backend; returns {wasm, webgpu} outputs. */
async function onBoth<T>(name: string, fn: (loaded: Awaited<ReturnType<typeof load>>) => Promise<T>) {
  const out = {} as { wasm: T; webgpu: T };
  for (const backend of ['wasm', 'webgpu'] as const) {
    expect(await tf.setBackend(backend)).toBe(true);
    const loaded = await load(name);
    try {
      out[backend] = await fn(loaded);
    } finally {
      loaded.model.dispose();
    }
  }
  await tf.setBackend('webgpu');
  return out;
}

function expectClose(webgpu: ArrayLike<number>, wasm: ArrayLike<number>, tolerance = 1e-3) {
  expect(webgpu.length).toBe(wasm.length);
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < wasm.length; i++) {
    scale = Math.max(scale, Math.abs(wasm[i]));
    diff = Math.max(diff, Math.abs(webgpu[i] - wasm[i]));
  }
  expect(Number.isFinite(diff)).toBe(true);
  expect(diff / Math.max(scale, 1e-6)).toBeLessThanOrEqual(tolerance);
}

/** A smooth test image in [0.1, 0.9] with noise, interleaved channels. */
function noisyImage(width: number, height: number, channels: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const noise = rng.fillNormal(new Float32Array(width * height * channels));
  const out = new Float32Array(width * height * channels);
  for (let r = 0; r < height; r++)
    for (let c = 0; c < width; c++)
      for (let k = 0; k < channels; k++) {
        const i = (r * width + c) * channels + k;
        const clean = 0.5 + 0.4 * Math.sin((r + 2 * k) / 5) * Math.cos(c / 7);
        out[i] = Math.min(1, Math.max(0, clean + 0.05 * noise[i]));
      }
  return out;
}

describe.skipIf(!onGpu && process.env.TEST_WEBGPU !== '1')(
  'models on webgpu equal wasm (within 1e-3)',
  () => {
    it('runs on a webgpu adapter', () => {
      expect(runtime.backend).toBe('webgpu');
      expect(runtime.adapter?.description).toBeTruthy();
    });

    for (const family of ['gaussian', 'poisson', 'gamma'] as const) {
      it(`noise2score-${family}: the denoised image`, async () => {
        const image = { data: noisyImage(32, 32, 1, 1), width: 32, height: 32, channels: 1 };
        const out = await onBoth(`noise2score-${family}`, async ({ model, manifest }) => {
          const multiple = (manifest.architecture as { multiple?: number }).multiple ?? 8;
          return (await denoiseNoise2Score(tf, model, image, { noise: family, level: 'auto', multiple }))
            .data;
        });
        expectClose(out.webgpu, out.wasm);
      }, 120_000);
    }

    it('mid-rgb: the denoised image over K = 2 masks', async () => {
      const image = { data: noisyImage(32, 32, 3, 2), width: 32, height: 32, channels: 3 };
      const out = await onBoth('mid-rgb', async ({ model }) => {
        return (await denoiseMid(tf, model, image, { masks: 2, dropRatio: 0.3, seed: 3 })).data;
      });
      expectClose(out.webgpu, out.wasm);
    }, 120_000);

    for (const name of ['ddpm-fashion-mnist', 'ddpm-natural-grey']) {
      it(`${name}: the predicted noise at t = 500`, async () => {
        const x = Float32Array.from(noisyImage(32, 32, 1, 4), (v) => 2 * v - 1);
        const out = await onBoth(name, async ({ model }) =>
          tidyValues(tf, () => predictEps(tf, model, tf.tensor4d(x, [1, 32, 32, 1]), 500)),
        );
        expectClose(out.webgpu, out.wasm);
      }, 120_000);
    }

    it('eps-ad-fashion-mnist: EPS of two images through the DDPM prior, and their detector scores', async () => {
      const images = {
        data: noisyImage(28, 28, 1, 5).slice(0, 28 * 28),
        count: 1,
        height: 28,
        width: 28,
        channels: 1,
      };
      const two = {
        ...images,
        data: Float32Array.from([...images.data, ...noisyImage(28, 28, 1, 6)]),
        count: 2,
      };
      const eps = await onBoth('ddpm-fashion-mnist', async ({ model, manifest }) => {
        const schedule = scheduleFromManifest(manifest.extra);
        return (
          await expectedPerturbationScore(tf, ddpmEpsNetwork(tf, model), schedule, two, { timesteps: 2 })
        ).eps;
      });
      expectClose(eps.webgpu, eps.wasm);
      // The detector on the same (wasm) EPS, so that only the kernel network's backend differs.
      const scores = await onBoth('eps-ad-fashion-mnist', async ({ model, dir }) => {
        const detector = await loadEpsAdDetector(tf, dir, model);
        try {
          return await detector.scores(eps.wasm, 2);
        } finally {
          detector.dispose();
        }
      });
      expectClose(scores.webgpu, scores.wasm);
    }, 180_000);

    it('classifier-fashion-mnist: the logits of four images', async () => {
      const x = new Float32Array(4 * 28 * 28);
      for (let i = 0; i < 4; i++) x.set(noisyImage(28, 28, 1, 10 + i), i * 28 * 28);
      const out = await onBoth('classifier-fashion-mnist', async ({ model }) =>
        tidyValues(tf, () => classifierLogits(tf, model, tf.tensor4d(x, [4, 28, 28, 1]))),
      );
      expectClose(out.webgpu, out.wasm);
    }, 120_000);

    it('tf.memory() stays flat over repeated inferences (Noise2Score, MID)', async () => {
      await tf.setBackend('webgpu');
      const n2s = await load('noise2score-gaussian');
      const mid = await load('mid-rgb');
      const grey = { data: noisyImage(32, 32, 1, 7), width: 32, height: 32, channels: 1 };
      const rgb = { data: noisyImage(32, 32, 3, 8), width: 32, height: 32, channels: 3 };
      const once = async () => {
        await denoiseNoise2Score(tf, n2s.model, grey, { noise: 'gaussian', level: 'auto', multiple: 8 });
        await denoiseMid(tf, mid.model, rgb, { masks: 2, dropRatio: 0.3, seed: 1 });
      };
      try {
        await once(); // warm-up: shader compilation, buffer pools
        const before = tf.memory();
        for (let i = 0; i < 10; i++) await once();
        const after = tf.memory();
        expect(after.numTensors).toBe(before.numTensors);
        expect(after.numBytes).toBe(before.numBytes);
      } finally {
        n2s.model.dispose();
        mid.model.dispose();
      }
    }, 120_000);
  },
);
