/**
 * What a job looks like from outside (REST, GraphQL), and the interface both backends implement.
 */

export const JOB_STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];

export const isTerminal = (state: JobState) =>
  state === 'succeeded' || state === 'failed' || state === 'cancelled';

export interface JobError {
  code: string;
  statusCode: number;
  message: string;
  details?: unknown;
}

export interface JobView {
  id: string;
  state: JobState;
  operation: string;
  progress: { fraction: number; message: string };
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** When a finished job and its result are forgotten (finishedAt + JOB_TTL_MS). */
  expiresAt: string | null;
  /** Runs started so far (above 1 when a worker died and another took the job over). */
  attempts: number;
  error?: JobError;
}

export interface SubmitOptions {
  idempotencyKey?: string;
  owner?: string;
  /**
   * The submitting client's address: with API keys off (no owner), per-client quotas (JOBS_MAX_PER_KEY, finished
   * jobs kept) count by it.
   */
  client?: string;
  /**
   * W3C trace context of the submission (`job.submit` span), stored with the job so that its run, in whichever
   * process, is a child span of it and logs its trace id. Set by jobService.submit.
   */
  trace?: { traceparent?: string; tracestate?: string };
}

export interface SubmitOutcome {
  view: JobView;
  /** True when an Idempotency-Key matched an earlier submission: this is that job, not a new one. */
  replayed: boolean;
}

export interface JobResult {
  view: JobView;
  /** Present when the job succeeded. */
  result?: unknown;
}

export interface JobBackend {
  readonly kind: 'memory' | 'redis';
  /**
   * Queue a validated input. Refuses with 503 + Retry-After when JOBS_QUEUE_MAX jobs are waiting. `owner` (the
   * caller's API key id, when keys are on) is stored with the job and scopes its idempotency key.
   */
  submit(operation: string, input: unknown, opts?: SubmitOptions): Promise<SubmitOutcome>;
  /** The owner stored at submission (undefined for none); null for an unknown or expired id. */
  ownerOf(id: string): Promise<string | undefined | null>;
  /** null for an unknown or expired id. */
  get(id: string): Promise<JobView | null>;
  result(id: string): Promise<JobResult | null>;
  /** Cancel a queued or running job (a running task is aborted); a finished job is returned unchanged. */
  cancel(id: string): Promise<JobView | null>;
  /** The job's view now and after every change, ending after a terminal state (or when the job disappears). */
  watch(id: string, signal?: AbortSignal): AsyncIterable<JobView>;
  counts(): Promise<{ queued: number; running: number }>;
  /** The same counts at once where the backend holds them (memory); undefined where they live elsewhere (redis). */
  countsNow?(): { queued: number; running: number; concurrency: number };
  /** Whether the backend's store is reachable now (answered at once, for /readyz); the memory backend always is. */
  readiness(): { ready: boolean; reason?: string };
  /** Stop; the memory backend answers the ids of the jobs that were queued or running (lost with the process). */
  close(): Promise<{ lost: string[] } | undefined>;
}
