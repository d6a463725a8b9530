// SqliteStore: the embedded durable JobStore over better-sqlite3. Several processes on one machine may share
// the file: every write that reads before it writes runs in a `BEGIN IMMEDIATE` transaction, so claims are
// atomic across processes, and readers never block writers (WAL).
import { createRequire } from 'node:module';
import { resolve as resolvePath } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type BetterSqlite3 from 'better-sqlite3';
import { DriverMissingError, RespondAsyncError, SchemaTooNewError, StoreClosedError } from '../core/errors.js';
import type {
  AdminListOptions,
  AdminOutcome,
  AttemptRecord,
  CancelOutcome,
  ClaimOptions,
  CreateResult,
  DeliveryUpdate,
  JobCount,
  JobHistory,
  JobStore,
  JobTimings,
  LeaseState,
  ListOptions,
  ThroughputBucket,
} from '../core/store.js';
import type { JobErrorInfo, JobRecord, JobStatus, NewJob } from '../core/types.js';
import {
  type JobRow,
  keyScope,
  newRecord,
  parseHistory,
  parseJson,
  percentiles,
  rowToRecord,
  toJsonText,
} from './common.js';
import { type Checkpointer, startCheckpointer } from './sqlite-checkpoint.js';
import { SQLITE_MIGRATIONS } from './sqlite-migrations.js';

export interface SqliteStoreOptions {
  /** Path of the database file (created when missing). Give this or `database`. */
  path?: string;
  /** An open better-sqlite3 Database to use instead of `path`. `close()` leaves it open. */
  database?: BetterSqlite3.Database;
  /** How long a write waits for another process's write lock before failing with SQLITE_BUSY. Default 5000 ms. */
  busyTimeoutMs?: number;
  /**
   * Checkpoint the WAL (copy it into the database file) on a worker thread with a connection of its own, every
   * 100 ms, so that a checkpoint's writes and fsyncs do not block the event loop: with a large table they are
   * scattered over the file and took long enough to show in the accept path's tail latency. The thread costs
   * about 10 MB of memory. Default true with `path`; `false` leaves checkpoints to SQLite, inline in the commit
   * that fills the WAL past 10 000 pages (which also stays as the fallback when the thread falls behind or cannot
   * start). A `database` you pass is left alone.
   */
  backgroundCheckpoints?: boolean;
}

type DatabaseConstructor = typeof BetterSqlite3;

let driver: DatabaseConstructor | undefined;

/**
 * A `require` resolving from this module. ESM: from this module's URL. The CommonJS build (esbuild) empties
 * `import.meta`, so fall back to `__filename` there. (A bare `require` would not do: esbuild's ESM output turns it
 * into a throwing shim.)
 */
function requireHere(): NodeJS.Require {
  return createRequire(import.meta.url ?? __filename);
}

/** Load better-sqlite3 on first use only, so that importing the core never loads the native module. */
function loadDriver(): DatabaseConstructor {
  if (driver) return driver;
  try {
    driver = requireHere()('better-sqlite3') as DatabaseConstructor;
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') {
      throw new DriverMissingError(
        'better-sqlite3',
        'install it (npm install better-sqlite3@12) or pass `database` (an open better-sqlite3 Database)',
        error,
      );
    }
    throw error;
  }
  return driver;
}

/** Where better-sqlite3 resolves from here, for the checkpoint worker to load the same build. */
function driverPath(): string {
  return requireHere().resolve('better-sqlite3');
}

/** The schema version this code writes: how many migrations `PRAGMA user_version` says have run. */
export const SQLITE_SCHEMA_VERSION = SQLITE_MIGRATIONS.length;

/**
 * Every statement the store runs, one per operation, with named parameters. A row is live while
 * `expires_at IS NULL OR expires_at > @now`; a worker holds a job while `status = 'processing' AND lease_owner =
 * @worker`. When a job ends (complete, fail for good, cancel) its lease goes, its retention starts and its webhook,
 * if any, is armed.
 */
const SQL = {
  releaseExpiredKey: `
    UPDATE respond_async_jobs SET idem_scope = NULL
    WHERE idem_scope = @scope AND expires_at IS NOT NULL AND expires_at <= @now`,
  insert: `
    INSERT INTO respond_async_jobs (id, name, status, input, owner, idempotency_key, idem_scope, request_hash,
      attempt, max_attempts, run_at, callback_url, delivery_attempts, created_at, updated_at, seq, trace_context)
    VALUES (@id, @name, 'queued', @input, @owner, @idempotencyKey, @scope, @requestHash,
      0, @maxAttempts, @now, @callbackUrl, 0, @now, @now, 1, @traceContext)
    ON CONFLICT (idem_scope) DO NOTHING`,
  byScope: `SELECT * FROM respond_async_jobs WHERE idem_scope = @scope`,
  get: `SELECT * FROM respond_async_jobs WHERE id = @id AND (expires_at IS NULL OR expires_at > @now)`,
  // list(): both walk the index on (owner, created_at DESC, id DESC) (migration 2); listBefore from the position given.
  list: `
    SELECT * FROM respond_async_jobs
    WHERE owner IS @owner AND (expires_at IS NULL OR expires_at > @now)
    ORDER BY created_at DESC, id DESC LIMIT @limit`,
  listBefore: `
    SELECT * FROM respond_async_jobs
    WHERE owner IS @owner AND (created_at, id) < (@createdAt, @id) AND (expires_at IS NULL OR expires_at > @now)
    ORDER BY created_at DESC, id DESC LIMIT @limit`,
  // The rows the owner holds, kept by triggers (migration 5); expired ones not yet purged count too.
  ownerHeld: `SELECT n FROM respond_async_owner_jobs WHERE owner = @owner`,
  // The owner's unexpired jobs, on the owner's index (migration 2); the inner LIMIT stops the count at @upTo.
  countByOwner: `
    SELECT count(*) AS n FROM (
      SELECT 1 FROM respond_async_jobs
      WHERE owner = @owner AND (expires_at IS NULL OR expires_at > @now) LIMIT @upTo)`,
  // Each arm walks its own index in order and stops at @limit; the union is small and sorted once.
  claim: `
    UPDATE respond_async_jobs SET status = 'processing', attempt = attempt + 1, lease_owner = @worker,
      lease_until = @leaseUntil, started_at = COALESCE(started_at, @now), updated_at = @now, seq = seq + 1
    WHERE id IN (
      SELECT id FROM (
        SELECT id, run_at FROM (
          SELECT id, run_at FROM respond_async_jobs
          WHERE status = 'queued' AND run_at <= @now AND name IN (SELECT value FROM json_each(@names))
          ORDER BY run_at LIMIT @limit)
        UNION ALL
        SELECT id, run_at FROM (
          SELECT id, run_at FROM respond_async_jobs
          WHERE status = 'processing' AND lease_until < @now AND name IN (SELECT value FROM json_each(@names))
          ORDER BY run_at LIMIT @limit))
      ORDER BY run_at LIMIT @limit)
    RETURNING *`,
  renew: `
    UPDATE respond_async_jobs SET lease_until = @leaseUntil
    WHERE id = @id AND status = 'processing' AND lease_owner = @worker
    RETURNING cancel_requested`,
  progress: `
    UPDATE respond_async_jobs SET progress = @progress, message = @message, updated_at = @now, seq = seq + 1
    WHERE id = @id AND status = 'processing' AND lease_owner = @worker
    RETURNING *`,
  complete: `
    UPDATE respond_async_jobs SET result = @result, result_url = @resultUrl, progress = 100,
      status = 'complete', lease_owner = NULL, lease_until = NULL, cancel_requested = 0,
      finished_at = @now, expires_at = @expiresAt,
      delivery_status = CASE WHEN callback_url IS NULL THEN delivery_status ELSE 'pending' END,
      delivery_next_at = CASE WHEN callback_url IS NULL THEN delivery_next_at ELSE @now END,
      updated_at = @now, seq = seq + 1
    WHERE id = @id AND status = 'processing' AND lease_owner = @worker AND cancel_requested = 0
    RETURNING *`,
  // fail(): the attempt, if given, is appended to the JSON array in `attempts` as text (no JSON parse).
  failFinal: `
    UPDATE respond_async_jobs SET error = @error,
      attempts = CASE WHEN @attempt IS NULL THEN attempts WHEN attempts IS NULL THEN '[' || @attempt || ']'
        ELSE substr(attempts, 1, length(attempts) - 1) || ',' || @attempt || ']' END,
      status = 'failed', lease_owner = NULL, lease_until = NULL, cancel_requested = 0,
      finished_at = @now, expires_at = @expiresAt,
      delivery_status = CASE WHEN callback_url IS NULL THEN delivery_status ELSE 'pending' END,
      delivery_next_at = CASE WHEN callback_url IS NULL THEN delivery_next_at ELSE @now END,
      updated_at = @now, seq = seq + 1
    WHERE id = @id AND status = 'processing' AND lease_owner = @worker AND cancel_requested = 0
    RETURNING *`,
  failRetry: `
    UPDATE respond_async_jobs SET error = @error,
      attempts = CASE WHEN @attempt IS NULL THEN attempts WHEN attempts IS NULL THEN '[' || @attempt || ']'
        ELSE substr(attempts, 1, length(attempts) - 1) || ',' || @attempt || ']' END,
      status = 'queued', run_at = @retryAt, lease_owner = NULL,
      lease_until = NULL, updated_at = @now, seq = seq + 1
    WHERE id = @id AND status = 'processing' AND lease_owner = @worker AND cancel_requested = 0
    RETURNING *`,
  cancelQueued: `
    UPDATE respond_async_jobs SET
      status = 'canceled', lease_owner = NULL, lease_until = NULL, cancel_requested = 0,
      finished_at = @now, expires_at = @expiresAt,
      delivery_status = CASE WHEN callback_url IS NULL THEN delivery_status ELSE 'pending' END,
      delivery_next_at = CASE WHEN callback_url IS NULL THEN delivery_next_at ELSE @now END,
      updated_at = @now, seq = seq + 1
    WHERE id = @id AND status = 'queued'
    RETURNING *`,
  cancelRequest: `
    UPDATE respond_async_jobs SET cancel_requested = 1, updated_at = @now, seq = seq + 1
    WHERE id = @id AND status = 'processing'
    RETURNING *`,
  markCanceled: `
    UPDATE respond_async_jobs SET
      status = 'canceled', lease_owner = NULL, lease_until = NULL, cancel_requested = 0,
      finished_at = @now, expires_at = @expiresAt,
      delivery_status = CASE WHEN callback_url IS NULL THEN delivery_status ELSE 'pending' END,
      delivery_next_at = CASE WHEN callback_url IS NULL THEN delivery_next_at ELSE @now END,
      updated_at = @now, seq = seq + 1
    WHERE id = @id AND status = 'processing' AND lease_owner = @worker
    RETURNING *`,
  release: `
    UPDATE respond_async_jobs SET status = 'queued', attempt = MAX(0, attempt - 1), lease_owner = NULL,
      lease_until = NULL, updated_at = @now, seq = seq + 1
    WHERE id = @id AND status = 'processing' AND lease_owner = @worker`,
  // One bounded batch of expired jobs, on the expires_at index; purgeExpired repeats it. By rowid, which that index
  // holds: no lookup of each id in the primary key's index before the row is found.
  purge: `
    DELETE FROM respond_async_jobs WHERE rowid IN (
      SELECT rowid FROM respond_async_jobs WHERE expires_at IS NOT NULL AND expires_at <= @now LIMIT @limit)`,
  claimDeliveries: `
    UPDATE respond_async_jobs SET delivery_next_at = @nextAt
    WHERE id IN (
      SELECT id FROM respond_async_jobs WHERE delivery_status = 'pending' AND delivery_next_at <= @now
      ORDER BY delivery_next_at LIMIT @limit)
    RETURNING *`,
  // The attempt, if given, is appended to the JSON array in `delivery_log` as text, as fail() does with `attempts`.
  recordDelivery: `
    UPDATE respond_async_jobs SET delivery_status = @status, delivery_attempts = @attempts, delivery_next_at = @nextAt,
      delivery_log = CASE WHEN @attempt IS NULL THEN delivery_log WHEN delivery_log IS NULL THEN '[' || @attempt || ']'
        ELSE substr(delivery_log, 1, length(delivery_log) - 1) || ',' || @attempt || ']' END
    WHERE id = @id`,
  // The operator's views (migration 4). adminList walks the index on (created_at DESC, id DESC) from the position
  // given (the first page passes one after every job); each filter is off when its parameter is NULL (@anyOwner: 1).
  adminList: `
    SELECT * FROM respond_async_jobs
    WHERE (created_at, id) < (@beforeCreatedAt, @beforeId)
      AND (@statuses IS NULL OR status IN (SELECT value FROM json_each(@statuses)))
      AND (@name IS NULL OR name = @name)
      AND (@anyOwner = 1 OR owner IS @owner)
      AND (@from IS NULL OR created_at >= @from)
      AND (@to IS NULL OR created_at < @to)
      AND (expires_at IS NULL OR expires_at > @now)
    ORDER BY created_at DESC, id DESC LIMIT @limit`,
  // adminList of one owner's jobs, on the owner's index (migration 2): a page costs the same however rare they are.
  adminListOwner: `
    SELECT * FROM respond_async_jobs
    WHERE owner = @owner AND (created_at, id) < (@beforeCreatedAt, @beforeId)
      AND (@statuses IS NULL OR status IN (SELECT value FROM json_each(@statuses)))
      AND (@name IS NULL OR name = @name)
      AND (@from IS NULL OR created_at >= @from)
      AND (@to IS NULL OR created_at < @to)
      AND (expires_at IS NULL OR expires_at > @now)
    ORDER BY created_at DESC, id DESC LIMIT @limit`,
  countJobs: `
    SELECT name, status, count(*) AS n FROM respond_async_jobs
    WHERE expires_at IS NULL OR expires_at > @now
    GROUP BY name, status`,
  throughput: `
    SELECT name, (finished_at / CAST(@bucketMs AS INTEGER)) * CAST(@bucketMs AS INTEGER) AS at, sum(status = 'complete') AS complete,
      sum(status = 'failed') AS failed, sum(status = 'canceled') AS canceled
    FROM respond_async_jobs
    WHERE finished_at >= @since AND (expires_at IS NULL OR expires_at > @now)
    GROUP BY name, at`,
  timings: `
    SELECT started_at - created_at AS wait, finished_at - started_at AS run FROM respond_async_jobs
    WHERE finished_at >= @since AND started_at IS NOT NULL AND (expires_at IS NULL OR expires_at > @now)`,
  retry: `
    UPDATE respond_async_jobs SET status = 'queued', attempt = 0, run_at = @now, progress = NULL, message = NULL,
      result = NULL, result_url = NULL, error = NULL, lease_owner = NULL, lease_until = NULL, cancel_requested = 0,
      delivery_status = NULL, delivery_attempts = 0, delivery_next_at = NULL,
      started_at = NULL, finished_at = NULL, expires_at = NULL, updated_at = @now, seq = seq + 1
    WHERE id = @id AND status IN ('failed', 'canceled') AND (expires_at IS NULL OR expires_at > @now)
    RETURNING *`,
  remove: `DELETE FROM respond_async_jobs WHERE id = @id AND (expires_at IS NULL OR expires_at > @now)`,
  redeliver: `
    UPDATE respond_async_jobs SET delivery_status = 'pending', delivery_attempts = 0, delivery_next_at = @now
    WHERE id = @id AND callback_url IS NOT NULL AND status IN ('complete', 'failed', 'canceled')
      AND (expires_at IS NULL OR expires_at > @now)
    RETURNING *`,
  history: `
    SELECT attempts, delivery_log FROM respond_async_jobs
    WHERE id = @id AND (expires_at IS NULL OR expires_at > @now)`,
} as const;

/**
 * Expired jobs deleted per statement by purgeExpired(): each row takes tens of microseconds (its indexes too), and
 * the statement blocks the event loop, so a batch is a millisecond or two of it: a request arriving meanwhile waits
 * that long, so the batch is kept small (the purge's pace is set by the pause after each batch, not by its size).
 */
const PURGE_BATCH = 50;

/** How often the background checkpointer copies the WAL into the database file. */
const CHECKPOINT_INTERVAL_MS = 100;

/** The WAL size (pages) at which a commit checkpoints inline (`wal_autocheckpoint`), when this store opened the file. */
const WAL_AUTOCHECKPOINT_PAGES = 10_000;

/** @internal Every statement by name, for the plan guard (test/query-plans.test.ts). */
export { SQL as SQLITE_STATEMENTS };

type Row = JobRow & { cancel_requested: number };
type Statement<Result> = BetterSqlite3.Statement<[Record<string, unknown>], Result>;

/** Prepare every statement once per connection (better-sqlite3 then only binds and steps). */
function prepareStatements(db: BetterSqlite3.Database) {
  const prepare = <Result = Row>(sql: string): Statement<Result> =>
    // A user Database may default to BigInt integers; times and counters here fit in a double.
    (db.prepare(sql) as Statement<Result>).safeIntegers(false);
  return {
    releaseExpiredKey: prepare(SQL.releaseExpiredKey),
    insert: prepare(SQL.insert),
    byScope: prepare(SQL.byScope),
    get: prepare(SQL.get),
    list: prepare(SQL.list),
    listBefore: prepare(SQL.listBefore),
    ownerHeld: prepare<{ n: number }>(SQL.ownerHeld),
    countByOwner: prepare<{ n: number }>(SQL.countByOwner),
    claim: prepare(SQL.claim),
    renew: prepare<{ cancel_requested: number }>(SQL.renew),
    progress: prepare(SQL.progress),
    complete: prepare(SQL.complete),
    failFinal: prepare(SQL.failFinal),
    failRetry: prepare(SQL.failRetry),
    cancelQueued: prepare(SQL.cancelQueued),
    cancelRequest: prepare(SQL.cancelRequest),
    markCanceled: prepare(SQL.markCanceled),
    release: prepare(SQL.release),
    purge: prepare(SQL.purge),
    claimDeliveries: prepare(SQL.claimDeliveries),
    recordDelivery: prepare(SQL.recordDelivery),
    adminList: prepare(SQL.adminList),
    adminListOwner: prepare(SQL.adminListOwner),
    countJobs: prepare<{ name: string; status: JobStatus; n: number }>(SQL.countJobs),
    throughput: prepare<ThroughputBucket>(SQL.throughput),
    timings: prepare<{ wait: number; run: number }>(SQL.timings),
    retry: prepare(SQL.retry),
    remove: prepare(SQL.remove),
    redeliver: prepare(SQL.redeliver),
    history: prepare<{ attempts: string | null; delivery_log: string | null }>(SQL.history),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

/**
 * A durable JobStore in one SQLite file (better-sqlite3), for one machine: several processes may share the
 * file, and each claim is atomic across them. Jobs survive restarts and process crashes.
 * @example
 * import { SqliteStore } from 'respond-async/sqlite';
 * const jobs = createJobs({ store: new SqliteStore({ path: './jobs.sqlite' }) });
 */
export class SqliteStore implements JobStore {
  readonly kind = 'sqlite';
  /** The underlying better-sqlite3 connection. */
  readonly database: BetterSqlite3.Database;
  readonly #owned: boolean;
  readonly #busyTimeoutMs: number;
  /** The file's absolute path for the checkpoint thread (resolved now, before the process may change directory). */
  readonly #checkpointPath: string | undefined;
  #checkpointer: Checkpointer | undefined;
  #checkpointerStarted: Promise<void> | undefined;
  #statements: Statements | undefined;
  #ready: Promise<void> | undefined;
  #closed = false;
  /** Creates waiting for the end of this event-loop turn, to be committed in one transaction. */
  #creates: Array<{ job: NewJob; resolve(result: CreateResult): void; reject(error: unknown): void }> = [];

  constructor(options: SqliteStoreOptions) {
    const { path, database } = options;
    if ((path === undefined) === (database === undefined)) {
      throw new TypeError('respond-async: SqliteStore needs exactly one of `path` or `database`');
    }
    const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    if (!Number.isFinite(busyTimeoutMs) || busyTimeoutMs < 0) {
      throw new TypeError(`respond-async: \`busyTimeoutMs\` must be a non-negative number, got ${busyTimeoutMs}`);
    }
    this.#busyTimeoutMs = Math.floor(busyTimeoutMs);
    if (path !== undefined && options.backgroundCheckpoints !== false) this.#checkpointPath = resolvePath(path);
    if (database !== undefined) {
      this.database = database;
      this.#owned = false;
    } else {
      const Database = loadDriver();
      this.database = new Database(path as string, { timeout: this.#busyTimeoutMs });
      this.#owned = true;
      // Durability: a 202 promises that the job exists, so a commit must survive the process crashing
      // right after it. In WAL mode `synchronous = NORMAL` gives exactly that: a committed transaction is in
      // the WAL file (the OS has it) and survives any process crash; only a power loss or OS crash can lose
      // the last transactions before the next checkpoint. FULL would fsync the WAL on every commit (every
      // claim, progress and heartbeat too) for power-loss durability; who needs that can pass their own
      // Database, whose `synchronous` setting (SQLite's default is FULL) this store leaves alone.
      this.database.pragma('synchronous = NORMAL');
      // A checkpoint fsyncs the WAL and the database file inside whichever commit triggers it, and that commit
      // blocks the event loop meanwhile: every 10 000 pages (a WAL of up to about 40 MB) rather than SQLite's
      // 1 000, so that a busy accept path stalls on it a tenth as often.
      this.database.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
    }
    this.database.pragma(`busy_timeout = ${this.#busyTimeoutMs}`);
  }

  /** Switch to WAL and run pending migrations. Safe to call more than once and from many processes at once. */
  init(): Promise<void> {
    if (this.#closed) return Promise.reject(new StoreClosedError('SQLite'));
    this.#ready ??= this.#init().catch((error: unknown) => {
      this.#ready = undefined;
      throw error;
    });
    return this.#ready;
  }

  async #init(): Promise<void> {
    this.#assertOpen();
    await this.#walMode();
    this.#migrate();
    this.#statements = prepareStatements(this.database);
    // Not awaited: the store serves meanwhile (SQLite checkpoints inline until the thread is up); close() waits.
    this.#checkpointerStarted ??= this.#startCheckpointer();
  }

  /** The background checkpointer (see `backgroundCheckpoints`); without it SQLite checkpoints inline, as before. */
  async #startCheckpointer(): Promise<void> {
    if (this.#checkpointPath === undefined || this.database.memory) return;
    let checkpointer: Checkpointer;
    try {
      checkpointer = await startCheckpointer(
        this.#checkpointPath,
        driverPath(),
        CHECKPOINT_INTERVAL_MS,
        WAL_AUTOCHECKPOINT_PAGES / 2,
      );
    } catch {
      return;
    }
    if (this.#closed) await checkpointer.stop();
    else this.#checkpointer = checkpointer;
  }

  /** WAL lets readers run while another process writes. The mode is stored in the file; setting it again is a no-op. */
  async #walMode(): Promise<void> {
    if (this.database.memory) return;
    const deadline = Date.now() + this.#busyTimeoutMs;
    for (;;) {
      try {
        const mode = this.database.pragma('journal_mode = WAL', { simple: true });
        if (String(mode).toLowerCase() !== 'wal') {
          // The file system or the file cannot hold a WAL (a network share, a read-only file): retrying cannot help.
          throw new RespondAsyncError(
            'ERR_RESPOND_ASYNC_SQLITE_WAL_REFUSED',
            `respond-async: SQLite refused WAL mode (journal_mode is ${String(mode)})`,
            { permanent: true },
          );
        }
        return;
      } catch (error) {
        // Switching to WAL needs a moment alone with the file; another process may be doing the same.
        if (!isBusy(error) || Date.now() >= deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 40));
      }
    }
  }

  /** Run the migrations past `user_version` in one `BEGIN IMMEDIATE` transaction: one process migrates, the others wait and then find nothing to do. */
  #migrate(): void {
    const db = this.database;
    db.transaction(() => {
      const version = Number(db.pragma('user_version', { simple: true }));
      if (version > SQLITE_SCHEMA_VERSION) throw new SchemaTooNewError('SQLite', version, SQLITE_SCHEMA_VERSION);
      for (const migration of SQLITE_MIGRATIONS.slice(version)) db.exec(migration.sql);
      if (version !== SQLITE_SCHEMA_VERSION) db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION}`);
    }).immediate();
  }

  /**
   * Group commit: the creates of one event-loop turn are inserted in one `BEGIN IMMEDIATE` transaction (one
   * lock, one WAL commit). Each caller resolves only once that transaction has committed, with its own job;
   * a second job with a key bound earlier in the same transaction gets that job, as it would after a commit.
   */
  create(job: NewJob): Promise<CreateResult> {
    return new Promise((resolve, reject) => {
      if (this.#creates.length === 0) setImmediate(() => void this.#flushCreates());
      this.#creates.push({ job, resolve, reject });
    });
  }

  async #flushCreates(): Promise<void> {
    const batch = this.#creates;
    this.#creates = [];
    let s: Statements;
    try {
      s = this.#statements ?? (await this.#use());
      this.#assertOpen();
    } catch (error) {
      for (const pending of batch) pending.reject(error);
      return;
    }
    try {
      const now = Date.now();
      const results = this.database
        .transaction(() => batch.map((pending) => insertJob(s, pending.job, now)))
        .immediate();
      for (let index = 0; index < batch.length; index++) batch[index].resolve(results[index]);
    } catch (error) {
      // A busy database fails them all (each alone would wait out busy_timeout again); anything else may be one
      // job's own fault (input JSON cannot hold), so each goes alone and fails alone.
      if (batch.length === 1 || isBusy(error)) {
        for (const pending of batch) pending.reject(error);
        return;
      }
      for (const pending of batch) {
        try {
          pending.resolve(this.database.transaction(() => insertJob(s, pending.job, Date.now())).immediate());
        } catch (alone) {
          pending.reject(alone);
        }
      }
    }
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const s = await this.#use();
    const row = s.get.get({ id, now: Date.now() });
    return row && rowToRecord(row);
  }

  async list(options: ListOptions): Promise<JobRecord[]> {
    const s = await this.#use();
    const { owner, before } = options;
    const limit = Math.max(0, Math.floor(options.limit));
    const rows =
      before === undefined
        ? s.list.all({ owner, limit, now: Date.now() })
        : s.listBefore.all({ owner, limit, now: Date.now(), createdAt: before.createdAt, id: before.id });
    return rows.map(rowToRecord);
  }

  async countByOwner(owner: string, upTo: number): Promise<number> {
    const s = await this.#use();
    const bound = Math.max(0, Math.floor(upTo));
    // The rows held bound the unexpired jobs from above: under the bound they answer (the interface allows jobs
    // past expiresAt in a count under the bound); at it, only an exact count (a walk of the owner's index) may say
    // the owner is at the bound.
    const held = s.ownerHeld.get({ owner })?.n ?? 0;
    if (held < bound) return held;
    return s.countByOwner.get({ owner, upTo: bound, now: Date.now() })?.n ?? 0;
  }

  async getByKey(owner: string, idempotencyKey: string): Promise<JobRecord | undefined> {
    const s = await this.#use();
    // An expired job keeps its key until the next insert with it releases it: hide it, as get() does.
    const row = s.byScope.get({ scope: keyScope(owner, idempotencyKey) });
    const job = row && rowToRecord(row);
    return job && (job.expiresAt === null || job.expiresAt > Date.now()) ? job : undefined;
  }

  async claim(options: ClaimOptions): Promise<JobRecord[]> {
    const s = await this.#use();
    const limit = Math.floor(options.limit);
    if (limit <= 0 || options.names.length === 0) return [];
    const now = Date.now();
    const rows = this.database
      .transaction(() =>
        s.claim.all({
          names: JSON.stringify(options.names),
          worker: options.workerId,
          leaseUntil: now + options.leaseMs,
          limit,
          now,
        }),
      )
      .immediate();
    return rows.map(rowToRecord).sort((a, b) => a.runAt - b.runAt);
  }

  async renew(ids: readonly string[], workerId: string, leaseMs: number): Promise<LeaseState[]> {
    const s = await this.#use();
    if (ids.length === 0) return [];
    const leaseUntil = Date.now() + leaseMs;
    return this.database
      .transaction(() =>
        ids.map((id): LeaseState => {
          const row = s.renew.get({ id, worker: workerId, leaseUntil });
          return row
            ? { id, held: true, cancelRequested: row.cancel_requested === 1 }
            : { id, held: false, cancelRequested: false };
        }),
      )
      .immediate();
  }

  async progress(id: string, workerId: string, progress: number, message: string | null) {
    const s = await this.#use();
    const row = s.progress.get({ id, worker: workerId, progress, message, now: Date.now() });
    return row && rowToRecord(row);
  }

  async complete(
    id: string,
    workerId: string,
    outcome: { result: unknown; resultUrl: string | null; retentionMs: number },
  ): Promise<JobRecord | undefined> {
    const s = await this.#use();
    const now = Date.now();
    const expiresAt = now + outcome.retentionMs;
    const row =
      s.complete.get({
        id,
        worker: workerId,
        result: toJsonText(outcome.result, 'result'),
        resultUrl: outcome.resultUrl,
        now,
        expiresAt,
      }) ?? this.#canceledInstead(s, id, workerId, now, expiresAt);
    return row && rowToRecord(row);
  }

  async fail(
    id: string,
    workerId: string,
    outcome: { error: JobErrorInfo; retryAt: number | null; retentionMs: number; attempt?: AttemptRecord },
  ): Promise<JobRecord | undefined> {
    const s = await this.#use();
    const now = Date.now();
    const error = toJsonText(outcome.error, 'error');
    const attempt = toJsonText(outcome.attempt, 'attempt');
    const expiresAt = now + outcome.retentionMs;
    const row =
      (outcome.retryAt !== null
        ? s.failRetry.get({ id, worker: workerId, error, attempt, retryAt: outcome.retryAt, now })
        : s.failFinal.get({ id, worker: workerId, error, attempt, now, expiresAt })) ??
      this.#canceledInstead(s, id, workerId, now, expiresAt);
    return row && rowToRecord(row);
  }

  /**
   * The final write found the job's cancel requested (its write is conditional on `cancel_requested = 0`): once
   * DELETE has answered 202 the job ends canceled, whatever the attempt's outcome. Undefined when not held.
   */
  #canceledInstead(s: Statements, id: string, workerId: string, now: number, expiresAt: number): Row | undefined {
    return s.markCanceled.get({ id, worker: workerId, now, expiresAt });
  }

  async cancel(id: string, options: { retentionMs: number }): Promise<{ outcome: CancelOutcome; job?: JobRecord }> {
    const s = await this.#use();
    const now = Date.now();
    return this.database
      .transaction((): { outcome: CancelOutcome; job?: JobRecord } => {
        const current = s.get.get({ id, now });
        if (!current) return { outcome: 'missing' };
        if (current.status === 'queued') {
          const row = s.cancelQueued.get({ id, now, expiresAt: now + options.retentionMs });
          if (row) return { outcome: 'canceled', job: rowToRecord(row) };
        } else if (current.status === 'processing') {
          const row = s.cancelRequest.get({ id, now });
          if (row) return { outcome: 'requested', job: rowToRecord(row) };
        }
        return { outcome: 'finished', job: rowToRecord(current) };
      })
      .immediate();
  }

  async markCanceled(id: string, workerId: string, options: { retentionMs: number }) {
    const s = await this.#use();
    const now = Date.now();
    const row = s.markCanceled.get({
      id,
      worker: workerId,
      now,
      expiresAt: now + options.retentionMs,
    });
    return row && rowToRecord(row);
  }

  async release(id: string, workerId: string): Promise<void> {
    const s = await this.#use();
    s.release.run({ id, worker: workerId, now: Date.now() });
  }

  /**
   * Deletes expired jobs in batches of PURGE_BATCH, each its own transaction: a million expired rows in one
   * statement would hold the write lock, and this process, for minutes. After each batch it pauses twice as long as
   * the batch took, so the purge holds the event loop at most a third of the time and requests queued behind a
   * batch are served before the next one (a bare setImmediate would let the next batch in after one turn): a server
   * saturated by its accept path then answers about 1.5× slower during a purge, not 2× as with equal pauses.
   */
  async purgeExpired(): Promise<number> {
    let s = await this.#use();
    const now = Date.now();
    let removed = 0;
    for (;;) {
      const started = performance.now();
      const count = s.purge.run({ now, limit: PURGE_BATCH }).changes;
      removed += count;
      if (count < PURGE_BATCH) return removed;
      await sleep(2 * (performance.now() - started));
      s = await this.#use();
    }
  }

  async claimDeliveries(options: { limit: number; leaseMs: number }): Promise<JobRecord[]> {
    const s = await this.#use();
    const limit = Math.floor(options.limit);
    if (limit <= 0) return [];
    const now = Date.now();
    const rows = this.database
      .transaction(() => s.claimDeliveries.all({ now, nextAt: now + options.leaseMs, limit }))
      .immediate();
    return rows.map(rowToRecord);
  }

  async recordDelivery(id: string, update: DeliveryUpdate): Promise<void> {
    const s = await this.#use();
    s.recordDelivery.run({
      id,
      status: update.status,
      attempts: update.attempts,
      nextAt: update.nextAt,
      attempt: toJsonText(update.attempt, 'attempt'),
    });
  }

  async adminList(options: AdminListOptions): Promise<JobRecord[]> {
    const s = await this.#use();
    const { statuses, name, owner, from, to, before } = options;
    const params = {
      // Without a position, one after every job: a time past any, and '' (no id sorts before it).
      beforeCreatedAt: before?.createdAt ?? Number.MAX_SAFE_INTEGER,
      beforeId: before?.id ?? '',
      statuses: statuses === undefined ? null : JSON.stringify(statuses),
      name: name ?? null,
      from: from ?? null,
      to: to ?? null,
      limit: Math.max(0, Math.floor(options.limit)),
      now: Date.now(),
    };
    const rows =
      typeof owner === 'string'
        ? s.adminListOwner.all({ ...params, owner })
        : s.adminList.all({ ...params, anyOwner: owner === undefined ? 1 : 0, owner: null });
    return rows.map(rowToRecord);
  }

  async countJobs(): Promise<JobCount[]> {
    const s = await this.#use();
    return s.countJobs.all({ now: Date.now() }).map(({ name, status, n }) => ({ name, status, count: n }));
  }

  async throughput(options: { windowMs: number; bucketMs: number }): Promise<ThroughputBucket[]> {
    const s = await this.#use();
    const now = Date.now();
    const bucketMs = Math.max(1, Math.floor(options.bucketMs));
    return s.throughput.all({ bucketMs, since: now - options.windowMs, now });
  }

  async timings(options: { windowMs: number }): Promise<JobTimings> {
    const s = await this.#use();
    const now = Date.now();
    const rows = s.timings.all({ since: now - options.windowMs, now });
    return { waitMs: percentiles(rows.map((row) => row.wait)), runMs: percentiles(rows.map((row) => row.run)) };
  }

  async retry(id: string): Promise<AdminOutcome<'retried'>> {
    const s = await this.#use();
    const now = Date.now();
    const row = s.retry.get({ id, now });
    if (row) return { outcome: 'retried', job: rowToRecord(row) };
    const current = s.get.get({ id, now });
    return current ? { outcome: 'refused', job: rowToRecord(current) } : { outcome: 'missing' };
  }

  async remove(id: string): Promise<boolean> {
    const s = await this.#use();
    return s.remove.run({ id, now: Date.now() }).changes > 0;
  }

  async redeliver(id: string): Promise<AdminOutcome<'redelivering'>> {
    const s = await this.#use();
    const now = Date.now();
    const row = s.redeliver.get({ id, now });
    if (row) return { outcome: 'redelivering', job: rowToRecord(row) };
    const current = s.get.get({ id, now });
    return current ? { outcome: 'refused', job: rowToRecord(current) } : { outcome: 'missing' };
  }

  async history(id: string): Promise<JobHistory> {
    const s = await this.#use();
    return parseHistory(s.history.get({ id, now: Date.now() }));
  }

  /** Close the connection when this store opened it; a Database passed in stays open. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#statements = undefined;
    await this.#checkpointerStarted;
    const checkpointer = this.#checkpointer;
    this.#checkpointer = undefined;
    await checkpointer?.stop();
    if (this.#owned && this.database.open) this.database.close();
  }

  /** The prepared statements, after `init()` (run on first use if the caller did not). */
  async #use(): Promise<Statements> {
    this.#assertOpen();
    if (!this.#statements) await this.init();
    this.#assertOpen();
    return this.#statements as Statements;
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError('SQLite');
  }
}

/** Insert one job inside the caller's transaction, or find the unexpired job that holds its key. */
function insertJob(s: Statements, job: NewJob, now: number): CreateResult {
  const scope = job.idempotencyKey === null ? null : keyScope(job.owner, job.idempotencyKey);
  const input = job.inputJson ?? toJsonText(job.input, 'input');
  if (scope !== null) {
    // An expired job no longer binds its key: unbind it so that the insert below takes the key. The row
    // itself is already invisible (get/list hide it) and goes with the next purgeExpired(), as in
    // MemoryStore, which the conformance suite checks (purge counts it).
    s.releaseExpiredKey.run({ scope, now });
  }
  const inserted = s.insert.run({
    id: job.id,
    name: job.name,
    input,
    owner: job.owner,
    idempotencyKey: job.idempotencyKey,
    scope,
    requestHash: job.requestHash,
    maxAttempts: job.maxAttempts,
    callbackUrl: job.callbackUrl,
    traceContext: job.traceContext ?? null,
    now,
  });
  if (inserted.changes === 0 && scope !== null) {
    const existing = s.byScope.get({ scope });
    if (existing) return { job: rowToRecord(existing), created: false };
  }
  return { job: { ...newRecord(job, now), input: parseJson(input) }, created: true };
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}
