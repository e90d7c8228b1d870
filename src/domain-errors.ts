/**
 * The domain libraries' typed errors as coded errors (src/errors.ts), by class: OtInputError by its kind,
 * ModelLoadError by its code, an AbortError as a deadline. Kept apart from src/error-mapping.ts (which knows
 * Fastify's and zod's errors too) so that a compute worker loads only this, and only when a task fails.
 */
import { NoiseLevelUnknownError } from './denoise/errors.js';
import { fail, type TweedieError } from './errors.js';
import { ModelLoadError } from './nn/repository.js';
import { OtInputError } from './ot/types.js';

const OT_INPUT_CODES = {
  unbalanced: 'UNBALANCED_MARGINALS',
  range: 'NUMERIC_RANGE',
  'too-large': 'PROBLEM_TOO_LARGE',
  invalid: 'UNPROCESSABLE',
} as const;

/** A domain library's typed error as a coded error; undefined for anything else. */
export function domainError(err: unknown): TweedieError | undefined {
  if (err instanceof OtInputError)
    return fail(OT_INPUT_CODES[err.kind], err.message, { details: err.details });
  if (err instanceof NoiseLevelUnknownError) return fail('UNPROCESSABLE', err.message);
  if (err instanceof ModelLoadError)
    return fail(err.code === 'MODEL_NOT_FOUND' ? 'MODEL_NOT_FOUND' : 'MODEL_NOT_READY', err.message);
  if (err instanceof Error && err.name === 'AbortError')
    return fail('DEADLINE_EXCEEDED', 'The task was cancelled');
  return undefined;
}
