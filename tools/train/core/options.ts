/**
 * Command-line options every family shares (node:util parseArgs), and their checks. A family adds its own
 * options to COMMON_OPTIONS and reads the shared ones with `commonOptions`.
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';

type OptionSpecs = NonNullable<ParseArgsConfig['options']>;

export const COMMON_OPTIONS = {
  images: { type: 'string' },
  out: { type: 'string' },
  steps: { type: 'string' },
  batch: { type: 'string' },
  lr: { type: 'string' },
  'stop-at-step': { type: 'string' },
  'max-minutes': { type: 'string' },
  'checkpoint-dir': { type: 'string' },
  'checkpoint-minutes': { type: 'string' },
  resume: { type: 'boolean', default: false },
  'init-from': { type: 'string' },
  seed: { type: 'string' },
  version: { type: 'string' },
  backend: { type: 'string', default: 'auto' },
  device: { type: 'string', default: 'cpu' },
  help: { type: 'boolean', default: false },
} as const satisfies OptionSpecs;

export const COMMON_USAGE = `  [--out models/<name>/<version>] [--steps N] [--batch B] [--lr LR] [--seed S]
  [--checkpoint-dir DIR] [--checkpoint-minutes 5] [--stop-at-step N] [--max-minutes M] [--resume]
  [--init-from MODEL_DIR] [--device cpu|cuda|torch-cpu] [--backend auto|wasm|cpu]`;

export class UsageError extends Error {
  readonly code = 'TRAIN_USAGE';
  constructor(message: string, usage?: string) {
    super(usage ? `${message}\n${usage}` : message);
    this.name = 'UsageError';
  }
}

export function positiveNumber(
  name: string,
  value: string | undefined,
  fallback: number,
  integer = false,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
    throw new UsageError(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got '${value}'`);
  return n;
}

export function optionalPositive(
  name: string,
  value: string | undefined,
  integer = false,
): number | undefined {
  return value === undefined ? undefined : positiveNumber(name, value, 1, integer);
}

export function parseOptions<T extends OptionSpecs>(args: string[], options: T, usage: string) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error), usage);
  }
}

/**
 * Where a run trains: `cpu` the tf.js (wasm) trainer; `cuda` the PyTorch port on a CUDA GPU; `torch-cpu` the same
 * PyTorch port on the CPU (slow: for checking a port on a machine without a GPU).
 */
export type Device = 'cpu' | 'cuda' | 'torch-cpu';

export const DEVICES: readonly Device[] = ['cpu', 'cuda', 'torch-cpu'];

/** Today as YYYYMMDD: the default version of a new model. */
export function defaultVersion(): string {
  return new Date().toISOString().slice(0, 10).replaceAll('-', '');
}

export interface CommonOptions {
  out: string;
  steps: number;
  batch: number;
  lr: number;
  seed: number;
  stopAtStep?: number;
  maxMinutes?: number;
  checkpointDir: string;
  checkpointMinutes: number;
  resume: boolean;
  initFrom?: string;
  device: Device;
  backend: string;
}

/** The shared options, with the family's defaults (the model name names the default out and checkpoint dir). */
export function commonOptions(
  values: Record<string, string | boolean | undefined>,
  defaults: { name: string; steps: number; batch: number; lr: number },
): CommonOptions {
  const str = (k: string) => values[k] as string | undefined;
  const device = (str('device') ?? 'cpu') as Device;
  if (!DEVICES.includes(device))
    throw new UsageError(`--device must be one of ${DEVICES.join(', ')}, got '${device}'`);
  const out = str('out') ?? `models/${defaults.name}/${str('version') ?? defaultVersion()}`;
  const seed = str('seed') === undefined ? 1 : Number(str('seed'));
  if (!Number.isInteger(seed)) throw new UsageError(`--seed must be an integer, got '${str('seed')}'`);
  return {
    out,
    steps: positiveNumber('steps', str('steps'), defaults.steps, true),
    batch: positiveNumber('batch', str('batch'), defaults.batch, true),
    lr: positiveNumber('lr', str('lr'), defaults.lr),
    seed,
    stopAtStep: optionalPositive('stop-at-step', str('stop-at-step'), true),
    maxMinutes: optionalPositive('max-minutes', str('max-minutes')),
    checkpointDir: str('checkpoint-dir') ?? `checkpoints/${defaults.name}`,
    checkpointMinutes: positiveNumber('checkpoint-minutes', str('checkpoint-minutes'), 5),
    resume: values.resume === true,
    initFrom: str('init-from'),
    device,
    backend: str('backend') ?? 'auto',
  };
}
