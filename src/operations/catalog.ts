/**
 * The operations, one export line each: src/operations/index.ts takes every export of this module as the list
 * REST routes, GraphQL fields, jobs and the OpenAPI tags are derived from. Adding an operation is its folder, one
 * line here and, for its worker task, one line in src/compute/handlers/index.ts.
 */
export { denoise } from './denoise/operation.js';
export { detect } from './detect/operation.js';
export { otDistance, otMongeGap, otPlan, otSinkhornDivergence } from './ot/operation.js';
export { restore } from './restore/operation.js';
export { testChecksum } from './test-checksum/operation.js';
