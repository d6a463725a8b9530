// MemoryStore: the default JobStore, for one process. Bounded, purges finished jobs after retention.
import { QueueFullError } from '../core/errors.js';
import type { CancelOutcome, ClaimOptions, CreateResult, DeliveryUpdate, JobStore, LeaseState } from '../core/store.js';
import type { JobErrorInfo, JobRecord, NewJob } from '../core/types.js';
import { keyScope, newRecord } from './common.js';
import {
  CANCELED,
  COMPLETE,
  DELIVERY_CODE,
  F,
  FAILED,
  FREE,
  JobTable,
  PENDING,
  PROCESSING,
  QUEUED,
} from './memory-table.js';

export interface MemoryStoreOptions {
  /** Most jobs held at once, finished ones included; a full store makes submit answer 503. Default 100 000. */
  maxJobs?: number;
}

/**
 * An in-memory JobStore for one process. Jobs are lost when the process exits: use `SqliteStore` or
 * `PostgresStore` where that matters.
 * @example
 * const jobs = createJobs({ store: new MemoryStore({ maxJobs: 10_000 }) });
 */
export class MemoryStore implements JobStore {
  readonly kind = 'memory';
  /** The jobs, one row each (see memory-table.ts for why rows and not objects). Read it through `#table`. */
  readonly #rows: JobTable;
  /**
   * New jobs not yet in `#rows`, in the order they were created: their job, input text and time. A new job that
   * fits in memory the table already holds is written with the others of the same turn of the event loop, after
   * that turn's I/O (`setImmediate`), not while its request is answered. Between two requests an HTTP server
   * touches enough memory to push the table's out of the CPU caches; written one per request, a job cost several
   * cache misses more than written in a batch (an HTTP server of the benchmark, Koa, saturated: 53.7 µs of CPU per
   * accepted request against 55.8). Every other method reads the table through `#table`, which writes these jobs
   * first: nothing can see the store without them. A new job that needs memory allocated is written at once,
   * so that a failed allocation fails its own request, not a job already answered.
   */
  readonly #pendingJobs: NewJob[] = [];
  readonly #pendingTexts: (string | undefined)[] = [];
  readonly #pendingTimes: number[] = [];
  /** UTF-16 units of the pending jobs' texts, and the longest one. */
  #pendingUnits = 0;
  #pendingLongest = 0;
  #flushScheduled = false;
  readonly #flushSoon = (): void => {
    this.#flushScheduled = false;
    this.#flush();
  };
  /** Idempotency scope → id of the job bound to it. */
  readonly #keys = new Map<string, string>();
  readonly #maxJobs: number;

  constructor(options: MemoryStoreOptions = {}) {
    this.#maxJobs = options.maxJobs ?? 100_000;
    if (!(this.#maxJobs >= 1)) {
      throw new TypeError(`respond-async: MemoryStore \`maxJobs\` must be at least 1, got ${String(options.maxJobs)}`);
    }
    this.#rows = new JobTable();
  }

  async init(): Promise<void> {}

  async create(job: NewJob): Promise<CreateResult> {
    return this.createNow(job);
  }

  createNow(job: NewJob): CreateResult {
    const now = Date.now();
    const t = this.#rows;
    const scope = job.idempotencyKey === null ? null : keyScope(job.owner, job.idempotencyKey);
    if (scope !== null) {
      const existing = this.#live(this.#keys.get(scope), now);
      if (existing !== undefined) return { job: t.record(existing), created: false };
    }
    const pending = this.#pendingJobs.length;
    if (t.size + pending >= this.#maxJobs) {
      this.#purge(now);
      if (t.size >= this.#maxJobs) throw new QueueFullError(this.kind, this.#maxJobs);
    }
    const text = job.inputJson ?? toText(job.input);
    const units = text === undefined ? 0 : text.length;
    const longest = Math.max(this.#pendingLongest, units);
    if (t.fits(this.#pendingJobs.length + 1, this.#pendingUnits + units, longest)) {
      this.#pendingJobs.push(job);
      this.#pendingTexts.push(text);
      this.#pendingTimes.push(now);
      this.#pendingUnits += units;
      this.#pendingLongest = longest;
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(this.#flushSoon);
      }
    } else {
      this.#flush();
      t.insert(job, text, now);
    }
    if (scope !== null) this.#keys.set(scope, job.id);
    // The input stored is its JSON text; the caller gets back the value it gave.
    return { job: newRecord(job, now), created: true };
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const row = this.#live(id, Date.now());
    return row === undefined ? undefined : this.#table.record(row);
  }

  async list(options: { owner: string | null; limit: number }): Promise<JobRecord[]> {
    const now = Date.now();
    const t = this.#table;
    const rows: number[] = [];
    for (let row = 0; row < t.end; row++) {
      if (t.get(row, F.status) !== FREE && t.owner(row) === options.owner && !t.expired(row, now)) rows.push(row);
    }
    rows.sort((a, b) => t.get(b, F.createdAt) - t.get(a, F.createdAt));
    return rows.slice(0, options.limit).map((row) => t.record(row));
  }

  async claim(options: ClaimOptions): Promise<JobRecord[]> {
    const now = Date.now();
    const t = this.#table;
    const candidates: number[] = [];
    // Only the queued and processing jobs: a claim does not walk the finished ones.
    for (let row = t.firstActive; row !== -1; row = t.nextActive(row)) {
      if (!options.names.includes(t.name(row))) continue;
      const status = t.get(row, F.status);
      const claimable =
        (status === QUEUED && t.get(row, F.runAt) <= now) || (status === PROCESSING && t.get(row, F.leaseUntil) < now);
      if (claimable) candidates.push(row);
    }
    candidates.sort((a, b) => t.get(a, F.runAt) - t.get(b, F.runAt));
    return candidates.slice(0, options.limit).map((row) => {
      t.set(row, F.status, PROCESSING);
      t.set(row, F.attempt, t.get(row, F.attempt) + 1);
      t.setLeaseOwner(row, options.workerId);
      t.set(row, F.leaseUntil, now + options.leaseMs);
      if (Number.isNaN(t.get(row, F.startedAt))) t.set(row, F.startedAt, now);
      t.touch(row, now);
      return t.record(row);
    });
  }

  async renew(ids: readonly string[], workerId: string, leaseMs: number): Promise<LeaseState[]> {
    const now = Date.now();
    const t = this.#table;
    return ids.map((id) => {
      const row = this.#held(id, workerId);
      if (row === undefined) return { id, held: false, cancelRequested: false };
      t.set(row, F.leaseUntil, now + leaseMs);
      return { id, held: true, cancelRequested: t.get(row, F.cancelRequested) === 1 };
    });
  }

  async progress(id: string, workerId: string, progress: number, message: string | null) {
    const row = this.#held(id, workerId);
    if (row === undefined) return undefined;
    const t = this.#table;
    t.set(row, F.progress, progress);
    t.setMessage(row, message);
    t.touch(row, Date.now());
    return t.record(row);
  }

  async complete(
    id: string,
    workerId: string,
    outcome: { result: unknown; resultUrl: string | null; retentionMs: number },
  ) {
    const row = this.#held(id, workerId);
    if (row === undefined) return undefined;
    const t = this.#table;
    t.setResult(row, toText(outcome.result), outcome.resultUrl);
    t.set(row, F.progress, 100);
    this.#finish(row, COMPLETE, outcome.retentionMs);
    return t.record(row);
  }

  async fail(
    id: string,
    workerId: string,
    outcome: { error: JobErrorInfo; retryAt: number | null; retentionMs: number },
  ) {
    const row = this.#held(id, workerId);
    if (row === undefined) return undefined;
    const t = this.#table;
    t.setError(row, toText(outcome.error) ?? null);
    if (outcome.retryAt !== null) {
      t.set(row, F.status, QUEUED);
      t.set(row, F.runAt, outcome.retryAt);
      t.setLeaseOwner(row, null);
      t.set(row, F.leaseUntil, Number.NaN);
      t.touch(row, Date.now());
    } else {
      this.#finish(row, FAILED, outcome.retentionMs);
    }
    return t.record(row);
  }

  async cancel(id: string, options: { retentionMs: number }): Promise<{ outcome: CancelOutcome; job?: JobRecord }> {
    const row = this.#live(id, Date.now());
    if (row === undefined) return { outcome: 'missing' };
    const t = this.#table;
    const status = t.get(row, F.status);
    if (status === QUEUED) {
      this.#finish(row, CANCELED, options.retentionMs);
      return { outcome: 'canceled', job: t.record(row) };
    }
    if (status !== PROCESSING) return { outcome: 'finished', job: t.record(row) };
    t.set(row, F.cancelRequested, 1);
    t.touch(row, Date.now());
    return { outcome: 'requested', job: t.record(row) };
  }

  async markCanceled(id: string, workerId: string, options: { retentionMs: number }) {
    const row = this.#held(id, workerId);
    if (row === undefined) return undefined;
    this.#finish(row, CANCELED, options.retentionMs);
    return this.#table.record(row);
  }

  async release(id: string, workerId: string): Promise<void> {
    const row = this.#held(id, workerId);
    if (row === undefined) return;
    const t = this.#table;
    t.set(row, F.status, QUEUED);
    t.set(row, F.attempt, Math.max(0, t.get(row, F.attempt) - 1));
    t.setLeaseOwner(row, null);
    t.set(row, F.leaseUntil, Number.NaN);
    t.touch(row, Date.now());
  }

  async purgeExpired(): Promise<number> {
    return this.#purge(Date.now());
  }

  async claimDeliveries(options: { limit: number; leaseMs: number }): Promise<JobRecord[]> {
    const now = Date.now();
    const t = this.#table;
    const out: JobRecord[] = [];
    for (let row = 0; row < t.end && out.length < options.limit; row++) {
      if (t.get(row, F.status) !== FREE && t.get(row, F.delivery) === PENDING && t.get(row, F.deliveryNextAt) <= now) {
        t.set(row, F.deliveryNextAt, now + options.leaseMs);
        out.push(t.record(row));
      }
    }
    return out;
  }

  async recordDelivery(id: string, update: DeliveryUpdate): Promise<void> {
    const t = this.#table;
    const row = t.find(id);
    if (row === undefined) return;
    t.set(row, F.delivery, DELIVERY_CODE[update.status]);
    t.set(row, F.deliveryAttempts, update.attempts);
    t.set(row, F.deliveryNextAt, update.nextAt ?? Number.NaN);
  }

  async close(): Promise<void> {}

  /** Jobs held now, finished ones included (for tests and metrics). */
  get size(): number {
    return this.#table.size;
  }

  /** The table, with the pending new jobs written into it. */
  get #table(): JobTable {
    if (this.#pendingJobs.length !== 0) this.#flush();
    return this.#rows;
  }

  /** Write the pending new jobs into the table, in the order they were created. */
  #flush(): void {
    const jobs = this.#pendingJobs;
    const texts = this.#pendingTexts;
    const times = this.#pendingTimes;
    const t = this.#rows;
    for (let i = 0; i < jobs.length; i++) t.insert(jobs[i], texts[i], times[i]);
    jobs.length = 0;
    texts.length = 0;
    times.length = 0;
    this.#pendingUnits = 0;
    this.#pendingLongest = 0;
  }

  #live(id: string | undefined, now: number): number | undefined {
    if (id === undefined) return undefined;
    const row = this.#table.find(id);
    return row !== undefined && !this.#table.expired(row, now) ? row : undefined;
  }

  #held(id: string, workerId: string): number | undefined {
    const t = this.#table;
    const row = t.find(id);
    return row !== undefined && t.get(row, F.status) === PROCESSING && t.leaseOwner(row) === workerId ? row : undefined;
  }

  #finish(row: number, status: number, retentionMs: number): void {
    const now = Date.now();
    const t = this.#table;
    t.deactivate(row);
    t.set(row, F.status, status);
    t.setLeaseOwner(row, null);
    t.set(row, F.leaseUntil, Number.NaN);
    t.set(row, F.cancelRequested, 0);
    t.set(row, F.finishedAt, now);
    t.set(row, F.expiresAt, now + retentionMs);
    if (t.hasCallback(row)) {
      t.set(row, F.delivery, PENDING);
      t.set(row, F.deliveryNextAt, now);
    }
    t.touch(row, now);
  }

  #purge(now: number): number {
    const t = this.#table;
    let removed = 0;
    for (let row = 0; row < t.end; row++) {
      if (t.get(row, F.status) === FREE || !t.expired(row, now)) continue;
      const key = t.idempotencyKey(row);
      if (key !== null) {
        const scope = keyScope(t.owner(row), key);
        if (this.#keys.get(scope) === t.id(row)) this.#keys.delete(scope);
      }
      t.free(row);
      removed += 1;
    }
    if (removed > 0) t.shrinkIfSparse();
    return removed;
  }
}

/** JSON text of a value; `undefined` (also for what JSON cannot hold, as the durable stores' NULL) when none. */
function toText(value: unknown): string | undefined {
  return value === undefined ? undefined : JSON.stringify(value);
}
