/**
 * The restore operation (RED-Diff with a diffusion prior): parameters shared by REST (query string or multipart
 * fields), GraphQL and jobs. Pixel values are on [0, 1] here (sigmaY too); the service converts to the diffusion
 * models' [-1, 1].
 */
import { z } from 'zod';
import { NATURAL_IMAGE_MODEL, SMALL_IMAGE_MODEL } from '../../nn/default-models.js';
import { asyncFlag } from '../common-schema.js';

/** Steps above this are refused (400): a step is one network forward pass on the whole image. */
export const MAX_RESTORE_STEPS = 1000;
/** Most RED-Diff runs a request may average (`samples`). */
export const MAX_RESTORE_SAMPLES = 8;
/**
 * Defaults, measured with the final ddpm-fashion-mnist@20261127 on the first 16 Fashion-MNIST test images (32x32,
 * scored on the 28x28 image; PSNR of the pooled MSE; "missing" = over the missing pixels; residual = ||y - H x|| /
 * ||y||), wasm backend, SNR weighting, Adam betas (0.9, 0.99) as the official code:
 *   50% missing, 100 steps:  lambda 0.25, lr 0.25       22.37 dB, missing 19.36, residual 0.0143
 *                            lambda 0.25, lr 0.5        22.53 dB, 19.53, 0.0170
 *                            lambda 0.10, lr 0.25       22.58 dB, 19.56, 0.0080   <- chosen
 *                            lambda 0.25, 'sqrt' weighting   21.21 dB, 0.041
 *                            lambda 0 (no prior)        10.42 dB, missing 7.40 (holes stay mid grey)
 *   50% missing, 200 steps:  lambda 0.25, lr 0.25 23.02 dB, 0.0106; lr 0.5 22.77 dB, 0.0138 (2x the cost, +0.5 dB)
 *   80% missing, 100 steps:  lambda 0.25, lr 0.25 16.90 dB, 0.0174; lambda 0.10 17.29 dB, 0.0081; lr 0.5 17.06 dB;
 *                            lr 0.1 14.94 dB, 0.031; lambda 0 8.37 dB
 *   x2 super-resolution:     lambda 0.25 21.06 dB, 0.0184; lambda 0.10 21.08 dB, 0.0156; lr 0.5 21.18 dB, 0.0192;
 *                            lr 0.1 20.56 dB; lambda 0 (nearest up-sampling) 17.72 dB
 * Learning-rate schedule: the official code (NVlabs/RED-diff algos/reddiff.py) has none (constant-lr Adam). A
 * cosine decay to 0 over the run was tried for the residual and is much worse (50%, lr 0.25: 17.95 dB, residual
 * 0.050; lr 0.5: 19.39 dB, 0.043): Adam's denominator still remembers the large early prior gradients (w_t ~ 157
 * at t = T-1), so late steps are already small and a decaying lr freezes the estimate before the data term has
 * pulled the observed pixels back. Constant lr is kept. lambda 0.1 (the official 0.25 is a request away) halves the
 * residual and is 0.2-0.4 dB better on all three tasks; the benchmark reports 0.25 beside it.
 * Cost: one U-Net forward pass per step, ~6 ms per 32x32 image-step in batches of 16 on a quiet core.
 * ddpm-natural-grey@20261127, Set12 01-04 64x64 centre crops, 50% missing (PSNR mean per image, residual):
 *   100 steps: lambda 0.1 with lr 0.05 / 0.1 / 0.25 / 0.5 / 1 -> 19.85 / 21.84 / 24.23 / 25.33 / 25.39 dB (0.018 at
 *   0.25, 0.023 at 0.5); lambda 0.03 with lr 0.1 / 0.5 -> 22.09 / 25.54 dB (0.0065 / 0.011); 200 steps, lambda 0.1,
 *   lr 0.25 -> 26.52 dB, 0.015. The natural prior is under-converged at 100 steps (biharmonic: 29.5 dB on all 12
 *   crops, bench/RESULTS.md); ask for steps=200+ or lr=0.5 there. One default for both models is kept.
 * 200 steps on the benchmark's 60 Fashion-MNIST problems (bench/restore.ts fashionProblems, lambda 0.1, lr 0.25):
 *   80% missing 19.07 dB (biharmonic 17.14: +1.93 dB, the issue's +1 dB target), residual 6.5e-3; x2 SR 22.56 dB,
 *   residual 1.03e-2 (100 steps: 17.91 dB / 8.5e-3 and 22.06 dB / 1.5e-2). 100 stays the default for its half cost;
 *   `npm run bench:restore -- --steps 200` is the run that would confirm a change.
 */
/**
 * Session 3 (2026-11-28), what the defaults above missed: with the SNR weighting the prior's gradient is
 * lambda (mu - x0Hat(x_t)), and at large t x0Hat is a blurred mean image, so the first steps of a run from t = T - 1
 * wipe whatever the start held; Adam then moves each missing pixel by about lr per step whatever its gradient's
 * size. Starting from a classical interpolation that fits y (init = 'smooth': biharmonic fill, back-projected
 * bicubic; src/diffusion/initial.ts) with a shorter schedule (tMax) and a small lr is better on both priors
 * (bench/restore-sweep.ts sweeps, 100 steps, lambda 0.1):
 *   Fashion-MNIST, first 32 test images, 80% missing: official start 17.69 dB; smooth start from t 999, lr 0.25:
 *   17.53; from t 300 with lr 0.1 / 0.05 / 0.03: 19.18 / 19.59 / 19.69 (residual 4.2e-3); from t 200: 19.06;
 *   from t 400, lr 0.05: 19.33. x2 SR at t 300, lr 0.03: 22.63 (start alone 19.54).
 *   Set12 64x64 crops, ddpm-natural-grey@20261127: the prior pulls a biharmonic start (29.46 dB at 50% missing)
 *   down at every setting tried (t 300 lr 0.03: 27.82; t 100 lr 0.02: 28.75; t 50 lr 0.01: 29.18; t 10 lr 0.01:
 *   29.21); on x2 SR it adds a little from t 50 with lr 0.01 (28.36 -> 28.48 dB) and on the 32x32 box +1 dB.
 * Each model's manifest now carries its choice (extra.redDiff: init, tMax, lambda, lr); RESTORE_DEFAULTS is the
 * fallback for a model without one.
 */
/**
 * Fallbacks when a model's manifest recommends nothing (`extra.redDiff`, see modelRedDiffDefaults in
 * src/compute/handlers/restore.ts): the official algorithm's start and schedule, lambda and lr as measured in
 * session 2. The committed priors carry their own measured lambda, lr, init and tMax.
 */
export const RESTORE_DEFAULTS = { steps: 100, lambda: 0.1, lr: 0.25, init: 'pinv' } as const;

/** The default model: the Fashion-MNIST prior for images that fit its 32x32 domain, the natural-image prior else. */
export { NATURAL_IMAGE_MODEL, SMALL_IMAGE_MODEL };
export const SMALL_IMAGE_SIDE = 32;

export function defaultRestoreModel(width: number, height: number): string {
  return Math.max(width, height) <= SMALL_IMAGE_SIDE ? SMALL_IMAGE_MODEL : NATURAL_IMAGE_MODEL;
}

export const RESTORE_TASKS = ['inpaint', 'super-resolution', 'deblur', 'denoise'] as const;
export type RestoreTask = (typeof RESTORE_TASKS)[number];

const ONE_BOX = String.raw`\s*\d+\s*,\s*\d+\s*,\s*\d+\s*,\s*\d+\s*`;
const BOXES = new RegExp(`^${ONE_BOX}(;${ONE_BOX})*;?\\s*$`);

/** "x,y,w,h" boxes separated by ';' (x = column of the left edge, y = row of the top edge). */
export function parseBoxes(text: string): { top: number; left: number; height: number; width: number }[] {
  return text
    .split(';')
    .filter((b) => b.trim() !== '')
    .map((b) => {
      const [x, y, w, h] = b.split(',').map((v) => Number(v.trim()));
      return { left: x, top: y, width: w, height: h };
    });
}

const modelId = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/);
const flag = z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]);

export const restoreParams = z
  .object({
    task: z.enum(RESTORE_TASKS).default('inpaint').describe('inpaint, super-resolution, deblur or denoise'),
    simulate: flag
      .default(false)
      .describe(
        'false (default): the image IS the measurement y (holes, low resolution, blur or noise already there). ' +
          'true: the image is the clean reference; the service degrades it (H, then sigmaY noise with `seed`), ' +
          'restores it and reports PSNR against it.',
      ),
    maskRatio: z.coerce
      .number()
      .min(0)
      .max(1)
      .optional()
      .describe('inpaint: fraction of pixels missing, chosen at random with `seed`'),
    box: z
      .string()
      .regex(BOXES, 'box is x,y,w,h[;x,y,w,h...] (non-negative integers)')
      .optional()
      .describe('inpaint: missing boxes "x,y,w,h" (x column, y row), several separated by ";"'),
    maskMissing: z
      .enum(['white', 'black'])
      .default('white')
      .describe('inpaint with an uploaded mask: which colour marks the missing pixels'),
    factor: z.coerce
      .number()
      .int()
      .refine((v) => v === 2 || v === 4, 'factor must be 2 or 4')
      .default(2)
      .describe('super-resolution factor'),
    kernel: z
      .enum(['avg', 'bicubic'])
      .default('avg')
      .describe('super-resolution down-sampling: average pooling or bicubic'),
    blur: z.enum(['gaussian', 'uniform']).default('gaussian').describe('deblur kernel'),
    size: z.coerce
      .number()
      .int()
      .min(1)
      .max(31)
      .refine((v) => v % 2 === 1, 'size must be odd')
      .default(9)
      .describe('deblur kernel size (odd)'),
    width: z.coerce
      .number()
      .gt(0)
      .max(20)
      .default(2)
      .describe('deblur: Gaussian standard deviation in pixels'),
    sigmaY: z.coerce
      .number()
      .min(0)
      .max(1)
      .default(0)
      .describe(
        'measurement noise standard deviation on the [0, 1] scale (denoise: the noise level of the input)',
      ),
    model: modelId
      .optional()
      .describe(
        `Diffusion model (eps-prediction U-Net). Default by the uploaded image's size: ${SMALL_IMAGE_MODEL} when ` +
          `both sides are <= ${SMALL_IMAGE_SIDE} (Fashion-MNIST-like thumbnails), else ${NATURAL_IMAGE_MODEL} (grey ` +
          'natural images of any size)',
      ),
    version: modelId.optional().describe('Model version (default: latest)'),
    steps: z.coerce
      .number()
      .int()
      .min(2)
      .max(MAX_RESTORE_STEPS)
      .default(RESTORE_DEFAULTS.steps)
      .describe(`RED-Diff steps (2..${MAX_RESTORE_STEPS}); one network forward pass each`),
    lambda: z.coerce
      .number()
      .min(0)
      .max(10)
      .optional()
      .describe(
        "weight of the diffusion prior (default: the model's measured value; lambda, lr, init and tMax default to " +
          "the model's hole settings when the inpainting mask has a deep hole, reported as params.settings)",
      ),
    lr: z.coerce.number().gt(0).max(1).optional().describe("Adam learning rate (default: the model's)"),
    init: z
      .enum(['pinv', 'smooth'])
      .optional()
      .describe(
        "start of the estimate: pinv = H^+ y (official), smooth = biharmonic fill / back-projected bicubic (default: the model's)",
      ),
    tMax: z.coerce
      .number()
      .int()
      .min(1)
      .max(999)
      .optional()
      .describe(
        "largest timestep of the descending schedule (default: the model's; T - 1 = the official run)",
      ),
    samples: z.coerce
      .number()
      .int()
      .min(1)
      .max(MAX_RESTORE_SAMPLES)
      .optional()
      .describe(
        `answer the mean of this many RED-Diff runs (noise seeds seed, seed + 1000, ...; 1..${MAX_RESTORE_SAMPLES}), ` +
          "each a full run (default: the model's; ddpm-natural-grey: 2 inside deep holes, else 1)",
      ),
    seed: z.coerce
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .default(0),
    trace: z.coerce
      .number()
      .int()
      .min(0)
      .max(16)
      .default(0)
      .describe('JSON output: a PNG strip of this many intermediate estimates'),
    format: z
      .string()
      .optional()
      .describe('Output format: png (default), png16, jpeg, webp, tiff; overrides Accept'),
    output: z.enum(['image', 'json']).default('image'),
    timeoutMs: z.coerce.number().int().min(100).optional(),
    async: asyncFlag,
  })
  .superRefine((v, ctx) => {
    if (v.task !== 'inpaint' && (v.maskRatio !== undefined || v.box !== undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['task'],
        message: 'maskRatio and box apply to task=inpaint only',
      });
    if (v.maskRatio !== undefined && v.box !== undefined)
      ctx.addIssue({ code: 'custom', path: ['box'], message: 'give maskRatio or box, not both' });
    if (v.box !== undefined)
      for (const b of parseBoxes(v.box))
        if (b.width < 1 || b.height < 1)
          ctx.addIssue({ code: 'custom', path: ['box'], message: 'box width and height must be >= 1' });
  });
export type RestoreParams = z.output<typeof restoreParams>;
