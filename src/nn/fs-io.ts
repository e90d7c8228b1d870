/**
 * A TF.js IOHandler that loads and saves a model directory on disk (model.json + binary weight shards), so that
 * neither `@tensorflow/tfjs-node` (file://) nor `fetch` is needed.
 *
 * It imports no TF.js code (types only): the model repository scan can use the same path checks on the main thread,
 * which never loads TF.js.
 */
import { mkdir, readFile, realpath, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { io } from '@tensorflow/tfjs-core';

export const MODEL_JSON = 'model.json';
export const DEFAULT_WEIGHTS_FILE = 'weights.bin';

/** The parts of model.json we read. */
export interface ModelJsonFile {
  modelTopology: object;
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  weightsManifest?: { paths: string[]; weights: io.WeightsManifestEntry[] }[];
  trainingConfig?: io.TrainingConfig;
  signature?: object;
  userDefinedMetadata?: io.ModelArtifacts['userDefinedMetadata'];
  modelInitializer?: object;
  initializerSignature?: object;
}

export class ModelFileError extends Error {
  constructor(
    message: string,
    readonly reason: 'invalid-json' | 'missing-file' | 'unsafe-path' | 'weights-mismatch' | 'invalid-model',
  ) {
    super(message);
    this.name = 'ModelFileError';
  }
}

/**
 * Resolves a weight-shard path from model.json against the model directory, refusing anything that could leave it
 * (absolute paths, '..' segments, URLs, backslashes).
 */
export function resolveShardPath(dir: string, shardPath: string): string {
  const unsafe =
    typeof shardPath !== 'string' ||
    shardPath.length === 0 ||
    path.isAbsolute(shardPath) ||
    shardPath.includes('\\') ||
    shardPath.includes('\0') ||
    /^[a-z][a-z0-9+.-]*:/i.test(shardPath) ||
    shardPath.split('/').some((segment) => segment === '..');
  const root = path.resolve(dir);
  const resolved = path.resolve(root, shardPath);
  if (unsafe || !resolved.startsWith(root + path.sep)) {
    throw new ModelFileError(`weight path '${shardPath}' points outside the model folder`, 'unsafe-path');
  }
  return resolved;
}

/**
 * resolveShardPath, then the same check on the real path: a symbolic link inside the folder that leads out of it
 * is refused too. (Links that stay inside, such as a Kubernetes volume's `..data` links, are fine.)
 */
export async function resolveShardFile(dir: string, shardPath: string): Promise<string> {
  const file = resolveShardPath(dir, shardPath);
  let real: string;
  let realRoot: string;
  try {
    [real, realRoot] = await Promise.all([realpath(file), realpath(dir)]);
  } catch {
    return file; // missing: the caller reports it as such
  }
  if (!real.startsWith(realRoot + path.sep)) {
    throw new ModelFileError(
      `weight path '${shardPath}' points outside the model folder (through a link)`,
      'unsafe-path',
    );
  }
  return real;
}

const BYTES_PER_ELEMENT: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  uint8: 1,
  uint16: 2,
  float16: 2,
  complex64: 8,
};

/** Bytes a weight occupies in the shards (quantized weights are stored in their quantized dtype). */
function weightBytes(entry: io.WeightsManifestEntry): number {
  const elements = entry.shape.reduce((a, b) => a * b, 1);
  const storedDtype = entry.quantization?.dtype ?? entry.dtype;
  const bytes = BYTES_PER_ELEMENT[storedDtype];
  if (bytes === undefined) {
    throw new ModelFileError(
      `weight '${entry.name}' has unsupported dtype '${storedDtype}'`,
      'invalid-model',
    );
  }
  return elements * bytes;
}

export async function readModelJson(dir: string): Promise<ModelJsonFile> {
  const file = path.join(dir, MODEL_JSON);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ModelFileError(`cannot read ${file}: ${(error as Error).message}`, 'missing-file');
  }
  let json: ModelJsonFile;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ModelFileError(`${file} is not valid JSON: ${(error as Error).message}`, 'invalid-json');
  }
  if (
    json === null ||
    typeof json !== 'object' ||
    typeof json.modelTopology !== 'object' ||
    !json.modelTopology
  ) {
    throw new ModelFileError(`${file} has no modelTopology`, 'invalid-model');
  }
  if (json.weightsManifest !== undefined && !Array.isArray(json.weightsManifest)) {
    throw new ModelFileError(`${file}: weightsManifest must be an array`, 'invalid-model');
  }
  // Check every shard path up front, so a hostile model.json is refused before any file is read.
  for (const group of json.weightsManifest ?? []) {
    if (!Array.isArray(group?.paths) || !Array.isArray(group?.weights)) {
      throw new ModelFileError(
        `${file}: each weightsManifest group needs paths and weights`,
        'invalid-model',
      );
    }
    for (const shard of group.paths) resolveShardPath(dir, shard);
  }
  return json;
}

/** Which TF.js loader a model.json is for: graph models carry a GraphDef (`node`), layers models a Keras config. */
export function modelJsonFormat(json: ModelJsonFile): 'layers' | 'graph' {
  if (json.format === 'graph-model' || Array.isArray((json.modelTopology as { node?: unknown }).node))
    return 'graph';
  return 'layers';
}

/**
 * Checks a model folder without reading the weights: model.json parses, shard paths stay inside, every shard exists
 * and the shard sizes match the weight specs. Cheap enough for a repository scan on the main thread.
 */
export async function inspectModelFiles(
  dir: string,
): Promise<{ format: 'layers' | 'graph'; weightBytes: number }> {
  const json = await readModelJson(dir);
  let total = 0;
  for (const group of json.weightsManifest ?? []) {
    let groupBytes = 0;
    for (const shard of group.paths) {
      try {
        groupBytes += (await stat(await resolveShardFile(dir, shard))).size;
      } catch (error) {
        if (error instanceof ModelFileError) throw error;
        throw new ModelFileError(`weight shard '${shard}' is missing`, 'missing-file');
      }
    }
    const expected = group.weights.reduce((sum, entry) => sum + weightBytes(entry), 0);
    if (expected !== groupBytes) {
      throw new ModelFileError(
        `weight shards [${group.paths.join(', ')}] hold ${groupBytes} bytes, the weight specs need ${expected}`,
        'weights-mismatch',
      );
    }
    total += groupBytes;
  }
  return { format: modelJsonFormat(json), weightBytes: total };
}

/** Reads and concatenates every shard, checking the byte count against the weight specs. */
async function readWeights(
  dir: string,
  manifest: NonNullable<ModelJsonFile['weightsManifest']>,
): Promise<{ weightSpecs: io.WeightsManifestEntry[]; weightData: ArrayBuffer }> {
  const weightSpecs: io.WeightsManifestEntry[] = [];
  const buffers: Buffer[] = [];
  for (const group of manifest) {
    let groupBytes = 0;
    for (const shard of group.paths) {
      const file = await resolveShardFile(dir, shard);
      let data: Buffer;
      try {
        data = await readFile(file);
      } catch (error) {
        throw new ModelFileError(
          `weight shard '${shard}' cannot be read: ${(error as Error).message}`,
          'missing-file',
        );
      }
      buffers.push(data);
      groupBytes += data.byteLength;
    }
    const expected = group.weights.reduce((sum, entry) => sum + weightBytes(entry), 0);
    if (expected !== groupBytes) {
      throw new ModelFileError(
        `weight shards [${group.paths.join(', ')}] hold ${groupBytes} bytes, the weight specs need ${expected}`,
        'weights-mismatch',
      );
    }
    weightSpecs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
  return { weightSpecs, weightData };
}

function concatWeightData(data: io.WeightData | undefined): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  const parts = Array.isArray(data) ? data : [data];
  return Buffer.concat(parts.map((part) => new Uint8Array(part)));
}

/**
 * `tf.loadLayersModel(fileSystemIO(dir))`, `tf.loadGraphModel(fileSystemIO(dir))`, `model.save(fileSystemIO(dir))`.
 * Saving writes one shard, `weights.bin`, next to model.json.
 */
export function fileSystemIO(dir: string): io.IOHandler {
  return {
    async load(): Promise<io.ModelArtifacts> {
      const json = await readModelJson(dir);
      const { weightSpecs, weightData } = await readWeights(dir, json.weightsManifest ?? []);
      const artifacts: io.ModelArtifacts = {
        modelTopology: json.modelTopology,
        weightSpecs,
        weightData,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
      };
      if (json.trainingConfig !== undefined) artifacts.trainingConfig = json.trainingConfig;
      if (json.signature !== undefined) artifacts.signature = json.signature;
      if (json.userDefinedMetadata !== undefined) artifacts.userDefinedMetadata = json.userDefinedMetadata;
      if (json.modelInitializer !== undefined) artifacts.modelInitializer = json.modelInitializer;
      if (json.initializerSignature !== undefined) artifacts.initializerSignature = json.initializerSignature;
      return artifacts;
    },

    async save(artifacts: io.ModelArtifacts): Promise<io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer) {
        throw new Error('fileSystemIO: saving binary (protobuf) topologies is not supported');
      }
      const weights = concatWeightData(artifacts.weightData);
      const json: ModelJsonFile = {
        modelTopology: artifacts.modelTopology ?? {},
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        weightsManifest: [{ paths: [DEFAULT_WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }],
      };
      if (artifacts.trainingConfig !== undefined) json.trainingConfig = artifacts.trainingConfig;
      if (artifacts.signature !== undefined) json.signature = artifacts.signature;
      if (artifacts.userDefinedMetadata !== undefined)
        json.userDefinedMetadata = artifacts.userDefinedMetadata;
      if (artifacts.modelInitializer !== undefined) json.modelInitializer = artifacts.modelInitializer;
      if (artifacts.initializerSignature !== undefined)
        json.initializerSignature = artifacts.initializerSignature;
      await mkdir(dir, { recursive: true });
      const modelJsonText = JSON.stringify(json);
      await writeFile(path.join(dir, DEFAULT_WEIGHTS_FILE), weights);
      await writeFile(path.join(dir, MODEL_JSON), modelJsonText);
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          modelTopologyBytes: Buffer.byteLength(JSON.stringify(json.modelTopology)),
          weightSpecsBytes: Buffer.byteLength(JSON.stringify(json.weightsManifest?.[0]?.weights ?? [])),
          weightDataBytes: weights.byteLength,
        },
      };
    },
  };
}
