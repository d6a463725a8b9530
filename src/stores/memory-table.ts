// The MemoryStore's jobs, kept off the JavaScript heap: one row of 26 numbers per job, in Float64Array chunks of
// 4 096 rows (the job id as its 16 bytes in the last two numbers, with an open-addressing index on them), and the
// JSON text of inputs and results in a byte arena (memory-arena.ts).
//
// Why: a job kept as an object (a 28-field record, its boxed numbers, an id and an input string, a Map and a Set
// entry) survives the young generation, so every accepted job was copied twice by the scavenger and then traced
// by every full collection. That measured 5.4 µs of 9.1 µs of CPU per submit (no HTTP), more than the rest of
// the accept path. In rows, a new job allocates nothing that outlives the request, unless it carries an owner,
// an idempotency key or a callback URL (kept as strings, in a per-row object). A row is 208 adjacent bytes (4
// cache lines, where 26 columns took 26), and the table grows by a chunk: growing never copies what it holds,
// which on this kind of machine costs a page fault per 4 KiB of the copy.
import type { DeliveryStatus, JobErrorInfo, JobRecord, JobStatus, NewJob } from '../core/types.js';
import { TextArena } from './memory-arena.js';

export const FREE = 0;
export const QUEUED = 1;
export const PROCESSING = 2;
export const COMPLETE = 3;
export const FAILED = 4;
export const CANCELED = 5;
const STATUS: readonly JobStatus[] = ['queued', 'queued', 'processing', 'complete', 'failed', 'canceled'];

export const PENDING = 1;
const DELIVERY: readonly (DeliveryStatus | null)[] = [null, 'pending', 'delivered', 'failed'];
export const DELIVERY_CODE: Readonly<Record<DeliveryStatus, number>> = { pending: 1, delivered: 2, failed: 3 };

/** The strings few jobs have; a row without any keeps none. */
interface Extras {
  /** The id, when it is not 16 canonical base64url bytes (a JobStore may be given any string). */
  id: string | null;
  owner: string | null;
  idempotencyKey: string | null;
  requestHash: string | null;
  callbackUrl: string | null;
  message: string | null;
  resultUrl: string | null;
  /** JSON text of the JobErrorInfo. */
  error: string | null;
}

/** The public number fields of a row (`NaN` for null), for `get` and `set`. */
export const F = {
  status: 0,
  cancelRequested: 1,
  delivery: 2,
  progress: 3,
  attempt: 4,
  maxAttempts: 5,
  runAt: 6,
  leaseUntil: 7,
  deliveryAttempts: 8,
  deliveryNextAt: 9,
  createdAt: 10,
  updatedAt: 11,
  startedAt: 12,
  finishedAt: 13,
  expiresAt: 14,
  seq: 15,
} as const;
/** Codes into #strings: the job's name, and its lease holder's worker id + 1 (0: none). */
const NAME = 16;
const LEASE_OWNER = 17;
/** The active (queued or processing) rows, in the order they became active: a list linked through rows. */
const NEXT_ACTIVE = 18;
const PREVIOUS_ACTIVE = 19;
/** Where the input's and the result's JSON text are in the arena, and their byte lengths (NONE: no value). */
const INPUT_AT = 20;
const INPUT_LENGTH = 21;
const RESULT_AT = 22;
const RESULT_LENGTH = 23;
/** The id's 16 bytes take the last two numbers of a row. */
const ID_FIELD = 24;
const STRIDE = 26;
const ID_BYTES = 16;
/** A job id as `newJobId()` makes it: 16 bytes in canonical base64url (the last character's low 4 bits zero). */
const MIN_ROWS = 1024;
/** Rows come in chunks of 4 096 (852 KiB): the table grows by a chunk and never copies to grow. */
const CHUNK_SHIFT = 12;
const CHUNK_ROWS = 1 << CHUNK_SHIFT;
const ROW_MASK = CHUNK_ROWS - 1;
/** `NaN` stands for null in number fields; a text's length of -1 for no value. */
const NONE = -1;

export class JobTable {
  /** Rows in use. */
  size = 0;
  /** Rows handed out so far: every row in use is below it. */
  end = 0;
  readonly #free: number[] = [];

  /**
   * The rows, one after the other in chunks of CHUNK_ROWS: STRIDE numbers each (fields F, then the private ones
   * below, then the id's 16 bytes).
   */
  #chunks: Float64Array[] = [];
  /** The same memory as bytes, for the ids. */
  #chunkBytes: Buffer[] = [];
  firstActive = -1;
  #lastActive = -1;
  readonly #scratch = new Uint8Array(ID_BYTES);

  /** The few rows that have extras. */
  readonly #extras = new Map<number, Extras>();
  /** Job names and worker ids, each kept once (a process has one worker id, and a few job names). */
  readonly #strings: string[] = [];
  readonly #codes = new Map<string, number>();

  /** Open addressing on the first 4 bytes of the id (random): row + 1, 0 empty, -1 deleted. */
  #index = new Int32Array(2 * MIN_ROWS);
  #indexUsed = 0;
  /** Ids that are not 16 canonical base64url bytes (a JobStore may be given any string): id → row. */
  readonly #otherIds = new Map<string, number>();

  #arena = new TextArena();

  /** Write a new queued job into a free row; returns the row. */
  insert(job: NewJob, input: string | undefined, now: number): number {
    const row = this.#free.pop() ?? this.#append();
    this.size += 1;
    const f = this.#chunks[row >>> CHUNK_SHIFT];
    const at = (row & ROW_MASK) * STRIDE;
    f[at + F.status] = QUEUED;
    f[at + F.cancelRequested] = 0;
    f[at + F.delivery] = 0;
    f[at + F.progress] = Number.NaN;
    f[at + F.attempt] = 0;
    f[at + F.maxAttempts] = job.maxAttempts;
    f[at + F.runAt] = now;
    f[at + F.leaseUntil] = Number.NaN;
    f[at + F.deliveryAttempts] = 0;
    f[at + F.deliveryNextAt] = Number.NaN;
    f[at + F.createdAt] = now;
    f[at + F.updatedAt] = now;
    f[at + F.startedAt] = Number.NaN;
    f[at + F.finishedAt] = Number.NaN;
    f[at + F.expiresAt] = Number.NaN;
    f[at + F.seq] = 1;
    f[at + NAME] = this.#code(job.name);
    f[at + LEASE_OWNER] = 0;
    f[at + RESULT_LENGTH] = NONE;
    f[at + INPUT_LENGTH] = NONE;
    this.#write(row, INPUT_AT, input);
    const canonical = decodeId(job.id, this.#idBytes(row), idAt(row));
    if (
      !canonical ||
      job.owner !== null ||
      job.idempotencyKey !== null ||
      job.requestHash !== null ||
      job.callbackUrl !== null
    ) {
      this.#extras.set(row, {
        id: canonical ? null : job.id,
        owner: job.owner,
        idempotencyKey: job.idempotencyKey,
        requestHash: job.requestHash,
        callbackUrl: job.callbackUrl,
        message: null,
        resultUrl: null,
        error: null,
      });
    }
    this.#link(row);
    if (canonical) this.#indexId(row);
    else this.#otherIds.set(job.id, row);
    return row;
  }

  /** The row of a job id, if held. */
  find(id: string): number | undefined {
    const key = this.#scratch;
    if (!decodeId(id, key, 0)) return this.#otherIds.get(id);
    const mask = this.#index.length - 1;
    for (let slot = hashAt(key, 0) & mask; ; slot = (slot + 1) & mask) {
      const entry = this.#index[slot];
      if (entry === 0) return undefined;
      if (entry > 0 && sameId(key, this.#idBytes(entry - 1), idAt(entry - 1))) return entry - 1;
    }
  }

  get(row: number, field: number): number {
    return this.#chunks[row >>> CHUNK_SHIFT][(row & ROW_MASK) * STRIDE + field];
  }

  set(row: number, field: number, value: number): void {
    this.#chunks[row >>> CHUNK_SHIFT][(row & ROW_MASK) * STRIDE + field] = value;
  }

  /** Let a row go: forget its id, drop its strings and text, and hand the row out again. */
  free(row: number): void {
    this.#unindexId(row);
    if (this.get(row, F.status) === QUEUED || this.get(row, F.status) === PROCESSING) this.deactivate(row);
    this.set(row, F.status, FREE);
    this.#release(row, INPUT_AT);
    this.#release(row, RESULT_AT);
    this.set(row, LEASE_OWNER, 0);
    this.#extras.delete(row);
    this.#free.push(row);
    this.size -= 1;
    if (this.#arena.wasteful) this.#compact();
  }

  name(row: number): string {
    return this.#strings[this.get(row, NAME)];
  }

  leaseOwner(row: number): string | null {
    const code = this.get(row, LEASE_OWNER);
    return code === 0 ? null : this.#strings[code - 1];
  }

  setLeaseOwner(row: number, workerId: string | null): void {
    this.set(row, LEASE_OWNER, workerId === null ? 0 : this.#code(workerId) + 1);
  }

  owner(row: number): string | null {
    return this.#extras.get(row)?.owner ?? null;
  }

  idempotencyKey(row: number): string | null {
    return this.#extras.get(row)?.idempotencyKey ?? null;
  }

  hasCallback(row: number): boolean {
    return (this.#extras.get(row)?.callbackUrl ?? null) !== null;
  }

  setResult(row: number, text: string | undefined, resultUrl: string | null): void {
    this.#release(row, RESULT_AT);
    this.#write(row, RESULT_AT, text);
    if (resultUrl !== null || this.#extras.has(row)) this.#extrasOf(row).resultUrl = resultUrl;
  }

  setMessage(row: number, message: string | null): void {
    if (message !== null || this.#extras.has(row)) this.#extrasOf(row).message = message;
  }

  setError(row: number, error: string | null): void {
    if (error !== null || this.#extras.has(row)) this.#extrasOf(row).error = error;
  }

  /**
   * Give memory back once few rows are in use (an eighth or less, above the first allocation): move the jobs to
   * the front of fewer rows. Row numbers change, ids do not: callers keep ids, never rows, from one call to the
   * next.
   */
  shrinkIfSparse(): void {
    const capacity = this.#chunks.length * CHUNK_ROWS;
    if (this.#chunks.length === 1 || this.size * 8 > capacity) return;
    const fromChunks = this.#chunks;
    this.#chunks = [];
    this.#chunkBytes = [];
    const moved = new Int32Array(this.end).fill(-1);
    let end = 0;
    for (let row = 0; row < this.end; row++) {
      const from = fromChunks[row >>> CHUNK_SHIFT];
      const at = (row & ROW_MASK) * STRIDE;
      if (from[at + F.status] === FREE) continue;
      if ((end & ROW_MASK) === 0) this.#addChunk();
      this.#chunks[end >>> CHUNK_SHIFT].set(from.subarray(at, at + STRIDE), (end & ROW_MASK) * STRIDE);
      moved[row] = end++;
    }
    const remap = (row: number) => (row === -1 ? -1 : moved[row]);
    // Only active rows are linked; the links of the others are stale and never read.
    for (
      let row = this.firstActive;
      row !== -1;
      row = fromChunks[row >>> CHUNK_SHIFT][(row & ROW_MASK) * STRIDE + NEXT_ACTIVE]
    ) {
      this.set(moved[row], NEXT_ACTIVE, remap(this.get(moved[row], NEXT_ACTIVE)));
      this.set(moved[row], PREVIOUS_ACTIVE, remap(this.get(moved[row], PREVIOUS_ACTIVE)));
    }
    this.firstActive = remap(this.firstActive);
    this.#lastActive = remap(this.#lastActive);
    const extras = [...this.#extras];
    this.#extras.clear();
    for (const [row, value] of extras) this.#extras.set(moved[row], value);
    for (const [id, row] of this.#otherIds) this.#otherIds.set(id, moved[row]);
    if (this.#chunks.length === 0) this.#addChunk();
    this.end = end;
    this.#free.length = 0;
    let slots = 2 * MIN_ROWS;
    while (slots < 4 * end) slots *= 2;
    this.#index = new Int32Array(slots);
    this.#indexUsed = 0;
    for (let row = 0; row < end; row++) {
      if ((this.#extras.get(row)?.id ?? null) !== null) continue;
      this.#indexRow(row);
      this.#indexUsed += 1;
    }
  }

  /** The active row after `row`, or -1. */
  nextActive(row: number): number {
    return this.get(row, NEXT_ACTIVE);
  }

  /** Take a row off the active list (it finished). */
  deactivate(row: number): void {
    const previous = this.get(row, PREVIOUS_ACTIVE);
    const next = this.get(row, NEXT_ACTIVE);
    if (previous === -1) this.firstActive = next;
    else this.set(previous, NEXT_ACTIVE, next);
    if (next === -1) this.#lastActive = previous;
    else this.set(next, PREVIOUS_ACTIVE, previous);
  }

  expired(row: number, now: number): boolean {
    return this.get(row, F.expiresAt) <= now;
  }

  touch(row: number, now: number): void {
    this.set(row, F.updatedAt, now);
    this.set(row, F.seq, this.get(row, F.seq) + 1);
  }

  /**
   * The row as a `JobRecord` that shares nothing with the table, so that neither the caller nor a handler
   * changes the stored job by changing what it was given (a handler mutating its input would otherwise change
   * the input of its retries): the JSON values are parsed afresh from their text.
   */
  record(row: number): JobRecord {
    const extras = this.#extras.get(row);
    const error = extras?.error ?? null;
    return {
      id: this.id(row),
      name: this.name(row),
      status: STATUS[this.get(row, F.status)],
      input: this.#parse(row, INPUT_AT),
      owner: extras?.owner ?? null,
      idempotencyKey: extras?.idempotencyKey ?? null,
      requestHash: extras?.requestHash ?? null,
      progress: orNull(this.get(row, F.progress)),
      message: extras?.message ?? null,
      result: this.#parse(row, RESULT_AT),
      resultUrl: extras?.resultUrl ?? null,
      error: error === null ? null : (JSON.parse(error) as JobErrorInfo),
      attempt: this.get(row, F.attempt),
      maxAttempts: this.get(row, F.maxAttempts),
      runAt: this.get(row, F.runAt),
      leaseOwner: this.leaseOwner(row),
      leaseUntil: orNull(this.get(row, F.leaseUntil)),
      cancelRequested: this.get(row, F.cancelRequested) === 1,
      callbackUrl: extras?.callbackUrl ?? null,
      deliveryStatus: DELIVERY[this.get(row, F.delivery)],
      deliveryAttempts: this.get(row, F.deliveryAttempts),
      deliveryNextAt: orNull(this.get(row, F.deliveryNextAt)),
      createdAt: this.get(row, F.createdAt),
      updatedAt: this.get(row, F.updatedAt),
      startedAt: orNull(this.get(row, F.startedAt)),
      finishedAt: orNull(this.get(row, F.finishedAt)),
      expiresAt: orNull(this.get(row, F.expiresAt)),
      seq: this.get(row, F.seq),
    };
  }

  #extrasOf(row: number): Extras {
    let extras = this.#extras.get(row);
    if (extras === undefined) {
      extras = {
        id: null,
        owner: null,
        idempotencyKey: null,
        requestHash: null,
        callbackUrl: null,
        message: null,
        resultUrl: null,
        error: null,
      };
      this.#extras.set(row, extras);
    }
    return extras;
  }

  #code(value: string): number {
    let code = this.#codes.get(value);
    if (code === undefined) {
      code = this.#strings.length;
      this.#strings.push(value);
      this.#codes.set(value, code);
    }
    return code;
  }

  #link(row: number): void {
    this.set(row, PREVIOUS_ACTIVE, this.#lastActive);
    this.set(row, NEXT_ACTIVE, -1);
    if (this.#lastActive === -1) this.firstActive = row;
    else this.set(this.#lastActive, NEXT_ACTIVE, row);
    this.#lastActive = row;
  }

  /** The job id of a row in use. */
  id(row: number): string {
    const start = idAt(row);
    return this.#extras.get(row)?.id ?? this.#idBytes(row).toString('base64url', start, start + ID_BYTES);
  }

  /** Enter a row whose canonical id bytes are written in the index, growing it first if need be. */
  #indexId(row: number): void {
    if (2 * (this.#indexUsed + 1) > this.#index.length) this.#reindex(this.#index.length * 2);
    this.#indexRow(row);
  }

  /** Enter the row's id bytes in the index (which has room). */
  #indexRow(row: number): void {
    const mask = this.#index.length - 1;
    let slot = hashAt(this.#idBytes(row), idAt(row)) & mask;
    while (this.#index[slot] > 0) slot = (slot + 1) & mask;
    if (this.#index[slot] === 0) this.#indexUsed += 1;
    this.#index[slot] = row + 1;
  }

  #unindexId(row: number): void {
    const other = this.#extras.get(row)?.id ?? null;
    if (other !== null) {
      this.#otherIds.delete(other);
      return;
    }
    const start = idAt(row);
    const mask = this.#index.length - 1;
    for (let slot = hashAt(this.#idBytes(row), start) & mask; this.#index[slot] !== 0; slot = (slot + 1) & mask) {
      if (this.#index[slot] === row + 1) {
        this.#index[slot] = -1;
        return;
      }
    }
  }

  /** Rebuild the index with `slots` slots (a power of 2), dropping deleted entries. */
  #reindex(slots: number): void {
    const live = this.size;
    while (slots < 4 * live) slots *= 2;
    const index = new Int32Array(slots);
    const mask = slots - 1;
    let used = 0;
    for (const entry of this.#index) {
      if (entry <= 0) continue;
      let slot = hashAt(this.#idBytes(entry - 1), idAt(entry - 1)) & mask;
      while (index[slot] !== 0) slot = (slot + 1) & mask;
      index[slot] = entry;
      used += 1;
    }
    this.#index = index;
    this.#indexUsed = used;
  }

  /** Write `text` to the arena and its place to `field` (INPUT_AT or RESULT_AT) and the one after it. */
  #write(row: number, field: number, text: string | undefined): void {
    if (text === undefined) return;
    const f = this.#chunks[row >>> CHUNK_SHIFT];
    const at = (row & ROW_MASK) * STRIDE + field;
    f[at] = this.#arena.write(text);
    f[at + 1] = this.#arena.written;
  }

  #release(row: number, field: number): void {
    const f = this.#chunks[row >>> CHUNK_SHIFT];
    const at = (row & ROW_MASK) * STRIDE + field;
    if (f[at + 1] !== NONE) this.#arena.release(f[at], f[at + 1]);
    f[at + 1] = NONE;
  }

  #parse(row: number, field: number): unknown {
    const f = this.#chunks[row >>> CHUNK_SHIFT];
    const at = (row & ROW_MASK) * STRIDE + field;
    return f[at + 1] === NONE ? undefined : JSON.parse(this.#arena.read(f[at], f[at + 1]));
  }

  /** Move the live texts into a new arena, leaving behind the chunks that old texts kept mostly empty. */
  #compact(): void {
    const from = this.#arena;
    const to = new TextArena();
    for (let row = 0; row < this.end; row++) {
      if (this.get(row, F.status) === FREE) continue;
      const f = this.#chunks[row >>> CHUNK_SHIFT];
      for (const field of [INPUT_AT, RESULT_AT]) {
        const at = (row & ROW_MASK) * STRIDE + field;
        if (f[at + 1] !== NONE) f[at] = to.copyFrom(from, f[at], f[at + 1]);
      }
    }
    this.#arena = to;
  }

  #idBytes(row: number): Buffer {
    return this.#chunkBytes[row >>> CHUNK_SHIFT];
  }

  #append(): number {
    if (this.end === this.#chunks.length * CHUNK_ROWS) this.#addChunk();
    return this.end++;
  }

  #addChunk(): void {
    const chunk = new Float64Array(CHUNK_ROWS * STRIDE);
    this.#chunks.push(chunk);
    this.#chunkBytes.push(Buffer.from(chunk.buffer));
  }
}

/** base64url digit values by character code; -1 for other characters. */
const DIGITS = new Int8Array(128).fill(-1);
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'].entries()) {
  DIGITS[c.charCodeAt(0)] = i;
}

/**
 * Write the 16 bytes of `id` at `at` when it is canonical: 22 base64url characters whose last one carries no bits
 * beyond the 128th (what `newJobId()` makes). Returns false for any other id (the bytes written are then garbage).
 */
function decodeId(id: string, into: Uint8Array, at: number): boolean {
  if (id.length !== 22) return false;
  let bits = 0;
  let held = 0;
  let out = at;
  let digit = 0;
  let invalid = 0;
  for (let i = 0; i < 22; i++) {
    const code = id.charCodeAt(i);
    digit = code < 128 ? DIGITS[code] : -1;
    invalid |= digit; // -1 sets the sign bit
    bits = ((bits << 6) | (digit & 63)) & 0xffffff;
    held += 6;
    if (held >= 8) {
      held -= 8;
      into[out++] = (bits >> held) & 0xff;
    }
  }
  // 22 × 6 = 132 bits: the last character's 4 low bits are padding, zero in the canonical form.
  return invalid >= 0 && (digit & 15) === 0;
}

/** The index hash of the id at `at`: its first 4 bytes, which are random. */
function hashAt(bytes: Uint8Array, at: number): number {
  return bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24);
}

function sameId(key: Uint8Array, ids: Uint8Array, at: number): boolean {
  for (let i = 0; i < ID_BYTES; i++) if (key[i] !== ids[at + i]) return false;
  return true;
}

/** Where the id of `row` starts, in bytes, in its chunk. */
function idAt(row: number): number {
  return ((row & ROW_MASK) * STRIDE + ID_FIELD) * 8;
}

function orNull(value: number): number | null {
  return Number.isNaN(value) ? null : value;
}
