/**
 * The jobs service the adapters (REST routes, GraphQL resolvers, the `async: true` helper) use: validation of the
 * operation and its input, then the backend; unknown or expired ids become 404 TW_JOB_NOT_FOUND.
 */
import type { Config } from '../config.js';
import { fail } from '../errors.js';
import { type JobOperation, jobOperation, listJobOperations, parseJobInput } from './registry.js';
import type { JobBackend, JobResult, JobView, SubmitOutcome } from './types.js';

export interface JobService {
  backend: JobBackend;
  /** Validate (400 / 413) and queue (503 when full). */
  submit(operation: string, input: unknown, opts?: { idempotencyKey?: string }): Promise<SubmitOutcome>;
  get(id: string): Promise<JobView>;
  result(id: string): Promise<JobResult>;
  cancel(id: string): Promise<JobView>;
  watch(id: string, signal?: AbortSignal): Promise<AsyncIterable<JobView>>;
  /** The registered operation (400 when unknown); routes ask here rather than importing the registry. */
  operation(name: string): JobOperation;
  operations(): string[];
}

const notFound = (id: string) =>
  fail('JOB_NOT_FOUND', `No job '${id}' (unknown, or finished longer ago than the result TTL)`, {
    details: { id },
  });

export function jobService(backend: JobBackend, config: Config): JobService {
  const found = <T>(id: string, value: T | null): T => {
    if (value === null) throw notFound(id);
    return value;
  };
  return {
    backend,
    async submit(operation, input, opts) {
      const op = jobOperation(operation, config);
      return backend.submit(op.name, parseJobInput(op, input, config), opts);
    },
    async get(id) {
      return found(id, await backend.get(id));
    },
    async result(id) {
      return found(id, await backend.result(id));
    },
    async cancel(id) {
      return found(id, await backend.cancel(id));
    },
    async watch(id, signal) {
      found(id, await backend.get(id));
      return backend.watch(id, signal);
    },
    operation: (name) => jobOperation(name, config),
    operations: () => listJobOperations(config).map((op) => op.name),
  };
}
