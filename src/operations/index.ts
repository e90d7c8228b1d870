/**
 * Every operation, in one list: REST routes, GraphQL fields, job operations, OpenAPI tags and /v1/jobs/operations
 * are derived from it. Adding an operation: its folder (schema.ts, operation.ts, task.ts), one line here and, for
 * its worker task, one line in src/compute/handlers/index.ts.
 */

import { denoise } from './denoise/operation.js';
import { detect } from './detect/operation.js';
import { registerOperationJobs } from './jobs.js';
import { otDistance, otMongeGap, otPlan, otSinkhornDivergence } from './ot/operation.js';
import { restore } from './restore/operation.js';
import type { OperationSpec } from './spec.js';
import { testChecksum } from './test-checksum/operation.js';
import '../jobs/test-operations.js';

export type AnyOperation = OperationSpec<any, any>;

export const OPERATIONS: readonly AnyOperation[] = [
  otPlan,
  otDistance,
  otSinkhornDivergence,
  otMongeGap,
  denoise,
  restore,
  detect,
  testChecksum,
];

registerOperationJobs(OPERATIONS);
