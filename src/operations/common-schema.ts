/**
 * Building blocks shared by the operation schemas.
 */
import { z } from 'zod';

/** A finite JSON number (JSON has no NaN/Infinity; strings such as "NaN" are refused by type). */
export const finite = z.number().refine(Number.isFinite, 'must be a finite number');
export const nonNegative = finite.refine((v) => v >= 0, 'must be non-negative');
export const positive = finite.refine((v) => v > 0, 'must be positive');

/** Per-request deadline override (ms), capped by REQUEST_TIMEOUT_MAX_MS. */
export const timeoutMs = z
  .number()
  .int()
  .min(100)
  .optional()
  .describe('Deadline for this request in ms (capped by the server)');

/** A matrix as nested rows (number[][]) or a flat row-major array; rows must all have the same length. */
export const matrix = z.union([z.array(z.array(finite)), z.array(finite)]);

export function checkRectangular(rows: number[][], ctx: z.RefinementCtx, path: (string | number)[]) {
  if (rows.length === 0) return;
  const width = rows[0].length;
  rows.forEach((r, i) => {
    if (r.length !== width) {
      ctx.addIssue({
        code: 'custom',
        path: [...path, i],
        message: `ragged: row ${i} has ${r.length} entries, row 0 has ${width}`,
      });
    }
  });
}

/**
 * Params for a `.superRefine` that reads the parsed shape (x[0].length, ...): run it only when the fields parsed
 * without issues. Zod 4 runs refinements after non-aborting issues such as "too small", on data that is not of
 * the declared shape, where such a refinement would throw a TypeError (and its message would reach the client).
 */
export const whenShapeValid = {
  when: (payload: { issues: readonly unknown[] }) => payload.issues.length === 0,
};

/**
 * The one async flag: `async` as a JSON boolean, or the strings true/false (query string, multipart field).
 * `Prefer: respond-async` (RFC 7240) asks the same without touching the parameters.
 */
export const asyncFlag = z
  .union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')])
  .optional()
  .describe(
    'true: run as a job, answering 202 with Location /v1/jobs/<id> at once (the header Prefer: respond-async does the same)',
  );
