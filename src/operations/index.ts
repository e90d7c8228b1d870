/**
 * Every operation, in one list (the exports of ./catalog.ts): REST routes, GraphQL fields, job operations,
 * OpenAPI tags and /v1/jobs/operations are derived from it. Importing this module registers the operations' jobs.
 */
import '../jobs/test-operations.js';
import * as catalog from './catalog.js';
import { registerOperationJobs } from './jobs.js';
import type { OperationSpec } from './spec.js';

export type AnyOperation = OperationSpec<any, any>;

export const OPERATIONS: readonly AnyOperation[] = Object.values(catalog);

registerOperationJobs(OPERATIONS);
