/**
 * Typed sections of a model manifest: what a model family records in `architecture` and `extra` (its down-sampling
 * factor, a diffusion prior's noise schedule and tuned RED-Diff settings, MID's mask settings, a detector's
 * calibration), read through zod rather than cast. Each field is optional and a malformed value reads as absent (the
 * caller's default then applies), as the casts it replaces did; the manifest itself is validated on load
 * (src/nn/manifest.ts).
 */
import { z } from 'zod';
import type { ModelManifest } from './manifest.js';

/** A field that reads as undefined when absent or malformed. */
const lenient = <T extends z.ZodType>(schema: T) => schema.optional().catch(undefined);
const finite = z.number().refine(Number.isFinite);

type Sections = Pick<ModelManifest, 'architecture' | 'extra'>;

/** `architecture.multiple`: the network's down-sampling factor (padded image sides are multiples of it). */
export const architectureSection = z.object({ multiple: lenient(z.number().int().min(1)) });

/** The down-sampling factor of a model (`fallback` when the manifest does not say). */
export function architectureMultiple(manifest: Sections, fallback = 8): number {
  const architecture = typeof manifest.architecture === 'object' ? manifest.architecture : {};
  return architectureSection.parse(architecture).multiple ?? fallback;
}

/** `extra.schedule`: a diffusion prior's linear beta schedule. */
export const scheduleSection = z.object({
  timesteps: lenient(z.number().int().min(1)),
  betaStart: lenient(finite),
  betaEnd: lenient(finite),
});

const redDiffSettings = {
  lambda: lenient(finite),
  lr: lenient(finite),
  init: lenient(z.string()),
  tMax: lenient(finite),
  /** Inpainting: optimise a window around the holes with this margin of context (src/diffusion/hole-window.ts). */
  windowMargin: lenient(z.number().int().min(0)),
  /** Return the mean of this many RED-Diff runs (src/diffusion/red-diff.ts `samples`). */
  samples: lenient(z.number().int().min(1)),
  /** Inpainting with a window: solve it at half resolution first (src/diffusion/red-diff.ts `coarse`). */
  coarse: lenient(
    z.object({
      steps: z.number().int().min(1),
      tMax: z.number().int().min(1).optional(),
      lr: z.number().positive().optional(),
      fineTMax: z.number().int().min(1).optional(),
    }),
  ),
};

/**
 * `extra` of a diffusion prior: its schedule and the RED-Diff settings bench:restore chose for it; `holes`: the
 * settings for inpainting masks whose hole radius (src/diffusion/mask-structure.ts) is at least `minRadius` (each
 * absent field: the general one).
 */
export const diffusionSection = z.object({
  schedule: lenient(scheduleSection),
  redDiff: lenient(
    z.object({
      ...redDiffSettings,
      holes: lenient(z.object({ minRadius: z.number().int().min(1), ...redDiffSettings })),
    }),
  ),
});

/** A local energy cap of MID's safeguard (src/mid/guided.ts EnergyCap). */
const energyCap = z.object({
  window: z
    .number()
    .int()
    .min(1)
    .refine((v) => v % 2 === 1),
  kappa: finite.refine((v) => v > 0),
  relativeTo: z.enum(['sigma', 'median']).optional(),
});

/**
 * `extra` of a MID model: the mask drop ratio it was trained with, its measured default number of masks, and the
 * guided second stage bench/mid-sweep.ts chose (`guided`: patch, search window, h on the 0-255 scale; absent when
 * any of the three is missing or malformed).
 */
export const midSection = z.object({
  maskRatio: lenient(finite),
  masksDefault: lenient(finite),
  guided: lenient(
    z.object({
      patch: finite,
      search: finite,
      h255: finite,
      // The stage's safeguard (src/mid/guided.ts): an out-of-range value is absent, never a failed request.
      blend: lenient(finite.refine((v) => v > 0)),
      bound: lenient(finite.refine((v) => v >= 0)),
      noisyBound: lenient(finite.refine((v) => v >= 0)),
      // Local energy caps around the pilot and around the noisy input ({ window: odd integer, kappa > 0 }).
      pilotCap: lenient(energyCap),
      residualCap: lenient(energyCap),
      // The residual cap's anchor moves towards the input where the pilot's own residual is high.
      pilotResidualCap: lenient(energyCap),
      // Pixel (classic NLM, the default when absent) or patch aggregation (src/mid/guided.ts).
      aggregation: lenient(z.enum(['pixel', 'patch'])),
      // Share of the pilot in the averaged values, on [0, 1] (absent: 0, the noisy values alone).
      pilotWeight: lenient(finite.refine((v) => v >= 0 && v <= 1)),
    }),
  ),
});

/** `extra` of an EPS-AD detector: the false-positive rates its thresholds are calibrated for, and T*. */
export const detectorSection = z.object({
  calibratedFprs: lenient(z.array(finite)),
  timesteps: lenient(z.number().int()),
});

/** `extra` of any model: the input side to warm it up with (a positive integer). */
export const warmupSection = z.object({ warmupSize: lenient(z.number().int().min(1)) });

/** A section of `manifest.extra`, parsed (every field optional; malformed fields absent). */
export function extraSection<T extends z.ZodType>(
  schema: T,
  manifest: Partial<Sections> | undefined,
): z.output<T> {
  return schema.parse(manifest?.extra ?? {});
}
