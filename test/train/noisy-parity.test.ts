/**
 * Noisy-only Noise2Score (--images) on the PyTorch path computes what the TypeScript trainer does: the committed
 * fixture holds levels, an AR-DAE batch and its loss computed by tools/train/torch/noise2score.py (written by
 * tools/train/torch/noisy_fixture.py; `npm run check:torch` checks a fresh one), and tools/train/torch/parity.ts
 * recomputes them with tools/train/noise2score.ts. No Python here.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { initTfjs } from '../../src/nn/backend.js';
import { FAMILY_TRAINING } from '../../tools/train/noise2score.js';
import { noisyParity, readNoisyFixture } from '../../tools/train/torch/parity.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/train/noise2score-noisy-parity.json', import.meta.url));

describe('noisy-only Noise2Score: PyTorch against tf.js', () => {
  it('estimates the same levels and gives the same AR-DAE loss (1e-4 relative) for the three families', async () => {
    const { tf } = await initTfjs('wasm');
    const fixture = await readNoisyFixture(FIXTURE);
    // The fixture covers the estimators' branches: a flat image (clamped: Gaussian reads 0, the low end; Gamma a
    // relative variance below 0 once 8-bit rounding is subtracted, no noise: the high end), a half-saturated one
    // (tiles skipped), one with
    // a black 2x2 block in every tile (all used then, rather than none: NaN, the low end) besides a noisy scene, and a
    // larger textured image where Gamma's noise-consistent rule moves k away from the fixed fraction's reading, and
    // the texture correction moves it again.
    expect(fixture.families.gaussian.cropLevels[1]).toBeCloseTo(3.5 / 255, 6);
    expect(fixture.families.gamma.cropLevels[1]).toBe(FAMILY_TRAINING.gamma.levelRange[1]);
    const { gaussian, gamma, poisson } = fixture.families;
    expect(gaussian.cropLevels[3]).toBeGreaterThan(FAMILY_TRAINING.gaussian.levelRange[0]);
    expect(gamma.cropLevels[3]).toBeGreaterThan(FAMILY_TRAINING.gamma.levelRange[0]);
    expect(poisson.imageZetas?.[3]).toBeGreaterThan(FAMILY_TRAINING.poisson.levelRange[0]);
    const { level, fixedFractionLevel = Number.NaN } = gamma.wide;
    expect(Math.abs(level / fixedFractionLevel - 1)).toBeGreaterThan(0.01);
    expect(Math.abs(level / (gamma.wide.uncorrectedLevel ?? Number.NaN) - 1)).toBeGreaterThan(0.005);
    const parity = await noisyParity(tf, fixture);
    for (const [family, p] of Object.entries(parity)) {
      expect(p.level, `${family} levels`).toBeLessThan(1e-6);
      expect(p.lossScale, `${family} sigma_a`).toBeLessThan(1e-6);
      expect(p.loss, `${family}: tf.js ${p.tfjsLoss}, PyTorch ${p.torchLoss}`).toBeLessThan(1e-4);
    }
  }, 30_000);
});
