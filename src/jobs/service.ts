/**
 * The jobs service the adapters (REST routes, GraphQL resolvers, the `async: true` helper) use: validation of the
 * operation and its input, then the backend; unknown or expired ids become 404 TW_JOB_NOT_FOUND.
 * With API keys on, every call carries the caller's owner id: a job belongs to the key that submitted it, and for
 * any other key it does not exist (404, never 403, so ids cannot be probed).
 */
import type { Config } from '../config.js';
import { fail } from '../errors.js';
import { inSpan, startJobSubmit } from '../telemetry/tracing.js';
import { checkIdempotencyKey } from './http.js';
import {
  checkJobInput,
  type JobCheckContext,
  type JobOperation,
  jobOperation,
  listJobOperations,
} from './registry.js';
import type { JobBackend, JobResult, JobView, SubmitOptions, SubmitOutcome } from './types.js';

export interface JobService {
  backend: JobBackend;
  /** Validate (400 / 413) and queue (503 when full). */
  submit(operation: string, input: unknown, opts?: SubmitOptions): Promise<SubmitOutcome>;
  /** `owner`: the caller's API key id (undefined when keys are off); a job of another owner is 404. */
  get(id: string, owner?: string): Promise<JobView>;
  result(id: string, owner?: string): Promise<JobResult>;
  cancel(id: string, owner?: string): Promise<JobView>;
  watch(id: string, signal?: AbortSignal, owner?: string): Promise<AsyncIterable<JobView>>;
  /** The registered operation (400 when unknown); routes ask here rather than importing the registry. */
  operation(name: string): JobOperation;
  operations(): string[];
}

const notFound = (id: string) =>
  fail('JOB_NOT_FOUND', `No job '${id}' (unknown, or finished longer ago than the result TTL)`, {
    details: { id },
  });

/**
 * `checks`: what the operations' submission checks may consult besides the configuration (the API process's model
 * registry).
 */
export function jobService(
  backend: JobBackend,
  config: Config,
  checks: Omit<JobCheckContext, 'config'> = {},
): JobService {
  const found = <T>(id: string, value: T | null): T => {
    if (value === null) throw notFound(id);
    return value;
  };
  /** 404 unless the job exists and belongs to `owner` (both undefined when keys are off). */
  const owned = async (id: string, owner: string | undefined) => {
    const stored = await backend.ownerOf(id);
    if (stored === null || stored !== owner) throw notFound(id);
  };
  return {
    backend,
    async submit(operation, input, opts) {
      checkIdempotencyKey(opts?.idempotencyKey);
      const op = jobOperation(operation, config);
      const parsed = await checkJobInput(op, input, { ...checks, config });
      // Every adapter (REST, async routes, GraphQL) passes here: the job stores the submit span's context.
      const { span, carrier } = startJobSubmit(op.name);
      return inSpan(span, async () => {
        const outcome = await backend.submit(op.name, parsed, { ...opts, trace: carrier });
        span.setAttribute('tw.job.id', outcome.view.id);
        if (outcome.replayed) span.setAttribute('tw.job.replayed', true);
        return outcome;
      });
    },
    async get(id, owner) {
      await owned(id, owner);
      return found(id, await backend.get(id));
    },
    async result(id, owner) {
      await owned(id, owner);
      return found(id, await backend.result(id));
    },
    async cancel(id, owner) {
      await owned(id, owner);
      return found(id, await backend.cancel(id));
    },
    async watch(id, signal, owner) {
      await owned(id, owner);
      found(id, await backend.get(id));
      return backend.watch(id, signal);
    },
    operation: (name) => jobOperation(name, config),
    operations: () => listJobOperations(config).map((op) => op.name),
  };
}
