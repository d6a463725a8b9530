// The MemoryStore's jobs, kept off the JavaScript heap: one row of 160 bytes per job (12 doubles, 12 32-bit
// integers and the job id's 16 bytes), in chunks of 4 096 rows, with an open-addressing index on the ids, and the
// JSON text of inputs and results in a byte arena (memory-arena.ts).
//
// Why: a job kept as an object (a 28-field record, its boxed numbers, an id and an input string, a Map and a Set
// entry) survives the young generation, so every accepted job was copied twice by the scavenger and then traced
// by every full collection. That measured 5.4 µs of 9.1 µs of CPU per submit (no HTTP), more than the rest of
// the accept path. In rows, a new job allocates nothing that outlives the request, unless it carries an owner,
// an idempotency key or a callback URL (kept as strings, in a per-row object). A row is 160 adjacent bytes (2 or
// 3 cache lines, where 26 columns took 26), and the table grows by a chunk: growing never copies what it holds,
// which on this kind of machine costs a page fault per 4 KiB of the copy. Every byte of a new row is memory never
// touched before, and its first touch costs a page fault per 4 KiB (11 to 16 µs on the benchmark machine): the
// counts and codes take 4 bytes, not 8 (rows of 208 bytes cost 0.2 µs more per accepted job there).
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

/**
 * The fields of a row, for `get` and `set`. A code below INTS is a double's place in the row (`NaN` for null);
 * from INTS up, a 32-bit integer's place in the row counted in 4-byte units (counts, codes and links, which fit).
 */
const INTS = 24;
export const F = {
  progress: 0,
  maxAttempts: 1,
  runAt: 2,
  leaseUntil: 3,
  deliveryNextAt: 4,
  createdAt: 5,
  updatedAt: 6,
  startedAt: 7,
  finishedAt: 8,
  expiresAt: 9,
  status: INTS,
  cancelRequested: INTS + 1,
  delivery: INTS + 2,
  attempt: INTS + 3,
  deliveryAttempts: INTS + 4,
  seq: INTS + 5,
} as const;
/** Where the input's and the result's JSON text are in the arena (doubles), and their byte lengths (NONE: no value). */
const INPUT_AT = 10;
const RESULT_AT = 11;
const INPUT_LENGTH = INTS + 6;
const RESULT_LENGTH = INTS + 7;
/** Codes into #strings: the job's name, and its lease holder's worker id + 1 (0: none). */
const NAME = INTS + 8;
const LEASE_OWNER = INTS + 9;
/** The active (queued or processing) rows, in the order they became active: a list linked through rows. */
const NEXT_ACTIVE = INTS + 10;
const PREVIOUS_ACTIVE = INTS + 11;
/** A row: 12 doubles, then 12 integers (INTS + 0 to 11), then the id's 16 bytes; STRIDE doubles in all. */
const ID_FIELD = 18;
const STRIDE = 20;
const TEXTS = [
  [INPUT_AT, INPUT_LENGTH],
  [RESULT_AT, RESULT_LENGTH],
] as const;
const ID_BYTES = 16;
/** A job id as `newJobId()` makes it: 16 bytes in canonical base64url (the last character's low 4 bits zero). */
const MIN_ROWS = 1024;
/** Rows come in chunks of 4 096 (640 KiB): the table grows by a chunk and never copies to grow. */
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

  /** The rows, one after the other in chunks of CHUNK_ROWS: STRIDE doubles each (see F). */
  #chunks: Float64Array[] = [];
  /** The same memory as 32-bit integers, for the integer fields. */
  #chunkInts: Int32Array[] = [];
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
    const chunk = row >>> CHUNK_SHIFT;
    const f = this.#chunks[chunk];
    const at = (row & ROW_MASK) * STRIDE;
    f[at + F.progress] = Number.NaN;
    f[at + F.maxAttempts] = job.maxAttempts;
    f[at + F.runAt] = now;
    f[at + F.leaseUntil] = Number.NaN;
    f[at + F.deliveryNextAt] = Number.NaN;
    f[at + F.createdAt] = now;
    f[at + F.updatedAt] = now;
    f[at + F.startedAt] = Number.NaN;
    f[at + F.finishedAt] = Number.NaN;
    f[at + F.expiresAt] = Number.NaN;
    const n = this.#chunkInts[chunk];
    const iat = 2 * at;
    n[iat + F.status] = QUEUED;
    n[iat + F.cancelRequested] = 0;
    n[iat + F.delivery] = 0;
    n[iat + F.attempt] = 0;
    n[iat + F.deliveryAttempts] = 0;
    n[iat + F.seq] = 1;
    n[iat + NAME] = this.#code(job.name);
    n[iat + LEASE_OWNER] = 0;
    n[iat + RESULT_LENGTH] = NONE;
    n[iat + INPUT_LENGTH] = NONE;
    this.#write(row, INPUT_AT, INPUT_LENGTH, input);
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

  /**
   * Whether `rows` new rows, whose input texts have `units` UTF-16 units in all and `longest` at most, can be
   * inserted into memory already allocated: no chunk of rows, arena chunk or larger index more.
   */
  fits(rows: number, units: number, longest: number): boolean {
    return (
      this.#free.length + this.#chunks.length * CHUNK_ROWS - this.end >= rows &&
      2 * (this.#indexUsed + rows) <= this.#index.length &&
      this.#arena.fits(units, longest)
    );
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
    const at = (row & ROW_MASK) * STRIDE;
    return field < INTS
      ? this.#chunks[row >>> CHUNK_SHIFT][at + field]
      : this.#chunkInts[row >>> CHUNK_SHIFT][2 * at + field];
  }

  /** Write a field; an integer field (from INTS up) takes an integer of 32 bits. */
  set(row: number, field: number, value: number): void {
    const at = (row & ROW_MASK) * STRIDE;
    if (field < INTS) this.#chunks[row >>> CHUNK_SHIFT][at + field] = value;
    else this.#chunkInts[row >>> CHUNK_SHIFT][2 * at + field] = value;
  }

  /** Let a row go: forget its id, drop its strings and text, and hand the row out again. */
  free(row: number): void {
    this.#unindexId(row);
    if (this.get(row, F.status) === QUEUED || this.get(row, F.status) === PROCESSING) this.deactivate(row);
    this.set(row, F.status, FREE);
    this.#release(row, INPUT_AT, INPUT_LENGTH);
    this.#release(row, RESULT_AT, RESULT_LENGTH);
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
    this.#release(row, RESULT_AT, RESULT_LENGTH);
    this.#write(row, RESULT_AT, RESULT_LENGTH, text);
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
    const fromInts = this.#chunkInts;
    const fromBytes = this.#chunkBytes;
    this.#chunks = [];
    this.#chunkInts = [];
    this.#chunkBytes = [];
    const moved = new Int32Array(this.end).fill(-1);
    let end = 0;
    for (let row = 0; row < this.end; row++) {
      const at = (row & ROW_MASK) * STRIDE;
      if (fromInts[row >>> CHUNK_SHIFT][2 * at + F.status] === FREE) continue;
      if ((end & ROW_MASK) === 0) this.#addChunk();
      // As bytes: a pair of integers read as a double could be a NaN, which need not keep its bits.
      const bytes = fromBytes[row >>> CHUNK_SHIFT];
      this.#chunkBytes[end >>> CHUNK_SHIFT].set(
        bytes.subarray(8 * at, 8 * (at + STRIDE)),
        8 * (end & ROW_MASK) * STRIDE,
      );
      moved[row] = end++;
    }
    const remap = (row: number) => (row === -1 ? -1 : moved[row]);
    // Only active rows are linked; the links of the others are stale and never read.
    for (
      let row = this.firstActive;
      row !== -1;
      row = fromInts[row >>> CHUNK_SHIFT][2 * (row & ROW_MASK) * STRIDE + NEXT_ACTIVE]
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
    this.#reindex(2 * MIN_ROWS);
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
      input: this.#parse(row, INPUT_AT, INPUT_LENGTH),
      owner: extras?.owner ?? null,
      idempotencyKey: extras?.idempotencyKey ?? null,
      requestHash: extras?.requestHash ?? null,
      progress: orNull(this.get(row, F.progress)),
      message: extras?.message ?? null,
      result: this.#parse(row, RESULT_AT, RESULT_LENGTH),
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
    // A new index holds every row in use, this one included.
    if (2 * (this.#indexUsed + 1) > this.#index.length) this.#reindex(this.#index.length * 2);
    else this.#indexRow(row);
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

  /** Build the index anew from the rows in use, with `slots` slots or more (a power of 2, 4 per row in use). */
  #reindex(slots: number): void {
    while (slots < 4 * this.size) slots *= 2;
    this.#index = new Int32Array(slots);
    this.#indexUsed = 0;
    // Row by row, reading the ids in the order they lie in memory (in index order, each id read was a cache miss).
    for (let row = 0; row < this.end; row++) {
      if (this.get(row, F.status) !== FREE && (this.#extras.get(row)?.id ?? null) === null) this.#indexRow(row);
    }
  }

  /** Write `text` to the arena, its address to `field` (INPUT_AT or RESULT_AT) and its length to `length`. */
  #write(row: number, field: number, length: number, text: string | undefined): void {
    if (text === undefined) return;
    this.set(row, field, this.#arena.write(text));
    this.set(row, length, this.#arena.written);
  }

  #release(row: number, field: number, length: number): void {
    const bytes = this.get(row, length);
    if (bytes !== NONE) this.#arena.release(this.get(row, field), bytes);
    this.set(row, length, NONE);
  }

  #parse(row: number, field: number, length: number): unknown {
    const bytes = this.get(row, length);
    return bytes === NONE ? undefined : JSON.parse(this.#arena.read(this.get(row, field), bytes));
  }

  /** Move the live texts into a new arena, leaving behind the chunks that old texts kept mostly empty. */
  #compact(): void {
    const from = this.#arena;
    const to = new TextArena();
    for (let row = 0; row < this.end; row++) {
      if (this.get(row, F.status) === FREE) continue;
      for (const [field, length] of TEXTS) {
        const bytes = this.get(row, length);
        if (bytes !== NONE) this.set(row, field, to.copyFrom(from, this.get(row, field), bytes));
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
    this.#chunkInts.push(new Int32Array(chunk.buffer));
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
