/**
 * The training core of tools/train/core: the loop's stops and its refusal of a non-finite loss, the progress
 * lines (never NaN or Infinity as a number), checkpoints (atomic, the two newest kept, resumable), the schedules,
 * the shared options and the model folder export.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initTfjs } from '../../src/nn/backend.js';
import {
  assertSameSettings,
  modelArrays,
  openCheckpoint,
  optimizerArrays,
  readCheckpoint,
  restoreOptimizer,
  setModelArrays,
  writeCheckpoint,
} from '../../tools/train/core/checkpoint.js';
import { lineageText, modelIdFromOut, trainedManifest } from '../../tools/train/core/export.js';
import { runLoop, runTraining, TrainingDiverged } from '../../tools/train/core/loop.js';
import { COMMON_OPTIONS, commonOptions, parseOptions, UsageError } from '../../tools/train/core/options.js';
import { createProgress, formatFigure } from '../../tools/train/core/progress.js';
import { geometric, linearDecay, stepRng, warmupCosine } from '../../tools/train/core/schedules.js';

type Tensor = import('@tensorflow/tfjs').Tensor;
type Scalar = import('@tensorflow/tfjs').Scalar;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'train-core-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function plainProgress(lines: string[], total: number, start = 0, every = 2) {
  return createProgress({ label: 'test', total, start, every, tty: false, print: (l) => lines.push(l) });
}

describe('runLoop', () => {
  it('runs to the end, averaging the loss over each printed window, with an ETA', async () => {
    const lines: string[] = [];
    const checkpoints: number[] = [];
    const result = await runLoop({
      startStep: 0,
      steps: 4,
      checkpointMinutes: 100,
      checkpointDir: 'ck',
      progress: plainProgress(lines, 4),
      step: (step) => ({ loss: step + 1, fields: { psnr: { value: 20 + step, unit: 'dB' } } }),
      checkpoint: async (done) => {
        checkpoints.push(done);
      },
    });
    expect(result).toEqual({ done: 4, reason: 'done', losses: [1, 2, 3, 4] });
    expect(checkpoints).toEqual([]); // the family exports at the end
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^test step 2\/4 loss 1\.5000 psnr 21\.00 dB .* s\/step ETA \dm\d\ds$/);
    expect(lines[1]).toMatch(/step 4\/4 loss 3\.5000/);
  });

  it('stops at --stop-at-step and at --max-minutes with a checkpoint, and checkpoints every N minutes', async () => {
    let clock = 0;
    const checkpoints: number[] = [];
    const base = {
      startStep: 2,
      steps: 100,
      checkpointDir: 'ck',
      now: () => clock,
      step: () => {
        clock += 30_000; // half a minute per step
        return { loss: 1 };
      },
      checkpoint: async (done: number) => {
        checkpoints.push(done);
      },
    };
    const stop = await runLoop({
      ...base,
      stopAtStep: 5,
      checkpointMinutes: 100,
      progress: plainProgress([], 100, 2),
    });
    expect(stop).toMatchObject({ done: 5, reason: 'stop-at-step' });
    expect(checkpoints).toEqual([5]);
    checkpoints.length = 0;
    const timed = await runLoop({
      ...base,
      maxMinutes: 3,
      checkpointMinutes: 1,
      progress: plainProgress([], 100, 2),
    });
    expect(timed).toMatchObject({ done: 8, reason: 'time-limit' });
    expect(checkpoints).toEqual([4, 6, 8]);
  });

  it('a NaN or Infinity loss stops the run without a checkpoint and names the last good one', async () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const lines: string[] = [];
      const checkpoints: number[] = [];
      let clock = 0;
      const run = runLoop({
        startStep: 0,
        steps: 50,
        checkpointMinutes: 1,
        checkpointDir: 'checkpoints/x',
        now: () => clock,
        progress: plainProgress(lines, 50, 0, 1),
        step: (step) => {
          clock += 40_000;
          return { loss: step < 5 ? 1 / (step + 1) : bad };
        },
        checkpoint: async (done) => {
          checkpoints.push(done);
        },
      });
      const error = await run.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TrainingDiverged);
      expect((error as TrainingDiverged).code).toBe('TRAINING_DIVERGED');
      expect((error as Error).message).toMatch(
        new RegExp(
          `loss is ${String(bad)} at step 6 .*last good checkpoint \\(step 4\\) is kept in checkpoints/x`,
        ),
      );
      expect(checkpoints).toEqual([2, 4]);
      expect(lines.join('\n')).not.toMatch(/NaN|Infinity/);
    }
  });
});

describe('runTraining', () => {
  it('runs the loop with plain lines and writes the family state with the step and the seconds', async () => {
    const lines: string[] = [];
    const ck = join(dir, 'ck-training');
    const options = {
      steps: 5,
      stopAtStep: 2,
      checkpointMinutes: 60,
      checkpointDir: ck,
      log: (l: string) => lines.push(l),
    };
    const result = await runTraining({
      ...{ label: 'fam', options, startStep: 0, elapsedBefore: 100 },
      step: (step) => ({ loss: 1 / (step + 1) }),
      snapshot: async () => ({
        arrays: [{ name: 'w', shape: [1], values: Float32Array.of(7) }],
        state: { own: 'x' },
      }),
    });
    expect(result).toMatchObject({ done: 2, reason: 'stop-at-step', losses: [1, 0.5] });
    expect(result.seconds).toBeGreaterThanOrEqual(100);
    expect(lines).toEqual(['checkpoint step 2', 'stopped at step 2 of 5 (continue with --resume)']);
    const saved = await readCheckpoint<{ step: number; elapsedSeconds: number; own: string }>(ck);
    expect(saved?.state).toMatchObject({ step: 2, own: 'x' });
    expect(saved?.state.elapsedSeconds).toBeGreaterThanOrEqual(100);
    expect(Array.from(saved!.arrays[0].values)).toEqual([7]);
  });
});

describe('progress', () => {
  it('never prints a non-finite figure as a number: n/a with the reason', () => {
    expect(formatFigure(Number.NaN, 4, 'no references')).toBe('n/a (no references: NaN)');
    expect(formatFigure(-Infinity)).toBe('n/a (not a finite number: -Infinity)');
    expect(formatFigure(0.000123)).toBe('1.230e-4');
    const lines: string[] = [];
    const progress = plainProgress(lines, 2, 0, 1);
    progress.update(1, 0.5, {
      ratio: Number.NaN,
      psnr: { value: Infinity, unit: 'dB', why: 'identical images' },
    });
    expect(lines[0]).toMatch(
      /ratio n\/a \(not a finite number: NaN\) psnr n\/a \(identical images: Infinity\)/,
    );
    expect(lines[0]).not.toMatch(/dB/);
  });
});

describe('progress bar (a terminal)', () => {
  it('draws the bar with the step, the ETA of this run and the figures, NaN-free', async () => {
    const { PassThrough } = await import('node:stream');
    const stream = Object.assign(new PassThrough(), { isTTY: true, columns: 200 });
    let text = '';
    stream.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
    });
    let clock = 0;
    const progress = createProgress({ label: 'tty', total: 10, start: 4, stream, now: () => clock });
    clock = 2000;
    progress.update(5, 0.25, { psnr: { value: Number.NaN, unit: 'dB', why: 'no references' } });
    progress.log('a checkpoint line');
    progress.stop();
    // Without the terminal's escape sequences (ESC [ ... letter).
    const plain = text.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g'), '');
    expect(plain).toMatch(
      /tty \[[^\]]+\] 5\/10 ETA 0m10s 2\.000 s\/step loss 0\.25000 psnr n\/a \(no references: NaN\)/,
    );
    expect(plain).toContain('a checkpoint line');
  });
});

describe('checkpoints', () => {
  it('keeps the two newest, points latest.json at the newest, and reads it back', async () => {
    const ck = join(dir, 'ck');
    for (const step of [10, 20, 30]) {
      const values = Float32Array.from([step, step + 1]);
      await writeCheckpoint(ck, [{ name: 'model/w', shape: [2], values }], {
        step,
        elapsedSeconds: step / 10,
      });
    }
    expect((await readdir(ck)).sort()).toEqual(['latest.json', 'step-0000020', 'step-0000030']);
    const back = await readCheckpoint<{ step: number; elapsedSeconds: number }>(ck);
    expect(back?.state).toEqual({ step: 30, elapsedSeconds: 3 });
    expect(Array.from(back!.arrays[0].values)).toEqual([30, 31]);
    expect(await readCheckpoint(join(dir, 'none'))).toBeNull();
  });

  it('opens the checkpoint to resume, refuses to start over one, and to resume with other settings', async () => {
    const ck = join(dir, 'ck-open');
    const lines: string[] = [];
    expect(await openCheckpoint(ck, true, (l) => lines.push(l))).toBeNull();
    expect(lines).toEqual([`no checkpoint in ${ck}; starting from scratch`]);
    await writeCheckpoint(ck, [], { step: 4, elapsedSeconds: 1 });
    await expect(openCheckpoint(ck, false, () => {})).rejects.toThrow(/holds a checkpoint: pass --resume/);
    expect((await openCheckpoint(ck, true, (l) => lines.push(l)))?.state.step).toBe(4);
    expect(lines[1]).toBe(`resumed from step 4 (${ck})`);
    expect(() => assertSameSettings(ck, { seed: 1, batch: 8 }, { seed: 1, batch: 8 })).not.toThrow();
    expect(() => assertSameSettings(ck, { seed: 1, batch: 8 }, { seed: 1, batch: 4 })).toThrow(
      new UsageError(
        `the checkpoint in ${ck} was made with batch 8, not batch 4: resume with the same settings`,
      ),
    );
  });

  it('Adam restored from a checkpoint continues bit for bit (moments, iterations, running powers)', async () => {
    const { tf } = await initTfjs('wasm');
    const x = tf.tensor2d(
      Float32Array.from({ length: 32 }, (_, i) => Math.sin(i)),
      [8, 4],
    );
    const y = tf.tensor2d(
      Float32Array.from({ length: 16 }, (_, i) => Math.cos(i)),
      [8, 2],
    );
    const build = () => {
      const model = tf.sequential();
      model.add(
        tf.layers.dense({
          units: 2,
          inputShape: [4],
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
      );
      return { model, optimizer: tf.train.adam(0.01) };
    };
    const train = (run: ReturnType<typeof build>, steps: number) => {
      for (let s = 0; s < steps; s++)
        tf.tidy(() => {
          run.optimizer.minimize(() => tf.losses.meanSquaredError(y, run.model.apply(x) as Tensor) as Scalar);
        });
    };
    const whole = build();
    train(whole, 30);
    // Stopped at step 25 (beta2^26 by pow() differs from the running product there), resumed in a new network.
    const first = build();
    train(first, 25);
    const arrays = [...modelArrays(first.model), ...(await optimizerArrays(first.optimizer))];
    const resumed = build();
    setModelArrays(tf, resumed.model, arrays);
    await restoreOptimizer(
      tf,
      resumed.optimizer,
      arrays,
      () => tf.mean(resumed.model.apply(x) as Tensor) as Scalar,
    );
    train(resumed, 5);
    const weights = (run: ReturnType<typeof build>) =>
      modelArrays(run.model).map((a) => Array.from(a.values));
    expect(weights(resumed)).toEqual(weights(whole));
    tf.dispose([x, y]);
  });
});

describe('schedules', () => {
  it('the step stream depends on seed, step and round only', () => {
    expect(stepRng(3, 7).uniform()).toBe(stepRng(3, 7).uniform());
    expect(stepRng(3, 7).uniform()).not.toBe(stepRng(3, 8).uniform());
    expect(stepRng(3, 7, 0).uniform()).not.toBe(stepRng(3, 7, 1).uniform());
  });

  it('warm-up then cosine to the floor; geometric annealing between its ends', () => {
    const shape = { warmupFraction: 0.1, floor: 0.1 };
    expect(warmupCosine(1, 0, 100, shape)).toBeCloseTo(0.1);
    expect(warmupCosine(1, 9, 100, shape)).toBeCloseTo(1);
    expect(warmupCosine(1, 99, 100, shape)).toBeCloseTo(
      0.1 + 0.9 * 0.5 * (1 + Math.cos((Math.PI * 89) / 90)),
    );
    expect(warmupCosine(1, 5, 1000, { ...shape, maxWarmup: 10 })).toBeCloseTo(0.6);
    expect(geometric(1, 0.01, 0, 3)).toBe(1);
    expect(geometric(1, 0.01, 1, 3)).toBeCloseTo(0.1);
    expect(geometric(1, 0.01, 2, 3)).toBeCloseTo(0.01);
    expect(linearDecay(2, 0, 10, 0.1)).toBe(2);
    expect(linearDecay(2, 5, 10, 0.1)).toBeCloseTo(1.1);
    expect(linearDecay(2, 10, 10, 0.1)).toBeCloseTo(0.2);
  });
});

describe('options and export', () => {
  it('checks the shared options and names the default out and checkpoint folders after the model', () => {
    const values = parseOptions(['--steps', '10', '--resume'], COMMON_OPTIONS, 'usage');
    const common = commonOptions(values, { name: 'noise2score-gaussian', steps: 5, batch: 4, lr: 1e-3 });
    expect(common).toMatchObject({
      steps: 10,
      batch: 4,
      resume: true,
      device: 'cpu',
      checkpointDir: 'checkpoints/noise2score-gaussian',
    });
    expect(common.out).toMatch(/^models\/noise2score-gaussian\/\d{8}$/);
    expect(() => parseOptions(['--stepz', '1'], COMMON_OPTIONS, 'usage')).toThrow(UsageError);
    expect(() => commonOptions({ steps: '-1' }, { name: 'x', steps: 1, batch: 1, lr: 1 })).toThrow(
      /--steps must be a positive integer/,
    );
    expect(() => commonOptions({ device: 'tpu' }, { name: 'x', steps: 1, batch: 1, lr: 1 })).toThrow(
      /--device must be one of cpu, cuda, torch-cpu, got 'tpu'/,
    );
  });

  it('the model folder names the model: <models dir>/<name>/<version>', () => {
    expect(modelIdFromOut('models/my-denoiser/1')).toEqual({ name: 'my-denoiser', version: '1' });
    expect(() => modelIdFromOut('models/My Denoiser/1')).toThrow(/model name 'My Denoiser'/);
  });

  it('the manifest carries data, command and lineage (text for people, record for tools)', () => {
    const lineage = {
      trainer: 'tools/train/x.ts',
      device: 'cpu' as const,
      initialisedFrom: 'models/a/1',
      resumedFrom: { checkpointDir: 'ck', step: 3 },
    };
    const manifest = trainedManifest(
      { out: 'models/tiny/2', data: 'my-noisy (noisy only)', command: 'npm run train -- x', lineage },
      {
        task: 'denoise',
        format: 'layers',
        inputShape: [null, null, null, 1],
        valueRange: [0, 1],
        channels: 1,
        architecture: 'x',
        parameters: 1,
        trainingSteps: 3,
        metrics: { validationPsnr: 30 },
      },
    );
    expect(manifest).toMatchObject({
      name: 'tiny',
      version: '2',
      trainingData: 'my-noisy (noisy only)',
      trainingCommand: 'npm run train -- x',
    });
    expect(manifest.extra?.lineage).toBe(lineageText(lineage));
    expect(manifest.extra?.lineage).toBe(
      'fine-tuned from models/a/1, by tools/train/x.ts on the CPU, resumed at step 3 from ck',
    );
    expect(manifest.extra?.lineageDetail).toEqual(lineage);
  });
});
