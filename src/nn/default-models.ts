/**
 * The models that some route uses when a request names none: what MODELS_REQUIRED=defaults waits for before the
 * service says it is ready. Derived from the constants the routes themselves use, so a new default is required
 * without a second list to keep in step.
 */
import { NOISE_FAMILIES } from '../denoise/noise.js';

/** The model of denoise method=mid when the request names none. */
export const DEFAULT_MID_MODEL = 'mid-rgb';

/** The Noise2Score model of a noise family when the request names none. */
export function noise2scoreModelName(noise: string): string {
  return `noise2score-${noise}`;
}

/** The detector the service uses unless a request names another. */
export const DEFAULT_DETECTOR = 'eps-ad-fashion-mnist';

/** Restoration priors by image size (see defaultRestoreModel in src/operations/restore/schema.ts). */
export const SMALL_IMAGE_MODEL = 'ddpm-fashion-mnist';
export const NATURAL_IMAGE_MODEL = 'ddpm-natural-grey';

/** Every route's default model name (denoise by noise family and method, restore by image size, detect). */
export const ROUTE_DEFAULT_MODELS: readonly string[] = [
  ...NOISE_FAMILIES.map(noise2scoreModelName),
  DEFAULT_MID_MODEL,
  SMALL_IMAGE_MODEL,
  NATURAL_IMAGE_MODEL,
  DEFAULT_DETECTOR,
];

/** The names MODELS_REQUIRED asks for: `defaults`, `none`, or a comma-separated list. */
export function requiredModelNames(setting: string): string[] {
  const value = setting.trim();
  if (value === 'defaults') return [...ROUTE_DEFAULT_MODELS];
  if (value === 'none' || value === '') return [];
  return [...new Set(value.split(',').map((s) => s.trim()))].filter((s) => s.length > 0);
}
