// MemoryStore: the default JobStore, for one process: jobs in Maps, bounded by count and by bytes.
import { QueueFullError } from '../core/errors.js';
import type {
  AdminListOptions,
  AdminOutcome,
  AttemptRecord,
  ClaimOptions,
  DeliveryAttempt,
  DeliveryUpdate,
  JobCount,
  JobHistory,
  JobStore,
  JobTimings,
  ListOptions,
  ThroughputBucket,
} from '../core/store.js';
import type { JobErrorInfo, JobRecord, JobStatus, NewJob } from '../core/types.js';
import { keyScope, newRecord } from './common.js';
import { adminPage, countJobs, listedAfter, throughput, timings } from './record-views.js';

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
 * A job as the store holds it. Its JSON values are kept as JSON text (`JSON.stringify`, so that a value reads back
 * as on the durable stores: a Map as `{}`) and parsed afresh for every caller. Its record is built when first used
 * (claimed, changed or read): until then the job is kept as what it was submitted with, since the other fields of a
 * new job are the same for every job, and fewer objects per job cost the garbage collector less.
 */
class Held {
  readonly id: string;
  readonly name: string;
  readonly owner: string | null;
  readonly idempotencyKey: string | null;
  readonly requestHash: string | null;
  readonly maxAttempts: number;
  readonly callbackUrl: string | null;
  readonly traceContext: string | null;
  readonly createdAt: number;
  input: string | undefined;
  result: string | undefined = undefined;
  error: string | undefined = undefined;
  /** The failed attempts recorded by `fail()`, as JSON texts (none: undefined). */
  attempts: string[] | undefined = undefined;
  /** The delivery attempts recorded by `recordDelivery()`, as JSON texts (none: undefined). */
  deliveries: string[] | undefined = undefined;
  /** What it counts against `maxBytes`. */
  bytes = 0;
  #record: JobRecord | undefined = undefined;

  constructor(job: NewJob, createdAt: number) {
    this.id = job.id;
    this.name = job.name;
    this.owner = job.owner;
    this.idempotencyKey = job.idempotencyKey;
    this.requestHash = job.requestHash;
    this.maxAttempts = job.maxAttempts;
    this.callbackUrl = job.callbackUrl;
    this.traceContext = job.traceContext ?? null;
    this.createdAt = createdAt;
    this.input = job.inputJson ?? JSON.stringify(job.input);
  }

  /** The record (its `input`, `result` and `error` left out: they are the texts above). */
  get record(): JobRecord {
    if (this.#record === undefined) {
      this.#record = newRecord(this, this.createdAt);
      this.#record.input = undefined;
    }
    return this.#record;
  }

  /** Whether the record was built: until then the job is queued, due at its creation, and unchanged. */
  get built(): boolean {
    return this.#record !== undefined;
  }

  /** As `record.status`, without building the record. */
  get status(): JobStatus {
    return this.#record?.status ?? 'queued';
  }

  /** As `record.runAt`, without building the record. */
  get runAt(): number {
    return this.#record?.runAt ?? this.createdAt;
  }

  /** Back to the record of a new job, as retried: queued, due now, its result and error gone, its history kept. */
  requeue(now: number): void {
    const { seq } = this.record;
    this.#record = undefined;
    this.result = undefined;
    this.error = undefined;
    Object.assign(this.record, { runAt: now, updatedAt: now, seq: seq + 1 });
  }
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
  /**
   * Owner → the owner's jobs (expired ones too, until purged). A list page sorts them: simple, and fast enough here.
   * Jobs without an owner are not indexed (most jobs, when the app sets no `owner`): only a listing of the
   * anonymous jobs reads them, and it walks every job.
   */
  readonly #owners = new Map<string, Set<Held>>();
  /** Job name → its queued jobs, in claim order (by `runAt`, then as they came). */
  readonly #queues = new Map<string, Held[]>();
  /** Processing jobs: a claim looks among them for lapsed leases, so that it never walks the finished ones. */
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

  async create(job: NewJob) {
    const now = Date.now();
    const scope = job.idempotencyKey === null ? null : keyScope(job.owner, job.idempotencyKey);
    const bound = scope === null ? undefined : this.#keys.get(scope);
    if (bound !== undefined && !expired(bound, now)) return { job: copy(bound), created: false };
    const held = new Held(job, now); // the input as text, so that the caller's value is neither held nor shared
    held.bytes = sizeOf(held);
    this.#makeRoom(held.bytes, now);
    this.#jobs.set(job.id, held);
    this.#bytes += held.bytes;
    if (job.owner !== null) this.#owners.set(job.owner, (this.#owners.get(job.owner) ?? new Set()).add(held));
    if (scope !== null) this.#keys.set(scope, held);
    this.#enqueue(held);
    // A record of its own for the caller, with the caller's input: nothing the store holds is shared.
    return { job: newRecord(job, now), created: true };
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const held = this.#jobs.get(id);
    return held && !expired(held, Date.now()) ? copy(held) : undefined;
  }

  async list({ owner, limit, before }: ListOptions): Promise<JobRecord[]> {
    const now = Date.now();
    const owned =
      owner === null
        ? [...this.#jobs.values()].filter((held) => held.owner === null)
        : [...(this.#owners.get(owner) ?? [])];
    const page = owned.filter((held) => !expired(held, now) && (before === undefined || listedAfter(held, before)));
    // Jobs were added about oldest first: this sort mostly reverses a run, which is cheap.
    page.sort((a, b) => (listedAfter(a, b) ? 1 : -1));
    return page.slice(0, Math.max(0, limit)).map(copy);
  }

  async countByOwner(owner: string, upTo: number): Promise<number> {
    const now = Date.now();
    return Math.min(upTo, [...(this.#owners.get(owner) ?? [])].filter((held) => !expired(held, now)).length);
  }

  async getByKey(owner: string, idempotencyKey: string): Promise<JobRecord | undefined> {
    const held = this.#keys.get(keyScope(owner, idempotencyKey));
    return held && !expired(held, Date.now()) ? copy(held) : undefined;
  }

  async claim({ names, workerId, limit, leaseMs }: ClaimOptions): Promise<JobRecord[]> {
    const now = Date.now();
    // The candidates: processing jobs whose lease lapsed, and the due jobs heading each name's queue.
    const due = [...this.#processing].filter((h) => h.record.leaseUntil! < now && names.includes(h.record.name));
    const queues = names.map((name) => this.#queues.get(name) ?? []);
    for (const queue of queues) {
      const end = queue.findIndex((held, i) => i >= limit || held.runAt > now);
      due.push(...queue.slice(0, end < 0 ? queue.length : end));
    }
    due.sort((a, b) => a.record.runAt - b.record.runAt); // stable: a queue's order is kept
    const claimed = due.slice(0, Math.max(0, limit)).map((held) => {
      const r = held.record;
      r.status = 'processing';
      r.attempt += 1;
      r.leaseOwner = workerId;
      r.leaseUntil = now + leaseMs;
      r.startedAt ??= now;
      touch(r, now);
      this.#processing.add(held);
      return copy(held);
    });
    // What was claimed heads its queue (the sort is stable): it leaves in one splice per queue.
    for (const queue of queues) {
      const left = queue.findIndex((held) => held.status === 'queued');
      queue.splice(0, left < 0 ? queue.length : left);
    }
    return claimed;
  }

  async renew(ids: readonly string[], workerId: string, leaseMs: number) {
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

  async complete(id: string, workerId: string, outcome: Parameters<JobStore['complete']>[2]) {
    return this.#end(id, workerId, outcome.retentionMs, (held) => {
      held.result = JSON.stringify(outcome.result);
      held.record.resultUrl = outcome.resultUrl;
      held.record.progress = 100;
      return 'complete';
    });
  }

  async fail(id: string, workerId: string, outcome: Parameters<JobStore['fail']>[2]) {
    return this.#end(id, workerId, outcome.retentionMs, (held) => {
      held.error = JSON.stringify(outcome.error);
      if (outcome.attempt) held.attempts = [...(held.attempts ?? []), JSON.stringify(outcome.attempt)];
      return outcome.retryAt ?? 'failed';
    });
  }

  async cancel(id: string, options: { retentionMs: number }): ReturnType<JobStore['cancel']> {
    const now = Date.now();
    const held = this.#jobs.get(id);
    if (held === undefined || expired(held, now)) return { outcome: 'missing' };
    const r = held.record;
    if (r.status === 'queued') {
      const queue = this.#queues.get(r.name) ?? []; // out of its queue, which holds queued jobs only
      queue.splice(queue.indexOf(held), 1);
      this.#settle(held, 'canceled', options.retentionMs);
      return { outcome: 'canceled', job: copy(held) };
    }
    if (r.status !== 'processing') return { outcome: 'finished', job: copy(held) };
    r.cancelRequested = true;
    touch(r, now);
    return { outcome: 'requested', job: copy(held) };
  }

  async markCanceled(id: string, workerId: string, options: { retentionMs: number }) {
    return this.#end(id, workerId, options.retentionMs, () => 'canceled');
  }

  async release(id: string, workerId: string): Promise<void> {
    const held = this.#held(id, workerId);
    if (held === undefined) return;
    held.record.attempt = Math.max(0, held.record.attempt - 1);
    this.#settle(held, held.record.runAt, 0);
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
    if (update.attempt) {
      held.deliveries = [...(held.deliveries ?? []), JSON.stringify(update.attempt)];
      this.#resize(held);
    }
    held.record.deliveryNextAt = update.nextAt;
    if (update.status === 'pending') this.#deliveries.add(held);
    else this.#deliveries.delete(held);
  }

  async adminList(options: AdminListOptions): Promise<JobRecord[]> {
    return adminPage(this.#live(this.#jobs.values()), options).map(copy);
  }

  async countJobs(): Promise<JobCount[]> {
    return countJobs(this.#live(this.#jobs.values()));
  }

  async throughput({ windowMs, bucketMs }: { windowMs: number; bucketMs: number }): Promise<ThroughputBucket[]> {
    return throughput(this.#records(this.#finished), windowMs, bucketMs);
  }

  async timings({ windowMs }: { windowMs: number }): Promise<JobTimings> {
    return timings(this.#records(this.#finished), windowMs);
  }

  async retry(id: string): Promise<AdminOutcome<'retried'>> {
    const now = Date.now();
    const held = this.#jobs.get(id);
    if (held === undefined || expired(held, now)) return { outcome: 'missing' };
    const r = held.record;
    if (r.status !== 'failed' && r.status !== 'canceled') return { outcome: 'refused', job: copy(held) };
    this.#finished.delete(held);
    this.#deliveries.delete(held);
    held.requeue(now);
    this.#resize(held);
    this.#enqueue(held);
    return { outcome: 'retried', job: copy(held) };
  }

  async remove(id: string): Promise<boolean> {
    const held = this.#jobs.get(id);
    if (held === undefined || expired(held, Date.now())) return false;
    if (held.status === 'queued') {
      const queue = this.#queues.get(held.name) ?? [];
      queue.splice(queue.indexOf(held), 1);
    }
    this.#processing.delete(held);
    this.#remove(held);
    return true;
  }

  async redeliver(id: string): Promise<AdminOutcome<'redelivering'>> {
    const now = Date.now();
    const held = this.#jobs.get(id);
    if (held === undefined || expired(held, now)) return { outcome: 'missing' };
    const r = held.record;
    if (r.callbackUrl === null || r.finishedAt === null) return { outcome: 'refused', job: copy(held) };
    r.deliveryStatus = 'pending';
    r.deliveryAttempts = 0;
    r.deliveryNextAt = now;
    this.#deliveries.add(held);
    return { outcome: 'redelivering', job: copy(held) };
  }

  async history(id: string): Promise<JobHistory> {
    const held = this.#jobs.get(id);
    if (held === undefined || expired(held, Date.now())) return { attempts: [], deliveries: [] };
    return {
      attempts: (held.attempts ?? []).map((text) => JSON.parse(text) as AttemptRecord),
      deliveries: (held.deliveries ?? []).map((text) => JSON.parse(text) as DeliveryAttempt),
    };
  }

  async close(): Promise<void> {}

  /** Jobs held now, finished ones included (for tests and metrics). */
  get size(): number {
    return this.#jobs.size;
  }

  /** The jobs of `jobs` that have not expired. */
  *#live<T extends Held>(jobs: Iterable<T>): Iterable<T> {
    const now = Date.now();
    for (const held of jobs) if (!expired(held, now)) yield held;
  }

  /** The records of the jobs of `jobs` that have not expired. */
  *#records(jobs: Iterable<Held>): Iterable<JobRecord> {
    for (const held of this.#live(jobs)) yield held.record;
  }

  #held(id: string, workerId: string): Held | undefined {
    const held = this.#jobs.get(id);
    return held?.record.status === 'processing' && held.record.leaseOwner === workerId ? held : undefined;
  }

  /**
   * The end of an attempt (complete, fail, markCanceled): `settle` records its outcome and says what next, an end
   * status or when the retry is due. The cancel rule: once a cancel was answered `requested`, the job ends `canceled`
   * whatever the handler returned (neither completed, retried nor failed), so `settle` is not called.
   */
  #end(id: string, workerId: string, retentionMs: number, settle: (held: Held) => JobStatus | number) {
    const held = this.#held(id, workerId);
    if (held === undefined) return undefined;
    const next = held.record.cancelRequested ? 'canceled' : settle(held);
    this.#settle(held, next, retentionMs);
    return copy(held);
  }

  /** Into its name's queue, by `runAt` then as it came. New jobs and retries go at or near the end: look from there. */
  #enqueue(held: Held): void {
    const queue = this.#queues.get(held.name) ?? [];
    this.#queues.set(held.name, queue);
    let at = queue.length;
    while (at > 0 && queue[at - 1].runAt > held.runAt) at--;
    if (at === queue.length) queue.push(held);
    else queue.splice(at, 0, held);
  }

  /**
   * A job leaves its worker (or its queue, for a cancel), as `next` says: back to its queue, due at that time (a
   * retry, a release), or finished with that status: then its retention starts, and its webhook is due if any.
   */
  #settle(held: Held, next: JobStatus | number, retentionMs: number): void {
    const r = held.record;
    r.status = typeof next === 'number' ? 'queued' : next;
    r.leaseOwner = null;
    r.leaseUntil = null;
    touch(r, Date.now());
    this.#processing.delete(held);
    this.#resize(held);
    if (typeof next === 'number') {
      r.runAt = next;
      this.#enqueue(held);
      return;
    }
    r.cancelRequested = false;
    r.finishedAt = r.updatedAt;
    r.expiresAt = r.updatedAt + retentionMs;
    if (r.callbackUrl !== null) {
      r.deliveryStatus = 'pending';
      r.deliveryNextAt = r.updatedAt;
      this.#deliveries.add(held);
    }
    this.#finished.add(held);
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

  /** Forget a finished job: its id, its key, its place among its owner's jobs, its bytes. */
  #remove(held: Held): void {
    const { id, owner, idempotencyKey } = held;
    this.#jobs.delete(id);
    this.#finished.delete(held);
    this.#deliveries.delete(held);
    this.#bytes -= held.bytes;
    const scope = idempotencyKey === null ? null : keyScope(owner, idempotencyKey);
    if (scope !== null && this.#keys.get(scope) === held) this.#keys.delete(scope);
    if (owner !== null) {
      const owned = this.#owners.get(owner);
      owned?.delete(held);
      if (owned?.size === 0) this.#owners.delete(owner);
    }
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

function expired(held: Held, now: number): boolean {
  return held.built && held.record.expiresAt !== null && held.record.expiresAt <= now;
}

function touch(record: JobRecord, now: number): void {
  record.updatedAt = now;
  record.seq += 1;
}

function sizeOf(held: Held): number {
  const { id, name, owner, idempotencyKey, requestHash, callbackUrl, input, result, error } = held;
  const texts = [id, name, owner, idempotencyKey, requestHash, callbackUrl, input, result, error];
  if (held.built) texts.push(held.record.message, held.record.resultUrl);
  texts.push(...(held.attempts ?? []), ...(held.deliveries ?? []));
  return texts.reduce((bytes, text) => bytes + (text?.length ?? 0), RECORD_BYTES);
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
