/**
 * `npx tsx bench/device-memory.ts [--backend wasm|webgpu|cpu]`: the device-memory model of every served network, as
 * a compute worker measures it for GPU_MEMORY_BUDGET_MB (src/nn/batcher.ts: tf.profile peak bytes above what was
 * allocated, at two sizes, linear in input pixels n x h x w; at three, quadratic, for the EPS-AD kernel), printed as
 * fixed bytes, bytes per input pixel (and per squared input pixel) and weight bytes, per model and use. The figures
 * recorded in src/nn/batcher.ts's module note come from this script.
 */
import path from 'node:path';
import { loadEpsAdDetector } from '../src/adversarial/detector.js';
import { epsMemoryProbe } from '../src/adversarial/eps.js';
import { redDiffMemoryProbe } from '../src/diffusion/restore-pipeline.js';
import { schedulerFor } from '../src/diffusion/scheduler.js';
import { type BackendPreference, initTfjs } from '../src/nn/backend.js';
import { type MemoryProbe, measuredBytesPerPixel } from '../src/nn/batcher.js';
import { diffusionSection, extraSection } from '../src/nn/manifest-sections.js';
import { getModel } from '../src/nn/repository.js';
import '../src/compute/handlers/layers.js';

const args = process.argv.slice(2);
const at = args.indexOf('--backend');
const backend = (at >= 0 ? args[at + 1] : 'wasm') as BackendPreference;
const modelsDir = path.resolve('models');
const { tf, backend: active } = await initTfjs(backend);

const rows: {
  model: string;
  use: string;
  channels: number;
  fixed: number;
  perPixel: number;
  perPixelSquared: number;
  weights: number;
}[] = [];
async function measure(model: string, use: string, channels: number, probe?: (m: any) => MemoryProbe) {
  const loaded = await getModel(tf, modelsDir, model);
  const m = await measuredBytesPerPixel(tf, loaded.model, channels, probe?.(loaded));
  rows.push({ model: `${loaded.name}@${loaded.version}`, use, channels, ...m });
}

for (const name of ['noise2score-gaussian', 'noise2score-poisson', 'noise2score-gamma'])
  await measure(name, 'predict (Noise2Score window)', 1);
await measure('mid-rgb', 'predict (MID window)', 4);
for (const name of ['ddpm-fashion-mnist', 'ddpm-natural-grey']) {
  await measure(name, 'RED-Diff step', 1, (loaded) =>
    redDiffMemoryProbe(
      tf,
      loaded.model,
      schedulerFor(loaded.manifest, extraSection(diffusionSection, loaded.manifest).schedule),
    ),
  );
}
await measure('ddpm-fashion-mnist', 'EPS-AD batch of perturbations', 1, (loaded) =>
  epsMemoryProbe(tf, loaded.model),
);
const phi = await getModel(tf, modelsDir, 'eps-ad-fashion-mnist');
const detector = await loadEpsAdDetector(tf, phi.dir, phi.model);
await measure('eps-ad-fashion-mnist', 'EPS-AD deep kernel + MMD', 1, () => detector.memoryProbe());
// The attack benchmark's classifier (no route runs it): fixed 28x28 inputs, so measured at batches of 1 and 16.
await measure('classifier-fashion-mnist', 'predict (not served)', 1, (loaded) => ({
  name: 'predict-28',
  shapes: (c) => [
    [1, 28, 28, c],
    [16, 28, 28, c],
  ],
  run: (shape) => tf.tidy(() => loaded.model.predict(tf.zeros(shape))),
}));

console.log(`backend ${active}`);
console.log('| model | use | fixed (KB) | bytes per input pixel | weights (MB) |');
console.log('|---|---|---:|---:|---:|');
for (const r of rows)
  console.log(
    `| ${r.model} | ${r.use} | ${(r.fixed / 1024).toFixed(0)} | ${r.perPixel.toFixed(0)}${r.perPixelSquared > 0 ? ` + ${r.perPixelSquared.toExponential(3)} x pixels` : ''} | ${(r.weights / 2 ** 20).toFixed(2)} |`,
  );
