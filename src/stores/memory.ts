// MemoryStore: the default JobStore, for one process: jobs in Maps, bounded by count and by bytes.
import { QueueFullError } from '../core/errors.js';
import type {
  CancelOutcome,
  ClaimOptions,
  CreateResult,
  DeliveryUpdate,
  JobStore,
  LeaseState,
  ListOptions,
  ListPosition,
} from '../core/store.js';
import type { JobErrorInfo, JobRecord, JobStatus, NewJob } from '../core/types.js';
import { keyScope, newRecord } from './common.js';

/**
 * The bounds. A new job that would pass one first makes the store delete the jobs past their retention, then evict
 * finished jobs (complete, failed, canceled) that finished more than `evictAfterMs` ago, oldest finished first,
 * though their retention has not ended (their status URL then answers 404). Queued and processing jobs, jobs
 * finished more recently and jobs whose webhook is still to be delivered are never evicted. If the job still does not
 * fit, `create` throws QueueFullError (submit answers 503 with Retry-After).
 */
export interface MemoryStoreOptions {
  /** Most jobs held, finished ones included. Default 100 000. */
  maxJobs?: number;
  /**
   * Most bytes held, approximately: per job, the length of the JSON text of its input, result and error and of its
   * strings (id, name, owner, key, hash, URLs, message), and a fixed overhead. Default 256 MiB.
   */
  maxBytes?: number;
  /** How long a finished job is safe from eviction. Default 60 000 ms. */
  evictAfterMs?: number;
}

/** What a job counts against `maxBytes` besides its texts: about what its record and index entries take. */
const RECORD_BYTES = 600;

/**
 * A job as the store holds it: its record, but for its JSON values, kept as JSON text (`JSON.stringify`, so that a
 * value reads back as on the durable stores: a Map as `{}`) and parsed afresh for every caller.
 */
interface Held {
  readonly record: JobRecord;
  input: string | undefined;
  result: string | undefined;
  error: string | undefined;
  /** What it counts against `maxBytes`. */
  bytes: number;
  /**
   * The owner's jobs are a list in `JobStore.list` order (newest first, then by id), linked through these: unlinking
   * a job is O(1), and a page after a listed job starts from that job.
   */
  older: Held | undefined;
  newer: Held | undefined;
}

/**
 * An in-memory JobStore for one process. Jobs are lost when the process exits: use `SqliteStore` or
 * `PostgresStore` where that matters.
 * @example const jobs = createJobs({ store: new MemoryStore({ maxJobs: 10_000, maxBytes: 64 * 1024 * 1024 }) });
 */
export class MemoryStore implements JobStore {
  readonly kind = 'memory';
  readonly #maxJobs: number;
  readonly #maxBytes: number;
  readonly #evictAfterMs: number;
  /** Every job by id. */
  readonly #jobs = new Map<string, Held>();
  /** Idempotency scope (owner and key) → the job bound to it. */
  readonly #keys = new Map<string, Held>();
  /** Owner → the owner's newest job, head of its list (`Held.older`). */
  readonly #newest = new Map<string | null, Held>();
  /** Owner → how many jobs of the owner are held (expired ones too, until purged). */
  readonly #owned = new Map<string | null, number>();
  /** Job name → its queued jobs in claim order; a job canceled while queued stays until it reaches the front. */
  readonly #queues = new Map<string, Held[]>();
  /** Processing jobs: a claim looks among them for lapsed leases. */
  readonly #processing = new Set<Held>();
  /** Finished jobs, in the order they finished: eviction takes them from the front. */
  readonly #finished = new Set<Held>();
  /** Finished jobs whose webhook delivery is pending. */
  readonly #deliveries = new Set<Held>();
  #bytes = 0;

  constructor(options: MemoryStoreOptions = {}) {
    this.#maxJobs = atLeast('maxJobs', options.maxJobs ?? 100_000, 1);
    this.#maxBytes = atLeast('maxBytes', options.maxBytes ?? 256 * 1024 * 1024, 1);
    this.#evictAfterMs = atLeast('evictAfterMs', options.evictAfterMs ?? 60_000, 0);
  }

  async init(): Promise<void> {}

  async create(job: NewJob): Promise<CreateResult> {
    const now = Date.now();
    const scope = job.idempotencyKey === null ? null : keyScope(job.owner, job.idempotencyKey);
    const bound = scope === null ? undefined : this.#keys.get(scope);
    if (bound !== undefined && !expired(bound, now)) return { job: copy(bound), created: false };
    const record = newRecord(job, now);
    record.input = undefined; // kept as text, so that the caller's value is neither held nor shared
    const held: Held = {
      record,
      input: job.inputJson ?? JSON.stringify(job.input),
      result: undefined,
      error: undefined,
      bytes: 0,
      older: undefined,
      newer: undefined,
    };
    held.bytes = sizeOf(held);
    this.#makeRoom(held.bytes, now);
    this.#jobs.set(job.id, held);
    this.#bytes += held.bytes;
    this.#link(held); // after #makeRoom, which may have evicted the newest
    if (scope !== null) this.#keys.set(scope, held);
    this.#enqueue(held);
    return { job: copy(held), created: true };
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const held = this.#jobs.get(id);
    return held && !expired(held, Date.now()) ? copy(held) : undefined;
  }

  async list(options: ListOptions): Promise<JobRecord[]> {
    const now = Date.now();
    const out: JobRecord[] = [];
    for (let held = this.#first(options); held && out.length < options.limit; held = held.older) {
      if (!expired(held, now)) out.push(copy(held));
    }
    return out;
  }

  async countByOwner(owner: string, upTo: number): Promise<number> {
    const held = this.#owned.get(owner) ?? 0;
    if (held < upTo) return held;
    // As many held as the quota, or more: some may be expired and not yet purged. Count the live ones, up to `upTo`.
    const now = Date.now();
    let live = 0;
    for (let held = this.#newest.get(owner); held && live < upTo; held = held.older) {
      if (!expired(held, now)) live += 1;
    }
    return live;
  }

  async getByKey(owner: string, idempotencyKey: string): Promise<JobRecord | undefined> {
    const held = this.#keys.get(keyScope(owner, idempotencyKey));
    return held && !expired(held, Date.now()) ? copy(held) : undefined;
  }

  async claim(options: ClaimOptions): Promise<JobRecord[]> {
    const now = Date.now();
    const { names, limit } = options;
    // The candidates: processing jobs whose lease lapsed, and the first `limit` due jobs of each name's queue.
    const due = [...this.#processing].filter((h) => h.record.leaseUntil! < now && names.includes(h.record.name));
    for (const name of names) {
      let taken = 0;
      for (const held of this.#queues.get(name) ?? []) {
        if (taken >= limit || held.record.runAt > now) break;
        if (held.record.status !== 'queued') continue;
        due.push(held);
        taken += 1;
      }
    }
    due.sort((a, b) => a.record.runAt - b.record.runAt); // stable: a queue's order is kept
    const claimed = due.slice(0, Math.max(0, limit)).map((held) => {
      const r = held.record;
      r.status = 'processing';
      r.attempt += 1;
      r.leaseOwner = options.workerId;
      r.leaseUntil = now + options.leaseMs;
      r.startedAt ??= now;
      touch(r, now);
      this.#processing.add(held);
      return copy(held);
    });
    // What was claimed is at the front of its queue, with any job canceled while queued: they leave it.
    for (const queue of names.map((name) => this.#queues.get(name) ?? [])) {
      let n = 0;
      while (n < queue.length && queue[n].record.status !== 'queued') n++;
      queue.splice(0, n);
    }
    return claimed;
  }

  async renew(ids: readonly string[], workerId: string, leaseMs: number): Promise<LeaseState[]> {
    const leaseUntil = Date.now() + leaseMs;
    return ids.map((id) => {
      const held = this.#held(id, workerId);
      if (held === undefined) return { id, held: false, cancelRequested: false };
      held.record.leaseUntil = leaseUntil;
      return { id, held: true, cancelRequested: held.record.cancelRequested };
    });
  }

  async progress(id: string, workerId: string, progress: number, message: string | null) {
    const held = this.#held(id, workerId);
    if (held === undefined) return undefined;
    held.record.progress = progress;
    held.record.message = message;
    touch(held.record, Date.now());
    this.#resize(held);
    return copy(held);
  }

  /** Once a cancel was answered `requested`, the job ends `canceled`, whatever its handler returned. */
  async complete(
    id: string,
    workerId: string,
    outcome: { result: unknown; resultUrl: string | null; retentionMs: number },
  ) {
    const held = this.#held(id, workerId);
    if (held === undefined) return undefined;
    if (!held.record.cancelRequested) {
      held.result = JSON.stringify(outcome.result);
      held.record.resultUrl = outcome.resultUrl;
      held.record.progress = 100;
    }
    this.#finish(held, held.record.cancelRequested ? 'canceled' : 'complete', outcome.retentionMs);
    return copy(held);
  }

  /** As `complete`: after a cancel answered `requested`, the job ends `canceled`, neither retried nor `failed`. */
  async fail(
    id: string,
    workerId: string,
    outcome: { error: JobErrorInfo; retryAt: number | null; retentionMs: number },
  ) {
    const held = this.#held(id, workerId);
    if (held === undefined) return undefined;
    if (held.record.cancelRequested) this.#finish(held, 'canceled', outcome.retentionMs);
    else {
      held.error = JSON.stringify(outcome.error);
      if (outcome.retryAt === null) this.#finish(held, 'failed', outcome.retentionMs);
      else this.#requeue(held, outcome.retryAt);
    }
    return copy(held);
  }

  async cancel(id: string, options: { retentionMs: number }): Promise<{ outcome: CancelOutcome; job?: JobRecord }> {
    const now = Date.now();
    const held = this.#jobs.get(id);
    if (held === undefined || expired(held, now)) return { outcome: 'missing' };
    const r = held.record;
    if (r.status === 'queued') {
      this.#finish(held, 'canceled', options.retentionMs);
      return { outcome: 'canceled', job: copy(held) };
    }
    if (r.status !== 'processing') return { outcome: 'finished', job: copy(held) };
    r.cancelRequested = true;
    touch(r, now);
    return { outcome: 'requested', job: copy(held) };
  }

  async markCanceled(id: string, workerId: string, options: { retentionMs: number }) {
    const held = this.#held(id, workerId);
    if (held === undefined) return undefined;
    this.#finish(held, 'canceled', options.retentionMs);
    return copy(held);
  }

  async release(id: string, workerId: string): Promise<void> {
    const held = this.#held(id, workerId);
    if (held === undefined) return;
    held.record.attempt = Math.max(0, held.record.attempt - 1);
    this.#requeue(held, held.record.runAt);
  }

  async purgeExpired(): Promise<number> {
    return this.#purge(Date.now());
  }

  async claimDeliveries(options: { limit: number; leaseMs: number }): Promise<JobRecord[]> {
    const now = Date.now();
    const due = [...this.#deliveries].filter((held) => (held.record.deliveryNextAt ?? 0) <= now);
    due.sort((a, b) => (a.record.deliveryNextAt ?? 0) - (b.record.deliveryNextAt ?? 0));
    return due.slice(0, Math.max(0, options.limit)).map((held) => {
      held.record.deliveryNextAt = now + options.leaseMs;
      return copy(held);
    });
  }

  async recordDelivery(id: string, update: DeliveryUpdate): Promise<void> {
    const held = this.#jobs.get(id);
    if (held === undefined) return;
    held.record.deliveryStatus = update.status;
    held.record.deliveryAttempts = update.attempts;
    held.record.deliveryNextAt = update.nextAt;
    if (update.status === 'pending') this.#deliveries.add(held);
    else this.#deliveries.delete(held);
  }

  async close(): Promise<void> {}

  /** Jobs held now, finished ones included (for tests and metrics). */
  get size(): number {
    return this.#jobs.size;
  }

  /** Into its owner's list, in list order: a new job is nearly always first (ties in `createdAt` go by id). */
  #link(held: Held): void {
    const owner = held.record.owner;
    this.#owned.set(owner, (this.#owned.get(owner) ?? 0) + 1);
    const head = this.#newest.get(owner);
    if (head === undefined || !listedAfter(held.record, head.record)) {
      held.older = head;
      if (head !== undefined) head.newer = held;
      this.#newest.set(owner, held);
      return;
    }
    let newer = head;
    while (newer.older !== undefined && listedAfter(held.record, newer.older.record)) newer = newer.older;
    held.older = newer.older;
    held.newer = newer;
    if (newer.older !== undefined) newer.older.newer = held;
    newer.older = held;
  }

  /** The first job of a page: the owner's newest, or the one listed after `before`. */
  #first(options: ListOptions): Held | undefined {
    const { owner, before } = options;
    if (before === undefined) return this.#newest.get(owner);
    const at = this.#jobs.get(before.id);
    if (at !== undefined && at.record.owner === owner && at.record.createdAt === before.createdAt) return at.older;
    // That job is gone (purged, evicted) or never was: walk from the newest to the first job listed after it.
    let held = this.#newest.get(owner);
    while (held !== undefined && !listedAfter(held.record, before)) held = held.older;
    return held;
  }

  #held(id: string, workerId: string): Held | undefined {
    const held = this.#jobs.get(id);
    return held?.record.status === 'processing' && held.record.leaseOwner === workerId ? held : undefined;
  }

  /** Into its name's queue, by `runAt` then as it came. New jobs and retries go at or near the end: look from there. */
  #enqueue(held: Held): void {
    const queue = this.#queues.get(held.record.name) ?? [];
    this.#queues.set(held.record.name, queue);
    let at = queue.length;
    while (at > 0 && queue[at - 1].record.runAt > held.record.runAt) at--;
    queue.splice(at, 0, held);
  }

  /** A processing job goes back to the queue (retry or release), due at `runAt`. */
  #requeue(held: Held, runAt: number): void {
    held.record.runAt = runAt;
    this.#unlease(held, 'queued');
    this.#enqueue(held);
  }

  /** It ends: its retention starts, and its webhook is due when it has one. */
  #finish(held: Held, status: JobStatus, retentionMs: number): void {
    const r = held.record;
    r.cancelRequested = false;
    this.#unlease(held, status);
    r.finishedAt = r.updatedAt;
    r.expiresAt = r.updatedAt + retentionMs;
    if (r.callbackUrl !== null) {
      r.deliveryStatus = 'pending';
      r.deliveryNextAt = r.updatedAt;
      this.#deliveries.add(held);
    }
    this.#finished.add(held);
  }

  /** A job leaves the worker (or the queue, for a cancel) as `status`. */
  #unlease(held: Held, status: JobStatus): void {
    const r = held.record;
    r.status = status;
    r.leaseOwner = null;
    r.leaseUntil = null;
    touch(r, Date.now());
    this.#processing.delete(held);
    this.#resize(held);
  }

  #resize(held: Held): void {
    const bytes = sizeOf(held);
    this.#bytes += bytes - held.bytes;
    held.bytes = bytes;
  }

  /** Purge, then evict finished jobs past the grace, oldest finished first, until a job of `bytes` fits; or throw. */
  #makeRoom(bytes: number, now: number): void {
    const fits = () => this.#jobs.size < this.#maxJobs && this.#bytes + bytes <= this.#maxBytes;
    if (fits()) return;
    this.#purge(now);
    for (const held of this.#finished) {
      if (fits() || (held.record.finishedAt ?? now) > now - this.#evictAfterMs) break;
      if (held.record.deliveryStatus !== 'pending') this.#remove(held);
    }
    if (this.#jobs.size >= this.#maxJobs) throw new QueueFullError(this.kind, this.#maxJobs);
    if (!fits()) throw new QueueFullError(this.kind, this.#maxBytes, 'bytes');
  }

  #purge(now: number): number {
    const before = this.#jobs.size;
    for (const held of this.#finished) if (expired(held, now)) this.#remove(held);
    return before - this.#jobs.size;
  }

  /** Forget a finished job: its id, its key, its place in its owner's list, its bytes. */
  #remove(held: Held): void {
    const r = held.record;
    this.#jobs.delete(r.id);
    this.#finished.delete(held);
    this.#deliveries.delete(held);
    this.#bytes -= held.bytes;
    const scope = r.idempotencyKey === null ? null : keyScope(r.owner, r.idempotencyKey);
    if (scope !== null && this.#keys.get(scope) === held) this.#keys.delete(scope);
    if (held.older !== undefined) held.older.newer = held.newer;
    if (held.newer !== undefined) held.newer.older = held.older;
    else if (held.older !== undefined) this.#newest.set(r.owner, held.older);
    else this.#newest.delete(r.owner);
    const owned = (this.#owned.get(r.owner) ?? 1) - 1;
    if (owned > 0) this.#owned.set(r.owner, owned);
    else this.#owned.delete(r.owner);
  }
}

/** A record that shares nothing with the store: changing it, its input or its result changes nothing held. */
function copy(held: Held): JobRecord {
  return {
    ...held.record,
    input: parse(held.input),
    result: parse(held.result),
    error: (parse(held.error) as JobErrorInfo | undefined) ?? null,
  };
}

/** Whether `a` comes after (is older than) `b` in `JobStore.list` order: `createdAt` descending, then id descending. */
function listedAfter(a: ListPosition, b: ListPosition): boolean {
  return a.createdAt < b.createdAt || (a.createdAt === b.createdAt && a.id < b.id);
}

function expired(held: Held, now: number): boolean {
  return held.record.expiresAt !== null && held.record.expiresAt <= now;
}

function touch(record: JobRecord, now: number): void {
  record.updatedAt = now;
  record.seq += 1;
}

function sizeOf(held: Held): number {
  const r = held.record;
  let bytes = RECORD_BYTES + (held.input?.length ?? 0) + (held.result?.length ?? 0) + (held.error?.length ?? 0);
  for (const text of [r.id, r.name, r.owner, r.idempotencyKey, r.requestHash, r.callbackUrl, r.message, r.resultUrl]) {
    bytes += text?.length ?? 0;
  }
  return bytes;
}

function parse(text: string | undefined) {
  return text === undefined ? undefined : JSON.parse(text);
}

function atLeast(name: string, value: number, min: number): number {
  if (!(value >= min)) {
    throw new TypeError(`respond-async: MemoryStore \`${name}\` must be at least ${min}, got ${String(value)}`);
  }
  return value;
}
