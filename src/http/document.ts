// The status document: the one JSON shape the status endpoint, SSE events and webhooks all serve.
import type { JobErrorInfo, JobRecord, JobStatus } from '../core/types.js';
import { isCapturedResponse } from './wrap.js';

/** The status document of the HTTP contract. `Result` is the handler's return type. */
export interface StatusDocument<Result = unknown> {
  jobId: string;
  status: JobStatus;
  statusUrl: string;
  progress?: number;
  message?: string;
  /** The handler's return value, when `complete`. */
  result?: Result;
  /**
   * Where the result lives: when the handler returned `seeOther(url)`, or `{statusUrl}/result` for a wrapped
   * handler's response (the document then has no `result`).
   */
  resultUrl?: string;
  /**
   * When `failed`, or `queued` for a retry: the (last) attempt's error as clients may see it (a generic message
   * unless the error was marked public).
   */
  error?: JobErrorInfo;
  /** When `queued` for a retry: when the next attempt may start. */
  retryAt?: string;
  createdAt: string;
  updatedAt: string;
  startedAt?: string;
  finishedAt?: string;
  attempt?: number;
}

/** The body of a `202 Accepted` answer to a submit. */
export interface AcceptedDocument {
  jobId: string;
  status: JobStatus;
  statusUrl: string;
  estimatedSeconds?: number;
  createdAt: string;
}

/** Build the status document of `job`, served at `statusUrl`. */
export function toStatusDocument<Result = unknown>(job: JobRecord, statusUrl: string): StatusDocument<Result> {
  const doc = { jobId: job.id, status: job.status, statusUrl } as StatusDocument<Result>;
  // A job queued again for a retry shows no progress: what the failed attempt reported no longer holds.
  const retrying = job.status === 'queued' && job.attempt > 0 && job.error !== null;
  if (job.progress !== null && !retrying) doc.progress = Math.round(job.progress * 100) / 100;
  if (job.message !== null && !retrying) doc.message = job.message;
  if (job.status === 'complete') {
    // A wrapped handler's response is served at its own URL, byte for byte, rather than inside this document.
    if (isCapturedResponse(job.result)) doc.resultUrl = `${statusUrl}/result`;
    else if (job.result !== undefined) doc.result = job.result as Result;
    if (job.resultUrl !== null) doc.resultUrl = job.resultUrl;
  }
  if ((job.status === 'failed' || retrying) && job.error) {
    doc.error = job.error.code === undefined ? { message: job.error.message } : { ...job.error };
  }
  if (retrying) doc.retryAt = iso(job.runAt);
  doc.createdAt = iso(job.createdAt);
  doc.updatedAt = iso(job.updatedAt);
  if (job.startedAt !== null) doc.startedAt = iso(job.startedAt);
  if (job.finishedAt !== null) doc.finishedAt = iso(job.finishedAt);
  if (job.attempt > 0) doc.attempt = job.attempt;
  return doc;
}

let lastMs = Number.NaN;
let lastIso = '';

/**
 * ISO 8601 of an epoch-ms time. The last conversion is kept: the jobs accepted in one millisecond share their
 * `createdAt`, and `toISOString()` (a Date and its calendar arithmetic) costs more than the rest of building the 202.
 * @internal
 */
export function iso(ms: number): string {
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastIso;
}
