// MemoryStore: the default JobStore, for one process: jobs in Maps, bounded by count and by bytes.
import { QueueFullError } from '../core/errors.js';
import type * as Store from '../core/store.js';
import type { JobRecord, JobStatus, NewJob } from '../core/types.js';
import { keyScope, newRecord, percentiles } from './common.js';

/**
 * The bounds. A new job that would pass one first makes the store delete the jobs past their retention, then evict
 * jobs finished more than `evictAfterMs` ago, oldest first (their status URL then answers 404); never a queued or
 * processing job, nor one whose webhook is pending. If it still does not fit, `create` throws QueueFullError.
 */
export interface MemoryStoreOptions {
  /** Most jobs held, finished ones included. Default 100 000. */
  maxJobs?: number;
  /** Most bytes held, approximately (per job, the length of its JSON values and strings, and 600). Default 256 MiB. */
  maxBytes?: number;
  /** How long a finished job is safe from eviction. Default 60 000 ms. */
  evictAfterMs?: number;
}

/** A job, its JSON values as text (`JSON.stringify`, as the durable stores keep them) parsed afresh for each caller. */
interface Held extends Store.ListPosition {
  readonly job: NewJob; // as submitted, but for its input: kept as text only (`inputJson`)
  record?: JobRecord; // built when first used (claimed, changed or read): a backlog of queued jobs is lighter without
  result?: string;
  error?: string;
  attempts?: string[]; // the failed attempts recorded by `fail()`
  deliveries?: string[]; // the webhook deliveries recorded by `recordDelivery()`
  bytes: number; // what it counts against `maxBytes`
}

/**
 * An in-memory JobStore for one process: its jobs are lost when it exits (`SqliteStore` and `PostgresStore` keep them).
 * @example const jobs = createJobs({ store: new MemoryStore({ maxJobs: 10_000, maxBytes: 64 * 1024 * 1024 }) });
 */
export class MemoryStore implements Store.JobStore {
  readonly kind = 'memory';
  readonly #maxJobs: number;
  readonly #maxBytes: number;
  readonly #evictAfterMs: number;
  readonly #jobs = new Map<string, Held>();
  readonly #keys = new Map<string, Held>(); // idempotency scope (owner and key) → the job bound to it
  readonly #owners = new Map<string, Set<Held>>(); // not jobs without an owner: a listing of those walks every job
  readonly #queues = new Map<string, Held[]>(); // job name → its queued jobs, by `runAt`, then as they came
  readonly #processing = new Set<Held>(); // where a claim looks for lapsed leases
  readonly #finished = new Set<Held>(); // in the order they finished, the order of eviction
  readonly #deliveries = new Set<Held>(); // finished jobs whose webhook is pending
  #bytes = 0;

  constructor(options: MemoryStoreOptions = {}) {
    this.#maxJobs = atLeast('maxJobs', options.maxJobs ?? 100_000, 1);
    this.#maxBytes = atLeast('maxBytes', options.maxBytes ?? 256 * 1024 * 1024, 1);
    this.#evictAfterMs = atLeast('evictAfterMs', options.evictAfterMs ?? 60_000, 0);
  }

  async init() {}

  async create(job: NewJob) {
    const now = Date.now();
    const scope = job.idempotencyKey === null ? null : keyScope(job.owner, job.idempotencyKey);
    const bound = scope === null ? undefined : live(this.#keys.get(scope), now);
    if (bound !== undefined) return { job: copy(bound), created: false };
    const submitted = { ...job, input: undefined, inputJson: job.inputJson ?? JSON.stringify(job.input) };
    const held: Held = { id: job.id, createdAt: now, job: submitted, bytes: 0 };
    held.bytes = sizeOf(held);
    this.#makeRoom(held.bytes, now);
    this.#bytes += held.bytes;
    this.#jobs.set(job.id, held);
    if (job.owner !== null) this.#owners.set(job.owner, (this.#owners.get(job.owner) ?? new Set()).add(held));
    if (scope !== null) this.#keys.set(scope, held);
    this.#enqueue(held);
    return { job: newRecord(job, now), created: true }; // the caller's own record, with the caller's input
  }

  async get(id: string) {
    const held = live(this.#jobs.get(id));
    return held && copy(held);
  }

  async list({ owner, limit, before }: Store.ListOptions) {
    if (owner !== null) return page(this.#owners.get(owner) ?? [], limit, before);
    return page(this.#jobs.values(), limit, before, (held) => held.job.owner === null);
  }

  async countByOwner(owner: string, upTo: number) {
    return Math.min(upTo, [...(this.#owners.get(owner) ?? [])].filter((held) => live(held)).length);
  }

  async getByKey(owner: string, idempotencyKey: string) {
    const held = live(this.#keys.get(keyScope(owner, idempotencyKey)));
    return held && copy(held);
  }

  async claim({ names, workerId, limit, leaseMs }: Store.ClaimOptions) {
    const now = Date.now();
    const queues = names.map((name) => this.#queues.get(name) ?? []);
    const lapsed = [...this.#processing].filter((h) => record(h).leaseUntil! < now && names.includes(h.job.name));
    const queued = queues.flatMap((queue) => queue.slice(0, limit).filter((held) => runAtOf(held) <= now));
    const claimed = [...lapsed, ...queued].sort((a, b) => runAtOf(a) - runAtOf(b)).slice(0, Math.max(0, limit));
    for (const held of claimed) {
      const r = record(held);
      update(r, { status: 'processing', attempt: r.attempt + 1, leaseOwner: workerId, leaseUntil: now + leaseMs }, now);
      r.startedAt ??= now;
      this.#processing.add(held);
    }
    // What was claimed heads its queue (the sort is stable): one splice per queue, since a splice moves the rest.
    for (const queue of queues) {
      const left = queue.findIndex((held) => statusOf(held) === 'queued');
      queue.splice(0, left < 0 ? queue.length : left);
    }
    return claimed.map(copy);
  }

  async renew(ids: readonly string[], workerId: string, leaseMs: number) {
    return ids.map((id) => {
      const r = this.#leased(id, workerId)?.record;
      if (r) r.leaseUntil = Date.now() + leaseMs;
      return { id, held: r !== undefined, cancelRequested: r?.cancelRequested ?? false };
    });
  }

  async progress(id: string, workerId: string, progress: number, message: string | null) {
    const held = this.#leased(id, workerId);
    if (held === undefined) return undefined;
    update(record(held), { progress, message }, Date.now());
    this.#changed(held);
    return copy(held);
  }

  async complete(id: string, workerId: string, outcome: Parameters<Store.JobStore['complete']>[2]) {
    return this.#end(id, workerId, outcome.retentionMs, (held) => {
      held.result = JSON.stringify(outcome.result);
      update(record(held), { resultUrl: outcome.resultUrl, progress: 100 });
      return 'complete';
    });
  }

  async fail(id: string, workerId: string, outcome: Parameters<Store.JobStore['fail']>[2]) {
    return this.#end(id, workerId, outcome.retentionMs, (held) => {
      held.error = JSON.stringify(outcome.error);
      if (outcome.attempt) held.attempts = [...(held.attempts ?? []), JSON.stringify(outcome.attempt)];
      return outcome.retryAt ?? 'failed';
    });
  }

  async cancel(id: string, options: { retentionMs: number }): ReturnType<Store.JobStore['cancel']> {
    const held = live(this.#jobs.get(id));
    if (held === undefined) return { outcome: 'missing' };
    const status = statusOf(held);
    const outcome = status === 'queued' ? 'canceled' : status === 'processing' ? 'requested' : 'finished';
    if (outcome === 'canceled') this.#settle(held, 'canceled', options.retentionMs);
    if (outcome === 'requested') update(record(held), { cancelRequested: true }, Date.now());
    return { outcome, job: copy(held) };
  }

  async markCanceled(id: string, workerId: string, options: { retentionMs: number }) {
    return this.#end(id, workerId, options.retentionMs, () => 'canceled');
  }

  async release(id: string, workerId: string) {
    const held = this.#leased(id, workerId); // back to the queue where it was, without counting the attempt
    if (held) this.#settle(held, update(record(held), { attempt: Math.max(0, record(held).attempt - 1) }).runAt, 0);
  }

  async purgeExpired() {
    return this.#purge(Date.now());
  }

  async claimDeliveries({ limit, leaseMs }: { limit: number; leaseMs: number }) {
    const now = Date.now();
    const next = (held: Held) => record(held).deliveryNextAt!;
    const due = [...this.#deliveries].filter((held) => next(held) <= now);
    const claimed = due.sort((a, b) => next(a) - next(b)).slice(0, Math.max(0, limit));
    for (const held of claimed) update(record(held), { deliveryNextAt: now + leaseMs });
    return claimed.map(copy);
  }

  async recordDelivery(id: string, { status, attempts, nextAt, attempt }: Store.DeliveryUpdate) {
    const held = this.#jobs.get(id);
    if (held === undefined) return;
    update(record(held), { deliveryStatus: status, deliveryAttempts: attempts, deliveryNextAt: nextAt });
    if (attempt) held.deliveries = [...(held.deliveries ?? []), JSON.stringify(attempt)];
    this.#changed(held);
  }

  async adminList({ statuses, name, owner, from, to, limit, before }: Store.AdminListOptions) {
    return page(this.#jobs.values(), limit, before, (held) => {
      const { job, createdAt } = held;
      if (statuses !== undefined && !statuses.includes(statusOf(held))) return false;
      if ((name !== undefined && job.name !== name) || (owner !== undefined && job.owner !== owner)) return false;
      return (from === undefined || createdAt >= from) && (to === undefined || createdAt < to);
    });
  }

  async countJobs() {
    const counts = new Map<string, Store.JobCount>();
    for (const held of this.#jobs.values()) {
      const { name } = held.job;
      const key = `${statusOf(held)}\u0000${name}`;
      if (live(held)) counts.set(key, { name, status: statusOf(held), count: (counts.get(key)?.count ?? 0) + 1 });
    }
    return [...counts.values()];
  }

  async throughput({ windowMs, bucketMs }: { windowMs: number; bucketMs: number }) {
    const buckets = new Map<string, Store.ThroughputBucket>();
    for (const { name, status, finishedAt } of ended(this.#finished, windowMs)) {
      const at = Math.floor(finishedAt! / bucketMs) * bucketMs;
      const bucket = buckets.get(`${at}\u0000${name}`) ?? { name, at, complete: 0, failed: 0, canceled: 0 };
      bucket[status as 'complete' | 'failed' | 'canceled'] += 1;
      buckets.set(`${at}\u0000${name}`, bucket);
    }
    return [...buckets.values()];
  }

  async timings({ windowMs }: { windowMs: number }) {
    const started = ended(this.#finished, windowMs).filter((r) => r.startedAt !== null);
    const waitMs = percentiles(started.map((r) => r.startedAt! - r.createdAt));
    return { waitMs, runMs: percentiles(started.map((r) => r.finishedAt! - r.startedAt!)) };
  }

  async retry(id: string): Promise<Store.AdminOutcome<'retried'>> {
    const held = live(this.#jobs.get(id));
    if (held === undefined) return { outcome: 'missing' };
    const { status, seq } = record(held);
    if (status !== 'failed' && status !== 'canceled') return { outcome: 'refused', job: copy(held) };
    this.#finished.delete(held);
    // A new job again, due now, its result and error gone; its seq goes on and its history stays.
    const now = Date.now();
    Object.assign(held, { record: newRecord(held.job, held.createdAt), result: undefined, error: undefined });
    update(record(held), { runAt: now, updatedAt: now, seq: seq + 1 });
    this.#enqueue(held);
    this.#changed(held);
    return { outcome: 'retried', job: copy(held) };
  }

  async remove(id: string) {
    const held = live(this.#jobs.get(id));
    if (held !== undefined) this.#remove(held);
    return held !== undefined;
  }

  async redeliver(id: string): Promise<Store.AdminOutcome<'redelivering'>> {
    const held = live(this.#jobs.get(id));
    if (held === undefined) return { outcome: 'missing' };
    const r = record(held);
    if (r.callbackUrl === null || r.finishedAt === null) return { outcome: 'refused', job: copy(held) };
    update(r, { deliveryStatus: 'pending', deliveryAttempts: 0, deliveryNextAt: Date.now() });
    this.#changed(held);
    return { outcome: 'redelivering', job: copy(held) };
  }

  async history(id: string) {
    const { attempts = [], deliveries = [] } = live(this.#jobs.get(id)) ?? {};
    return { attempts: attempts.map((t) => JSON.parse(t)), deliveries: deliveries.map((t) => JSON.parse(t)) };
  }

  async close() {}

  /** Jobs held now, finished ones included (for tests and metrics). */
  get size(): number {
    return this.#jobs.size;
  }

  #leased(id: string, workerId: string): Held | undefined {
    const held = this.#jobs.get(id);
    return held?.record?.status === 'processing' && held.record.leaseOwner === workerId ? held : undefined;
  }

  /** The end of an attempt, as `settle` says (an end status or a retry time); `canceled` once a cancel was requested. */
  #end(id: string, workerId: string, retentionMs: number, settle: (held: Held) => JobStatus | number) {
    const held = this.#leased(id, workerId);
    if (held === undefined) return undefined;
    this.#settle(held, record(held).cancelRequested ? 'canceled' : settle(held), retentionMs);
    return copy(held);
  }

  /** A job leaves its worker or its queue: back to its queue, due at `next`, or finished with status `next`. */
  #settle(held: Held, next: JobStatus | number, retentionMs: number): void {
    if (statusOf(held) === 'queued') this.#dequeue(held);
    const now = Date.now();
    const r = update(record(held), { leaseOwner: null, leaseUntil: null }, now);
    this.#processing.delete(held);
    if (typeof next === 'number') {
      update(r, { status: 'queued', runAt: next });
      this.#enqueue(held);
    } else {
      update(r, { status: next, cancelRequested: false, finishedAt: now, expiresAt: now + retentionMs });
      if (r.callbackUrl !== null) update(r, { deliveryStatus: 'pending', deliveryNextAt: now });
      this.#finished.add(held);
    }
    this.#changed(held);
  }

  /** Into its name's queue, by `runAt` then as it came. New jobs and retries go at or near the end: look from there. */
  #enqueue(held: Held): void {
    const queue = this.#queues.get(held.job.name) ?? [];
    this.#queues.set(held.job.name, queue);
    let at = queue.length;
    while (at > 0 && runAtOf(queue[at - 1]) > runAtOf(held)) at--;
    queue.splice(at, 0, held);
  }

  #dequeue(held: Held): void {
    const queue = this.#queues.get(held.job.name) ?? [];
    queue.splice(queue.indexOf(held), 1);
  }

  /** After a change: the job's bytes counted again, and its place among the pending deliveries. */
  #changed(held: Held): void {
    this.#bytes -= held.bytes;
    held.bytes = sizeOf(held);
    this.#bytes += held.bytes;
    this.#deliveries[held.record?.deliveryStatus === 'pending' ? 'add' : 'delete'](held);
  }

  /** Purge, then evict finished jobs past the grace, oldest finished first, until a job of `bytes` fits; or throw. */
  #makeRoom(bytes: number, now: number): void {
    const fits = () => this.#jobs.size < this.#maxJobs && this.#bytes + bytes <= this.#maxBytes;
    if (!fits()) this.#purge(now);
    for (const held of this.#finished) {
      if (fits() || record(held).finishedAt! > now - this.#evictAfterMs) break;
      if (record(held).deliveryStatus !== 'pending') this.#remove(held);
    }
    if (this.#jobs.size >= this.#maxJobs) throw new QueueFullError(this.kind, this.#maxJobs);
    if (!fits()) throw new QueueFullError(this.kind, this.#maxBytes, 'bytes');
  }

  #purge(now: number): number {
    const before = this.#jobs.size;
    for (const held of this.#finished) if (!live(held, now)) this.#remove(held);
    return before - this.#jobs.size;
  }

  #remove(held: Held): void {
    const { id, owner, idempotencyKey } = held.job;
    if (statusOf(held) === 'queued') this.#dequeue(held);
    this.#processing.delete(held);
    this.#finished.delete(held);
    this.#deliveries.delete(held);
    this.#jobs.delete(id);
    this.#bytes -= held.bytes;
    const scope = idempotencyKey === null ? null : keyScope(owner, idempotencyKey);
    if (scope !== null && this.#keys.get(scope) === held) this.#keys.delete(scope);
    const owned = owner === null ? undefined : this.#owners.get(owner);
    if (owned?.delete(held) && owned.size === 0) this.#owners.delete(owner!);
  }
}

/** The job's record, built when first used (`statusOf` and `runAtOf` read it without building it). */
function record(held: Held): JobRecord {
  held.record ??= newRecord(held.job, held.createdAt);
  return held.record;
}

const statusOf = (held: Held): JobStatus => held.record?.status ?? 'queued';
const runAtOf = (held: Held): number => held.record?.runAt ?? held.createdAt;

function live(held: Held | undefined, now = Date.now()): Held | undefined {
  return (held?.record?.expiresAt ?? Number.POSITIVE_INFINITY) > now ? held : undefined;
}

/** A record that shares nothing with the store: changing it, its input or its result changes nothing held. */
function copy(held: Held): JobRecord {
  const [input, result, error] = [held.job.inputJson, held.result, held.error].map((t) => t && JSON.parse(t));
  return { ...record(held), input, result, error: error ?? null };
}

/** The records of the unexpired jobs of `finished` that finished in the last `windowMs`. */
function ended(finished: Set<Held>, windowMs: number): JobRecord[] {
  return [...finished].filter((held) => live(held) && record(held).finishedAt! >= Date.now() - windowMs).map(record);
}

/** A page of the unexpired jobs that pass `keep`, sorted in `list` order: simple, and fast enough for one owner's. */
function page(jobs: Iterable<Held>, limit: number, before?: Store.ListPosition, keep = (_: Held) => true): JobRecord[] {
  const now = Date.now();
  const found = [...jobs].filter((h) => live(h, now) && (before === undefined || order(h, before) > 0) && keep(h));
  return found.sort(order).slice(0, Math.max(0, limit)).map(copy);
}

const order = (a: Store.ListPosition, b: Store.ListPosition) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1);

/** `Object.assign`, type-checked; given `now`, the change also counts in `updatedAt` and `seq`. */
function update(record: JobRecord, changes: Partial<JobRecord>, now?: number): JobRecord {
  if (now !== undefined) Object.assign(record, { updatedAt: now, seq: record.seq + 1 });
  return Object.assign(record, changes);
}

/** What a job counts against `maxBytes`: its texts, and 600 for about what its objects and index entries take. */
function sizeOf({ job, record: r, result, error, attempts = [], deliveries = [] }: Held): number {
  const texts = [job.id, job.name, job.owner, job.idempotencyKey, job.requestHash, job.callbackUrl, job.inputJson];
  texts.push(r?.message, r?.resultUrl, result, error, ...attempts, ...deliveries);
  return texts.reduce((bytes, text) => bytes + (text?.length ?? 0), 600);
}

function atLeast(name: string, value: number, min: number): number {
  if (value >= min) return value;
  throw new TypeError(`respond-async: MemoryStore \`${name}\` must be at least ${min}, got ${String(value)}`);
}
