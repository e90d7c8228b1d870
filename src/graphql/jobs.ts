/**
 * GraphQL for jobs: submitJob, job, cancelJob and the jobProgress subscription, over the same jobs service as
 * /v1/jobs (same validation, same coded errors, same idempotency keys).
 */
import type { FastifyInstance } from 'fastify';
import type { IResolvers, MercuriusContext } from 'mercurius';
import { splitBlobs } from '../jobs/blobs.js';
import type { JobView } from '../jobs/types.js';

/** REST's lower-case states as the schema's enum values. */
const gqlJob = (v: JobView) => ({ ...v, state: v.state.toUpperCase(), error: v.error ?? null });

/** Map each value of an async iterable (closing the source when the consumer stops). */
function mapIterable<T, U>(source: AsyncIterable<T>, fn: (v: T) => U): AsyncIterableIterator<U> {
  const it = source[Symbol.asyncIterator]();
  const mapped: AsyncIterableIterator<U> = {
    async next() {
      const r = await it.next();
      return r.done ? { value: undefined, done: true } : { value: fn(r.value), done: false };
    },
    async return() {
      await it.return?.();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return mapped;
    },
  };
  return mapped;
}

export function jobResolvers(app: FastifyInstance): IResolvers<unknown, MercuriusContext> {
  return {
    Query: {
      // Unknown, expired and other keys' jobs alike are null.
      job: async (_root: unknown, args: { id: string }, ctx: MercuriusContext) => {
        const view = await app.jobs.get(args.id, ctx.apiKeyOwner).catch((err: { code?: string }) => {
          if (err.code === 'TW_JOB_NOT_FOUND') return null;
          throw err;
        });
        return view ? gqlJob(view) : null;
      },
    },
    Mutation: {
      submitJob: async (
        _root: unknown,
        args: { operation: string; input: unknown; idempotencyKey?: string | null },
        ctx: MercuriusContext,
      ) =>
        gqlJob(
          (
            await app.jobs.submit(args.operation, args.input, {
              idempotencyKey: args.idempotencyKey ?? undefined,
              owner: ctx.apiKeyOwner,
              client: ctx.reply.request.ip,
            })
          ).view,
        ),
      cancelJob: async (_root: unknown, args: { id: string }, ctx: MercuriusContext) =>
        gqlJob(await app.jobs.cancel(args.id, ctx.apiKeyOwner)),
    },
    Subscription: {
      jobProgress: {
        subscribe: async (_root: unknown, args: { id: string }, ctx: MercuriusContext) =>
          mapIterable(await app.jobs.watch(args.id, undefined, ctx.apiKeyOwner), (view) => ({
            jobProgress: gqlJob(view),
          })),
      },
    },
    Job: {
      // Read only when asked for; results with bytes (images) are served by GET /v1/jobs/:id/result.
      result: async (job: { id: string; state: string }, _args: unknown, ctx: MercuriusContext) => {
        if (job.state !== 'SUCCEEDED') return null;
        const { result } = await app.jobs.result(job.id, ctx.apiKeyOwner);
        return splitBlobs(result).blobs.length === 0 ? result : null;
      },
    },
  } as IResolvers<unknown, MercuriusContext>;
}
