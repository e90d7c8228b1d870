/**
 * The adversarial-detection operation (EPS-AD): parameters shared by REST (query string, multipart fields or the
 * JSON body) and GraphQL, and the response shape (also the OpenAPI description the web console reads).
 */
import { z } from 'zod';

import { DEFAULT_DETECTOR } from '../../nn/default-models.js';
import { asyncFlag } from '../common-schema.js';

export { DEFAULT_DETECTOR };

const modelId = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/);
const flag = z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]);

export const detectParams = z.object({
  fpr: z.coerce
    .number()
    .gt(0)
    .lt(1)
    .default(0.05)
    .describe(
      'Target false-positive rate: picks one of the thresholds calibrated on held-out clean images ' +
        '(eps-ad-fashion-mnist@1: 0.01, 0.05, 0.1); any other value is refused (422) with the calibrated list',
    ),
  timesteps: z.coerce
    .number()
    .int()
    .min(1)
    .max(999)
    .optional()
    .describe(
      'T*: timesteps averaged in the expected perturbation score. Default and only accepted value: the one the ' +
        "detector's reference set and thresholds were computed with (20); another value is refused (422)",
    ),
  seed: z.coerce
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .default(0)
    .describe('Seed of the perturbation noise (same seed and images: same scores)'),
  resize: flag
    .default(false)
    .describe(
      "false (default): an image that is not the detector's size (28x28) is refused with 422 naming the expected " +
        'shape. true: it is resized to 28x28 (sharp, Lanczos, aspect ratio NOT kept), and the result says so',
    ),
  permutations: z.coerce
    .number()
    .int()
    .min(10)
    .max(5000)
    .default(200)
    .describe('Batch test (2 images or more): label permutations for the p-value'),
  model: modelId.default(DEFAULT_DETECTOR).describe('Detector model'),
  version: modelId.optional().describe('Detector version (default: latest)'),
  timeoutMs: z.coerce.number().int().min(100).optional(),
});
export type DetectParams = z.output<typeof detectParams>;

/** The REST route's parameters: the operation's, and whether to run it as a job. */
export const detectRouteParams = detectParams.extend({
  async: asyncFlag,
});

/** POST /v1/detect/adversarial with a JSON body: base64 images plus the same parameters. */
export const detectJsonBody = detectParams.extend({
  images: z
    .array(z.string().min(1).describe('An image file (PNG, JPEG, WebP, TIFF, GIF), base64-encoded'))
    .describe('The images to test (one or more, up to DETECT_MAX_IMAGES)'),
});

export const detectImageResult = z.object({
  index: z.number().int().describe('Position of the image in the request'),
  score: z
    .number()
    .describe('Biased MMD^2 between the reference EPS set and this image\u2019s EPS (larger = less natural)'),
  threshold: z.number().describe('The calibrated threshold at the requested fpr'),
  adversarial: z.boolean().describe('score > threshold'),
  pValue: z
    .number()
    .describe(
      'Conformal p-value of the score against the held-out clean calibration scores: (1 + #{clean >= score}) / (1 + n)',
    ),
  resized: z.boolean().describe('true when the image was resized to 28x28 (resize=true)'),
  width: z.number().int().describe('Size of the image as sent'),
  height: z.number().int(),
});

export const detectBatchResult = z.object({
  count: z.number().int(),
  statistic: z.number().describe('Unbiased MMD^2 between the reference set and the batch (deep kernel)'),
  pValue: z.number().describe('Permutation p-value: small = the batch does not look like natural data'),
  permutations: z.number().int(),
  adversarial: z.boolean().describe('pValue < fpr: the batch as a whole is flagged'),
});

export const detectResponse = z.object({
  detector: z.string().describe('name@version of the detector'),
  scoreModel: z.string().describe('name@version of the diffusion model whose score defines EPS'),
  timesteps: z.number().int(),
  seed: z.number().int(),
  fpr: z.number(),
  threshold: z.number(),
  count: z.number().int(),
  results: z.array(detectImageResult),
  batch: detectBatchResult
    .nullable()
    .describe('Two-sample test of the whole batch against the reference (null for a single image)'),
  timings: z.record(z.string(), z.number()).describe('Milliseconds: decode, eps, kernel, total'),
});
export type DetectResponse = z.output<typeof detectResponse>;
