/**
 * Every committed model under models/ loads and gives bit-identical outputs on a fixed input, and
 * the trainers' builders build the same topology (and, seeded, the same weights and outputs), as the code before the
 * move of the custom layers to src/nn did: test/nn/fixtures/custom-layers.json was written by
 * test/nn/fixtures/custom-layers.ts on the code before it.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { computeDigests, FIXTURE } from './fixtures/custom-layers.js';

describe('custom layers', () => {
  it('every committed model and every builder gives what it gave before the move', async () => {
    const expected = JSON.parse(readFileSync(FIXTURE, 'utf8'));
    const actual = await computeDigests(tf);
    expect(Object.keys(actual.models).length).toBeGreaterThanOrEqual(10);
    expect(actual).toEqual(expected);
  }, 60_000);
});
