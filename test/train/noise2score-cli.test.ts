/**
 * The noise2score command line: its checks, and the `--device cuda` plumbing without PyTorch (the command line
 * given to the PyTorch port, the refusal when torch is missing, and the one-step import of a saved run into --out
 * with the same manifest as a CPU run).
 */
import { spawnSync } from 'node:child_process';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildScoreNetwork } from '../../src/denoise/network.js';
import { initTfjs } from '../../src/nn/backend.js';
import { parseModelManifest } from '../../src/nn/manifest.js';
import { UsageError } from '../../tools/train/core/options.js';
import { loadGreyImages } from '../../tools/train/data.js';
import {
  noise2scoreTorchCommand,
  parseNoise2ScoreArgs,
  trainNoise2ScoreCuda,
} from '../../tools/train/noise2score-cli.js';
import { writeTensors } from '../../tools/train/tensor-file.js';
import { packImages } from '../../tools/train/torch/pack-images.js';
import { checkTorch, TorchUnavailable, torchDeviceArg, usesTorch } from '../../tools/train/torch/run.js';
import { repoRoot } from '../helpers.js';

/** The PyTorch (CPU) of `npm run check:torch`, when this machine has it: the Python half of a test is skipped else. */
const TORCH_PYTHON = '/usr/bin/python3';
const hasTorch = spawnSync(TORCH_PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'n2s-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('pack-images (the images PyTorch trains on)', () => {
  it('packs images of different sizes, zero-padded to the largest, with the size of each', async () => {
    const folder = join(dir, 'mixed');
    await mkdir(folder, { recursive: true });
    const shapes: [number, number][] = [
      [24, 16],
      [16, 20],
      [24, 20],
    ];
    for (const [k, [width, height]] of shapes.entries())
      await sharp(Buffer.alloc(width * height, 10 + 100 * k), { raw: { width, height, channels: 1 } })
        .png()
        .toFile(join(folder, `m${k}.png`));
    const prefix = join(dir, 'packed', 'mixed');
    await packImages(folder, prefix);
    const meta = JSON.parse(await readFile(`${prefix}.json`, 'utf8'));
    expect(meta).toMatchObject({
      count: 3,
      height: 20,
      width: 24,
      sizes: [
        [16, 24],
        [20, 16],
        [20, 24],
      ],
    });
    const stack = await readFile(`${prefix}.u8`);
    expect(stack.length).toBe(3 * 20 * 24);
    const at = (i: number, r: number, c: number) => stack[(i * 20 + r) * 24 + c];
    expect([at(0, 15, 23), at(0, 16, 0), at(1, 19, 15), at(1, 0, 16), at(2, 19, 23)]).toEqual([
      10, 0, 110, 0, 210,
    ]);
    expect(meta.depth).toBeUndefined(); // 8-bit images: the uint8 stack and meta as before
  });

  describe('16-bit images (camera data) keep their 16 bits', () => {
    // Two 16-bit grey PNGs of different sizes, samples that are not multiples of 257 (not 8-bit values scaled up),
    // and one 8-bit PNG in the same folder.
    const shapes: [number, number][] = [
      [12, 10],
      [8, 12],
    ];
    const sample = (k: number, i: number) => (1000 + 4099 * k + 263 * i) % 65536;
    let folder: string;
    let prefix: string;
    beforeAll(async () => {
      folder = join(dir, 'deep');
      prefix = join(dir, 'packed', 'deep');
      await mkdir(folder, { recursive: true });
      for (const [k, [width, height]] of shapes.entries())
        await sharp(
          new Uint16Array(width * height).map((_, i) => sample(k, i)),
          { raw: { width, height, channels: 1 } },
        )
          .toColourspace('grey16')
          .png()
          .toFile(join(folder, `d${k}.png`));
      await sharp(Buffer.alloc(12 * 12, 77), { raw: { width: 12, height: 12, channels: 1 } })
        .png()
        .toFile(join(folder, 'e.png'));
      await packImages(folder, prefix);
    });

    it('writes a little-endian uint16 stack (.u16) with depth 16 in the meta', async () => {
      const meta = JSON.parse(await readFile(`${prefix}.json`, 'utf8'));
      expect(meta).toMatchObject({ count: 3, height: 12, width: 12, depth: 16, maxValue: 65535 });
      await expect(access(`${prefix}.u8`)).rejects.toThrow();
      const bytes = await readFile(`${prefix}.u16`);
      expect(bytes.length).toBe(2 * 3 * 12 * 12);
      const at = (i: number, r: number, c: number) => bytes.readUInt16LE(2 * ((i * 12 + r) * 12 + c));
      for (const [k, [width, height]] of shapes.entries())
        for (let r = 0; r < 12; r++)
          for (let c = 0; c < 12; c++)
            expect(at(k, r, c)).toBe(r < height && c < width ? sample(k, r * width + c) : 0);
      expect(at(2, 11, 11)).toBe(77 * 257); // the 8-bit image, on the 16-bit scale
    });

    it.skipIf(!hasTorch)('gives the PyTorch trainers the floats tools/train/data.ts reads', async () => {
      const script = [
        'import json, sys',
        "sys.path.insert(0, 'tools/train/torch')",
        'from noise2score import read_images, unit_images',
        'raw, meta = read_images(sys.argv[1])',
        "print(json.dumps(unit_images(raw, meta, 'cpu').flatten().tolist()))",
      ].join('\n');
      const run = spawnSync(TORCH_PYTHON, ['-c', script, prefix], { cwd: repoRoot, encoding: 'utf8' });
      expect(run.stderr).toBe('');
      const floats: number[] = JSON.parse(run.stdout);
      const images = await loadGreyImages(folder);
      expect(images.map((im) => im.bits)).toEqual([16, 16, 8]);
      let worst = 0;
      images.forEach((im, i) => {
        for (let r = 0; r < im.height; r++)
          for (let c = 0; c < im.width; c++)
            worst = Math.max(worst, Math.abs(floats[(i * 12 + r) * 12 + c] - im.data[r * im.width + c]));
      });
      expect(worst).toBeLessThan(1e-7); // float32 rounding (1/255 of 8-bit steps would be 2e-3)
    });
  });
});

describe('npm run train -- noise2score (command line)', () => {
  it('takes a folder of noisy images and names the model after --out', () => {
    const cli = parseNoise2ScoreArgs([
      '--noise',
      'poisson',
      '--images',
      './my-noisy',
      '--out',
      'models/my-denoiser/1',
    ]);
    expect(cli).toMatchObject({
      noise: 'poisson',
      noisyDir: './my-noisy',
      cleanDir: undefined,
      out: 'models/my-denoiser/1',
      device: 'cpu',
      patch: 48,
    });
    expect(parseNoise2ScoreArgs(['--help'])).toBeNull();
  });

  it('refuses what it cannot do, with the reason (exit code 2: UsageError)', () => {
    const bad: [string[], RegExp][] = [
      [['--noise', 'speckle', '--images', 'x'], /--noise must be one of gaussian, poisson, gamma/],
      [['--noise', 'gaussian'], /give the training images: --images DIR/],
      [['--noise', 'gaussian', '--images', 'x', '--clean-dir', 'y'], /give the training images/],
      [['--noise', 'gaussian', '--images', 'x', '--out', 'models/My Model/1'], /model name 'My Model'/],
      [['--noise', 'gaussian', '--images', 'x', '--steps', '0'], /--steps must be a positive integer/],
      [['--noise', 'gaussian', '--images', 'x', '--nosie', 'gaussian'], /Unknown option '--nosie'/],
    ];
    for (const [args, message] of bad) {
      expect(() => parseNoise2ScoreArgs(args)).toThrow(message);
      expect(() => parseNoise2ScoreArgs(args)).toThrow(UsageError);
    }
  });

  it('--device cuda: the PyTorch command carries the same schedule, data, seed and limits', () => {
    const cli = parseNoise2ScoreArgs([
      ...['--noise', 'gamma', '--clean-dir', 'clean', '--device', 'cuda', '--steps', '900', '--batch', '64'],
      ...['--patch', '32', '--lr', '2e-4', '--seed', '7', '--max-minutes', '10', '--init-from', 'models/a/1'],
      ...['--python', '/opt/venv/bin/python', '--checkpoint-minutes', '2', '--resume'],
    ])!;
    const command = noise2scoreTorchCommand(cli, 'ck/torch/images', 'ck/torch/run');
    expect(command.python).toBe('/opt/venv/bin/python');
    expect(command.args[0]).toMatch(/tools\/train\/torch\/noise2score\.py$/);
    const flags = Object.fromEntries(
      command.args.slice(1).flatMap((a, i, all) => {
        if (!a.startsWith('--')) return [];
        const next = all[i + 1];
        return [[a, next === undefined || next.startsWith('--') ? true : next]];
      }),
    );
    expect(flags).toMatchObject({
      '--noise': 'gamma',
      '--images': 'ck/torch/images',
      '--out': 'ck/torch/run',
      '--steps': '900',
      '--batch': '64',
      '--patch': '32',
      '--lr': '0.0002',
      '--seed': '7',
      '--max-seconds': '600',
      '--checkpoint-seconds': '120',
      '--resume': true,
    });
    expect(flags['--init-from']).toMatch(/\/models\/a\/1$/);
  });

  it('--device cuda without PyTorch: a clear error before anything runs', async () => {
    const missing = checkTorch('/nonexistent/python3');
    await expect(missing).rejects.toThrow(TorchUnavailable);
    await expect(missing).rejects.toThrow(
      /--device cuda needs PyTorch with a CUDA device.*leave out --device cuda/s,
    );
    const noModule = checkTorch('python3', 'cuda', async () => ({
      code: 1,
      output: "ModuleNotFoundError: No module named 'torch'\n",
    }));
    await expect(noModule).rejects.toThrow(
      /import torch failed: ModuleNotFoundError: No module named 'torch'/,
    );
    const noGpu = checkTorch('python3', 'cuda', async () => ({ code: 0, output: 'torch 2.5.1 False\n' }));
    await expect(noGpu).rejects.toThrow(/torch 2\.5\.1 sees no CUDA device/);
  });

  it('--device torch-cpu: the PyTorch port on the CPU (no CUDA needed; the script gets --device cpu)', async () => {
    expect([usesTorch('cpu'), usesTorch('cuda'), usesTorch('torch-cpu')]).toEqual([false, true, true]);
    expect([torchDeviceArg('cuda'), torchDeviceArg('torch-cpu')]).toEqual(['cuda', 'cpu']);
    expect(() => torchDeviceArg('cpu')).toThrow(/does not run PyTorch/);
    const cpuOnly = async () => ({ code: 0, output: 'torch 1.13.1 False\n' });
    await expect(checkTorch('python3', 'torch-cpu', cpuOnly)).resolves.toEqual({ torch: '1.13.1' });
    await expect(checkTorch('python3', 'cuda', cpuOnly)).rejects.toThrow(/sees no CUDA device/);
    const noModule = checkTorch('python3', 'torch-cpu', async () => ({
      code: 1,
      output: 'No module named torch',
    }));
    await expect(noModule).rejects.toThrow(/--device torch-cpu needs PyTorch, and python3 has none/);
    const deviceOf = (device: string) => {
      const cli = parseNoise2ScoreArgs(['--noise', 'poisson', '--clean-dir', 'c', '--device', device])!;
      const { args } = noise2scoreTorchCommand(cli, 'p', 'r');
      return args[args.indexOf('--device') + 1];
    };
    expect([deviceOf('cuda'), deviceOf('torch-cpu')]).toEqual(['cuda', 'cpu']);
    expect(() => parseNoise2ScoreArgs(['--noise', 'gamma', '--clean-dir', 'c', '--device', 'gpu'])).toThrow(
      /--device must be one of cpu, cuda, torch-cpu/,
    );
  });

  it('--device cuda: the run PyTorch saves is imported into --out in the same step, with the same manifest', async () => {
    const { tf } = await initTfjs('wasm');
    const clean = join(dir, 'clean');
    await mkdir(clean, { recursive: true });
    for (const k of [0, 1])
      await sharp(Buffer.alloc(32 * 32, 60 + 80 * k), { raw: { width: 32, height: 32, channels: 1 } })
        .png()
        .toFile(join(clean, `c${k}.png`));
    const out = join(dir, 'models', 'gpu-denoiser', '3');
    const cli = parseNoise2ScoreArgs([
      ...['--noise', 'gaussian', '--clean-dir', clean, '--device', 'cuda', '--steps', '5'],
      ...['--out', out, '--checkpoint-dir', join(dir, 'ck')],
    ])!;
    const architecture = {
      kind: 'unet' as const,
      widths: [4, 8, 8] as [number, number, number],
      outputScale: 32,
    };
    const ran: string[][] = [];
    // Stands in for PyTorch: writes what tools/train/torch/noise2score.py writes (weights, probe, train.json).
    const fakeTorch = async (command: { python: string; args: string[] }) => {
      ran.push(command.args);
      const runDir = command.args[command.args.indexOf('--out') + 1];
      await mkdir(runDir, { recursive: true });
      const model = buildScoreNetwork(tf, architecture, 3);
      const input = new Float32Array(64 * 64).map((_, i) => (i % 64) / 64);
      const output = tf.tidy(() =>
        (model.predict(tf.tensor4d(input, [1, 64, 64, 1])) as import('@tensorflow/tfjs').Tensor).dataSync(),
      ) as Float32Array;
      await writeTensors(runDir, [
        ...model.weights.map((w) => ({
          name: w.originalName,
          shape: w.shape as number[],
          values: w.read().dataSync() as Float32Array,
        })),
        { name: 'probe/input', shape: [1, 64, 64, 1], values: input },
        { name: 'probe/output', shape: [1, 64, 64, 1], values: output },
      ]);
      await writeFile(
        join(runDir, 'train.json'),
        JSON.stringify({
          noise: 'gaussian',
          architecture,
          steps: 5,
          batch: 32,
          patch: 48,
          lr: 1e-3,
          seed: 1,
          initFrom: null,
          seconds: 2,
          finalLoss: 0.9,
          device: command.args.includes('cuda') ? 'cuda:0 (fake)' : 'cpu',
          noisyImages: command.args.includes('--noisy'),
          torch: '2.5.1',
          log: [],
          command: `python3 ${command.args.join(' ')}`,
          images: { source: clean, count: 2 },
        }),
      );
      model.dispose();
    };
    await trainNoise2ScoreCuda(cli, 'npm run train -- noise2score --device cuda (test)', () => {}, {
      checkTorch: async () => ({ torch: '2.5.1' }),
      runTorch: fakeTorch,
    });
    expect(ran).toHaveLength(1);
    // The images were packed for PyTorch where the command says.
    const packed = ran[0][ran[0].indexOf('--images') + 1];
    expect(JSON.parse(await readFile(`${packed}.json`, 'utf8'))).toMatchObject({
      count: 2,
      width: 32,
      height: 32,
    });
    expect(JSON.parse(await readFile(`${packed}.json`, 'utf8')).sizes).toBeUndefined();
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
    expect(parseModelManifest(manifest).ok).toBe(true);
    expect(manifest).toMatchObject({
      name: 'gpu-denoiser',
      version: '3',
      task: 'denoise-score',
      noiseFamily: 'gaussian',
      trainingSteps: 5,
      trainingCommand: 'npm run train -- noise2score --device cuda (test)',
    });
    expect(manifest.trainingData).toContain(clean);
    expect(manifest.trainingData).toContain('blind level in [0.01373, 0.2157] on [0,1] (3.5..55 / 255)');
    expect(manifest.extra.lineage).toBe(
      'trained from a fresh initialisation, by tools/train/torch/noise2score.py (PyTorch 2.5.1) on a CUDA GPU',
    );
    expect(manifest.extra.torchCommand).toMatch(/noise2score\.py/);
    expect(manifest.metrics.probeRelativeError).toBeLessThan(1e-3);

    // Noisy images alone (--images), on the CPU: the script is told both, and the manifest says so.
    const noisyOut = join(dir, 'models', 'own-noise', '1');
    const noisy = parseNoise2ScoreArgs([
      ...['--noise', 'gaussian', '--images', clean, '--device', 'torch-cpu', '--steps', '5'],
      ...['--out', noisyOut, '--checkpoint-dir', join(dir, 'ck-noisy')],
    ])!;
    await trainNoise2ScoreCuda(noisy, 'npm run train -- noise2score --images (test)', () => {}, {
      checkTorch: async () => ({ torch: '1.13.1' }),
      runTorch: fakeTorch,
    });
    expect(ran[1]).toContain('--noisy');
    expect(ran[1][ran[1].indexOf('--device') + 1]).toBe('cpu');
    const own = JSON.parse(await readFile(join(noisyOut, 'manifest.json'), 'utf8'));
    expect(own.trainingData).toBe(
      `${clean} (the noisy images only, as they are; 48x48 patches, random crop/flip/rot90)`,
    );
    expect(own.extra.lineage).toBe(
      'trained from a fresh initialisation, by tools/train/torch/noise2score.py (PyTorch 1.13.1) on the CPU',
    );
  }, 60_000);

  it('--device cuda --resume: other settings than the run it continues are refused before PyTorch runs', async () => {
    const clean = join(dir, 'clean-resume');
    await mkdir(clean, { recursive: true });
    await sharp(Buffer.alloc(32 * 32, 90), { raw: { width: 32, height: 32, channels: 1 } })
      .png()
      .toFile(join(clean, 'c.png'));
    const ran: string[][] = [];
    const deps = {
      checkTorch: async () => ({ torch: '2.5.1' }),
      // Stands in for a PyTorch run stopped by --max-minutes (nothing to import yet).
      runTorch: async (command: { args: string[] }) => {
        ran.push(command.args);
        throw new Error('stopped (test)');
      },
    };
    const run = (noise: string, data: string[], resume: string[] = []) =>
      trainNoise2ScoreCuda(
        parseNoise2ScoreArgs([
          ...['--noise', noise, ...data, '--device', 'cuda', '--steps', '5', ...resume],
          ...['--out', join(dir, 'models', 'resumed', '1'), '--checkpoint-dir', join(dir, 'ck-resume')],
        ])!,
        'cmd',
        () => {},
        deps,
      );
    await expect(run('gaussian', ['--clean-dir', clean])).rejects.toThrow('stopped (test)');
    // The packed images stay those of the first run: another family, or noisy images, would train on them.
    await expect(run('poisson', ['--clean-dir', clean], ['--resume'])).rejects.toThrow(
      /was made with noise gaussian, not noise poisson: resume with the same settings/,
    );
    await expect(run('gaussian', ['--images', clean], ['--resume'])).rejects.toThrow(
      /was made with images clean, not images noisy/,
    );
    expect(ran).toHaveLength(1);
    await expect(run('gaussian', ['--clean-dir', clean], ['--resume'])).rejects.toThrow('stopped (test)');
    expect(ran).toHaveLength(2);
  });
});
