/**
 * Quality of RED-Diff with the committed diffusion models, on the benchmark's own problems (bench/restore.ts builds
 * them, with the same seeds, so these figures are the benchmark's figures for these images):
 *  - the first 20 Fashion-MNIST test images with 50% of their pixels missing, with the service's defaults, against
 *    lambda = 0 (the prior must be what fills the holes) and thresholds a little below `npm run bench:restore`;
 *  - a 64x64 centre crop of Set12 06 with 50% missing, with ddpm-natural-grey;
 *  - a centred 32x32 hole in 64x64 centre crops of four of train400's last 40 images (the selection split of
 *    bench/restore-sweep.ts heldout), where the mask's hole radius selects the manifest's `holes` settings.
 * Without the committed models the test fails: they are deliverables, not optional extras.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { train400CentreCrops } from '../../bench/denoise/heldout.js';
import { REPO_ROOT } from '../../bench/denoise/inputs.js';
import {
  fashionProblems,
  type Problem,
  runRedDiff,
  score,
  set12Problems,
  stackMasks,
} from '../../bench/restore.js';
import { loadDiffusionModel } from '../../src/diffusion/model.js';
import { centredBoxMask } from '../../src/diffusion/operators.js';
import { linearSchedule } from '../../src/diffusion/schedule.js';
import { initTfjs, type Tf } from '../../src/nn/backend.js';
import { RESTORE_DEFAULTS } from '../../src/operations/restore/schema.js';
import { modelRedDiffDefaults } from '../../src/operations/restore/task.js';

/**
 * Each model's service defaults (manifest extra.redDiff), 2026-11-28: Fashion-MNIST 50% missing, first 20 images
 * 24.14 dB, missing pixels 21.17 dB (the biharmonic start alone, lambda = 0: 18.11), residual 4.3e-3; Set12 06
 * 64x64 crop 25.85 dB with ddpm-natural-grey/20261129 (20261128 gave 25.48), residual 2.8e-3; with its defaults of
 * 2026-12-04 (lambda 0.05, lr 0.01, chosen on held-out train400 crops by bench/restore-sweep.ts heldout) still
 * 25.85 dB, residual 2.3e-3. `npm run bench:restore` (bench/RESULTS.md) has the same problems over 200
 * images / 12 crops. The test draws RED-Diff's noise for its own batch (the benchmark batches 16 / 4), hence the
 * margins: about 0.5 dB.
 */
const FASHION_MIN_PSNR = 23.6;
const FASHION_MIN_PSNR_MISSING = 20.6;
const FASHION_MAX_RESIDUAL = 0.008;
const FASHION_MIN_PRIOR_GAIN = 2;
const SET12_MIN_PSNR = 25.35;
const SET12_MAX_RESIDUAL = 0.008;
/**
 * The 32x32 hole in the centre 64x64 crops of train400 test_361, 371, 381, 391 (batch of 4, seed 0), with the
 * manifest's hole settings (smooth start, t from 400, lambda 0.1, lr 0.02), 2026-12-04: 21.50 dB inside the hole
 * against 19.89 for the biharmonic start alone (+1.61), 27.52 dB over the crop (25.91), residual 7.9e-3.
 */
const HOLE_MIN_GAIN = 1;
const HOLE_MAX_RESIDUAL = 0.015;

const FASHION_DIR = 'models/ddpm-fashion-mnist/20261127';
const NATURAL_DIR = 'models/ddpm-natural-grey/20261129';

/** The service's settings for a committed model: its manifest's extra.redDiff, as the restore handler reads it. */
function serviceDefaults(dir: string) {
  const manifest = JSON.parse(readFileSync(join(REPO_ROOT, dir, 'manifest.json'), 'utf8'));
  return { steps: RESTORE_DEFAULTS.steps, ...modelRedDiffDefaults(manifest.extra) };
}

describe('RED-Diff quality with the committed models', () => {
  let tf: Tf;
  const schedule = linearSchedule();

  beforeAll(async () => {
    ({ tf } = await initTfjs('wasm'));
  });

  it('inpaints 20 Fashion-MNIST test images with 50% missing above the benchmark thresholds', async () => {
    const model = await loadDiffusionModel(tf, join(REPO_ROOT, FASHION_DIR));
    const defaults = serviceDefaults(FASHION_DIR);
    expect(defaults.init).toBe('smooth');
    const problem = { ...(await fashionProblems(20))[0], batch: 20 };
    expect(problem.id).toBe('fashion-mask50');
    const ours = score(problem, (await runRedDiff(tf, model, schedule, problem, defaults)).x);
    // lambda = 0 from the same start: the biharmonic fill alone.
    const none = score(
      problem,
      (await runRedDiff(tf, model, schedule, problem, { ...defaults, lambda: 0 })).x,
    );
    model.dispose();
    expect(ours.psnr).toBeGreaterThan(FASHION_MIN_PSNR);
    expect(ours.psnrMissing).toBeGreaterThan(FASHION_MIN_PSNR_MISSING);
    expect(ours.residual).toBeLessThan(FASHION_MAX_RESIDUAL);
    // The prior, not the start, makes the difference on the missing pixels.
    expect((ours.psnrMissing as number) - (none.psnrMissing as number)).toBeGreaterThan(
      FASHION_MIN_PRIOR_GAIN,
    );
  }, 60_000);

  it('inpaints a Set12 crop with 50% missing with ddpm-natural-grey', async () => {
    const model = await loadDiffusionModel(tf, join(REPO_ROOT, NATURAL_DIR));
    const problem = (await set12Problems(['06'], 64))[0];
    expect(problem.id).toBe('set12-mask50');
    const ours = score(
      problem,
      (await runRedDiff(tf, model, schedule, problem, serviceDefaults(NATURAL_DIR))).x,
    );
    model.dispose();
    expect(ours.psnr).toBeGreaterThan(SET12_MIN_PSNR);
    expect(ours.residual).toBeLessThan(SET12_MAX_RESIDUAL);
  }, 60_000);

  it("fills a 32x32 hole with the manifest's hole settings, better than the biharmonic start", async () => {
    const model = await loadDiffusionModel(tf, join(REPO_ROOT, NATURAL_DIR));
    const problem = await heldoutHoleProblem([361, 371, 381, 391]);
    const manifest = JSON.parse(readFileSync(join(REPO_ROOT, NATURAL_DIR, 'manifest.json'), 'utf8'));
    const defaults = modelRedDiffDefaults(manifest.extra, {
      mask: (problem.mask as Float32Array).subarray(0, 64 * 64),
      height: 64,
      width: 64,
    });
    expect(defaults).toMatchObject({ settings: 'holes', holeRadius: 16 });
    // As the service runs them: the window (here the whole 64x64 crop) and its coarse-to-fine start, if any.
    const window =
      defaults.windowMargin !== undefined ? { window: { margin: defaults.windowMargin, multiple: 8 } } : {};
    const options = { steps: RESTORE_DEFAULTS.steps, ...defaults, ...window };
    const ours = score(problem, (await runRedDiff(tf, model, schedule, problem, options)).x);
    // lambda = 0 from the smooth start: the biharmonic fill alone.
    const none = score(
      problem,
      (await runRedDiff(tf, model, schedule, problem, { ...options, init: 'smooth', lambda: 0 })).x,
    );
    model.dispose();
    expect((ours.psnrMissing as number) - (none.psnrMissing as number)).toBeGreaterThan(HOLE_MIN_GAIN);
    expect(ours.psnr).toBeGreaterThan(none.psnr);
    expect(ours.residual).toBeLessThan(HOLE_MAX_RESIDUAL);
  }, 120_000);
});

/** Centre 64x64 crops of train400 images `numbers` with a centred 32x32 hole. */
async function heldoutHoleProblem(numbers: number[]): Promise<Problem> {
  const size = 64;
  const x = await train400CentreCrops(numbers, size);
  return {
    id: 'heldout-box32',
    dataset: 'Set12',
    label: 'train400 held-out crops, centred 32x32 hole',
    kind: 'mask',
    modelDir: NATURAL_DIR,
    count: numbers.length,
    height: size,
    width: size,
    x,
    mask: stackMasks(numbers.length, () => centredBoxMask(size, size, 32)),
    region: { top: 0, left: 0, height: size, width: size },
    batch: numbers.length,
  };
}
