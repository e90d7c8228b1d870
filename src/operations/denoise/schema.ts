/**
 * The denoise operation: parameters shared by REST (query string or multipart fields), GraphQL and jobs.
 * Levels are in the units users know: Gaussian sigma on the 0-255 scale, Poisson zeta, Gamma shape k.
 */
import { z } from 'zod';

import { DEFAULT_REFINE, REFINES, type Refine } from '../../denoise/wiener.js';
import { DEFAULT_MID_MODEL, noise2scoreModelName } from '../../nn/default-models.js';
import { asyncFlag } from '../common-schema.js';

export { DEFAULT_MID_MODEL, noise2scoreModelName };

export const LEVEL_RANGES = {
  gaussian: { min: 0.5, max: 100, unit: 'sigma on the 0-255 scale' },
  poisson: { min: 0.0005, max: 0.5, unit: 'zeta (y = zeta * Poisson(x / zeta))' },
  gamma: { min: 2, max: 1000, unit: 'shape k (y = x * Gamma(k, 1/k))' },
} as const;

const levelSchema = z.union([
  z.literal('auto'),
  z.coerce.number().refine(Number.isFinite, 'must be a number or auto'),
]);

export const denoiseParams = z
  .object({
    method: z
      .enum(['noise2score', 'mid'])
      .default('noise2score')
      .describe('noise2score (default) or mid (real camera noise)'),
    noise: z
      .enum(['gaussian', 'poisson', 'gamma'])
      .default('gaussian')
      .describe('Noise family (noise2score)'),
    level: levelSchema
      .default('auto')
      .describe(
        'Noise level (gaussian: sigma in 0-255 units; poisson: zeta; gamma: k) or auto to estimate it',
      ),
    estimator: z.enum(['wavelet', 'tv']).default('wavelet').describe('How level=auto estimates the level'),
    ensemble: z.coerce
      .number()
      .int()
      .refine((v) => v === 1 || v === 2 || v === 4 || v === 8, 'must be 1, 2, 4 or 8')
      .default(1)
      .describe(
        'Noise2Score self-ensemble: average the score over 1, 2, 4 or 8 flips of the image (better, and that many times slower)',
      ),
    refine: z
      .enum(REFINES)
      .optional()
      .describe(
        'Noise2Score, Gaussian noise: wiener (default) filters the input again with Wiener weights from the network output (+0.1 to +1.3 dB on held-out photographs, about 40 ms at 512x512); none answers the network output as it is',
      ),
    masks: z.coerce.number().int().min(1).max(64).optional().describe('MID: number of random masks averaged'),
    seed: z.coerce
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .default(0),
    model: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/)
      .optional()
      .describe('Model name (default by method and noise)'),
    version: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/)
      .optional()
      .describe('Model version (default: latest)'),
    format: z
      .string()
      .optional()
      .describe('Output format: png (default), png16, jpeg, webp, tiff; overrides Accept'),
    output: z
      .enum(['image', 'json'])
      .default('image')
      .describe('json returns the image as base64 with metadata'),
    timeoutMs: z.coerce.number().int().min(100).optional(),
    async: asyncFlag,
  })
  .superRefine((v, ctx) => {
    if (v.refine === 'wiener' && (v.method !== 'noise2score' || v.noise !== 'gaussian')) {
      ctx.addIssue({
        code: 'custom',
        path: ['refine'],
        message: 'refine=wiener applies to method=noise2score with Gaussian noise only',
      });
    }
    if (v.level === 'auto') return;
    const r = LEVEL_RANGES[v.noise];
    if (!(v.level >= r.min && v.level <= r.max)) {
      ctx.addIssue({
        code: 'custom',
        path: ['level'],
        message: `level ${v.level} is out of range for ${v.noise} noise: ${r.min}..${r.max} (${r.unit})`,
      });
    }
  });
export type DenoiseParams = z.output<typeof denoiseParams>;

/** The stage a Noise2Score request runs after Tweedie's formula: its `refine`, else wiener for Gaussian noise. */
export function resolvedRefine(params: DenoiseParams): Refine {
  if (params.method !== 'noise2score' || params.noise !== 'gaussian') return 'none';
  return params.refine ?? DEFAULT_REFINE;
}

/** The level as the library wants it (Gaussian sigma on [0,1]). */
export function libraryLevel(noise: DenoiseParams['noise'], level: number | 'auto'): number | 'auto' {
  if (level === 'auto') return level;
  return noise === 'gaussian' ? level / 255 : level;
}

/** The level as users read it (Gaussian sigma on 0-255). */
export function userLevel(noise: DenoiseParams['noise'], level: number): number {
  return noise === 'gaussian' ? level * 255 : level;
}
