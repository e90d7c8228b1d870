/**
 * Export: a model folder the service loads as it is (`models/<name>/<version>/`: model.json, weights.bin,
 * manifest.json, written to a hidden staging folder and renamed, so a watching service never sees half of it).
 * The manifest says what the model learned from (data), how (the command), from what (lineage: fresh or
 * fine-tuned, resumed, CPU or GPU trainer) and how well (the family's validation figures).
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { MODEL_ID_PATTERN, type ModelManifestInput, parseModelManifest } from '../../../src/nn/manifest.js';
import { UsageError } from './options.js';

type LayersModel = import('@tensorflow/tfjs').LayersModel;

/** `<models dir>/<name>/<version>`: the name and version the service will know the model by. */
export function modelIdFromOut(out: string): { name: string; version: string } {
  const full = resolve(out);
  const name = basename(dirname(full));
  const version = basename(full);
  for (const [what, id] of [
    ['name', name],
    ['version', version],
  ]) {
    if (!MODEL_ID_PATTERN.test(id))
      throw new UsageError(
        `--out ${out}: the model ${what} '${id}' must match ${MODEL_ID_PATTERN.source} ` +
          '(--out is <models dir>/<name>/<version>, e.g. models/my-denoiser/1)',
      );
  }
  return { name, version };
}

export interface Lineage {
  /** The trainer that made the weights, e.g. 'tools/train/noise2score.ts (tf.js wasm)'. */
  trainer: string;
  device: 'cpu' | 'cuda';
  /** Weights the run started from (fine-tuning), or absent for a fresh initialisation. */
  initialisedFrom?: string;
  /** The checkpoints the run continued (a resumed run). */
  resumedFrom?: { checkpointDir: string; step: number };
  /** Anything else worth knowing (the machine, the run script, the init model's commit). */
  note?: string;
}

/** One line for people (the console's Models page shows `extra.lineage`). */
export function lineageText(lineage: Lineage): string {
  const parts = [
    lineage.initialisedFrom
      ? `fine-tuned from ${lineage.initialisedFrom}`
      : 'trained from a fresh initialisation',
    `by ${lineage.trainer} on ${lineage.device === 'cuda' ? 'a CUDA GPU' : 'the CPU'}`,
  ];
  if (lineage.resumedFrom)
    parts.push(`resumed at step ${lineage.resumedFrom.step} from ${lineage.resumedFrom.checkpointDir}`);
  if (lineage.note) parts.push(lineage.note);
  return parts.join(', ');
}

export type ManifestBody = Omit<
  ModelManifestInput,
  'name' | 'version' | 'createdAt' | 'trainingData' | 'trainingCommand'
>;

export interface Provenance {
  out: string;
  /** What it learned from: folder(s) and how they were used. */
  data: string;
  command: string;
  lineage: Lineage;
}

/** The manifest of a trained model: the family's fields plus data, command and lineage. */
export function trainedManifest(provenance: Provenance, body: ManifestBody): ModelManifestInput {
  const { name, version } = modelIdFromOut(provenance.out);
  const manifest: ModelManifestInput = {
    ...body,
    name,
    version,
    trainingData: provenance.data,
    trainingCommand: provenance.command,
    extra: { ...body.extra, lineage: lineageText(provenance.lineage), lineageDetail: provenance.lineage },
    createdAt: new Date().toISOString(),
  };
  const parsed = parseModelManifest(manifest);
  if (!parsed.ok) throw new Error(`manifest does not match src/nn/manifest.ts: ${parsed.error}`);
  return manifest;
}

/** Writes model.json + weights.bin + manifest.json to `out`, atomically (staging folder, then rename). */
export async function writeModelFolder(
  out: string,
  manifest: ModelManifestInput,
  writeWeights: (dir: string) => Promise<void>,
): Promise<void> {
  const staging = join(dirname(resolve(out)), `.${basename(resolve(out))}.partial`);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  await writeWeights(staging);
  await writeFile(join(staging, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  await rm(out, { recursive: true, force: true });
  await rename(staging, out);
}

/** writeModelFolder for a tf.js layers model. */
export async function exportLayersModel(
  model: LayersModel,
  out: string,
  manifest: ModelManifestInput,
): Promise<void> {
  const { fileSystemIO } = await import('../../../src/nn/fs-io.js');
  await writeModelFolder(out, manifest, async (dir) => {
    await model.save(fileSystemIO(dir));
  });
}
