/**
 * npm run train -- ddpm: a prior from one's own folder of images (any names and formats), the checks of its
 * command line, and the PyTorch command of --device cuda.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildUnet, DEFAULT_UNET, type UnetArchitecture } from '../../src/diffusion/unet.js';
import { initTfjs } from '../../src/nn/backend.js';
import { parseModelManifest } from '../../src/nn/manifest.js';
import { UsageError } from '../../tools/train/core/options.js';
import { ddpmTorchCommand, parseDdpmArgs, trainDdpm, trainDdpmCuda } from '../../tools/train/ddpm.js';
import { writeTensors } from '../../tools/train/tensor-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ddpm-cli-'));
  await mkdir(join(dir, 'photos'));
  for (const [k, name] of ['a.JPG', 'b b.png', 'c.tiff'].entries()) {
    const px = Buffer.alloc(24 * 24 * 3).map((_, i) => (i * (7 + k)) % 251);
    await sharp(px, { raw: { width: 24, height: 24, channels: 3 } }).toFile(join(dir, 'photos', name));
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('npm run train -- ddpm', () => {
  it('needs --images (no default outside the repository) and checks its options', () => {
    expect(() => parseDdpmArgs([])).toThrow(/give the training images: --images DIR/);
    expect(() => parseDdpmArgs(['--images', 'x', '--dataset', 'cifar'])).toThrow(UsageError);
    expect(() => parseDdpmArgs(['--images', 'x', '--ema-decay', '1'])).toThrow(
      /--ema-decay must be in \[0, 1\)/,
    );
    expect(() => parseDdpmArgs(['--images', 'x', '--dataset', 'fashion-mnist', '--device', 'cuda'])).toThrow(
      /natural-grey prior only/,
    );
    expect(parseDdpmArgs(['--images', './my-photos', '--out', 'models/my-prior/2'])).toMatchObject({
      dataset: 'natural-grey',
      dataDir: './my-photos',
      out: 'models/my-prior/2',
      size: 48,
      batch: 16,
      checkpointDir: 'checkpoints/ddpm-natural-grey',
    });
  });

  it('--device cuda: the PyTorch command carries the schedule, data, EMA and limits', () => {
    const cli = parseDdpmArgs([
      ...['--images', 'p', '--device', 'cuda', '--steps', '60000', '--batch', '128', '--size', '64'],
      ...['--lr', '5e-4', '--ema-decay', '0.9995', '--seed', '4', '--max-minutes', '7', '--resume'],
    ])!;
    const { python, args } = ddpmTorchCommand(cli, 'ck/images', 'ck/run');
    expect(python).toBe('python3');
    expect(args[0]).toMatch(/tools\/train\/torch\/ddpm\.py$/);
    expect(args.slice(1).join(' ')).toBe(
      '--images ck/images --out ck/run --size 64 --steps 60000 --batch 128 --lr 0.0005 --ema-decay 0.9995 ' +
        '--seed 4 --device cuda --checkpoint-seconds 300 --max-seconds 420 --resume',
    );
    const cpu = parseDdpmArgs(['--images', 'p', '--device', 'torch-cpu'])!;
    expect(ddpmTorchCommand(cpu, 'i', 'r').args.join(' ')).toMatch(/ --device cpu\b/);
    expect(() =>
      parseDdpmArgs(['--images', 'x', '--dataset', 'fashion-mnist', '--device', 'torch-cpu']),
    ).toThrow(/--device torch-cpu: the PyTorch port trains the natural-grey prior only/);
  });

  it('--device torch-cpu: the run PyTorch saves is imported with its samples, lineage on the CPU', async () => {
    const { tf } = await initTfjs('wasm');
    const out = join(dir, 'models', 'torch-prior', '1');
    const cli = parseDdpmArgs([
      ...['--images', join(dir, 'photos'), '--device', 'torch-cpu', '--steps', '3', '--size', '16'],
      ...['--samples', '2', '--sample-steps', '2', '--out', out, '--checkpoint-dir', join(dir, 'ck-torch')],
    ])!;
    const ran: string[][] = [];
    // Stands in for PyTorch: writes what tools/train/torch/ddpm.py writes (EMA weights, probe, train.json).
    const fakeTorch = async (command: { python: string; args: string[] }) => {
      ran.push(command.args);
      const runDir = command.args[command.args.indexOf('--out') + 1];
      await mkdir(runDir, { recursive: true });
      const model = buildUnet(tf, DEFAULT_UNET);
      const x = new Float32Array(2 * 48 * 48).map((_, i) => ((i % 48) - 24) / 24);
      const t = Float32Array.from([10, 500]);
      const eps = tf.tidy(() =>
        (
          model.predict([
            tf.tensor4d(x, [2, 48, 48, 1]),
            tf.tensor2d(t, [2, 1]),
          ]) as import('@tensorflow/tfjs').Tensor
        ).dataSync(),
      ) as Float32Array;
      await writeTensors(runDir, [
        ...model.weights.map((w) => ({
          name: w.originalName,
          shape: w.shape as number[],
          values: w.read().dataSync() as Float32Array,
        })),
        { name: 'probe/x', shape: [2, 48, 48, 1], values: x },
        { name: 'probe/t', shape: [2, 1], values: t },
        { name: 'probe/eps', shape: [2, 48, 48, 1], values: eps },
      ]);
      await writeFile(
        join(runDir, 'train.json'),
        JSON.stringify({
          ...{
            steps: 3,
            batch: 16,
            size: 16,
            lr: 1e-3,
            emaDecay: 0.999,
            seed: 1,
            initFrom: null,
            seconds: 1,
          },
          ...{ finalLoss: 0.5, device: 'cpu', torch: '1.13.1', log: [] },
          command: `python3 ${command.args.join(' ')}`,
          images: { source: join(dir, 'photos'), count: 3 },
        }),
      );
      model.dispose();
    };
    await trainDdpmCuda(cli, 'npm run train -- ddpm --device torch-cpu (test)', () => {}, {
      checkTorch: async () => ({ torch: '1.13.1' }),
      runTorch: fakeTorch,
    });
    expect(ran[0][ran[0].indexOf('--device') + 1]).toBe('cpu');
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
    expect(parseModelManifest(manifest).ok).toBe(true);
    expect(manifest).toMatchObject({ name: 'torch-prior', task: 'diffusion-eps', trainingSteps: 3 });
    expect(manifest.extra.samples).toMatchObject({ count: 2 });
    expect(manifest.extra.samples.sampler).toMatch(/on 2 respaced timesteps/);
    expect(manifest.extra.lineage).toBe(
      'trained from a fresh initialisation, by tools/train/torch/ddpm.py (PyTorch 1.13.1) on the CPU',
    );
  }, 60_000);

  it('trains a tiny prior on a folder of colour photos of any format and names it after --out', async () => {
    const { tf } = await initTfjs('wasm');
    const tiny: UnetArchitecture = {
      kind: 'unet-eps',
      channels: [4, 4],
      resBlocks: 1,
      timeEmbedding: 8,
      groups: 2,
      spaceToDepth: 2,
      normTwicePerBlock: false,
    };
    const cli = parseDdpmArgs([
      ...['--images', join(dir, 'photos'), '--out', join(dir, 'models', 'my-prior', '1'), '--steps', '2'],
      ...[
        '--batch',
        '2',
        '--size',
        '16',
        '--checkpoint-dir',
        join(dir, 'ck'),
        '--samples',
        '1',
        '--sample-steps',
        '2',
      ],
    ])!;
    const lines: string[] = [];
    const result = await trainDdpm(tf, {
      ...cli,
      architecture: tiny,
      commandLine: 'npm run train -- ddpm (test)',
      log: (l) => lines.push(l),
    });
    expect(result.steps).toBe(2);
    expect(lines.join('\n')).toMatch(/ddpm natural-grey step 2\/2 loss \d.* avg \d/);
    const manifest = JSON.parse(await readFile(join(cli.out, 'manifest.json'), 'utf8'));
    expect(parseModelManifest(manifest).ok).toBe(true);
    expect(manifest).toMatchObject({
      name: 'my-prior',
      version: '1',
      task: 'diffusion-eps',
      trainingSteps: 2,
    });
    expect(manifest.trainingData).toContain(join(dir, 'photos'));
    expect(manifest.extra.lineage).toMatch(/by tools\/train\/ddpm\.ts .* on the CPU/);
  }, 60_000);
});
