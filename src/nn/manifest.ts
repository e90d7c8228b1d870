/**
 * `models/<name>/<version>/manifest.json`: what a model is, what it expects, and how it was made.
 * The single description of a model the service relies on (REST, GraphQL and the worker all read it from here).
 */
import { z } from 'zod';
import { fail } from '../errors.js';

/** Model names and versions become folder names: lower-case, no separators, no leading dot (no path traversal). */
export const MODEL_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Tasks the service knows how to use; any other non-empty string is accepted for user models. */
export const KNOWN_TASKS = [
  'denoise',
  'score',
  'diffusion-eps',
  'classifier',
  'kernel',
  'blur',
  'identity',
] as const;

/**
 * Which machines a model is made for. 'cpu': small enough for the wasm/CPU backends (the default when a manifest
 * says nothing). 'gpu': a larger network that is only fast on a GPU backend (WebGPU on a hardware adapter, or
 * tfjs-node-gpu). A request that names no version gets the highest version of the tier the backend prefers
 * (preferredVersion in repository.ts); `model=name&version=` picks any.
 */
export const MODEL_TIERS = ['cpu', 'gpu'] as const;
export type ModelTier = (typeof MODEL_TIERS)[number];

export const modelIdSchema = z
  .string()
  .regex(MODEL_ID_PATTERN, 'must match /^[a-z0-9][a-z0-9._-]{0,63}$/ (lower-case letters, digits, . _ -)');

const finite = z.number().refine(Number.isFinite, 'must be a finite number');

/**
 * What held-out figures measure. 'selection': data the model never trained on (or, where the note says so, only
 * partly), used to choose the model or its settings; 'report': held-out data never used to choose anything;
 * 'final': the final figures (Set12, the PolyU validation scenes, a test split), never used to choose.
 */
export const HELDOUT_ROLES = ['selection', 'report', 'final'] as const;

const isoDate = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'must be an ISO 8601 date');

/** One held-out measurement: on what data, with which command, when, and its figures (numbers only). */
export const heldoutEntrySchema = z
  .object({
    role: z.enum(HELDOUT_ROLES),
    data: z.string().min(1).describe('the images and how they were made noisy or degraded'),
    figures: z
      .record(z.string(), finite)
      .refine((f) => Object.keys(f).length > 0, 'must hold at least one figure'),
    command: z.string().min(1).describe('the command that produced the figures'),
    date: isoDate.describe('when the figures were measured'),
    source: z
      .enum(['measured', 'recorded'])
      .describe(
        "'measured' by `command` when the section was written; 'recorded': copied from an earlier run's record",
      ),
    /** Where a recorded figure was copied from (bench/RESULTS.md section, the manifest's metrics), caveats. */
    note: z.string().optional(),
  })
  .strict();

/**
 * `heldout`: the model's figures on data it was not trained on (issue 18), written by
 * `npx tsx bench/heldout-manifests.ts`; or `none`, saying why no held-out figure applies.
 */
export const heldoutSectionSchema = z
  .object({
    entries: z.array(heldoutEntrySchema).min(1).optional(),
    none: z.string().min(1).optional().describe('why no held-out figure applies'),
  })
  .strict()
  .refine(
    (h) => (h.entries === undefined) !== (h.none === undefined),
    'must have either entries or none (the reason no held-out figure applies), not both',
  );
export type HeldoutSection = z.output<typeof heldoutSectionSchema>;

export const modelManifestSchema = z
  .object({
    name: modelIdSchema,
    version: modelIdSchema,
    task: z
      .string()
      .min(1)
      .max(64)
      .describe(`what the model computes, e.g. ${KNOWN_TASKS.join(', ')}`),
    format: z
      .enum(['layers', 'graph'])
      .describe('TF.js model format: tf.loadLayersModel or tf.loadGraphModel'),
    /** A required model that fails to load makes the service not ready. */
    required: z.boolean().default(false),
    tier: z
      .enum(MODEL_TIERS)
      .default('cpu')
      .describe("'cpu' (small, the wasm default) or 'gpu' (served by default only on a GPU backend)"),
    /** NHWC input shape; null marks a free dimension (batch, height, width). */
    inputShape: z.array(z.number().int().positive().nullable()).min(1).max(8),
    valueRange: z
      .tuple([finite, finite])
      .refine(([lo, hi]) => lo < hi, 'valueRange must be [lo, hi] with lo < hi'),
    channels: z.number().int().positive(),
    noiseFamily: z.string().min(1).optional(),
    /**
     * Noise models: the noise levels the network was trained on, [lo, hi] in library units (Gaussian sigma on [0,1],
     * Poisson zeta, Gamma k). The service still runs a level outside it, and says so in the answer's warnings.
     */
    levelRange: z
      .tuple([finite, finite])
      .refine(([lo, hi]) => lo < hi, 'levelRange must be [lo, hi] with lo < hi')
      .optional(),
    /** A short text, or a structured description of the network (kind, widths, ...). */
    architecture: z.union([z.string().min(1), z.record(z.string(), z.unknown())]),
    parameters: z.number().int().nonnegative(),
    trainingData: z.string(),
    trainingSteps: z.number().int().nonnegative(),
    trainingCommand: z.string(),
    /**
     * Figures measured at training time: numbers, plus flat descriptive values (backend: 'wasm', partial: true, the
     * loss definition) that trainers record beside them. Nested objects belong in `extra`.
     */
    metrics: z.record(z.string(), z.union([finite, z.string(), z.boolean()])).default({}),
    description: z.string().default(''),
    createdAt: isoDate,
    /** Figures on held-out data, by role (see heldoutSectionSchema). */
    heldout: heldoutSectionSchema.optional(),
    extra: z.record(z.string(), z.unknown()).optional(),
  })
  .superRefine((manifest, ctx) => {
    const last = manifest.inputShape.at(-1);
    if (typeof last === 'number' && last !== manifest.channels) {
      ctx.addIssue({
        code: 'custom',
        path: ['inputShape'],
        message: `last dimension (${last}) must equal channels (${manifest.channels})`,
      });
    }
  });

export type ModelManifest = z.output<typeof modelManifestSchema>;
export type ModelManifestInput = z.input<typeof modelManifestSchema>;

export type ManifestParseResult = { ok: true; manifest: ModelManifest } | { ok: false; error: string };

/** Validates parsed JSON; the error is one readable line per problem, prefixed with the field path. */
export function parseModelManifest(json: unknown): ManifestParseResult {
  const result = modelManifestSchema.safeParse(json);
  if (result.success) return { ok: true, manifest: result.data };
  return { ok: false, error: z.prettifyError(result.error) };
}

/**
 * The manifest task each route's models must have: a model of another kind (a blur for denoising, a diffusion
 * prior for detection) is refused with 422 TW_UNPROCESSABLE rather than run on input it was not made for.
 */
export const ROUTE_MODEL_TASKS = {
  /** Noise2Score: a score network. */
  noise2score: ['denoise-score'],
  /** MID real-noise denoising: a masked-image denoiser. */
  mid: ['denoise'],
  /** RED-Diff restoration: a diffusion prior. */
  restore: ['diffusion-eps'],
  /** EPS-AD detection: the detector (its phi network). */
  detect: ['adversarial-detector'],
} as const satisfies Record<string, readonly string[]>;

/** Throws 422 TW_UNPROCESSABLE when the model's manifest task is not one of `tasks` (used by `use`). */
export function requireModelTask(
  model: { name: string; version: string; manifest?: { task: string } },
  tasks: readonly string[],
  use: string,
): void {
  const task = model.manifest?.task;
  if (task === undefined || tasks.includes(task)) return;
  throw fail(
    'UNPROCESSABLE',
    `Model '${model.name}@${model.version}' is a '${task}' model; ${use} needs a model with task ${tasks.map((t) => `'${t}'`).join(' or ')}`,
    { details: { model: `${model.name}@${model.version}`, task, expected: [...tasks] } },
  );
}
