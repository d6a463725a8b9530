// What every store shares: building the record of a new job, the scope of an idempotency key, JSON text in and
// out of a column, and a table row mapped to a JobRecord. @internal
import { JsonRefusedError } from '../core/errors.js';
import type { AttemptRecord, DeliveryAttempt, JobHistory, Percentiles } from '../core/store.js';
import type { DeliveryStatus, JobErrorInfo, JobRecord, JobStatus, NewJob } from '../core/types.js';

/** @internal Build the record a store inserts for a new job. Shared by every store. */
export function newRecord(job: NewJob, now: number): JobRecord {
  return {
    id: job.id,
    name: job.name,
    status: 'queued',
    input: job.input,
    owner: job.owner,
    idempotencyKey: job.idempotencyKey,
    requestHash: job.requestHash,
    progress: null,
    message: null,
    result: undefined,
    resultUrl: null,
    error: null,
    attempt: 0,
    maxAttempts: job.maxAttempts,
    runAt: now,
    leaseOwner: null,
    leaseUntil: null,
    cancelRequested: false,
    callbackUrl: job.callbackUrl,
    deliveryStatus: null,
    deliveryAttempts: 0,
    deliveryNextAt: null,
    createdAt: now,
    updatedAt: now,
    startedAt: null,
    finishedAt: null,
    expiresAt: null,
    seq: 1,
    traceContext: job.traceContext ?? null,
  };
}

/** @internal The unique scope of an idempotency key: the key within its owner. */
export function keyScope(owner: string | null, key: string): string {
  return `${owner ?? ''}\u0000${key}`;
}

/**
 * @internal JSON text for a JSON column; `undefined` becomes SQL NULL, so that `undefined` and `null` (the text
 * `null`) stay apart. A value JSON cannot hold (a BigInt, a cycle) throws JsonRefusedError (`what` names it).
 */
export function toJsonText(value: unknown, what = 'value'): string | null {
  if (value === undefined) return null;
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new JsonRefusedError(what, error);
  }
  // A function or a symbol alone has no JSON text: stored as absent, as JSON.stringify drops them in objects.
  return text ?? null;
}

/** @internal The value of a JSON column's text; SQL NULL is `undefined`. */
export function parseJson(text: string | null | undefined): unknown {
  return text === null || text === undefined ? undefined : JSON.parse(text);
}

/**
 * @internal A job's row as the SQL stores read it: one column per JobRecord field, JSON columns as text.
 * Integers may come as strings (PostgreSQL bigint) and booleans as 0/1 (SQLite).
 */
export interface JobRow {
  id: string;
  name: string;
  status: string;
  input: string | null;
  owner: string | null;
  idempotency_key: string | null;
  request_hash: string | null;
  progress: number | null;
  message: string | null;
  result: string | null;
  result_url: string | null;
  error: string | null;
  attempt: number | string;
  max_attempts: number | string;
  run_at: number | string;
  lease_owner: string | null;
  lease_until: number | string | null;
  cancel_requested: boolean | number;
  callback_url: string | null;
  delivery_status: string | null;
  delivery_attempts: number | string;
  delivery_next_at: number | string | null;
  created_at: number | string;
  updated_at: number | string;
  started_at: number | string | null;
  finished_at: number | string | null;
  expires_at: number | string | null;
  seq: number | string;
  /** Absent from rows read by statements that do not list it. */
  trace_context?: string | null;
}

/** @internal The JobRecord a row holds. */
export function rowToRecord(row: JobRow): JobRecord {
  return {
    id: row.id,
    name: row.name,
    status: row.status as JobStatus,
    input: parseJson(row.input),
    owner: row.owner,
    idempotencyKey: row.idempotency_key,
    requestHash: row.request_hash,
    progress: row.progress,
    message: row.message,
    result: parseJson(row.result),
    resultUrl: row.result_url,
    error: (parseJson(row.error) as JobErrorInfo | null | undefined) ?? null,
    attempt: Number(row.attempt),
    maxAttempts: Number(row.max_attempts),
    runAt: Number(row.run_at),
    leaseOwner: row.lease_owner,
    leaseUntil: numberOrNull(row.lease_until),
    cancelRequested: row.cancel_requested === true || row.cancel_requested === 1,
    callbackUrl: row.callback_url,
    deliveryStatus: row.delivery_status as DeliveryStatus | null,
    deliveryAttempts: Number(row.delivery_attempts),
    deliveryNextAt: numberOrNull(row.delivery_next_at),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    startedAt: numberOrNull(row.started_at),
    finishedAt: numberOrNull(row.finished_at),
    expiresAt: numberOrNull(row.expires_at),
    seq: Number(row.seq),
    traceContext: row.trace_context ?? null,
  };
}

function numberOrNull(value: number | string | null): number | null {
  return value === null ? null : Number(value);
}

/**
 * @internal Nearest-rank percentiles (the smallest value with at least p of the values at or under it: what
 * PostgreSQL's `percentile_disc` returns), so that every store reports the same figures for the same jobs.
 */
export function percentiles(values: number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) => (sorted.length === 0 ? null : sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]);
  return { count: sorted.length, p50: rank(0.5), p95: rank(0.95), p99: rank(0.99), max: rank(1) };
}

/** @internal A job's history, from the JSON texts (arrays) of its `attempts` and `delivery_log` columns. */
export function parseHistory(row: { attempts: string | null; delivery_log: string | null } | undefined): JobHistory {
  const list = <T>(text: string | null | undefined): T[] => (text ? (JSON.parse(text) as T[]) : []);
  return { attempts: list<AttemptRecord>(row?.attempts), deliveries: list<DeliveryAttempt>(row?.delivery_log) };
}
