/**
 * `--device cuda`: the same `npm run train` command runs the PyTorch port of the family (tools/train/torch/*.py)
 * on the GPU, then imports its weights into the model folder (tf.js network rebuilt, probe checked, manifest
 * written by the family's own export): one step, the same manifest as a CPU run. `--device torch-cpu` runs the
 * same port on the CPU (slow; for checking a port without a GPU). PyTorch is looked for first, so a machine
 * without it gets a clear error before anything runs.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertSameSettings } from '../core/checkpoint.js';
import { type Device, UsageError } from '../core/options.js';

/** Whether `device` trains with the PyTorch port (cuda, torch-cpu) rather than the tf.js trainer (cpu). */
export function usesTorch(device: Device): boolean {
  return device === 'cuda' || device === 'torch-cpu';
}

/** The `--device` a PyTorch script is given for a torch device: cuda or cpu. */
export function torchDeviceArg(device: Device): 'cuda' | 'cpu' {
  if (!usesTorch(device)) throw new Error(`--device ${device} does not run PyTorch`);
  return device === 'cuda' ? 'cuda' : 'cpu';
}

export class TorchUnavailable extends Error {
  readonly code = 'TRAIN_TORCH_UNAVAILABLE';
  constructor(python: string, why: string, device: Device = 'cuda') {
    super(
      device === 'cuda'
        ? `--device cuda needs PyTorch with a CUDA device, and ${python} has none (${why}). Install PyTorch ` +
            'with CUDA (https://pytorch.org), or name its interpreter with --python, or train on the CPU (the ' +
            'wasm trainer: leave out --device cuda).'
        : `--device ${device} needs PyTorch, and ${python} has none (${why}). Install PyTorch ` +
            '(https://pytorch.org), or name its interpreter with --python, or train with the wasm trainer ' +
            `(leave out --device ${device}).`,
    );
    this.name = 'TorchUnavailable';
  }
}

export interface TorchCommand {
  python: string;
  args: string[];
}

/** The folder of the PyTorch scripts. */
export const TORCH_DIR = fileURLToPath(new URL('.', import.meta.url));

/** A command line for people (logs and manifests). */
export function commandText(command: TorchCommand): string {
  return [command.python, ...command.args]
    .map((a) => (/^[\w./=:@,+-]+$/.test(a) ? a : JSON.stringify(a)))
    .join(' ');
}

type Spawner = (
  python: string,
  args: string[],
  onLine: (line: string) => void,
) => Promise<{ code: number | null; output: string }>;

/** Runs a process, passing each output line on; resolves with its exit code and its last output. */
export const spawnLines: Spawner = (python, args, onLine) =>
  new Promise((resolve, reject) => {
    const child = spawn(python, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    let partial = '';
    const take = (chunk: Buffer) => {
      const text = partial + chunk.toString('utf8');
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) onLine(line);
      tail = (tail + chunk.toString('utf8')).slice(-4000);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', reject);
    child.on('close', (code) => {
      if (partial) onLine(partial);
      resolve({ code, output: tail });
    });
  });

/**
 * Checks that `python` imports torch and, for `cuda`, sees a CUDA device; throws TorchUnavailable otherwise.
 * Returns torch's version.
 */
export async function checkTorch(
  python: string,
  device: Device = 'cuda',
  run: Spawner = spawnLines,
): Promise<{ torch: string }> {
  const probe = 'import torch; print("torch", torch.__version__, torch.cuda.is_available())';
  let result: { code: number | null; output: string };
  try {
    result = await run(python, ['-c', probe], () => {});
  } catch (error) {
    throw new TorchUnavailable(
      python,
      `it does not run: ${error instanceof Error ? error.message : error}`,
      device,
    );
  }
  const match = /torch (\S+) (True|False)/.exec(result.output);
  if (result.code !== 0 || !match) {
    const last = result.output.trim().split('\n').at(-1) ?? '';
    throw new TorchUnavailable(python, `import torch failed: ${last || `exit code ${result.code}`}`, device);
  }
  if (device === 'cuda' && match[2] !== 'True')
    throw new TorchUnavailable(python, `torch ${match[1]} sees no CUDA device`, device);
  return { torch: match[1] };
}

/** Runs a PyTorch trainer; throws with its last output when it fails. */
export async function runTorch(
  command: TorchCommand,
  log: (line: string) => void,
  run: Spawner = spawnLines,
): Promise<void> {
  log(`running ${commandText(command)}`);
  const { code, output } = await run(command.python, command.args, (line) => log(`[torch] ${line}`));
  if (code !== 0)
    throw new Error(
      `the PyTorch trainer failed (exit code ${code}):\n${output.trim().split('\n').slice(-8).join('\n')}`,
    );
}

/**
 * The settings of a PyTorch run that fix its data stream or network (family, data, patch, batch, seed, network),
 * kept beside its packed data as <checkpointDir>/torch/settings.json: written when a run starts, compared on
 * --resume (assertSameSettings: a UsageError naming both), since the Python checkpoints do not keep them and the
 * packed data is not remade on a resume. A run started before they were kept resumes unchecked.
 */
export async function keepTorchSettings(
  checkpointDir: string,
  resume: boolean,
  settings: Record<string, number | string>,
): Promise<void> {
  const dir = join(checkpointDir, 'torch');
  const file = join(dir, 'settings.json');
  if (!resume) {
    await mkdir(dir, { recursive: true });
    await writeFile(file, `${JSON.stringify(settings)}\n`);
    return;
  }
  const saved = await readFile(file, 'utf8').then(
    (text) => JSON.parse(text) as Record<string, unknown>,
    () => undefined,
  );
  if (saved) assertSameSettings(dir, saved, settings);
}

/** What every family's PyTorch run takes from the shared command-line options. */
export interface TorchRunOptions {
  device: Device;
  python: string;
  checkpointDir: string;
  checkpointMinutes: number;
  stopAtStep?: number;
  maxMinutes?: number;
  resume: boolean;
}

/**
 * The start of every family's PyTorch run: refuses --stop-at-step (the PyTorch trainers stop by wall clock), checks
 * that PyTorch runs on the device, and names the run folder under the checkpoint dir.
 */
export async function startTorchRun(
  cli: TorchRunOptions,
  check: typeof checkTorch,
): Promise<{ torch: string; runDir: string }> {
  if (cli.stopAtStep !== undefined)
    throw new UsageError(`--device ${cli.device}: use --max-minutes, not --stop-at-step`);
  const { torch } = await check(cli.python, cli.device);
  return { torch, runDir: join(cli.checkpointDir, 'torch', 'run') };
}

/** The options every PyTorch trainer's command line ends with: checkpoints, the wall-clock stop, resume. */
export function torchRunArgs(cli: TorchRunOptions): string[] {
  return [
    ...['--checkpoint-seconds', String(Math.round(cli.checkpointMinutes * 60))],
    ...(cli.maxMinutes !== undefined ? ['--max-seconds', String(Math.round(cli.maxMinutes * 60))] : []),
    ...(cli.resume ? ['--resume'] : []),
  ];
}
