/**
 * A tiny operation that exists only with ENABLE_TEST_TASKS: it shows (and tests) that an operation is its own
 * folder plus a line in src/operations/catalog.ts and one in src/compute/handlers/index.ts, and gets a REST route,
 * a GraphQL field and a job from that.
 */
import { fail } from '../../errors.js';
import { defineOperation, readJsonBody, withAsync } from '../spec.js';
import { CHECKSUM_MAX_VALUES, checksumInput } from './schema.js';

export const testChecksum = defineOperation({
  id: 'test.checksum',
  tag: 'test',
  testOnly: true,
  input: checksumInput,
  check: (_ctx, input) => {
    if (input.values.length > CHECKSUM_MAX_VALUES)
      throw fail('PROBLEM_TOO_LARGE', `${input.values.length} values; at most ${CHECKSUM_MAX_VALUES}`);
    return undefined;
  },
  timeoutMs: (input) => input.timeoutMs,
  run: (rt, input) => rt.pool.run('test.checksum', { values: input.values }, rt.run),
  http: {
    routes: [{ url: '/v1/_test/checksum', summary: 'Sum numbers in a compute worker (test operation)' }],
    schema: { body: withAsync(checksumInput) },
    read: readJsonBody,
  },
  graphql: {
    field: 'testChecksum',
    sdl: `
      input TestChecksumInput { values: [Float!]!, timeoutMs: Int }
      type TestChecksumResult { count: Int!, sum: Float!, worker: Int! }
      extend type Query { testChecksum(input: TestChecksumInput!): TestChecksumResult }
    `,
    toInput: (args) => ({
      input: Object.fromEntries(Object.entries(args).filter(([, v]) => v !== null)),
      async: false,
    }),
  },
});
