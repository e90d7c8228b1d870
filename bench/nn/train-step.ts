/**
 * Training-step time of a small conv net (3 conv layers, 32 channels, batch 32 of 40x40 grey, Adam, MSE)
 * on: wasm with our gradient kernels; wasm with its stock input-gradient kernel (and our filter gradient);
 * stock wasm (no filter-gradient kernel at all); and the pure-JS cpu backend.
 *
 * Run: npx tsx bench/nn/train-step.ts [--steps N]   (writes the nn section of bench/RESULTS.md)
 */
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmGradKernels, unregisterWasmGradKernels } from '../../src/nn/wasm-grad-kernels.js';

const BATCH = 32;
const SIZE = 40;
const CHANNELS = 32;
const stepsArg = process.argv.indexOf('--steps');
const STEPS = stepsArg > 0 ? Number(process.argv[stepsArg + 1]) : 5;
const RESULTS_FILE = new URL('../RESULTS.md', import.meta.url);

function buildModel(): tf.LayersModel {
  const model = tf.sequential();
  model.add(
    tf.layers.conv2d({
      inputShape: [SIZE, SIZE, 1],
      filters: CHANNELS,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
    }),
  );
  model.add(tf.layers.conv2d({ filters: CHANNELS, kernelSize: 3, padding: 'same', activation: 'relu' }));
  model.add(tf.layers.conv2d({ filters: 1, kernelSize: 3, padding: 'same' }));
  return model;
}

interface Timing {
  variant: string;
  backend: string;
  stepsMs: number[];
  error?: string;
  /** Set when the step did not use the full batch, so it is not compared with the reference. */
  batch?: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function timeTrainingSteps(
  variant: string,
  backend: string,
  steps: number,
  warmUp = true,
  batch = BATCH,
): Promise<Timing> {
  await tf.setBackend(backend);
  const model = buildModel();
  const optimizer = tf.train.adam(1e-3);
  const clean = tf.randomUniform([batch, SIZE, SIZE, 1], 0, 1, 'float32', 1);
  const noisy = tf.tidy(() => tf.add(clean, tf.randomNormal(clean.shape, 0, 0.1, 'float32', 2)));
  const step = () => {
    const loss = optimizer.minimize(
      () => tf.losses.meanSquaredError(clean, model.apply(noisy) as tf.Tensor) as tf.Scalar,
      true,
    );
    loss?.dataSync();
    loss?.dispose();
  };
  const stepsMs: number[] = [];
  try {
    if (warmUp) {
      console.error(`${variant}: warm-up step`);
      step(); // kernel setup, weight packing, optimizer slots
    }
    for (let i = 0; i < steps; i++) {
      const start = performance.now();
      step();
      stepsMs.push(performance.now() - start);
    }
    console.error(`${variant}: ${stepsMs.map((ms) => ms.toFixed(0)).join(', ')} ms`);
    return { variant, backend, stepsMs };
  } catch (error) {
    return { variant, backend, stepsMs, error: error instanceof Error ? error.message : String(error) };
  } finally {
    model.dispose();
    optimizer.dispose();
    clean.dispose();
    noisy.dispose();
  }
}

function machineDescription(): string {
  const cpus = os.cpus();
  return [
    `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} logical cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    `Node ${process.version}, ${os.platform()} ${os.release()}`,
    `@tensorflow/tfjs ${tf.version.tfjs}; wasm SIMD ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}, ` +
      `wasm threads ${tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')}`,
  ].join('; ');
}

function formatRow(t: Timing, reference?: number): string {
  if (t.error) return `| ${t.variant} | ${t.backend} | failed: \`${t.error.replace(/\|/g, '\\|')}\` | | |`;
  const m = median(t.stepsMs);
  const speedup =
    t.batch !== undefined && t.batch !== BATCH
      ? `(batch ${t.batch})`
      : reference !== undefined
        ? `${(m / reference).toFixed(1)}x slower`
        : 'reference';
  return `| ${t.variant} | ${t.backend} | ${m.toFixed(0)} ms | ${t.stepsMs.length} | ${speedup} |`;
}

async function writeSection(body: string): Promise<void> {
  const begin = '<!-- nn:begin -->';
  const end = '<!-- nn:end -->';
  const section = `${begin}\n${body}\n${end}`;
  // Read-modify-write in one go: other benchmarks write their own sections of the same file.
  let current = '';
  try {
    current = await readFile(RESULTS_FILE, 'utf8');
  } catch {
    current = '# Benchmark results\n';
  }
  const start = current.indexOf(begin);
  const stop = current.indexOf(end);
  const next =
    start >= 0 && stop > start
      ? current.slice(0, start) + section + current.slice(stop + end.length)
      : `${current.trimEnd()}\n\n${section}\n`;
  await writeFile(RESULTS_FILE, next);
}

async function main(): Promise<void> {
  await tf.setBackend('wasm');
  const stockInputGradient = tf.getKernel('Conv2DBackpropInput', 'wasm');
  const timings: Timing[] = [];

  registerWasmGradKernels(tf);
  timings.push(await timeTrainingSteps('wasm + our Conv2DBackpropInput/Filter kernels', 'wasm', STEPS));

  // Our filter gradient with wasm's stock input gradient: isolates the input-gradient speed-up.
  tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
  tf.registerKernel(stockInputGradient);
  timings.push(await timeTrainingSteps('wasm stock input grad + our filter grad', 'wasm', 1));

  unregisterWasmGradKernels(tf);
  timings.push(await timeTrainingSteps('wasm stock (no filter-gradient kernel)', 'wasm', 1));

  // The pure-JS backend needs well over 10 minutes for one batch-32 step on a shared 2-core machine, so time one
  // cold step at batch 2 and scale by 16 (every conv and its gradients cost time linear in the batch).
  const cpuBatch = 2;
  const cpu = await timeTrainingSteps(`cpu backend (pure JS), batch ${cpuBatch}`, 'cpu', 1, false, cpuBatch);
  timings.push({ ...cpu, batch: cpuBatch });
  if (!cpu.error) {
    timings.push({
      variant: `cpu backend, batch ${BATCH} (batch-${cpuBatch} step x ${BATCH / cpuBatch}, extrapolated)`,
      backend: 'cpu',
      stepsMs: cpu.stepsMs.map((ms) => (ms * BATCH) / cpuBatch),
    });
  }

  const reference = timings[0].error ? undefined : median(timings[0].stepsMs);
  const rows = timings.map((t, i) => formatRow(t, i === 0 ? undefined : reference));
  const body = [
    '## nn: conv-net training step (bench/nn/train-step.ts)',
    '',
    `3 conv layers (1->32->32->1, 3x3, same, relu), batch ${BATCH} of ${SIZE}x${SIZE} grey, Adam, MSE;`,
    'median time of one optimizer step after one warm-up step (cpu: a single cold step).',
    `Machine: ${machineDescription()}. Measured ${new Date().toISOString()}; the cores may be shared with other work.`,
    '',
    '| variant | backend | median step | steps | vs ours |',
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n');
  console.log(body);
  await writeSection(body);
}

await main();
