import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers.js';

// WebGPU in Node has no synchronous read-back (dataSync, arraySync and bufferSync need OffscreenCanvas there): every
// path that runs a model in the service reads with `await t.data()`. Serving code is everything under src/ and
// routes/ (the offline trainers live in tools/train/, run on wasm or cpu). No exceptions are allowed.
const SYNC_READ = /\b(dataSync|arraySync|bufferSync)\s*\(/;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      out.push(...sourceFiles(full));
    } else if (/\.(ts|js|mjs)$/.test(entry.name)) out.push(full);
  }
  return out;
}

describe('serving code reads tensors asynchronously', () => {
  it('no dataSync, arraySync or bufferSync under src/ and routes/', () => {
    const offenders: string[] = [];
    for (const file of [
      ...sourceFiles(path.join(repoRoot, 'src')),
      ...sourceFiles(path.join(repoRoot, 'routes')),
    ]) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (SYNC_READ.test(line))
            offenders.push(`${path.relative(repoRoot, file)}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(offenders).toEqual([]);
  });
});
