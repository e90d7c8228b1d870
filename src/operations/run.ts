/**
 * Running an operation, whichever adapter asked: a request (REST or GraphQL) runs its checks and then the work with
 * the request's deadline and cancellation; a job runs the same work with the job's signal and progress
 * (src/operations/jobs.ts). One path, so REST, GraphQL and jobs answer alike.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Config } from '../config.js';
import type { CheckContext, OperationSpec, RunContext } from './spec.js';

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
