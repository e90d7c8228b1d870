/**
 * The size limits of an OT answer (MAX_RESPONSE_BYTES): a dense plan refused before it is solved when it could not
 * fit, and the worker's serialisation (src/ot/output.ts) stopped with 413 as soon as it passes the limit.
 */
import type { Config } from '../../config.js';
import { fail } from '../../errors.js';
import { planView } from '../../ot/output.js';
import type { OtPlanOutput } from '../../ot/solve.js';
import { boundedJson, JsonTooLargeError, jsonLength } from '../../util/json-chunks.js';
import { type OtPlanRequest, problemSize } from './schema.js';

export { plain, planToJson, planToJsonYielding, planView } from '../../ot/output.js';

/**
 * Bytes a number of a plan or a potential can take in JSON, at most: 17 significant digits, a point, an exponent of
 * up to `e-324` and a comma. A dense plan of n*m entries can be refused before it is computed on this bound.
 */
export const MAX_JSON_NUMBER_BYTES = 25;

/** Room kept under the limit for what the main thread appends to the worker's text (the timings). */
const TIMINGS_RESERVE_BYTES = 256;

/**
 * A synchronous answer must fit MAX_RESPONSE_BYTES. A dense plan has exactly n*m numbers: when they could pass the
 * limit, refuse before solving (413) and name the ways out.
 */
export function checkDensePlanFits(cfg: Config, body: OtPlanRequest, withPlan: boolean) {
  if (!withPlan || body.output.plan !== 'dense') return;
  const { n, m } = problemSize(body);
  const estimatedBytes = n * m * MAX_JSON_NUMBER_BYTES;
  if (estimatedBytes <= cfg.MAX_RESPONSE_BYTES - TIMINGS_RESERVE_BYTES) return;
  throw responseTooLarge(
    cfg.MAX_RESPONSE_BYTES,
    `a dense plan of n*m = ${n}*${m} numbers can take up to ${estimatedBytes} bytes`,
    { estimatedBytes },
  );
}

export function responseTooLarge(limit: number, what: string, details: Record<string, unknown> = {}) {
  return fail(
    'RESPONSE_TOO_LARGE',
    `The answer is too large to send (${what}; limit MAX_RESPONSE_BYTES = ${limit}): ask for ` +
      'output.plan "sparse" (with a threshold) or "none", or run it as a job ("async": true) and download its result',
    { details: { ...details, limit, alternatives: ['sparse', 'none', 'async'] } },
  );
}

/** What the OT task answers when asked for JSON: the text of all but the timings, which the caller appends. */
export interface OtPlanJson {
  /** The whole buffer (so that it is moved to the main thread, not copied), `{...}` without the timings. */
  json: Uint8Array;
  solveMs: number;
}

/** In the worker: the answer's JSON text as bytes (all but the timings), or 413 as soon as it passes `maxBytes`. */
export function planJsonBytes(out: OtPlanOutput, maxBytes: number): OtPlanJson {
  const { timings, ...rest } = planView(out);
  const bytes = withinLimit(maxBytes, () => boundedJson(rest, maxBytes - TIMINGS_RESERVE_BYTES));
  return { json: bytes, solveMs: timings.solveMs };
}

/**
 * In the worker, for an answer that the main thread serialises itself (GraphQL): the output as it is, or 413 when
 * its JSON text would pass `maxBytes` (measured here, so the main thread never converts a plan it cannot send).
 */
export function planWithinLimit(out: OtPlanOutput, maxBytes: number): OtPlanOutput {
  withinLimit(maxBytes, () => jsonLength(planView(out), maxBytes - TIMINGS_RESERVE_BYTES));
  return out;
}

function withinLimit<T>(maxBytes: number, write: () => T): T {
  try {
    return write();
  } catch (err) {
    if (!(err instanceof JsonTooLargeError)) throw err;
    throw responseTooLarge(maxBytes, `the answer passed ${err.limit} bytes`);
  }
}
