// MemoryStore: the default JobStore, for one process. Bounded, purges finished jobs after retention.
import { QueueFullError } from '../core/errors.js';
import type { CancelOutcome, ClaimOptions, CreateResult, DeliveryUpdate, JobStore, LeaseState } from '../core/store.js';
import type { JobErrorInfo, JobRecord, NewJob } from '../core/types.js';
import { isTerminal } from '../core/types.js';

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
  readonly #jobs = new Map<string, Stored>();
  /** Queued and processing jobs (what claim looks at): a claim does not walk the finished ones. */
  readonly #active = new Set<Stored>();
  readonly #keys = new Map<string, string>();
  readonly #maxJobs: number;

  constructor(options: MemoryStoreOptions = {}) {
    this.#maxJobs = options.maxJobs ?? 100_000;
  }

  async init(): Promise<void> {}

  async create(job: NewJob): Promise<CreateResult> {
    const now = Date.now();
    const scope = job.idempotencyKey === null ? null : keyScope(job.owner, job.idempotencyKey);
    if (scope !== null) {
      const existing = this.#live(this.#keys.get(scope), now);
      if (existing) return { job: snapshot(existing), created: false };
    }
    if (this.#jobs.size >= this.#maxJobs) {
      this.#purge(now);
      if (this.#jobs.size >= this.#maxJobs) throw new QueueFullError(this.kind, this.#maxJobs);
    }
    const record = storedRecord(job, now);
    this.#jobs.set(record.id, record);
    this.#active.add(record);
    if (scope !== null) this.#keys.set(scope, record.id);
    return { job: snapshot(record), created: true };
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const job = this.#live(id, Date.now());
    return job && snapshot(job);
  }

  async list(options: { owner: string | null; limit: number }): Promise<JobRecord[]> {
    const now = Date.now();
    const out: JobRecord[] = [];
    for (const job of this.#jobs.values()) {
      if (job.owner === options.owner && !expired(job, now)) out.push(snapshot(job));
    }
    out.sort((a, b) => b.createdAt - a.createdAt);
    return out.slice(0, options.limit);
  }

  async claim(options: ClaimOptions): Promise<JobRecord[]> {
    const now = Date.now();
    const candidates: Stored[] = [];
    for (const job of this.#active) {
      if (!options.names.includes(job.name)) continue;
      const claimable =
        (job.status === 'queued' && job.runAt <= now) ||
        (job.status === 'processing' && job.leaseUntil !== null && job.leaseUntil < now);
      if (claimable) candidates.push(job);
    }
    candidates.sort((a, b) => a.runAt - b.runAt);
    return candidates.slice(0, options.limit).map((job) => {
      job.status = 'processing';
      job.attempt += 1;
      job.leaseOwner = options.workerId;
      job.leaseUntil = now + options.leaseMs;
      job.startedAt ??= now;
      touch(job, now);
      return snapshot(job);
    });
  }

  async renew(ids: readonly string[], workerId: string, leaseMs: number): Promise<LeaseState[]> {
    const now = Date.now();
    return ids.map((id) => {
      const job = this.#held(id, workerId);
      if (!job) return { id, held: false, cancelRequested: false };
      job.leaseUntil = now + leaseMs;
      return { id, held: true, cancelRequested: job.cancelRequested };
    });
  }

  async progress(id: string, workerId: string, progress: number, message: string | null) {
    const job = this.#held(id, workerId);
    if (!job) return undefined;
    job.progress = progress;
    job.message = message;
    touch(job, Date.now());
    return snapshot(job);
  }

  async complete(
    id: string,
    workerId: string,
    outcome: { result: unknown; resultUrl: string | null; retentionMs: number },
  ) {
    const job = this.#held(id, workerId);
    if (!job) return undefined;
    job.result = toText(outcome.result);
    job.resultUrl = outcome.resultUrl;
    job.progress = 100;
    this.#finish(job, 'complete', outcome.retentionMs);
    return snapshot(job);
  }

  async fail(
    id: string,
    workerId: string,
    outcome: { error: JobErrorInfo; retryAt: number | null; retentionMs: number },
  ) {
    const job = this.#held(id, workerId);
    if (!job) return undefined;
    job.error = toText(outcome.error) ?? null;
    if (outcome.retryAt !== null) {
      job.status = 'queued';
      job.runAt = outcome.retryAt;
      job.leaseOwner = null;
      job.leaseUntil = null;
      touch(job, Date.now());
    } else {
      this.#finish(job, 'failed', outcome.retentionMs);
    }
    return snapshot(job);
  }

  async cancel(id: string, options: { retentionMs: number }): Promise<{ outcome: CancelOutcome; job?: JobRecord }> {
    const job = this.#live(id, Date.now());
    if (!job) return { outcome: 'missing' };
    if (isTerminal(job.status)) return { outcome: 'finished', job: snapshot(job) };
    if (job.status === 'queued') {
      this.#finish(job, 'canceled', options.retentionMs);
      return { outcome: 'canceled', job: snapshot(job) };
    }
    job.cancelRequested = true;
    touch(job, Date.now());
    return { outcome: 'requested', job: snapshot(job) };
  }

  async markCanceled(id: string, workerId: string, options: { retentionMs: number }) {
    const job = this.#held(id, workerId);
    if (!job) return undefined;
    this.#finish(job, 'canceled', options.retentionMs);
    return snapshot(job);
  }

  async release(id: string, workerId: string): Promise<void> {
    const job = this.#held(id, workerId);
    if (!job) return;
    job.status = 'queued';
    job.attempt = Math.max(0, job.attempt - 1);
    job.leaseOwner = null;
    job.leaseUntil = null;
    touch(job, Date.now());
  }

  async purgeExpired(): Promise<number> {
    return this.#purge(Date.now());
  }

  async claimDeliveries(options: { limit: number; leaseMs: number }): Promise<JobRecord[]> {
    const now = Date.now();
    const out: JobRecord[] = [];
    for (const job of this.#jobs.values()) {
      if (out.length >= options.limit) break;
      if (job.deliveryStatus === 'pending' && job.deliveryNextAt !== null && job.deliveryNextAt <= now) {
        job.deliveryNextAt = now + options.leaseMs;
        out.push(snapshot(job));
      }
    }
    return out;
  }

  async recordDelivery(id: string, update: DeliveryUpdate): Promise<void> {
    const job = this.#jobs.get(id);
    if (!job) return;
    job.deliveryStatus = update.status;
    job.deliveryAttempts = update.attempts;
    job.deliveryNextAt = update.nextAt;
  }

  async close(): Promise<void> {}

  /** Jobs held now, finished ones included (for tests and metrics). */
  get size(): number {
    return this.#jobs.size;
  }

  #live(id: string | undefined, now: number): Stored | undefined {
    if (id === undefined) return undefined;
    const job = this.#jobs.get(id);
    return job && !expired(job, now) ? job : undefined;
  }

  #held(id: string, workerId: string): Stored | undefined {
    const job = this.#jobs.get(id);
    return job && job.status === 'processing' && job.leaseOwner === workerId ? job : undefined;
  }

  #finish(job: Stored, status: 'complete' | 'failed' | 'canceled', retentionMs: number): void {
    const now = Date.now();
    this.#active.delete(job);
    job.status = status;
    job.leaseOwner = null;
    job.leaseUntil = null;
    job.cancelRequested = false;
    job.finishedAt = now;
    job.expiresAt = now + retentionMs;
    if (job.callbackUrl !== null) {
      job.deliveryStatus = 'pending';
      job.deliveryNextAt = now;
    }
    touch(job, now);
  }

  #purge(now: number): number {
    let removed = 0;
    for (const [id, job] of this.#jobs) {
      if (!expired(job, now)) continue;
      this.#jobs.delete(id);
      if (job.idempotencyKey !== null) {
        const scope = keyScope(job.owner, job.idempotencyKey);
        if (this.#keys.get(scope) === id) this.#keys.delete(scope);
      }
      removed += 1;
    }
    return removed;
  }
}

/**
 * A job as the store holds it: its JSON values (input, result, error) as JSON text, serialised once when
 * written, as the durable stores keep them. Nothing a caller or handler holds can reach the stored values.
 */
interface Stored extends Omit<JobRecord, 'input' | 'result' | 'error'> {
  input: string | undefined;
  result: string | undefined;
  error: string | null;
}

function storedRecord(job: NewJob, now: number): Stored {
  return { ...newRecord(job, now), input: toText(job.input), result: undefined, error: null };
}

/**
 * A copy of a stored record that shares nothing with it, so that neither the caller nor a handler changes the
 * stored job by changing what it was given (a handler mutating its input would otherwise change the input of
 * its retries): the JSON values are parsed afresh from their text.
 */
function snapshot(job: Stored): JobRecord {
  return {
    ...job,
    input: fromText(job.input),
    result: fromText(job.result),
    error: job.error === null ? null : (JSON.parse(job.error) as JobErrorInfo),
  };
}

/** JSON text of a value; `undefined` (also for what JSON cannot hold, as the durable stores' NULL) when none. */
function toText(value: unknown): string | undefined {
  return value === undefined ? undefined : JSON.stringify(value);
}

function fromText(text: string | undefined): unknown {
  return text === undefined ? undefined : JSON.parse(text);
}

function expired(job: Stored, now: number): boolean {
  return job.expiresAt !== null && job.expiresAt <= now;
}

function touch(job: Stored, now: number): void {
  job.updatedAt = now;
  job.seq += 1;
}

/** @internal The unique scope of an idempotency key: the key within its owner. */
export function keyScope(owner: string | null, key: string): string {
  return `${owner ?? ''}\u0000${key}`;
}
