/**
 * Every operation is a job too: its spec, registered in the job table under its own id, with the same input schema,
 * the same checks (run at submission, before anything is queued) and the same work, run with the job's signal and
 * progress; GET /v1/jobs/:id/result answers with the spec's `reply`.
 */
import { type JobOperation, registerJobOperation } from '../jobs/registry.js';
import type { OperationSpec } from './spec.js';

export function jobOperationOf<I, R>(spec: OperationSpec<I, R>): JobOperation<I, R> {
  const check = spec.check;
  return {
    name: spec.id,
    inputSchema: spec.input,
    testOnly: spec.testOnly,
    ...(check ? { check: (ctx, input) => check({ ...ctx, mode: 'job' }, input) } : {}),
    run: (rt, input, ctx) =>
      spec.run(
        {
          ...rt,
          run: { signal: ctx.signal, onProgress: ctx.onProgress, timeoutMs: ctx.timeoutMs },
          // A job waits for image memory rather than failing.
          admission: 'wait',
          answer: 'job',
        },
        input,
      ),
    ...(spec.reply ? { resultToResponse: spec.reply } : {}),
  };
}

export function registerOperationJobs(specs: readonly OperationSpec<any, any>[]): void {
  for (const spec of specs) registerJobOperation(jobOperationOf(spec));
}
