/**
 * Quality of RED-Diff with the committed diffusion models, on the benchmark's own problems (bench/restore.ts builds
 * them, with the same seeds, so these figures are the benchmark's figures for these images):
 *  - the first 20 Fashion-MNIST test images with 50% of their pixels missing, with the service's defaults, against
 *    lambda = 0 (the prior must be what fills the holes) and thresholds a little below `npm run bench:restore`;
 *  - a 64x64 centre crop of Set12 06 with 50% missing, with ddpm-natural-grey.
 * Without the committed models the test fails: they are deliverables, not optional extras.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../bench/denoise/inputs.js';
import { fashionProblems, runRedDiff, score, set12Problems } from '../../bench/restore.js';
import { loadDiffusionModel } from '../../src/diffusion/model.js';
import { linearSchedule } from '../../src/diffusion/schedule.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { RESTORE_DEFAULTS } from '../../src/schemas/restore.js';

/**
 * `npm run bench:restore` (bench/RESULTS.md, 2026-11-28, defaults lambda 0.1, lr 0.25, 100 steps): Fashion-MNIST
 * 50% missing, first 20 images 22.99 dB (60 images: 22.98 dB, missing pixels 20.00 dB, residual mean 8.3e-3, worst
 * 1.3e-2); Set12 06 64x64 crop 22.78 dB (12 crops: residual mean 1.7e-2, worst 2.3e-2). The test draws RED-Diff's
 * noise for its own batch (the benchmark batches 16 / 4), hence the margins: 0.5 dB on 20 images, 1 dB on one crop.
 */
const FASHION_MIN_PSNR = 22.5;
const FASHION_MIN_PSNR_MISSING = 19.5;
const FASHION_MAX_RESIDUAL = 0.012;
const SET12_MIN_PSNR = 21.8;
const SET12_MAX_RESIDUAL = 0.025;

describe('RED-Diff quality with the committed models', () => {
  let tf: Tf;
  const schedule = linearSchedule();
  const defaults = {
    steps: RESTORE_DEFAULTS.steps,
    lambda: RESTORE_DEFAULTS.lambda,
    lr: RESTORE_DEFAULTS.lr,
  };

  beforeAll(async () => {
    ({ tf } = await initTfjs('wasm'));
  });

  it('inpaints 20 Fashion-MNIST test images with 50% missing above the benchmark thresholds', async () => {
    const model = await loadDiffusionModel(tf, join(REPO_ROOT, 'models/ddpm-fashion-mnist/20261127'));
    const problem = { ...(await fashionProblems(20))[0], batch: 20 };
    expect(problem.id).toBe('fashion-mask50');
    const ours = score(problem, runRedDiff(tf, model, schedule, problem, defaults).x);
    const none = score(problem, runRedDiff(tf, model, schedule, problem, { ...defaults, lambda: 0 }).x);
    model.dispose();
    expect(ours.psnr).toBeGreaterThan(FASHION_MIN_PSNR);
    expect(ours.psnrMissing).toBeGreaterThan(FASHION_MIN_PSNR_MISSING);
    expect(ours.residual).toBeLessThan(FASHION_MAX_RESIDUAL);
    // The prior, not the optimiser, fills the holes: without it they stay at H^+ y (mid grey).
    expect((ours.psnrMissing as number) - (none.psnrMissing as number)).toBeGreaterThan(5);
  }, 60_000);

  it('inpaints a Set12 crop with 50% missing with ddpm-natural-grey', async () => {
    const model = await loadDiffusionModel(tf, join(REPO_ROOT, 'models/ddpm-natural-grey/20261127'));
    const problem = (await set12Problems(['06'], 64))[0];
    expect(problem.id).toBe('set12-mask50');
    const ours = score(problem, runRedDiff(tf, model, schedule, problem, defaults).x);
    model.dispose();
    expect(ours.psnr).toBeGreaterThan(SET12_MIN_PSNR);
    expect(ours.residual).toBeLessThan(SET12_MAX_RESIDUAL);
  }, 60_000);
});
