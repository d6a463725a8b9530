// The JobStore interface: what every store (memory, SQLite, PostgreSQL, third-party) must do, and no more.
//
// Stores persist and claim atomically; they do not know retry policy, timeouts or HTTP. Every method that
// changes a job increments its `seq` and, where the store has a change feed, publishes a `JobChange`.
// Methods that take a `workerId` act only while that worker holds the job's lease and return `undefined`
// otherwise (the lease lapsed and another worker may have the job).
import type { DeliveryStatus, JobChange, JobErrorInfo, JobRecord, JobStatus, NewJob } from './types.js';

export interface ClaimOptions {
  /** Only jobs registered under these names. */
  names: readonly string[];
  workerId: string;
  /** At most this many jobs. */
  limit: number;
  leaseMs: number;
}

/** An idle worker's offer of free slots (`JobStore.offerSlots`). */
export interface SlotOffer {
  workerId: string;
  /** The job names it runs. */
  names: readonly string[];
  /** Slots offered; null keeps the count and extends the offer. */
  free: number | null;
  /** The lease a job handed to it gets. */
  leaseMs: number;
  /** How long the offer holds unless renewed: a worker that dies stops getting jobs after this. */
  ttlMs: number;
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
  /** The attempt this update records, for the job's delivery history (`history()`), where the store keeps one. */
  attempt?: DeliveryAttempt;
}

/** One webhook delivery attempt, as the sender saw it. */
export interface DeliveryAttempt {
  /** 1 for the first attempt (counting again from 1 after `redeliver()`). */
  attempt: number;
  at: number;
  outcome: 'delivered' | 'retrying' | 'failed';
  /** The receiver's HTTP status, when it answered. */
  httpStatus: number | null;
  /** Why it was not delivered. */
  reason: string | null;
}

/** What a job went through: its failed attempts and its webhook delivery attempts, oldest first. */
export interface JobHistory {
  attempts: AttemptRecord[];
  deliveries: DeliveryAttempt[];
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

/** What the operator's job list (`JobStore.adminList`) filters by: every filter given must hold. */
export interface AdminListOptions {
  /** Only jobs in one of these statuses. */
  statuses?: readonly JobStatus[];
  /** Only jobs of this name. */
  name?: string;
  /** Only this owner's jobs (`null`: the jobs submitted without one). Absent: every owner's. */
  owner?: string | null;
  /** Only jobs created at or after this time (epoch ms). */
  from?: number;
  /** Only jobs created before this time (epoch ms). */
  to?: number;
  /** At most this many jobs. */
  limit: number;
  /** Only the jobs listed after this one (the last job of the previous page), in `list` order. */
  before?: ListPosition;
}

/** How many unexpired jobs of one name are in one status. */
export interface JobCount {
  name: string;
  status: JobStatus;
  count: number;
}

/** The jobs of one name that finished in one time bucket, by how they ended. */
export interface ThroughputBucket {
  name: string;
  /** Start of the bucket (epoch ms): a multiple of the bucket length. */
  at: number;
  complete: number;
  failed: number;
  canceled: number;
}

/** Nearest-rank percentiles of durations in ms (`null` when `count` is 0). */
export interface Percentiles {
  count: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
}

/** Queue wait (`startedAt - createdAt`) and run time (`finishedAt - startedAt`) of the jobs finished in a window. */
export interface JobTimings {
  waitMs: Percentiles;
  runMs: Percentiles;
}

/** One failed attempt, as the worker saw it: its timings and the full server-side error (message and code). */
export interface AttemptRecord {
  attempt: number;
  startedAt: number;
  finishedAt: number;
  /** The thrown error's own message and code; its stack only with `createJobs({ historyStacks: true })`. */
  error: JobErrorInfo & { stack?: string };
  /** Another attempt was scheduled after this one. */
  retried: boolean;
}

export interface AdminOutcome<Outcome extends string> {
  outcome: Outcome | 'refused' | 'missing';
  /** The job after the action; or as it is when `refused`. */
  job?: JobRecord;
}

export interface JobStore {
  /** Short name used in error messages (`memory`, `sqlite`, `postgres`). */
  readonly kind: string;

  /**
   * Optional. Claims cross the network (a database server): while handlers are short and jobs are waiting, the
   * worker then claims up to `concurrency` jobs ahead of its free slots, with up to two claims in flight, so that
   * a claim's round trip overlaps running handlers. Left unset, a claim takes the free slots only.
   */
  readonly remoteClaims?: boolean;

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
   * Optional, with `subscribe`. An idle worker offers `free` slots for jobs of `names` until `ttlMs` from now
   * (`free: null` keeps the count and extends the offer). A `create` may then take a slot and insert its job
   * already leased to that worker (for the offer's `leaseMs`), and the change feed reports the new job with
   * `leaseOwner`, so that the worker starts it without a claim. An offer is a hint: the lease decides who runs a
   * job. Resolves to the slots still offered.
   */
  offerSlots?(offer: SlotOffer): Promise<number>;

  /** Optional, with `offerSlots`. Withdraw the offer of `workerId`. */
  withdrawSlots?(workerId: string): Promise<void>;

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
    outcome: {
      error: JobErrorInfo;
      retryAt: number | null;
      retentionMs: number;
      /** The attempt for the job's history (`history()`), where the store keeps one. */
      attempt?: AttemptRecord;
    },
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

  /**
   * Optional, with `subscribe`. Whether this process has watchers: a store may leave out of its change feed the
   * changes no worker needs (claims, progress, completions) while no process has. `true` resolves once every change
   * is reported (the runtime then re-reads the watched jobs); `false` may take effect later.
   */
  setWatching?(watching: boolean): Promise<void>;

  // The operator's operations (the admin API and dashboard). Optional for third-party stores; the stores shipped
  // here have them all, and the conformance suite covers them where a store has them.

  /**
   * Optional. Unexpired jobs of every owner that match the filters, newest first in `list` order (`createdAt`
   * descending, then id descending, bytewise), paged the same way: pages stay stable while jobs are added.
   */
  adminList?(options: AdminListOptions): Promise<JobRecord[]>;

  /** Optional. How many unexpired jobs there are, by name and status (pairs with none left out). */
  countJobs?(): Promise<JobCount[]>;

  /** Optional. Jobs finished in the last `windowMs`, by name and bucket of `bucketMs`. Empty buckets left out. */
  throughput?(options: { windowMs: number; bucketMs: number }): Promise<ThroughputBucket[]>;

  /** Optional. Queue wait and run time percentiles of the jobs that finished (and had started) in the last `windowMs`. */
  timings?(options: { windowMs: number }): Promise<JobTimings>;

  /**
   * Optional. Run a `failed` or `canceled` job again, under the same id: `queued`, due now, with a fresh attempt
   * budget (`attempt` 0); its result, error, progress, `startedAt`, `finishedAt`, expiry and webhook state cleared
   * (a new delivery is armed when it ends again); `seq` keeps counting, so that event streams see it move. Any
   * other status is `refused` (with the job as it is), an unknown or expired job `missing`.
   */
  retry?(id: string): Promise<AdminOutcome<'retried'>>;

  /** Optional. Delete a job whatever its status (a worker running it then finds it gone). False when missing. */
  remove?(id: string): Promise<boolean>;

  /**
   * Optional. Deliver a finished job's webhook again: its delivery `pending`, due now, attempts from 0. A job without
   * a callback URL, or not finished, is `refused`.
   */
  redeliver?(id: string): Promise<AdminOutcome<'redelivering'>>;

  /**
   * Optional. The failed attempts of a job recorded by `fail()` and its delivery attempts recorded by
   * `recordDelivery()`, oldest first; both empty when none, or when the job is missing.
   */
  history?(id: string): Promise<JobHistory>;

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
