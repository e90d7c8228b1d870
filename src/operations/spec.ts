/**
 * An operation, described once: its id, its input (zod), the checks run before anything is queued, the work (main
 * thread preparation around a typed compute task, and the shaping of its result), how its result answers over
 * REST, and how REST and GraphQL requests become its input. REST routes (src/operations/http.ts), GraphQL resolvers
 * (src/operations/graphql.ts), job operations (src/operations/jobs.ts), the OpenAPI tags and /v1/jobs/operations are
 * all derived from the list in src/operations/index.ts, so the id is the same everywhere (routes' operationId and
 * logs, jobs, GraphQL) and an operation lives in its own folder: `schema.ts` (zod), `operation.ts` (this spec),
 * `task.ts` (the worker side, listed in src/compute/handlers/index.ts).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ComputePool, RunOptions } from '../compute/pool.js';
import type { Config } from '../config.js';
import type { Admission } from '../imaging/budget.js';
import { prefersAsync } from '../jobs/http.js';
import type { JobCheckContext } from '../jobs/registry.js';
import type { JobView } from '../jobs/types.js';
import type { ModelRegistry } from '../plugins/app/models.js';
import type { ImageUploadDoc } from '../plugins/external/swagger.js';
import { asyncFlag } from './common-schema.js';

export { asyncFlag };

declare module '../jobs/registry.js' {
  interface JobCheckContext {
    /** The API process's model registry (absent where none is loaded). */
    models?: Pick<ModelRegistry, 'get' | 'requireReady'>;
  }
}

/** What `check` may consult: the configuration and the model registry, and whether the work runs now or queues. */
export interface CheckContext extends JobCheckContext {
  /**
   * `request`: the work runs now, in this request (its models must be ready). `job`: it is queued (each operation
   * says what it refuses before queueing; a job for a model still loading may be accepted).
   */
  mode: 'request' | 'job';
}

/** What `run` may use: the compute pool, the configuration, the run's deadline/cancellation/progress. */
export interface RunContext {
  pool: ComputePool;
  config: Config;
  run: RunOptions;
  /** Beyond the image memory budget: refuse at once (requests) or wait for room (jobs). */
  admission: Admission;
  /**
   * Who reads the result: a REST reply (`rest`: may be pre-serialised bytes, within MAX_RESPONSE_BYTES), a GraphQL
   * resolver (`graphql`: an object, within MAX_RESPONSE_BYTES), or a job (`job`: stored, JSON values and bytes).
   */
  answer: 'rest' | 'graphql' | 'job';
}

/** One URL of an operation's REST binding. */
export interface HttpRoute {
  url: string;
  summary: string;
  description?: string;
  /** Fields this URL fixes (an alias such as POST /v1/inpaint = restore with task=inpaint). */
  fixed?: Record<string, string>;
}

/** What a REST request (or a GraphQL field's arguments) turns into: the operation's raw input and the async flag. */
export interface RawInput {
  input: unknown;
  /**
   * The client asked for a job (true), asked for an answer now (false: never a job, a slow request may then answer
   * 504 at its deadline), or said nothing (undefined: a job when the estimated cost exceeds the deadline).
   */
  async: boolean | undefined;
}

export interface HttpBinding {
  routes: HttpRoute[];
  /** Zod schemas for validation and the OpenAPI document (a JSON body is validated by Fastify before `read`). */
  schema?: { body?: z.ZodType; querystring?: z.ZodType; response?: Record<number, z.ZodType> };
  /** Image routes: the multipart/raw body, for the OpenAPI document. */
  imageUpload?: ImageUploadDoc;
  /** The request as the operation's raw input (validated afterwards with the operation's `input`). */
  read(request: FastifyRequest, config: Config, route: HttpRoute): Promise<RawInput>;
}

export interface GraphqlBinding<Result> {
  /** The Query field (in /schema.graphql, or in `sdl` for an operation that brings its own). */
  field: string;
  /** SDL this operation adds to the schema (types and `extend type Query`); the four built-ins are in schema.graphql. */
  sdl?: string;
  /** The field's `input` argument as the operation's raw input. */
  toInput(args: Record<string, unknown>, config: Config): RawInput;
  /** The field's value for a result (default: `json`, else the result). */
  answer?(result: Result): unknown;
  /**
   * The field's value when the work was queued as a job: asked for (`async: true`), or of its own accord when the
   * estimated cost exceeds the deadline (src/operations/run.ts `jobDecision`). A field without it never becomes a job.
   */
  accepted?(view: JobView): unknown;
}

export interface OperationSpec<Input = unknown, Result = unknown> {
  /** One id across REST (operationId), GraphQL, jobs, logs: `ot.plan`, `denoise`, ... */
  id: string;
  /** OpenAPI tag (the resource it belongs to). */
  tag: string;
  /** The operation's input (what a job stores): parsed once at the edge, parsed again by a job's worker. */
  input: z.ZodType<Input>;
  /**
   * Run before anything is queued or computed, on both paths (a request, a job submission): limits, model
   * readiness and kind, what the headers of an image tell. May answer a resolved input (e.g. the model chosen).
   */
  check?(ctx: CheckContext, input: Input): Input | undefined | Promise<Input | undefined>;
  /** The deadline the input asks for (timeoutMs), capped by the server. */
  timeoutMs?(input: Input): number | undefined;
  /**
   * Estimated compute time (ms): above the request's deadline a request becomes a job on its own (REST: 202; GraphQL:
   * the field's `accepted` job id; both with x-async-reason), up to JOBS_AUTO_MAX_COST_MS (413 beyond). Undefined: no
   * estimate.
   */
  estimateMs?(
    input: Input,
    config: Config,
    /** The model registry (absent where none is loaded), for an estimate that depends on a model's manifest. */
    models?: CheckContext['models'],
  ): number | undefined | Promise<number | undefined>;
  /** The work: main-thread preparation, the typed compute task(s), the result's shaping. */
  run(rt: RunContext, input: Input): Promise<Result>;
  /** How the result answers over REST, for a request and for GET /v1/jobs/:id/result. JSON of it when absent. */
  reply?(result: Result, reply: FastifyReply): unknown;
  http?: HttpBinding;
  graphql?: GraphqlBinding<Result>;
  /** Only with ENABLE_TEST_TASKS (REST, GraphQL and job alike). */
  testOnly?: boolean;
}

/** Identity with the types checked: `defineOperation({...})` infers Input and Result from the spec. */
export function defineOperation<Input, Result>(
  spec: OperationSpec<Input, Result>,
): OperationSpec<Input, Result> {
  return spec;
}

/**
 * The one rule for every operation: a job when the `async` flag (body, query or multipart field; true or "true")
 * says so, or when the request says `Prefer: respond-async`; never a job when the flag says false; otherwise
 * undefined (an operation with a cost estimate then decides). A flag that is neither refuses with 400.
 */
export function asyncRequested(
  request: Pick<FastifyRequest, 'headers'> | undefined,
  flag: unknown,
): boolean | undefined {
  const parsed = asyncFlag.safeParse(flag);
  if (!parsed.success) throw new z.ZodError(parsed.error.issues.map((i) => ({ ...i, path: ['async'] })));
  if (parsed.data === true || (request !== undefined && prefersAsync(request))) return true;
  return parsed.data;
}

/** `raw` without its `async` key, and the key's value. */
export function splitAsync<T extends Record<string, unknown>>(
  raw: T,
): { rest: Omit<T, 'async'>; flag: unknown } {
  const { async: flag, ...rest } = raw;
  return { rest, flag };
}

/** A JSON body schema with the optional `async` flag (the flag is not part of the operation's input). */
export const withAsync = <T extends z.ZodType>(schema: T) =>
  z.intersection(schema, z.object({ async: asyncFlag }));

/** A JSON body (validated by the route's `withAsync` schema) as the operation's raw input and the async flag. */
export async function readJsonBody(request: FastifyRequest): Promise<RawInput> {
  const { rest, flag } = splitAsync((request.body ?? {}) as Record<string, unknown>);
  return { input: rest, async: asyncRequested(request, flag) };
}
