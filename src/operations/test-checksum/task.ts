/** The test operation's worker side: sums the values in a compute worker and says which thread did it. */
import { threadId } from 'node:worker_threads';
import type { HandlerContext } from '../../compute/handlers/context.js';

export function checksum(input: { values: number[] }, _ctx: HandlerContext) {
  let sum = 0;
  for (const v of input.values) sum += v;
  return { count: input.values.length, sum, worker: threadId };
}
