/**
 * The models that some route uses when a request names none: what MODELS_REQUIRED=defaults waits for before the
 * service says it is ready. Derived from the constants the routes themselves use, so a new default is required
 * without a second list to keep in step.
 */
import { NOISE_FAMILIES } from '../denoise/noise.js';
import { DEFAULT_MID_MODEL, noise2scoreModelName } from '../schemas/denoise.js';
import { DEFAULT_DETECTOR } from '../schemas/detect.js';
import { NATURAL_IMAGE_MODEL, SMALL_IMAGE_MODEL } from '../schemas/restore.js';

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
