/**
 * The asynchronous form of any operation route, in one place: a route adds `"async": true` to its body schema
 * with `withAsyncFlag`, and when `wantsAsync(request)` it answers through `replyWithJob` instead of computing:
 * 202 Accepted, `Location: /v1/jobs/<id>`, and the job's state. `Prefer: respond-async` (RFC 7240) does the same
 * without touching the body. `Idempotency-Key` makes a retried submission return the first job.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Config } from '../config.js';
import { fail } from '../errors.js';
import type { SubmitOutcome } from './types.js';

export const asyncFlagSchema = z.object({
  async: z
    .boolean()
    .optional()
    .describe('Run as a job: answer 202 with Location /v1/jobs/<id> at once (or send Prefer: respond-async)'),
});

/** The route's body schema plus the optional `async` flag (the flag is not part of the operation's input). */
export function withAsyncFlag<T extends z.ZodType>(schema: T) {
  return z.intersection(schema, asyncFlagSchema);
}

export function prefersAsync(request: FastifyRequest): boolean {
  const prefer = request.headers.prefer;
  const values = Array.isArray(prefer) ? prefer : prefer ? [prefer] : [];
  return values.some((v) =>
    v.split(',').some((p) => p.trim().toLowerCase().split(';')[0] === 'respond-async'),
  );
}

/** True when the client asked for a job: `"async": true` in the body or `Prefer: respond-async`. */
export function wantsAsync(request: FastifyRequest): boolean {
  const body = request.body as { async?: unknown } | undefined;
  return (body && typeof body === 'object' && body.async === true) || prefersAsync(request);
}

/** The body without the `async` flag: the operation's input. */
export function withoutAsyncFlag<T>(body: T): Omit<T, 'async'> {
  const { async: _async, ...input } = body as T & { async?: boolean };
  return input;
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
