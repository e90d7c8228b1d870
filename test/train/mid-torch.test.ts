/**
 * MID on the GPU without PyTorch: the command line given to tools/train/torch/mid.py, the importer on a committed
 * run of that script (test/fixtures/mid-torch: tiny weights and the probe PyTorch computed with them; generate.sh
 * remakes it), and `npm run train -- mid --device cuda` end to end with a stand-in for PyTorch that writes that
 * run: the data is packed, the weights imported into --out with the manifest of a CPU run.
 */
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { denoiseMid } from '../../src/mid/denoise.js';
import { registerMidLayers } from '../../src/mid/network.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { fileSystemIO } from '../../src/nn/fs-io.js';
import { parseModelManifest } from '../../src/nn/manifest.js';
import { tidyValues } from '../../src/nn/read.js';
import { UsageError } from '../../tools/train/core/options.js';
import { midTorchCommand, parseMidArgs, trainMidCuda } from '../../tools/train/mid.js';
import { readTensors, writeTensors } from '../../tools/train/tensor-file.js';
import { importMid, type MidTorchRun } from '../../tools/train/torch/import-mid.js';
import { repoRoot } from '../helpers.js';

type Tensor = import('@tensorflow/tfjs').Tensor;
const FIXTURE = join(repoRoot, 'test', 'fixtures', 'mid-torch');
let tf: Tf;
let dir: string;

beforeAll(async () => {
  ({ tf } = await initTfjs('wasm'));
  dir = await mkdtemp(join(tmpdir(), 'mid-torch-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The flags of a command line as { '--flag': value | true }. */
function flags(args: string[]): Record<string, string | true> {
  return Object.fromEntries(
    args.flatMap((a, i) => {
      if (!a.startsWith('--')) return [];
      const next = args[i + 1];
      return [[a, next === undefined || next.startsWith('--') ? true : next]];
    }),
  );
}

describe('npm run train -- mid --device cuda (command line)', () => {
  it('gives the PyTorch port the same rounds, schedule, masks, network, seed and limits', () => {
    const cli = parseMidArgs([
      ...['--images', 'my-noisy', '--clean', 'photos', '--device', 'cuda', '--round-steps', '900,400'],
      ...['--batch', '64', '--patch', '64', '--lr', '2e-3', '--fine-tune-lr', '5e-4', '--mask-ratio', '0.25'],
      ...['--residual-masks', '4', '--validation-masks', '3', '--widths', '8,16,32', '--seed', '7'],
      ...['--max-minutes', '10', '--checkpoint-minutes', '2', '--python', '/opt/venv/bin/python', '--resume'],
    ])!;
    const command = midTorchCommand(cli, 'ck/torch/data', 'ck/torch/run');
    expect(command.python).toBe('/opt/venv/bin/python');
    expect(command.args[0]).toMatch(/tools\/train\/torch\/mid\.py$/);
    expect(flags(command.args.slice(1))).toEqual({
      '--images': 'ck/torch/data',
      '--out': 'ck/torch/run',
      '--device': 'cuda',
      '--round-steps': '900,400',
      '--batch': '64',
      '--patch': '64',
      '--lr': '0.002',
      '--fine-tune-lr': '0.0005',
      '--mask-ratio': '0.25',
      '--residual-masks': '4',
      '--validation-masks': '3',
      '--widths': '8,16,32',
      '--seed': '7',
      '--max-seconds': '600',
      '--checkpoint-seconds': '120',
      '--resume': true,
    });
    // The defaults are mid.ts's.
    const plain = flags(
      midTorchCommand(parseMidArgs(['--images', 'x', '--clean', 'y', '--device', 'cuda'])!, 'p', 'r').args,
    );
    expect(plain).toMatchObject({
      '--round-steps': '500,300,300',
      '--batch': '12',
      '--patch': '48',
      '--lr': '0.001',
      '--fine-tune-lr': '0.0003',
      '--mask-ratio': '0.3',
      '--residual-masks': '3',
      '--validation-masks': '2',
      '--widths': '16,32,64',
      '--checkpoint-seconds': '300',
    });
    expect(plain['--max-seconds']).toBeUndefined();
    expect(plain['--resume']).toBeUndefined();
  });

  it('refuses what the GPU run cannot do, before PyTorch is looked for', async () => {
    const never = {
      checkTorch: async () => {
        throw new Error('looked for PyTorch');
      },
      runTorch: async () => {},
    };
    const cli = parseMidArgs(['--images', 'x', '--clean', 'y', '--device', 'cuda', '--stop-at-step', '10'])!;
    await expect(trainMidCuda(cli, 'cmd', () => {}, never)).rejects.toThrow(UsageError);
    await expect(trainMidCuda(cli, 'cmd', () => {}, never)).rejects.toThrow(
      /use --max-minutes, not --stop-at-step/,
    );
    await expect(trainMidCuda({ ...cli, device: 'torch-cpu' }, 'cmd', () => {}, never)).rejects.toThrow(
      '--device torch-cpu: use --max-minutes, not --stop-at-step',
    );
  });
});

describe('import-mid (a committed run of tools/train/torch/mid.py)', () => {
  it('rebuilds the network, reproduces PyTorch on the probe within 1e-4 and writes the manifest of a CPU run', async () => {
    const out = join(dir, 'imported', 'mid-gpu', '2');
    const round0Out = join(dir, 'imported', 'mid-gpu-round0', '2');
    const result = await importMid({ from: FIXTURE, out, round0Out, commandLine: 'test', log: () => {} });
    expect(result.probeError).toBeLessThan(1e-4);
    const summary = JSON.parse(await readFile(join(FIXTURE, 'train.json'), 'utf8')) as MidTorchRun;
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
    expect(parseModelManifest(manifest).ok).toBe(true);
    expect(manifest).toMatchObject({
      name: 'mid-gpu',
      version: '2',
      task: 'denoise',
      channels: 4,
      noiseFamily: 'real-camera',
      trainingSteps: 5,
      architecture: { kind: 'mid-unet', widths: [4, 8, 8], multiple: 8 },
      metrics: { status: 'final', rounds: 2, maskRatio: 0.3, batch: 2, patch: 16, learningRate: 0.05 },
      extra: { maskRatio: 0.3, masksDefault: 4, rounds: summary.rounds, torchLog: summary.log },
    });
    expect(manifest.trainingCommand).toMatch(/tools\/train\/torch\/mid\.py/);
    expect(manifest.metrics.backend).toMatch(/^PyTorch .* \(tools\/train\/torch\/mid\.py\)$/);
    expect(manifest.extra.rounds.map((r: { sampler: string }) => r.sampler)).toEqual([
      'gaussian',
      'residual-bank',
    ]);
    expect(manifest.extra.lineage).toMatch(
      /^trained from a fresh initialisation, by tools\/train\/torch\/mid\.py/,
    );

    // The model folder, loaded as the service loads it, computes PyTorch's probe output (the expected output
    // committed with the weights) and denoises through src/mid.
    registerMidLayers(tf);
    const model = await tf.loadLayersModel(fileSystemIO(out));
    const tensors = new Map((await readTensors(FIXTURE)).map((t) => [t.name, t]));
    const input = tensors.get('probe/input')!;
    const expected = tensors.get('probe/output')!;
    const got = await tidyValues(tf, () => model.predict(tf.tensor(input.values, input.shape)) as Tensor);
    expect(Math.max(...got.map((v, i) => Math.abs(v - expected.values[i])))).toBeLessThan(1e-4);
    // The trained head is not zero: the network adds a correction to its fill-in (the probe means something).
    const filled = input.values.filter((_, i) => i % 4 !== 3);
    expect(Math.max(...got.map((v, i) => Math.abs(v - filled[i])))).toBeGreaterThan(1e-3);
    const image = Float32Array.from({ length: 24 * 16 * 3 }, (_, i) => 0.5 + 0.3 * Math.sin(i / 7));
    const denoised = await denoiseMid(
      tf,
      model,
      { data: image, width: 24, height: 16, channels: 3 },
      {
        masks: 2,
        dropRatio: 0.3,
        seed: 1,
      },
    );
    expect(denoised.data.every((v) => v >= 0 && v <= 1)).toBe(true);
    model.dispose();

    // --round0-out: round 0's own weights (the run's round-0/), with round 0's record only.
    const round0 = JSON.parse(await readFile(join(round0Out, 'manifest.json'), 'utf8'));
    expect(parseModelManifest(round0).ok).toBe(true);
    expect(round0).toMatchObject({
      name: 'mid-gpu-round0',
      trainingSteps: 3,
      metrics: { status: 'final (round 0 only: Gaussian sampler)', rounds: 1 },
      extra: { rounds: summary.rounds.slice(0, 1) },
    });
    const model0 = await tf.loadLayersModel(fileSystemIO(round0Out));
    const probe0 = new Map((await readTensors(join(FIXTURE, 'round-0'))).map((t) => [t.name, t]));
    const input0 = probe0.get('probe/input')!;
    const got0 = await tidyValues(tf, () => model0.predict(tf.tensor(input0.values, input0.shape)) as Tensor);
    const expected0 = probe0.get('probe/output')!.values;
    expect(Math.max(...got0.map((v, i) => Math.abs(v - expected0[i])))).toBeLessThan(1e-4);
    expect(Math.max(...got0.map((v, i) => Math.abs(v - got[i])))).toBeGreaterThan(1e-4);
    model0.dispose();
  });

  it('refuses weights that do not reproduce the probe to 1e-4', async () => {
    const run = join(dir, 'bad-run');
    await cp(FIXTURE, run, { recursive: true });
    const tensors = await readTensors(run);
    const output = tensors.find((t) => t.name === 'probe/output')!;
    output.values[5] += 3e-4;
    await writeTensors(run, tensors);
    await expect(
      importMid({ from: run, out: join(dir, 'bad', 'mid-bad', '1'), commandLine: 'test', log: () => {} }),
    ).rejects.toThrow(/does not compute what PyTorch did/);
  });
});

describe('npm run train -- mid --device cuda (one step, PyTorch stood in for)', () => {
  async function save(path: string, seed: number) {
    const px = Buffer.from(Array.from({ length: 32 * 32 * 3 }, (_, i) => (i * (seed + 3) * 37) % 251));
    await sharp(px, { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toFile(path);
  }

  it('packs the data as mid-data.ts reads it, runs mid.py and imports its weights into --out', async () => {
    for (const sub of ['noisy', 'clean', 'refs']) await mkdir(join(dir, 'cuda', sub), { recursive: true });
    await save(join(dir, 'cuda', 'noisy', 'a.png'), 1);
    await save(join(dir, 'cuda', 'noisy', 'held.png'), 2);
    await save(join(dir, 'cuda', 'refs', 'held.jpg'), 3);
    await save(join(dir, 'cuda', 'clean', 'c.png'), 4);
    const out = join(dir, 'cuda', 'models', 'my-camera', '1');
    const checkpointDir = join(dir, 'cuda', 'ck');
    const cli = parseMidArgs([
      ...['--images', join(dir, 'cuda', 'noisy'), '--clean', join(dir, 'cuda', 'clean')],
      ...['--references', join(dir, 'cuda', 'refs'), '--device', 'cuda', '--patch', '16'],
      ...['--out', out, '--checkpoint-dir', checkpointDir],
    ])!;
    const ran: string[][] = [];
    const deps = {
      checkTorch: async () => ({ torch: '2.5.1' }),
      // Stands in for PyTorch: reads the pack it is given and writes the run tools/train/torch/mid.py wrote.
      runTorch: async (command: { python: string; args: string[] }) => {
        ran.push(command.args);
        const f = flags(command.args);
        const pack = JSON.parse(await readFile(join(f['--images'] as string, 'images.json'), 'utf8'));
        expect(pack.noisy.map((im: { name: string }) => im.name)).toEqual(['a.png']);
        expect(pack.validation.map((v: { name: string }) => v.name)).toEqual(['held']);
        expect(pack.clean).toHaveLength(1);
        expect(pack.sigma0).toHaveLength(3);
        expect(pack.validationNoisyPsnr).toBeGreaterThan(0);
        const bytes = await readFile(join(f['--images'] as string, 'images.u8'));
        expect(bytes.length).toBe(4 * 32 * 32 * 3);
        await cp(FIXTURE, f['--out'] as string, { recursive: true });
        await writeFile(join(f['--out'] as string, 'checkpoint.pt'), 'a checkpoint');
      },
    };
    await trainMidCuda(cli, 'npm run train -- mid --device cuda (test)', () => {}, deps);
    expect(ran).toHaveLength(1);
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
    expect(parseModelManifest(manifest).ok).toBe(true);
    expect(manifest).toMatchObject({
      name: 'my-camera',
      version: '1',
      trainingCommand: 'npm run train -- mid --device cuda (test)',
      extra: { importCommand: 'import by npm run train (--device cuda)' },
    });
    expect(manifest.extra.torchCommand).toMatch(/mid\.py/);
    expect(manifest.extra.lineage).toBe(
      'trained from a fresh initialisation, by tools/train/torch/mid.py (PyTorch 2.5.1) on a CUDA GPU',
    );
    // The same port on the CPU says so in its manifest (not --device cuda).
    const onCpu = join(dir, 'cuda', 'models', 'on-cpu', '1');
    await trainMidCuda(
      { ...cli, device: 'torch-cpu', out: onCpu, checkpointDir: join(dir, 'cuda', 'ck-cpu') },
      'npm run train -- mid --device torch-cpu (test)',
      () => {},
      deps,
    );
    const cpuManifest = JSON.parse(await readFile(join(onCpu, 'manifest.json'), 'utf8'));
    expect(cpuManifest.extra.importCommand).toBe('import by npm run train (--device torch-cpu)');
    expect(cpuManifest.extra.lineage).toMatch(/mid\.py \(PyTorch 2\.5\.1\) on the CPU/);
    // Stopped (--max-minutes) before a round ended: nothing to import, the checkpoint stays for --resume.
    const lines: string[] = [];
    const early = join(dir, 'cuda', 'models', 'early', '1');
    await trainMidCuda(
      { ...cli, out: early, checkpointDir: join(dir, 'cuda', 'ck-early') },
      'cmd',
      (line) => lines.push(line),
      { ...deps, runTorch: async () => {} },
    );
    expect(lines.at(-1)).toMatch(/stopped before the end of round 0: nothing to import yet/);
    await expect(readFile(join(early, 'manifest.json'))).rejects.toThrow(/ENOENT/);
    // Without --resume, a run's checkpoint is never started over.
    await expect(trainMidCuda(cli, 'again', () => {}, deps)).rejects.toThrow(
      /holds a checkpoint: pass --resume/,
    );
    expect(ran).toHaveLength(2);
  }, 60_000);
});
