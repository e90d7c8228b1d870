/**
 * Noisy-only Noise2Score (--images) on the PyTorch path computes what the TypeScript trainer does: the committed
 * fixture holds levels, an AR-DAE batch and its loss computed by tools/train/torch/noise2score.py (written by
 * tools/train/torch/noisy_fixture.py; `npm run check:torch` checks a fresh one), and tools/train/torch/parity.ts
 * recomputes them with tools/train/noise2score.ts. No Python here.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { initTfjs } from '../../src/nn/backend.js';
import { noisyParity, readNoisyFixture } from '../../tools/train/torch/parity.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/train/noise2score-noisy-parity.json', import.meta.url));

describe('noisy-only Noise2Score: PyTorch against tf.js', () => {
  it('estimates the same levels and gives the same AR-DAE loss (1e-4 relative) for the three families', async () => {
    const { tf } = await initTfjs('wasm');
    const fixture = await readNoisyFixture(FIXTURE);
    // The fixture covers the estimators' branches: a flat image (clamped to the low end, or Gamma's high end) and
    // a half-saturated one (tiles skipped) besides a noisy scene.
    expect(fixture.families.gaussian.cropLevels[1]).toBeCloseTo(3.5 / 255, 6);
    expect(fixture.families.gamma.cropLevels[1]).toBe(150);
    const parity = await noisyParity(tf, fixture);
    for (const [family, p] of Object.entries(parity)) {
      expect(p.level, `${family} levels`).toBeLessThan(1e-6);
      expect(p.lossScale, `${family} sigma_a`).toBeLessThan(1e-6);
      expect(p.loss, `${family}: tf.js ${p.tfjsLoss}, PyTorch ${p.torchLoss}`).toBeLessThan(1e-4);
    }
  }, 30_000);
});
