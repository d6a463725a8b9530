// Shared value types of the runtime: job records as stores persist them, and what handlers see.

/** The five status words of the HTTP contract. The last three are terminal. */
export type JobStatus = 'queued' | 'processing' | 'complete' | 'failed' | 'canceled';

export function isTerminal(status: JobStatus): boolean {
  return status === 'complete' || status === 'failed' || status === 'canceled';
}

/** The public form of a failure, as persisted and served. Never holds a stack. */
export interface JobErrorInfo {
  message: string;
  code?: string;
  /** The HTTP status a wrapped handler answered with, when that failed the job (4xx) or the attempt (5xx). */
  status?: number;
}

/** Where a job's webhook delivery stands. `null` when the job has no callback URL. */
export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

/** A job as a store persists it. Times are epoch milliseconds. */
export interface JobRecord {
  /** URL-safe id: its creation time, then 128 bits of randomness (src/core/ids.ts). */
  id: string;
  /** The name the handler was registered under with `jobs.define(name, …)`. */
  name: string;
  status: JobStatus;
  /** The JSON snapshot of the request the handler receives. */
  input: unknown;
  /** The owner recorded at submit (`owner(req)`), or null. */
  owner: string | null;
  /** Idempotency key as sent by the client, scoped by owner; null when none. */
  idempotencyKey: string | null;
  /** Fingerprint of the request that created the job (method, path, body, owner). */
  requestHash: string | null;
  progress: number | null;
  message: string | null;
  /** The handler's return value, when complete. */
  result: unknown;
  /** Where a complete job's result lives, when the handler asked for `303 See Other`. */
  resultUrl: string | null;
  error: JobErrorInfo | null;
  /** Attempts started so far (1 while the first attempt runs). */
  attempt: number;
  maxAttempts: number;
  /** Not claimable before this time (delayed retries). */
  runAt: number;
  /** Worker holding the lease while processing. */
  leaseOwner: string | null;
  leaseUntil: number | null;
  /** A cancel was asked for while the job was processing. */
  cancelRequested: boolean;
  callbackUrl: string | null;
  deliveryStatus: DeliveryStatus | null;
  deliveryAttempts: number;
  deliveryNextAt: number | null;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** When a finished job is purged; null while not terminal. */
  expiresAt: number | null;
  /** Increases on every change of the record: the SSE event id. */
  seq: number;
  /**
   * The OpenTelemetry context of the submit's `send` span (JSON of the W3C `traceparent` and `tracestate`), so that
   * each attempt's `process` span joins the request's trace; null without a trace (or from a store that drops it).
   */
  traceContext?: string | null;
}

/** What the runtime asks a store to insert. */
export interface NewJob {
  id: string;
  name: string;
  input: unknown;
  owner: string | null;
  idempotencyKey: string | null;
  requestHash: string | null;
  maxAttempts: number;
  callbackUrl: string | null;
  /** The JSON text of `input`, when the submitter holds it: a store may keep it rather than serialise `input`. */
  inputJson?: string;
  /** The submit's trace context to keep with the job (see `JobRecord.traceContext`). */
  traceContext?: string | null;
}

/** A change to a job, as published to `JobStore.subscribe` listeners. */
export interface JobChange {
  id: string;
  status: JobStatus;
  seq: number;
  /** A job created already leased to a worker (`JobStore.offerSlots`): that worker. */
  leaseOwner?: string;
  /** The job as stored, where the feed carries it (a job handed to a worker). */
  job?: JobRecord;
}

/** Progress reporter and cancellation signal handed to a handler. */
export interface JobContext {
  jobId: string;
  /** 1 on the first attempt. */
  attempt: number;
  /** Aborts on cancel, on timeout and on shutdown; `signal.reason` says which. */
  signal: AbortSignal;
  /** Report progress: a percentage 0..100 and an optional message. Persisted and streamed. */
  progress(percent: number, message?: string): Promise<void>;
  /** The owner recorded for the job, if any. */
  owner: string | null;
}

/** The JSON snapshot a wrapped route persists and the handler receives. */
export interface RequestSnapshot<Body = unknown> {
  body: Body;
  params: Record<string, string>;
  query: Record<string, unknown>;
}

export type JobHandler<Input, Result> = (input: Input, ctx: JobContext) => Promise<Result> | Result;

/** What every lifecycle event of `Jobs.on()` carries. Times are epoch milliseconds. */
export interface JobEvent {
  jobId: string;
  /** The job's name, as given to `jobs.define()`. */
  name: string;
  /** The attempt (1 on the first; 0 for `submitted`, and for a queued job canceled before it ran). */
  attempt: number;
  /** When the event happened. */
  at: number;
  /** The trace id of the job's OpenTelemetry trace, when it has one. */
  traceId?: string;
}

/**
 * The lifecycle events of `jobs.on(event, listener)`, for the jobs this process submits or runs. An attempt ends
 * with one of `completed`, `retrying`, `failed` or `canceled` (none when its lease was lost or handed back at
 * shutdown).
 */
export interface JobEvents {
  /** This process created the job (not an idempotent replay). */
  submitted: JobEvent;
  /** An attempt started here; `waitMs` since the job was created or its retry came due. */
  started: JobEvent & { waitMs: number };
  /** The handler reported progress. */
  progress: JobEvent & { percent: number; message: string | null };
  completed: JobEvent & { runMs: number };
  /** The attempt failed and another one is due at `retryAt`. */
  retrying: JobEvent & { runMs: number; error: JobErrorInfo; retryAt: number };
  /** The job failed for good. */
  failed: JobEvent & { runMs: number; error: JobErrorInfo };
  /** The job was canceled: while it ran here (`runMs`), or while queued (`runMs` null). */
  canceled: JobEvent & { runMs: number | null };
}
