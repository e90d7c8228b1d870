/**
 * The restore operation (RED-Diff with a diffusion prior): parameters shared by REST (query string or multipart
 * fields), GraphQL and jobs. Pixel values are on [0, 1] here (sigmaY too); the service converts to the diffusion
 * models' [-1, 1].
 */
import { z } from 'zod';

/** Steps above this are refused (400): a step is one network forward pass on the whole image. */
export const MAX_RESTORE_STEPS = 1000;
/**
 * Defaults, measured on the first 8 Fashion-MNIST test images (50% random-pixel mask, seed 1) with a PARTIAL
 * ddpm-fashion-mnist export (training step 896 of 4000), wasm backend, 2 shared cores:
 *   steps 100, lr 0.1  -> PSNR on the missing pixels 17.5 dB, residual ||y - H x|| / ||y|| 0.022
 *   steps 100, lr 0.25 -> 19.7 dB, 0.017   (chosen: the official range's middle, and the better of 0.1 / 0.25)
 *   steps 100, lr 0.5  -> 20.2 dB, 0.019
 *   steps 200, lr 0.25 -> 20.7 dB, 0.011;  steps 400 -> 20.8 dB, 0.010 (2-4x the cost for +1 dB)
 *   lambda 0.1 / 0.25 / 0.5 / 1 at 100 steps -> 19.9 / 19.7 / 19.3 / 15.7 dB; lambda 0 (no prior) 7.1 dB
 * About 16 ms per 32x32 image-step. To be re-checked by bench:restore on the final model.
 */
export const RESTORE_DEFAULTS = { steps: 100, lambda: 0.25, lr: 0.25 } as const;

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
    model: modelId.default('ddpm-fashion-mnist').describe('Diffusion model (eps-prediction U-Net)'),
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
      .default(RESTORE_DEFAULTS.lambda)
      .describe('weight of the diffusion prior'),
    lr: z.coerce.number().gt(0).max(1).default(RESTORE_DEFAULTS.lr).describe('Adam learning rate'),
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
    async: z.enum(['true', 'false']).optional().describe('true: run as a job (202 + Location)'),
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
