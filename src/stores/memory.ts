// MemoryStore: the default JobStore, for one process. Bounded, purges finished jobs after retention.
import { QueueFullError } from '../core/errors.js';
import type { CancelOutcome, ClaimOptions, CreateResult, DeliveryUpdate, JobStore, LeaseState } from '../core/store.js';
import type { JobErrorInfo, JobRecord, NewJob } from '../core/types.js';
import {
  CANCELED,
  COMPLETE,
  DELIVERY_CODE,
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
  };
}

/**
 * An in-memory JobStore for one process. Jobs are lost when the process exits: use `SqliteStore` or
 * `PostgresStore` where that matters.
 * @example
 * const jobs = createJobs({ store: new MemoryStore({ maxJobs: 10_000 }) });
 */
export class MemoryStore implements JobStore {
  readonly kind = 'memory';
  /** The jobs, one row each (see memory-table.ts for why rows and not objects). */
  readonly #table: JobTable;
  /** Idempotency scope → row of the job bound to it. */
  readonly #keys = new Map<string, number>();
  readonly #maxJobs: number;

  constructor(options: MemoryStoreOptions = {}) {
    this.#maxJobs = options.maxJobs ?? 100_000;
    if (!(this.#maxJobs >= 1)) {
      throw new TypeError(`respond-async: MemoryStore \`maxJobs\` must be at least 1, got ${String(options.maxJobs)}`);
    }
    this.#table = new JobTable(Math.min(this.#maxJobs, 65_536));
  }

  async init(): Promise<void> {}

  async create(job: NewJob): Promise<CreateResult> {
    const now = Date.now();
    const t = this.#table;
    const scope = job.idempotencyKey === null ? null : keyScope(job.owner, job.idempotencyKey);
    if (scope !== null) {
      const existing = this.#keys.get(scope);
      if (existing !== undefined && !t.expired(existing, now)) return { job: t.record(existing), created: false };
    }
    if (t.size >= this.#maxJobs) {
      this.#purge(now);
      if (t.size >= this.#maxJobs) throw new QueueFullError(this.kind, this.#maxJobs);
    }
    const text = toText(job.input);
    const row = t.insert(job, text, now);
    if (scope !== null) this.#keys.set(scope, row);
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
      if (t.status[row] !== FREE && t.owner(row) === options.owner && !t.expired(row, now)) rows.push(row);
    }
    rows.sort((a, b) => t.createdAt[b] - t.createdAt[a]);
    return rows.slice(0, options.limit).map((row) => t.record(row));
  }

  async claim(options: ClaimOptions): Promise<JobRecord[]> {
    const now = Date.now();
    const t = this.#table;
    const candidates: number[] = [];
    // Only the queued and processing jobs: a claim does not walk the finished ones.
    for (let row = t.firstActive; row !== -1; row = t.nextActive(row)) {
      if (!options.names.includes(t.name(row))) continue;
      const status = t.status[row];
      const claimable =
        (status === QUEUED && t.runAt[row] <= now) || (status === PROCESSING && t.leaseUntil[row] < now);
      if (claimable) candidates.push(row);
    }
    candidates.sort((a, b) => t.runAt[a] - t.runAt[b]);
    return candidates.slice(0, options.limit).map((row) => {
      t.status[row] = PROCESSING;
      t.attempt[row] += 1;
      t.setLeaseOwner(row, options.workerId);
      t.leaseUntil[row] = now + options.leaseMs;
      if (Number.isNaN(t.startedAt[row])) t.startedAt[row] = now;
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
      t.leaseUntil[row] = now + leaseMs;
      return { id, held: true, cancelRequested: t.cancelRequested[row] === 1 };
    });
  }

  async progress(id: string, workerId: string, progress: number, message: string | null) {
    const row = this.#held(id, workerId);
    if (row === undefined) return undefined;
    const t = this.#table;
    t.progress[row] = progress;
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
    t.progress[row] = 100;
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
      t.status[row] = QUEUED;
      t.runAt[row] = outcome.retryAt;
      t.setLeaseOwner(row, null);
      t.leaseUntil[row] = Number.NaN;
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
    const status = t.status[row];
    if (status === QUEUED) {
      this.#finish(row, CANCELED, options.retentionMs);
      return { outcome: 'canceled', job: t.record(row) };
    }
    if (status !== PROCESSING) return { outcome: 'finished', job: t.record(row) };
    t.cancelRequested[row] = 1;
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
    t.status[row] = QUEUED;
    t.attempt[row] = Math.max(0, t.attempt[row] - 1);
    t.setLeaseOwner(row, null);
    t.leaseUntil[row] = Number.NaN;
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
      if (t.status[row] !== FREE && t.delivery[row] === PENDING && t.deliveryNextAt[row] <= now) {
        t.deliveryNextAt[row] = now + options.leaseMs;
        out.push(t.record(row));
      }
    }
    return out;
  }

  async recordDelivery(id: string, update: DeliveryUpdate): Promise<void> {
    const t = this.#table;
    const row = t.find(id);
    if (row === undefined) return;
    t.delivery[row] = DELIVERY_CODE[update.status];
    t.deliveryAttempts[row] = update.attempts;
    t.deliveryNextAt[row] = update.nextAt ?? Number.NaN;
  }

  async close(): Promise<void> {}

  /** Jobs held now, finished ones included (for tests and metrics). */
  get size(): number {
    return this.#table.size;
  }

  #live(id: string, now: number): number | undefined {
    const row = this.#table.find(id);
    return row !== undefined && !this.#table.expired(row, now) ? row : undefined;
  }

  #held(id: string, workerId: string): number | undefined {
    const t = this.#table;
    const row = t.find(id);
    return row !== undefined && t.status[row] === PROCESSING && t.leaseOwner(row) === workerId ? row : undefined;
  }

  #finish(row: number, status: number, retentionMs: number): void {
    const now = Date.now();
    const t = this.#table;
    t.deactivate(row);
    t.status[row] = status;
    t.setLeaseOwner(row, null);
    t.leaseUntil[row] = Number.NaN;
    t.cancelRequested[row] = 0;
    t.finishedAt[row] = now;
    t.expiresAt[row] = now + retentionMs;
    if (t.hasCallback(row)) {
      t.delivery[row] = PENDING;
      t.deliveryNextAt[row] = now;
    }
    t.touch(row, now);
  }

  #purge(now: number): number {
    const t = this.#table;
    let removed = 0;
    for (let row = 0; row < t.end; row++) {
      if (t.status[row] === FREE || !t.expired(row, now)) continue;
      const key = t.idempotencyKey(row);
      if (key !== null) {
        const scope = keyScope(t.owner(row), key);
        if (this.#keys.get(scope) === row) this.#keys.delete(scope);
      }
      t.free(row);
      removed += 1;
    }
    return removed;
  }
}

/** JSON text of a value; `undefined` (also for what JSON cannot hold, as the durable stores' NULL) when none. */
function toText(value: unknown): string | undefined {
  return value === undefined ? undefined : JSON.stringify(value);
}

/** @internal The unique scope of an idempotency key: the key within its owner. */
export function keyScope(owner: string | null, key: string): string {
  return `${owner ?? ''}\u0000${key}`;
}
