// The JobStore interface: what every store (memory, SQLite, PostgreSQL, third-party) must do, and no more.
//
// Stores persist and claim atomically; they do not know retry policy, timeouts or HTTP. Every method that
// changes a job increments its `seq` and, where the store has a change feed, publishes a `JobChange`.
// Methods that take a `workerId` act only while that worker holds the job's lease and return `undefined`
// otherwise (the lease lapsed and another worker may have the job).
import type { DeliveryStatus, JobChange, JobErrorInfo, JobRecord, NewJob } from './types.js';

export interface ClaimOptions {
  /** Only jobs registered under these names. */
  names: readonly string[];
  workerId: string;
  /** At most this many jobs. */
  limit: number;
  leaseMs: number;
}

export interface CreateResult {
  job: JobRecord;
  /** False when an unexpired job with the same owner and idempotency key already existed. */
  created: boolean;
}

export type CancelOutcome =
  /** It was queued and is now `canceled`. */
  | 'canceled'
  /** It is processing: `cancelRequested` is set and the worker running it will abort. */
  | 'requested'
  /** It had already finished; nothing changed. */
  | 'finished'
  /** No such job (or expired). */
  | 'missing';

export interface LeaseState {
  id: string;
  /** The lease is still this worker's (false: lapsed and taken, or the job is gone). */
  held: boolean;
  cancelRequested: boolean;
}

export interface DeliveryUpdate {
  status: DeliveryStatus;
  attempts: number;
  /** Next attempt time while `pending`; null otherwise. */
  nextAt: number | null;
}

/** A place in an owner's list (see `JobStore.list`): the `createdAt` and `id` of a listed job. */
export interface ListPosition {
  createdAt: number;
  id: string;
}

export interface ListOptions {
  owner: string | null;
  /** At most this many jobs. */
  limit: number;
  /** Only the jobs listed after this one (the last job of the previous page). */
  before?: ListPosition;
}

export interface JobStore {
  /** Short name used in error messages (`memory`, `sqlite`, `postgres`). */
  readonly kind: string;

  /** Prepare the store (schema migrations). Safe to call more than once and from many processes at once. */
  init(): Promise<void>;

  /**
   * Insert a new `queued` job, durably, before resolving. When `idempotencyKey` is set and an unexpired job
   * with the same owner and key exists, return that job with `created: false` instead; two concurrent
   * calls with one key create one job. Throws `QueueFullError` when bounded and full, and
   * `StoreUnavailableError` when the store cannot be reached.
   */
  create(job: NewJob): Promise<CreateResult>;

  /**
   * Optional. Like `create`, but the new job is inserted already claimed by `lease.workerId`, as `claim()` would
   * leave it (`processing`, attempt 1, leased for `lease.leaseMs`), so that a worker of the submitting process with
   * a free slot starts it without a claim round trip. A bound idempotency key resolves to the existing job,
   * untouched, with `created: false`.
   */
  createClaimed?(job: NewJob, lease: { workerId: string; leaseMs: number }): Promise<CreateResult>;

  /** The job, or `undefined` when missing or past `expiresAt`. */
  get(id: string): Promise<JobRecord | undefined>;

  /**
   * One page of the owner's unexpired jobs (`owner: null`: the jobs submitted without one), newest first: by
   * `createdAt` descending, then by `id` descending (ids compared as byte strings, `COLLATE "C"` in SQL), so that
   * the order is total. With `before`, only the jobs that come strictly after that position in this order: the
   * caller passes the last job of the previous page, and pages stay stable while jobs are added (a new job comes
   * first, before any page already read) or removed. At most `limit` jobs. A page must not cost a scan of the whole store:
   * the durable stores read an index by owner (a page costs the same however many jobs there are); the MemoryStore
   * sorts that owner's jobs.
   */
  list(options: ListOptions): Promise<JobRecord[]>;

  /**
   * Optional. How many unexpired jobs `owner` holds (queued, processing and finished alike), counting no further
   * than `upTo`: a result of `upTo` means "at least `upTo`", which is all a quota check needs, and lets the store
   * stop early. A count under `upTo` may include jobs past `expiresAt` that are not purged yet (a store that keeps a
   * running count need not check each); a count of `upTo` counts unexpired jobs only. Without this method, the
   * per-owner quota counts by `list({ owner, limit: upTo })`, which reads whole rows.
   */
  countByOwner?(owner: string, upTo: number): Promise<number>;

  /**
   * Optional. The unexpired job bound to this owner and idempotency key, or `undefined` (what `create` would
   * return with `created: false`). Lets a resubmit with a known key be answered at quota. Without it, a resubmit at
   * quota is looked for among `list({ owner, limit: perOwner })`.
   */
  getByKey?(owner: string, idempotencyKey: string): Promise<JobRecord | undefined>;

  /**
   * Atomically take up to `limit` jobs, oldest `runAt` first: `queued` ones with `runAt <= now`, and
   * `processing` ones whose lease has lapsed. Each is set to `processing` with `attempt + 1`, the lease
   * (`leaseOwner`, `leaseUntil = now + leaseMs`), `startedAt` if unset. No job is handed to two
   * claimers whose leases overlap.
   */
  claim(options: ClaimOptions): Promise<JobRecord[]>;

  /** Extend the leases this worker holds; says per job whether it is still held and whether cancel was asked. */
  renew(ids: readonly string[], workerId: string, leaseMs: number): Promise<LeaseState[]>;

  /** Record progress of a job this worker holds. */
  progress(id: string, workerId: string, progress: number, message: string | null): Promise<JobRecord | undefined>;

  /** Finish as `complete` with `result` (and `resultUrl`), setting `finishedAt` and `expiresAt = now + retentionMs`. Arms the webhook when the job has a callback URL. */
  complete(
    id: string,
    workerId: string,
    outcome: { result: unknown; resultUrl: string | null; retentionMs: number },
  ): Promise<JobRecord | undefined>;

  /**
   * Record a failed attempt. With `retryAt`, the job goes back to `queued` (lease cleared, `runAt = retryAt`);
   * without, it ends `failed` like `complete` ends `complete`.
   */
  fail(
    id: string,
    workerId: string,
    outcome: { error: JobErrorInfo; retryAt: number | null; retentionMs: number },
  ): Promise<JobRecord | undefined>;

  /**
   * Cancel by id, whoever holds it: a queued job becomes `canceled` at once; a processing one gets
   * `cancelRequested`; a finished one is left as it is.
   */
  cancel(id: string, options: { retentionMs: number }): Promise<{ outcome: CancelOutcome; job?: JobRecord }>;

  /** The worker acknowledges a requested cancel: the job ends `canceled`. */
  markCanceled(id: string, workerId: string, options: { retentionMs: number }): Promise<JobRecord | undefined>;

  /** Hand a held job back to the queue without counting the attempt (graceful shutdown). */
  release(id: string, workerId: string): Promise<void>;

  /** Delete jobs past `expiresAt` (and unfinished ones whose idempotency keys lapsed are kept). Returns how many. */
  purgeExpired(): Promise<number>;

  /**
   * Atomically take up to `limit` finished jobs whose webhook is `pending` and due, pushing their
   * `deliveryNextAt` forward by `leaseMs` so that no other process sends them meanwhile.
   */
  claimDeliveries(options: { limit: number; leaseMs: number }): Promise<JobRecord[]>;

  /** Record the outcome of a delivery attempt. */
  recordDelivery(id: string, update: DeliveryUpdate): Promise<void>;

  /**
   * Optional change feed across processes (PostgreSQL LISTEN/NOTIFY). The runtime publishes its own
   * process's changes locally; a store implements this only when changes made elsewhere can reach it.
   * Resolves to an unsubscribe function.
   */
  subscribe?(listener: (change: JobChange) => void): Promise<() => Promise<void>>;

  /** Release connections and timers. The store is not used afterwards. */
  close(): Promise<void>;
}

const REQUIRED_METHODS = [
  'init',
  'create',
  'get',
  'list',
  'claim',
  'renew',
  'progress',
  'complete',
  'fail',
  'cancel',
  'markCanceled',
  'release',
  'purgeExpired',
  'claimDeliveries',
  'recordDelivery',
  'close',
] as const;

/** Fail fast with a precise TypeError when `store` does not have the JobStore shape. @internal */
export function assertJobStore(store: unknown): asserts store is JobStore {
  if (typeof store !== 'object' || store === null) {
    throw new TypeError('respond-async: `store` must be a JobStore object');
  }
  for (const method of REQUIRED_METHODS) {
    if (typeof (store as Record<string, unknown>)[method] !== 'function') {
      throw new TypeError(`respond-async: the store is missing the JobStore method \`${method}()\``);
    }
  }
}
