/** The test operation's input: a short list of finite numbers. */
import { z } from 'zod';
import { finite, timeoutMs } from '../common-schema.js';

export const checksumInput = z.object({
  values: z.array(finite).min(1).describe('Numbers to sum'),
  timeoutMs,
});
export type ChecksumInput = z.output<typeof checksumInput>;

/** The most values a request may send (a check run before anything is queued: 413 beyond). */
export const CHECKSUM_MAX_VALUES = 1000;
