/**
 * The asynchronous answer of any operation, in one place: `replyWithJob` submits and answers 202 Accepted,
 * `Location: /v1/jobs/<id>`, and the job's state. When a request asks for a job is one rule for every operation
 * (src/operations/spec.ts `asyncRequested`: the `async` flag or `Prefer: respond-async`, RFC 7240).
 * `Idempotency-Key` makes a retried submission return the first job.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { fail } from '../errors.js';
import type { SubmitOutcome } from './types.js';

export function prefersAsync(request: Pick<FastifyRequest, 'headers'>): boolean {
  const prefer = request.headers.prefer;
  const values = Array.isArray(prefer) ? prefer : prefer ? [prefer] : [];
  return values.some((v) =>
    v.split(',').some((p) => p.trim().toLowerCase().split(';')[0] === 'respond-async'),
  );
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** 400 unless `key` is 1 to 255 visible ASCII characters (jobService.submit checks every adapter's key). */
export function checkIdempotencyKey<K extends string | undefined>(key: K): K {
  if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
    throw fail('VALIDATION', 'Idempotency-Key must be 1 to 255 visible ASCII characters');
  }
  return key;
}

export function idempotencyKeyOf(request: FastifyRequest): string | undefined {
  const raw = request.headers['idempotency-key'];
  if (raw === undefined) return undefined;
  return checkIdempotencyKey(Array.isArray(raw) ? raw[0] : raw);
}

export function sendAccepted(request: FastifyRequest, reply: FastifyReply, outcome: SubmitOutcome) {
  reply.code(202).header('location', `/v1/jobs/${outcome.view.id}`);
  if (prefersAsync(request)) reply.header('preference-applied', 'respond-async');
  if (outcome.replayed) reply.header('idempotent-replayed', 'true');
  return reply.send(outcome.view);
}

/** Submit `input` as a job of `operation` and answer 202 + Location. */
export async function replyWithJob(
  fastify: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  operation: string,
  input: unknown,
) {
  const outcome = await fastify.jobs.submit(operation, input, {
    idempotencyKey: idempotencyKeyOf(request),
    owner: request.apiKeyOwner,
    client: request.ip,
  });
  return sendAccepted(request, reply, outcome);
}

/**
 * For a route that turns a request into a job on its own when its estimated cost exceeds its deadline: refuse
 * (413 TW_PROBLEM_TOO_LARGE) a request estimated above JOBS_AUTO_MAX_COST_MS rather than quietly queueing hours of
 * work. A client who wants such a job asks for one (`async=true`); it then counts against the job quota.
 */
export function checkAutomaticJobCost(config: Config, estimatedMs: number, deadlineMs: number) {
  const maxMs = config.JOBS_AUTO_MAX_COST_MS;
  if (estimatedMs <= maxMs) return;
  throw fail(
    'PROBLEM_TOO_LARGE',
    `The estimated cost (${Math.round(estimatedMs)} ms) exceeds both the deadline (${deadlineMs} ms) and JOBS_AUTO_MAX_COST_MS (${maxMs} ms), the most a request may turn into a job on its own: use fewer steps or a smaller image, or ask for a job with async=true`,
    { details: { estimatedMs: Math.round(estimatedMs), deadlineMs, maxMs } },
  );
}
