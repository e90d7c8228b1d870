/**
 * The tensor part of a training checkpoint: `tensors.bin` (all values, float32, back to back) and `tensors.json`
 * (name, shape, offset and length of each). Shared by the ddpm, noise2score and mid trainers.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface NamedArray {
  name: string;
  shape: number[];
  values: Float32Array;
}

export async function writeTensors(dir: string, tensors: NamedArray[]): Promise<void> {
  let offset = 0;
  const specs = tensors.map((t) => {
    const spec = { name: t.name, shape: t.shape, offset, length: t.values.length };
    offset += t.values.length;
    return spec;
  });
  const all = new Float32Array(offset);
  tensors.forEach((t, i) => {
    all.set(t.values, specs[i].offset);
  });
  await writeFile(join(dir, 'tensors.bin'), Buffer.from(all.buffer, all.byteOffset, all.byteLength));
  await writeFile(join(dir, 'tensors.json'), JSON.stringify(specs));
}

export async function readTensors(dir: string): Promise<NamedArray[]> {
  const specs = JSON.parse(await readFile(join(dir, 'tensors.json'), 'utf8')) as {
    name: string;
    shape: number[];
    offset: number;
    length: number;
  }[];
  const bytes = await readFile(join(dir, 'tensors.bin'));
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return specs.map((s) => ({
    name: s.name,
    shape: s.shape,
    values: all.slice(s.offset, s.offset + s.length),
  }));
}
