import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** POT 0.8.2 reference values written by test/fixtures/ot/generate.py. */
export const pot = JSON.parse(
  readFileSync(fileURLToPath(new URL('../fixtures/ot/pot_reference.json', import.meta.url)), 'utf8'),
);

/** Small seeded generator (mulberry32) so tests are reproducible without fixtures. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function gaussianCloud(n: number, d: number, random: () => number, shift = 0): Float64Array {
  const out = new Float64Array(n * d);
  for (let k = 0; k < out.length; k++) {
    out[k] = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random()) + shift;
  }
  return out;
}

export function maxAbsDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) throw new Error(`length ${x.length} vs ${y.length}`);
  let d = 0;
  for (let k = 0; k < x.length; k++) d = Math.max(d, Math.abs(x[k] - y[k]));
  return d;
}
