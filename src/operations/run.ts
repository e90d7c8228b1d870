/**
 * Running an operation, whichever adapter asked: a request (REST or GraphQL) runs its checks and then the work with
 * the request's deadline and cancellation; a job runs the same work with the job's signal and progress
 * (src/operations/jobs.ts). One path, so REST, GraphQL and jobs answer alike.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Config } from '../config.js';
import { checkAutomaticJobCost } from '../jobs/http.js';
import type { CheckContext, OperationSpec, RunContext } from './spec.js';

/**
 * Whether a request (REST or GraphQL) becomes a job: when the client asked for one (`asked` true), or of its own
 * accord when the operation's estimated cost exceeds the request's deadline, up to JOBS_AUTO_MAX_COST_MS (413
 * TW_PROBLEM_TOO_LARGE beyond). `asked` false (async=false) is never a job: answered now, or 504 at its deadline.
 * `automatic` says the second case (REST answers it with x-async-reason).
 */
export async function jobDecision<I, R>(
  fastify: FastifyInstance,
  config: Config,
  spec: OperationSpec<I, R>,
  input: I,
  asked: boolean | undefined,
): Promise<{ job: boolean; automatic: boolean }> {
  if (asked !== undefined) return { job: asked, automatic: false };
  const estimatedMs = await spec.estimateMs?.(input, config, fastify.models);
  const deadlineMs = fastify.compute.deadlineFor(spec.timeoutMs?.(input));
  if (estimatedMs === undefined || !(estimatedMs > deadlineMs)) return { job: false, automatic: false };
  checkAutomaticJobCost(config, estimatedMs, deadlineMs);
  return { job: true, automatic: true };
}

/** The x-async-reason header of a request that became a job of its own accord. */
export const AUTOMATIC_JOB_REASON = 'estimated cost exceeds the request deadline';

/** The checks of `spec` for `input` (the resolved input when the check answers one). */
export async function checkOperation<I, R>(
  fastify: FastifyInstance,
  config: Config,
  spec: OperationSpec<I, R>,
  input: I,
  mode: CheckContext['mode'],
): Promise<I> {
  return (await spec.check?.({ config, models: fastify.models, mode }, input)) ?? input;
}

/** Check and run `spec` now, within the request's deadline; cancelled when the client goes away. */
export async function runForRequest<I, R>(
  fastify: FastifyInstance,
  config: Config,
  spec: OperationSpec<I, R>,
  input: I,
  reply: FastifyReply,
  answer: Exclude<RunContext['answer'], 'job'>,
): Promise<R> {
  const checked = await checkOperation(fastify, config, spec, input, 'request');
  return fastify.compute.withRequest(reply, spec.timeoutMs?.(checked), (run) =>
    spec.run({ pool: fastify.compute.pool, config, run, admission: 'refuse', answer }, checked),
  );
}
