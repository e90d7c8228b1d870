/**
 * Jobs over REST: submit any registered operation, read its state and progress, fetch its result in the
 * operation's own format, cancel it. The same jobs are reachable from GraphQL (submitJob, job, cancelJob,
 * jobProgress) and from each operation route with `"async": true`. A JSON result is streamed (never capped by
 * MAX_RESPONSE_BYTES: a job is the way out for answers too large for a synchronous request).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../../src/config.js';
import { fail, TweedieError } from '../../../src/errors.js';
import { idempotencyKeyOf, sendAccepted } from '../../../src/jobs/http.js';
import { sendError } from '../../../src/plugins/app/errors.js';
import { jsonStream } from '../../../src/util/json-chunks.js';

const idParams = z.object({ id: z.string().min(1).max(128) });

const routes: FastifyPluginAsyncZod<{ config: Config }> = async (fastify) => {
  fastify.get(
    '/operations',
    { schema: { tags: ['jobs'], summary: 'Operations that can run as jobs' } },
    async () => ({ operations: fastify.jobs.operations() }),
  );

  fastify.post(
    '/',
    {
      config: { answersJob: 'always' },
      schema: {
        tags: ['jobs'],
        summary: 'Submit an operation as a job: 202 Accepted with Location /v1/jobs/<id>',
        body: z.object({
          operation: z.string().min(1).describe('e.g. ot.plan (GET /v1/jobs/operations lists them)'),
          input: z.unknown().describe("The operation's request body, as its own route takes it"),
        }),
      },
    },
    async (request, reply) => {
      const outcome = await fastify.jobs.submit(request.body.operation, request.body.input, {
        idempotencyKey: idempotencyKeyOf(request),
        owner: request.apiKeyOwner,
        client: request.ip,
      });
      return sendAccepted(request, reply, outcome);
    },
  );

  fastify.get(
    '/:id',
    {
      schema: {
        tags: ['jobs'],
        summary: 'State and progress of a job (queued, running, succeeded, failed, cancelled)',
        params: idParams,
      },
    },
    async (request) => fastify.jobs.get(request.params.id, request.apiKeyOwner),
  );

  fastify.get(
    '/:id/result',
    {
      // A job is the way out of MAX_RESPONSE_BYTES: its result is never capped (JSON results are streamed; an image
      // job's output=json answer, base64 included, is sent whole).
      config: { responseCapExempt: true },
      schema: {
        tags: ['jobs'],
        summary: "The result of a finished job, in the operation's own format",
        params: idParams,
      },
    },
    async (request, reply) => {
      const { view, result } = await fastify.jobs.result(request.params.id, request.apiKeyOwner);
      if (view.state === 'succeeded') {
        const op = fastify.jobs.operation(view.operation);
        if (op.resultToResponse) return op.resultToResponse(result, reply);
        // Streamed, a slice of numbers at a time: a large result (a dense plan of millions of numbers) neither holds
        // the event loop for the seconds JSON.stringify takes nor needs its whole text in memory at once.
        return reply.type('application/json; charset=utf-8').send(jsonStream(result));
      }
      if (view.state === 'failed' || view.state === 'cancelled') {
        // The job's own error, with its code and status (e.g. 504 for a deadline, 409 for a cancellation).
        const e = view.error ?? { code: 'TW_INTERNAL', statusCode: 500, message: 'The job failed' };
        return sendError(request, reply, new TweedieError(e, e.message, { details: e.details }));
      }
      return sendError(
        request,
        reply,
        fail('CONFLICT', `The job is ${view.state}; its result is not ready`, {
          details: { id: view.id, state: view.state, progress: view.progress },
          retryAfter: 1,
        }),
      );
    },
  );

  fastify.delete(
    '/:id',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Cancel a job (a running task is aborted); a finished job is returned unchanged',
        params: idParams,
      },
    },
    async (request) => fastify.jobs.cancel(request.params.id, request.apiKeyOwner),
  );
};

export default routes;
