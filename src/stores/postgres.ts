// PostgresStore: a JobStore over PostgreSQL (pg), for several processes on several machines.
//
// - Migrations: numbered (./postgres-migrations.ts), run by init() in one transaction under an advisory lock.
// - Times are epoch ms taken from the database clock, so lease and expiry comparisons agree across machines.
// - create() is idempotent through a unique index (INSERT … ON CONFLICT DO NOTHING), not read-then-write.
// - claim() is one UPDATE over a `FOR UPDATE SKIP LOCKED` selection: no job goes to two live leases.
// - A statement trigger announces every change (batched per statement) on '<schema>_changes'; subscribe() LISTENs.
import { createHash } from 'node:crypto';
import type { Client, ClientConfig, Pool, PoolConfig } from 'pg';
import { InputError } from '../core/errors.js';
import type {
  CancelOutcome,
  ClaimOptions,
  CreateResult,
  DeliveryUpdate,
  JobStore,
  LeaseState,
  ListOptions,
} from '../core/store.js';
import type { JobChange, JobErrorInfo, JobRecord, JobStatus, NewJob } from '../core/types.js';
import { isTerminal } from '../core/types.js';
import { keyScope } from './common.js';
import { POSTGRES_MIGRATIONS } from './postgres-migrations.js';

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database`. Ignored when `pool` is given. Default: the PG* environment. */
  connectionString?: string;
  /** A pool of your own. The store uses it and never ends it. */
  pool?: Pool;
  /** Schema holding the store's tables, created by `init()`. Default `respond_async`. */
  schema?: string;
  /** Offer `subscribe()` (a dedicated LISTEN connection) so that workers wake at once and progress reaches SSE streams on other instances. Default true. */
  listen?: boolean;
}

type PgModule = typeof import('pg');
type Row = Record<string, unknown>;

const MISSING_PG = 'respond-async/postgres needs pg: npm install pg';

let pgModule: Promise<PgModule> | undefined;

/** Load `pg` on first use, so that importing the core never does. */
function loadPg(): Promise<PgModule> {
  pgModule ??= import('pg').then(
    (mod) => ((mod as unknown as { default?: PgModule }).default ?? mod) as PgModule,
    (error: unknown) => {
      pgModule = undefined;
      const code = (error as { code?: unknown } | null)?.code;
      if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') throw new Error(MISSING_PG, { cause: error });
      throw error;
    },
  );
  return pgModule;
}

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** The channel is `<schema>_changes`, and PostgreSQL names are at most 63 bytes. */
const MAX_SCHEMA_LENGTH = 63 - '_changes'.length;

/** The database clock in epoch ms. `now()` is the transaction's start: stable within a statement, indexable. */
const NOW = 'floor(extract(epoch from now()) * 1000)::bigint';

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The record's columns; input, result and error are JSON text (migration 3), parsed by toRecord. */
function columns(alias: string): string {
  const a = `${alias}.`;
  return [
    `${a}id`,
    `${a}name`,
    `${a}status`,
    `${a}input`,
    `${a}owner`,
    `${a}idempotency_key`,
    `${a}request_hash`,
    `${a}progress`,
    `${a}message`,
    `${a}result`,
    `${a}result_url`,
    `${a}error`,
    `${a}attempt`,
    `${a}max_attempts`,
    `${a}run_at`,
    `${a}lease_owner`,
    `${a}lease_until`,
    `${a}cancel_requested`,
    `${a}callback_url`,
    `${a}delivery_status`,
    `${a}delivery_attempts`,
    `${a}delivery_next_at`,
    `${a}created_at`,
    `${a}updated_at`,
    `${a}started_at`,
    `${a}finished_at`,
    `${a}expires_at`,
    `${a}seq`,
  ].join(', ');
}

/** Build every statement once per schema; each runs as a named prepared statement. */
function statements(schema: string) {
  const jobs = `${quoteIdent(schema)}.jobs`;
  const cols = columns('j');
  const live = `(j.expires_at IS NULL OR j.expires_at > ${NOW})`;
  const held = `j.id = $1 AND j.status = 'processing' AND j.lease_owner = $2`;
  // Ends a job as $status (the parameter index given), like MemoryStore#finish.
  const finish = (status: string, retention: string) => `status = ${status},
    lease_owner = NULL, lease_until = NULL, cancel_requested = false,
    finished_at = ${NOW}, expires_at = ${NOW} + ${retention}::bigint,
    delivery_status = CASE WHEN j.callback_url IS NOT NULL THEN 'pending' ELSE j.delivery_status END,
    delivery_next_at = CASE WHEN j.callback_url IS NOT NULL THEN ${NOW} ELSE j.delivery_next_at END,
    updated_at = ${NOW}, seq = j.seq + 1`;
  // One value for a job created claimed (its worker column not NULL), another for a queued one.
  const claimedAs = (worker: string, claimed: string, queued: string) =>
    `CASE WHEN ${worker}::text IS NULL THEN ${queued} ELSE ${claimed} END`;
  // Due jobs of the names in `names`, oldest first: queued ones, and processing ones whose lease lapsed.
  const pick = (names: string, limit: string, extra: string) => `
        SELECT c.id FROM ${jobs} c
        WHERE c.name = ANY(${names}::text[]) AND c.status IN ('queued', 'processing')
          AND ((c.status = 'queued' AND c.run_at <= ${NOW})
            OR (c.status = 'processing' AND c.lease_until < ${NOW})) ${extra}
        ORDER BY c.run_at
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED`;
  const claimSet = (worker: string, leaseMs: string) => `status = 'processing', attempt = j.attempt + 1,
        lease_owner = ${worker}, lease_until = ${NOW} + ${leaseMs}::bigint,
        started_at = COALESCE(j.started_at, ${NOW}), updated_at = ${NOW}, seq = j.seq + 1`;
  // A job whose cancel was requested (DELETE answered 202) ends canceled whatever its attempt's outcome: the
  // completion or failure writes check the flag in the same UPDATE, so a cancel committed first always wins.
  const unlessCanceled = (value: string, canceled = "'canceled'") =>
    `CASE WHEN j.cancel_requested THEN ${canceled} ELSE ${value} END`;
  // Completions as parallel arrays ($1 ids, $2 workers, $3 results, $4 result URLs, $5 retentions); each row
  // keeps its own lease check.
  const completeSet = `result = ${unlessCanceled('u.result', 'j.result')},
        result_url = ${unlessCanceled('u.result_url', 'j.result_url')},
        progress = ${unlessCanceled('100', 'j.progress')}, ${finish(unlessCanceled("'complete'"), 'u.retention')}`;
  const completeRows = `FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
        AS u(id, worker, result, result_url, retention)
      WHERE j.id = u.id AND j.status = 'processing' AND j.lease_owner = u.worker`;
  return {
    // An expired job keeps its row (hidden, until purgeExpired) but gives up its key.
    freeExpiredKey: `UPDATE ${jobs} j SET idem_scope = NULL WHERE j.idem_scope = $1 AND j.expires_at <= ${NOW}`,
    // $10/$11: a worker and lease length for a job created already claimed (createClaimed), or NULL.
    insert: `INSERT INTO ${jobs} AS j
      (id, name, status, input, owner, idempotency_key, idem_scope, request_hash, max_attempts, callback_url,
       attempt, lease_owner, lease_until, started_at, run_at, created_at, updated_at)
      VALUES ($1, $2, ${claimedAs('$10', "'processing'", "'queued'")}, $3, $4, $5, $6, $7, $8, $9,
        ${claimedAs('$10', '1', '0')}, $10, ${claimedAs('$10', `${NOW} + $11::bigint`, 'NULL')},
        ${claimedAs('$10', NOW, 'NULL')}, ${NOW}, ${NOW}, ${NOW})
      ON CONFLICT (idem_scope) DO NOTHING
      RETURNING ${cols}`,
    // Group commit: the creates of one event-loop turn in one statement, rows in the order they were submitted.
    // Two rows with one key in the same statement: the first is inserted, the other skipped (DO NOTHING).
    insertMany: `INSERT INTO ${jobs} AS j
      (id, name, status, input, owner, idempotency_key, idem_scope, request_hash, max_attempts, callback_url,
       attempt, lease_owner, lease_until, started_at, run_at, created_at, updated_at)
      SELECT u.id, u.name, ${claimedAs('u.worker', "'processing'", "'queued'")}, u.input, u.owner,
        u.idempotency_key, u.idem_scope, u.request_hash, u.max_attempts, u.callback_url,
        ${claimedAs('u.worker', '1', '0')}, u.worker, ${claimedAs('u.worker', `${NOW} + u.lease_ms`, 'NULL')},
        ${claimedAs('u.worker', NOW, 'NULL')}, ${NOW}, ${NOW}, ${NOW}
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
        $8::integer[], $9::text[], $10::text[], $11::bigint[])
        WITH ORDINALITY AS u(id, name, input, owner, idempotency_key, idem_scope, request_hash, max_attempts,
          callback_url, worker, lease_ms, n)
      ORDER BY u.n
      ON CONFLICT (idem_scope) DO NOTHING
      RETURNING ${cols}`,
    getByKey: `SELECT ${cols} FROM ${jobs} j WHERE j.idem_scope = $1 AND ${live}`,
    get: `SELECT ${cols} FROM ${jobs} j WHERE j.id = $1 AND ${live}`,
    // A page of an owner's jobs after the position ($2, $3), on the index of migration 4. The first page passes a
    // position after every job. Ids compare bytewise (COLLATE "C"), as in the other stores.
    listOwner: `SELECT ${cols} FROM ${jobs} j
      WHERE j.owner = $1 AND (j.created_at, j.id COLLATE "C") < ($2::bigint, $3::text COLLATE "C") AND ${live}
      ORDER BY j.created_at DESC, j.id COLLATE "C" DESC LIMIT $4`,
    listNoOwner: `SELECT ${cols} FROM ${jobs} j
      WHERE j.owner IS NULL AND (j.created_at, j.id COLLATE "C") < ($1::bigint, $2::text COLLATE "C") AND ${live}
      ORDER BY j.created_at DESC, j.id COLLATE "C" DESC LIMIT $3`,
    // The per-owner quota: the same index, counting no further than $2.
    countOwner: `SELECT count(*)::integer AS n FROM (SELECT 1 FROM ${jobs} j WHERE j.owner = $1 AND ${live} LIMIT $2) s`,
    claim: `WITH picked AS MATERIALIZED (${pick('$1', '$3', '')})
      UPDATE ${jobs} j SET ${claimSet('$2', '$4')}
      FROM picked WHERE j.id = picked.id
      RETURNING ${cols}`,
    // The completions waiting in this turn and the claim of the next jobs in one statement (one round trip, one
    // commit). The jobs being completed are left out of the claim: one statement may not update a row twice.
    completeAndClaim: `WITH done AS (
        UPDATE ${jobs} j SET ${completeSet}
        ${completeRows}
        RETURNING ${cols}, true AS done
      ),
      picked AS MATERIALIZED (${pick('$6', '$8', 'AND c.id <> ALL($1::text[])')}),
      claimed AS (
        UPDATE ${jobs} j SET ${claimSet('$7', '$9')}
        FROM picked WHERE j.id = picked.id
        RETURNING ${cols}, false AS done
      )
      SELECT * FROM done UNION ALL SELECT * FROM claimed`,
    renew: `UPDATE ${jobs} j SET lease_until = ${NOW} + $3::bigint
      WHERE j.id = ANY($1::text[]) AND j.status = 'processing' AND j.lease_owner = $2
      RETURNING j.id, j.cancel_requested`,
    progress: `UPDATE ${jobs} j SET progress = $3, message = $4, updated_at = ${NOW}, seq = j.seq + 1
      WHERE ${held} RETURNING ${cols}`,
    complete: `UPDATE ${jobs} j SET result = ${unlessCanceled('$3', 'j.result')},
        result_url = ${unlessCanceled('$4', 'j.result_url')}, progress = ${unlessCanceled('100', 'j.progress')},
        ${finish(unlessCanceled("'complete'"), '$5')}
      WHERE ${held} RETURNING ${cols}`,
    // Completions of one event-loop turn (distinct ids) in one statement; each row keeps its own lease check.
    completeMany: `UPDATE ${jobs} j SET ${completeSet} ${completeRows} RETURNING ${cols}`,
    failFinal: `UPDATE ${jobs} j SET error = ${unlessCanceled('$3', 'j.error')}, ${finish(unlessCanceled("'failed'"), '$4')}
      WHERE ${held} RETURNING ${cols}`,
    // A retry goes back to the queue; with a cancel requested the job ends canceled instead ($5: its retention).
    failRetry: `UPDATE ${jobs} j SET error = ${unlessCanceled('$3', 'j.error')},
        status = ${unlessCanceled("'queued'")}, run_at = ${unlessCanceled('$4::bigint', 'j.run_at')},
        lease_owner = NULL, lease_until = NULL, cancel_requested = false,
        finished_at = ${unlessCanceled('j.finished_at', NOW)},
        expires_at = ${unlessCanceled('j.expires_at', `${NOW} + $5::bigint`)},
        delivery_status = CASE WHEN j.cancel_requested AND j.callback_url IS NOT NULL THEN 'pending'
          ELSE j.delivery_status END,
        delivery_next_at = CASE WHEN j.cancel_requested AND j.callback_url IS NOT NULL THEN ${NOW}
          ELSE j.delivery_next_at END,
        updated_at = ${NOW}, seq = j.seq + 1
      WHERE ${held} RETURNING ${cols}`,
    // Queued: canceled at once. Processing: cancel_requested. SET expressions read the row as it was.
    cancel: `UPDATE ${jobs} j SET
        status = CASE WHEN j.status = 'queued' THEN 'canceled' ELSE j.status END,
        cancel_requested = (j.status = 'processing'),
        lease_owner = CASE WHEN j.status = 'queued' THEN NULL ELSE j.lease_owner END,
        lease_until = CASE WHEN j.status = 'queued' THEN NULL ELSE j.lease_until END,
        finished_at = CASE WHEN j.status = 'queued' THEN ${NOW} ELSE j.finished_at END,
        expires_at = CASE WHEN j.status = 'queued' THEN ${NOW} + $2::bigint ELSE j.expires_at END,
        delivery_status = CASE WHEN j.status = 'queued' AND j.callback_url IS NOT NULL THEN 'pending'
          ELSE j.delivery_status END,
        delivery_next_at = CASE WHEN j.status = 'queued' AND j.callback_url IS NOT NULL THEN ${NOW}
          ELSE j.delivery_next_at END,
        updated_at = ${NOW}, seq = j.seq + 1
      WHERE j.id = $1 AND j.status IN ('queued', 'processing')
      RETURNING ${cols}`,
    markCanceled: `UPDATE ${jobs} j SET ${finish("'canceled'", '$3')} WHERE ${held} RETURNING ${cols}`,
    release: `UPDATE ${jobs} j SET status = 'queued', attempt = GREATEST(0, j.attempt - 1),
        lease_owner = NULL, lease_until = NULL, updated_at = ${NOW}, seq = j.seq + 1
      WHERE ${held}`,
    purge: `DELETE FROM ${jobs} WHERE id IN (
        SELECT p.id FROM ${jobs} p WHERE p.expires_at <= ${NOW} LIMIT $1 FOR UPDATE SKIP LOCKED)`,
    claimDeliveries: `WITH picked AS MATERIALIZED (
        SELECT c.id FROM ${jobs} c
        WHERE c.delivery_status = 'pending' AND c.delivery_next_at <= ${NOW}
        ORDER BY c.delivery_next_at
        LIMIT $1
        FOR UPDATE SKIP LOCKED
      )
      UPDATE ${jobs} j SET delivery_next_at = ${NOW} + $2::bigint
      FROM picked WHERE j.id = picked.id
      RETURNING ${cols}`,
    recordDelivery: `UPDATE ${jobs} j SET delivery_status = $2, delivery_attempts = $3, delivery_next_at = $4::bigint
      WHERE j.id = $1`,
  };
}

type StatementName = keyof ReturnType<typeof statements>;

const PURGE_BATCH = 5000;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;

/**
 * A durable JobStore on PostgreSQL, shared by any number of processes and machines. Needs the `pg` package.
 * Call `init()` (the runtime does) to create or migrate its schema.
 * @example
 * import { PostgresStore } from 'respond-async/postgres';
 * const jobs = createJobs({ store: new PostgresStore({ connectionString: process.env.DATABASE_URL }) });
 */
export class PostgresStore implements JobStore {
  readonly kind = 'postgres';
  /** The schema holding the store's tables. */
  readonly schema: string;
  /** The NOTIFY channel of this store's changes: `<schema>_changes`. */
  readonly channel: string;
  /** Present unless constructed with `listen: false`. */
  readonly subscribe?: (listener: (change: JobChange) => void) => Promise<() => Promise<void>>;

  readonly #connectionString: string | undefined;
  readonly #ownsPool: boolean;
  #pool: Pool | undefined;
  #poolPromise: Promise<Pool> | undefined;
  #ready: Promise<void> | undefined;
  #closed = false;
  readonly #sql: Record<StatementName, string>;
  readonly #prefix: string;
  readonly #subscriptions = new Set<() => Promise<void>>();
  /** Creates and completions waiting for the end of this event-loop turn, to go in one statement each. */
  #creates: Array<Pending<unknown[], CreateResult>> = [];
  #completes: Array<Pending<unknown[], JobRecord | undefined>> = [];

  constructor(options: PostgresStoreOptions = {}) {
    const schema = options.schema ?? 'respond_async';
    if (typeof schema !== 'string' || !SCHEMA_NAME.test(schema) || schema.length > MAX_SCHEMA_LENGTH) {
      throw new TypeError(
        `respond-async: PostgresStore \`schema\` must be an identifier (letters, digits, _; not starting with a digit; at most ${MAX_SCHEMA_LENGTH} characters), got ${JSON.stringify(schema)}`,
      );
    }
    if (options.pool !== undefined && (typeof options.pool !== 'object' || options.pool === null)) {
      throw new TypeError('respond-async: PostgresStore `pool` must be a pg.Pool');
    }
    this.schema = schema;
    this.channel = `${schema}_changes`;
    this.#connectionString = options.connectionString;
    this.#ownsPool = options.pool === undefined;
    this.#pool = options.pool;
    this.#sql = statements(schema);
    // Prepared statement names are per connection: a user pool may serve stores of several schemas.
    this.#prefix = `ra_${createHash('sha256').update(schema).digest('hex').slice(0, 10)}_`;
    if (options.listen ?? true) this.subscribe = (listener) => this.#subscribe(listener);
  }

  /** Create the schema or bring it up to date. Safe from many processes at once (advisory lock). */
  init(): Promise<void> {
    this.#ready ??= this.#migrate().catch((error: unknown) => {
      this.#ready = undefined;
      throw error;
    });
    return this.#ready;
  }

  /**
   * Group commit: the creates of one event-loop turn go to the database in one INSERT (one round trip, one
   * commit). Each caller resolves only once that statement has committed, with its own row; a job whose
   * idempotency key is taken (by another job of the batch too) goes on as a lone create would.
   */
  create(job: NewJob): Promise<CreateResult> {
    return this.#create(job, null, null);
  }

  /** A create (group-committed like the others) whose job is inserted already leased to `lease.workerId`. */
  createClaimed(job: NewJob, lease: { workerId: string; leaseMs: number }): Promise<CreateResult> {
    return this.#create(job, lease.workerId, ms(lease.leaseMs));
  }

  #create(job: NewJob, workerId: string | null, leaseMs: number | null): Promise<CreateResult> {
    const scope = job.idempotencyKey === null ? null : scopeHash(keyScope(job.owner, job.idempotencyKey));
    const values = [
      job.id,
      job.name,
      job.inputJson ?? toJson(job.input),
      job.owner,
      job.idempotencyKey,
      scope,
      job.requestHash,
      job.maxAttempts,
      job.callbackUrl,
      workerId,
      leaseMs,
    ];
    return new Promise((resolve, reject) => {
      if (this.#creates.length === 0) setImmediate(() => this.#flushCreates());
      this.#creates.push({ values, resolve, reject });
    });
  }

  #flushCreates(): void {
    const batch = this.#creates;
    this.#creates = [];
    if (batch.length === 1) {
      settle(batch[0], this.#createOne(batch[0].values, true));
      return;
    }
    this.#query('insertMany', columnsOf(batch)).then(
      (rows) => {
        const inserted = new Map(rows.map((row) => [row.id as string, row]));
        for (const pending of batch) {
          const row = inserted.get(pending.values[0] as string);
          if (row) pending.resolve({ job: toRecord(row), created: true });
          // Not inserted: its key is bound (by an earlier job or one of this batch).
          else settle(pending, this.#createOne(pending.values, false));
        }
      },
      // One bad row must not fail the others: each goes alone, and fails alone.
      () => {
        for (const pending of batch) settle(pending, this.#createOne(pending.values, true));
      },
    );
  }

  /** One create; `insert` false when the INSERT already ran and found the key bound. */
  async #createOne(values: unknown[], insert: boolean): Promise<CreateResult> {
    try {
      return await this.#createOneAttempt(values, insert);
    } catch (error) {
      // A value the database refuses is the request's fault, not an outage: retrying cannot help.
      if (refusedValue(error)) throw new InputError('The job cannot be stored: the database refuses one of its values');
      throw error;
    }
  }

  async #createOneAttempt(values: unknown[], insert: boolean): Promise<CreateResult> {
    const scope = values[5];
    // Without a key nothing conflicts (NULLs are distinct). With one, the unique index decides the race; a
    // conflict with an expired job (its row is kept until purgeExpired) takes the key from it and tries again.
    for (let tries = 0; ; tries++) {
      if (insert || tries > 0) {
        const [inserted] = await this.#query('insert', values);
        if (inserted) return { job: toRecord(inserted), created: true };
      }
      const [existing] = await this.#query('getByKey', [scope]);
      if (existing) return { job: toRecord(existing), created: false };
      if (tries >= 5) throw new Error('respond-async: could not create or find the job for this idempotency key');
      await this.#query('freeExpiredKey', [scope]);
    }
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const [row] = await this.#query('get', [id]);
    return row && toRecord(row);
  }

  async list(options: ListOptions): Promise<JobRecord[]> {
    const limit = Math.max(0, Math.floor(options.limit));
    // Without a position, one after every job: the largest bigint, and '' (no id sorts before it).
    const after = [options.before?.createdAt ?? '9223372036854775807', options.before?.id ?? ''];
    const rows =
      options.owner === null
        ? await this.#query('listNoOwner', [...after, limit])
        : await this.#query('listOwner', [options.owner, ...after, limit]);
    return rows.map(toRecord);
  }

  async countByOwner(owner: string, upTo: number): Promise<number> {
    const [row] = await this.#query('countOwner', [owner, Math.max(0, Math.floor(upTo))]);
    return Number(row?.n ?? 0);
  }

  async getByKey(owner: string, idempotencyKey: string): Promise<JobRecord | undefined> {
    const [row] = await this.#query('getByKey', [scopeHash(keyScope(owner, idempotencyKey))]);
    return row && toRecord(row);
  }

  /**
   * Claims due jobs. Completions waiting for the end of this turn go in the same statement (one round trip, one
   * commit for both): a worker that frees slots and claims again pays once.
   */
  async claim(options: ClaimOptions): Promise<JobRecord[]> {
    const limit = Math.floor(options.limit);
    if (limit <= 0 || options.names.length === 0) return [];
    const names = [...options.names];
    const lease = ms(options.leaseMs);
    const batch = this.#takeCompletes();
    if (batch.length === 0) {
      const rows = await this.#query('claim', [names, options.workerId, limit, lease]);
      return rows.map(toRecord).sort(byRunAt);
    }
    let rows: Row[];
    try {
      rows = await this.#query('completeAndClaim', [...columnsOf(batch), names, options.workerId, limit, lease]);
    } catch (error) {
      // The completions go on alone (each fails alone); the claim is retried by the worker loop.
      for (const pending of batch) settle(pending, this.#completeOne(pending.values));
      throw error;
    }
    const claimed: JobRecord[] = [];
    const done = new Map<string, Row>();
    for (const row of rows) {
      if (row.done === true) done.set(row.id as string, row);
      else claimed.push(toRecord(row));
    }
    resolveCompletes(batch, done);
    return claimed.sort(byRunAt);
  }

  async renew(ids: readonly string[], workerId: string, leaseMs: number): Promise<LeaseState[]> {
    if (ids.length === 0) return [];
    const rows = await this.#query('renew', [[...ids], workerId, ms(leaseMs)]);
    const held = new Map(rows.map((row) => [row.id as string, row.cancel_requested === true]));
    return ids.map((id) => ({ id, held: held.has(id), cancelRequested: held.get(id) ?? false }));
  }

  async progress(id: string, workerId: string, progress: number, message: string | null) {
    const [row] = await this.#query('progress', [id, workerId, progress, message]);
    return row && toRecord(row);
  }

  /**
   * Completions of one event-loop turn go in one UPDATE (one round trip); the lease is still checked per job,
   * so a worker whose lease lapsed completes nothing, as with a lone UPDATE.
   */
  complete(
    id: string,
    workerId: string,
    outcome: { result: unknown; resultUrl: string | null; retentionMs: number },
  ): Promise<JobRecord | undefined> {
    const values = [id, workerId, toJson(outcome.result), outcome.resultUrl, ms(outcome.retentionMs)];
    return new Promise((resolve, reject) => {
      if (this.#completes.length === 0) setImmediate(() => this.#flushCompletes());
      this.#completes.push({ values, resolve, reject });
    });
  }

  #flushCompletes(): void {
    const batch = this.#takeCompletes();
    if (batch.length === 0) return;
    if (batch.length === 1) {
      settle(batch[0], this.#completeOne(batch[0].values));
      return;
    }
    this.#query('completeMany', columnsOf(batch)).then(
      (rows) => resolveCompletes(batch, new Map(rows.map((row) => [row.id as string, row]))),
      () => {
        for (const pending of batch) settle(pending, this.#completeOne(pending.values));
      },
    );
  }

  /** The waiting completions with distinct ids; a job twice in one turn (not expected) goes alone. */
  #takeCompletes(): Array<Pending<unknown[], JobRecord | undefined>> {
    const all = this.#completes;
    if (all.length === 0) return all;
    this.#completes = [];
    const seen = new Set<unknown>();
    const batch: typeof all = [];
    for (const pending of all) {
      if (!seen.has(pending.values[0])) {
        seen.add(pending.values[0]);
        batch.push(pending);
      } else {
        settle(pending, this.#completeOne(pending.values));
      }
    }
    return batch;
  }

  async #completeOne(values: unknown[]): Promise<JobRecord | undefined> {
    try {
      const [row] = await this.#query('complete', values);
      return row && toRecord(row);
    } catch (error) {
      if (!refusedValue(error)) throw error;
      // A result the database refuses would fail the same way on every attempt: the job fails at once, with a code
      // saying why, instead of being retried as if the store were down.
      const [id, workerId, , , retentionMs] = values;
      const [row] = await this.#query('failFinal', [id, workerId, toJson(RESULT_NOT_STORABLE), retentionMs]);
      return row && toRecord(row);
    }
  }

  async fail(
    id: string,
    workerId: string,
    outcome: { error: JobErrorInfo; retryAt: number | null; retentionMs: number },
  ): Promise<JobRecord | undefined> {
    const error = toJson(outcome.error);
    const [row] =
      outcome.retryAt !== null
        ? await this.#query('failRetry', [id, workerId, error, ms(outcome.retryAt), ms(outcome.retentionMs)])
        : await this.#query('failFinal', [id, workerId, error, ms(outcome.retentionMs)]);
    return row && toRecord(row);
  }

  async cancel(id: string, options: { retentionMs: number }): Promise<{ outcome: CancelOutcome; job?: JobRecord }> {
    for (let tries = 0; tries < 10; tries++) {
      const [changed] = await this.#query('cancel', [id, ms(options.retentionMs)]);
      if (changed) {
        const job = toRecord(changed);
        return { outcome: job.status === 'canceled' ? 'canceled' : 'requested', job };
      }
      const job = await this.get(id);
      if (!job) return { outcome: 'missing' };
      if (isTerminal(job.status)) return { outcome: 'finished', job };
      // It was finishing and went back to the queue (a retry) between the two statements: try again.
    }
    throw new Error(`respond-async: job ${id} kept changing while being canceled`);
  }

  async markCanceled(id: string, workerId: string, options: { retentionMs: number }) {
    const [row] = await this.#query('markCanceled', [id, workerId, ms(options.retentionMs)]);
    return row && toRecord(row);
  }

  async release(id: string, workerId: string): Promise<void> {
    await this.#query('release', [id, workerId]);
  }

  async purgeExpired(): Promise<number> {
    let removed = 0;
    for (;;) {
      const pool = await this.#getPool();
      const result = await pool.query({ name: this.#prefix + 'purge', text: this.#sql.purge, values: [PURGE_BATCH] });
      const count = result.rowCount ?? 0;
      removed += count;
      if (count < PURGE_BATCH) return removed;
    }
  }

  async claimDeliveries(options: { limit: number; leaseMs: number }): Promise<JobRecord[]> {
    const limit = Math.floor(options.limit);
    if (limit <= 0) return [];
    const rows = await this.#query('claimDeliveries', [limit, ms(options.leaseMs)]);
    return rows.map(toRecord).sort((a, b) => (a.deliveryNextAt ?? 0) - (b.deliveryNextAt ?? 0));
  }

  async recordDelivery(id: string, update: DeliveryUpdate): Promise<void> {
    const nextAt = update.nextAt === null ? null : ms(update.nextAt);
    await this.#query('recordDelivery', [id, update.status, update.attempts, nextAt]);
  }

  /** Ends LISTEN connections and the pool the store created (never a pool you passed in). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#subscriptions].map((unsubscribe) => unsubscribe()));
    if (this.#ownsPool) {
      const pool = this.#pool ?? (await this.#poolPromise?.catch(() => undefined));
      this.#pool = undefined;
      await pool?.end().catch(() => {});
    }
  }

  async #getPool(): Promise<Pool> {
    if (this.#closed) throw new Error('respond-async: the PostgresStore is closed');
    if (this.#pool) return this.#pool;
    this.#poolPromise ??= loadPg().then((pg) => {
      const config: PoolConfig = {
        connectionString: this.#connectionString,
        application_name: 'respond-async',
        connectionTimeoutMillis: 10_000,
        keepAlive: true,
      };
      const pool = new pg.Pool(config);
      // An idle connection that drops (a database restart) must not crash the process; the next query reconnects.
      pool.on('error', () => {});
      this.#pool = pool;
      return pool;
    });
    const pool = await this.#poolPromise;
    if (this.#closed) {
      await pool.end().catch(() => {});
      throw new Error('respond-async: the PostgresStore is closed');
    }
    return pool;
  }

  async #query(name: StatementName, values: unknown[]): Promise<Row[]> {
    const pool = await this.#getPool();
    const result = await pool.query<Row>({ name: this.#prefix + name, text: this.#sql[name], values });
    return result.rows;
  }

  async #migrate(): Promise<void> {
    const pool = await this.#getPool();
    const client = await pool.connect();
    let failure: Error | undefined;
    try {
      const schema = quoteIdent(this.schema);
      await client.query('BEGIN');
      // Serializes every instance migrating this schema, until this transaction ends.
      await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`respond-async:${this.schema}`]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await client.query(`SET LOCAL search_path TO ${schema}`);
      await client.query(`CREATE TABLE IF NOT EXISTS migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
      const { rows } = await client.query<{ version: number }>('SELECT version FROM migrations');
      const applied = new Set(rows.map((row) => Number(row.version)));
      for (const migration of POSTGRES_MIGRATIONS) {
        if (applied.has(migration.version)) continue;
        await client.query(migration.sql);
        await client.query('INSERT INTO migrations (version, name) VALUES ($1, $2)', [
          migration.version,
          migration.name,
        ]);
      }
      await client.query('COMMIT');
    } catch (error) {
      failure = error instanceof Error ? error : new Error(String(error));
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release(failure);
    }
  }

  /** A dedicated connection LISTENing on the channel; it reconnects with backoff whenever it drops. */
  async #subscribe(listener: (change: JobChange) => void): Promise<() => Promise<void>> {
    if (this.#closed) throw new Error('respond-async: the PostgresStore is closed');
    const pg = await loadPg();
    const base: ClientConfig = this.#pool
      ? { ...((this.#pool as unknown as { options?: ClientConfig }).options ?? {}) }
      : { connectionString: this.#connectionString, connectionTimeoutMillis: 10_000 };
    const config: ClientConfig = { ...base, application_name: 'respond-async-listen', keepAlive: true };
    const listen = `LISTEN ${quoteIdent(this.channel)}`;
    let current: Client | undefined;
    let timer: NodeJS.Timeout | undefined;
    let delay = RECONNECT_MIN_MS;
    let stopped = false;

    const onNotification = (message: { channel: string; payload?: string }) => {
      if (message.channel !== this.channel || message.payload === undefined) return;
      for (const change of parseChanges(message.payload)) {
        try {
          listener(change);
        } catch {
          // A listener's failure is its own; the feed goes on.
        }
      }
    };

    const lost = (client: Client) => {
      if (current !== client) return;
      current = undefined;
      client.removeListener('notification', onNotification);
      client.end().catch(() => {});
      if (stopped) return;
      const wait = Math.round(delay * (0.5 + Math.random() / 2));
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
      timer = setTimeout(() => {
        timer = undefined;
        void connect();
      }, wait);
      timer.unref();
    };

    const connect = async (): Promise<void> => {
      if (stopped) return;
      const client = new pg.Client(config);
      current = client;
      client.on('error', () => lost(client));
      client.on('end', () => lost(client));
      client.on('notification', onNotification);
      try {
        await client.connect();
        await client.query(listen);
        if (current === client) delay = RECONNECT_MIN_MS;
      } catch {
        lost(client);
      }
    };

    const unsubscribe = async () => {
      stopped = true;
      this.#subscriptions.delete(unsubscribe);
      clearTimeout(timer);
      const client = current;
      current = undefined;
      if (client) {
        client.removeListener('notification', onNotification);
        await client.end().catch(() => {});
      }
    };
    this.#subscriptions.add(unsubscribe);
    // The first attempt is awaited so that changes made after subscribe() resolves are heard; if the database
    // cannot be reached now, the feed keeps trying in the background.
    await connect();
    return unsubscribe;
  }
}

interface Pending<Values, Result> {
  values: Values;
  resolve(result: Result): void;
  reject(error: unknown): void;
}

/** Parallel arrays (one per parameter) of a batch's values, for unnest(). */
function columnsOf(batch: ReadonlyArray<Pending<unknown[], unknown>>): unknown[][] {
  return batch[0].values.map((_, index) => batch.map((pending) => pending.values[index]));
}

/** Each completion gets its row, or undefined where its lease was no longer held. */
function resolveCompletes(batch: ReadonlyArray<Pending<unknown[], JobRecord | undefined>>, done: Map<string, Row>) {
  for (const pending of batch) {
    const row = done.get(pending.values[0] as string);
    pending.resolve(row && toRecord(row));
  }
}

function byRunAt(a: JobRecord, b: JobRecord): number {
  return a.runAt - b.runAt;
}

function settle<Result>(pending: Pending<unknown, Result>, work: Promise<Result>): void {
  work.then(pending.resolve, pending.reject);
}

const RESULT_NOT_STORABLE: JobErrorInfo = {
  message: 'The result cannot be stored',
  code: 'ERR_RESPOND_ASYNC_RESULT_NOT_STORABLE',
};

/**
 * The database refused a value (SQLSTATE class 22, data exception, e.g. U+0000 in a text column; or 54000, a value
 * over a size limit): the same write would fail again, so it is not an outage.
 */
function refusedValue(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('22') || code === '54000');
}

function scopeHash(scope: string): string {
  return createHash('sha256').update(scope).digest('hex');
}

/** JSON text for a JSON column (escapes U+0000 and lone surrogates); undefined becomes SQL NULL. */
function toJson(value: unknown): string | null {
  if (value === undefined) return null;
  return JSON.stringify(value) ?? null;
}

function fromJson(text: unknown): unknown {
  return text === null || text === undefined ? undefined : JSON.parse(text as string);
}

/** A whole number of ms for a bigint parameter. */
function ms(value: number): number {
  return Math.round(value);
}

function num(value: unknown): number {
  return Number(value);
}

function numOrNull(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

function toRecord(row: Row): JobRecord {
  const error = fromJson(row.error);
  return {
    id: row.id as string,
    name: row.name as string,
    status: row.status as JobStatus,
    input: fromJson(row.input),
    owner: (row.owner as string | null) ?? null,
    idempotencyKey: (row.idempotency_key as string | null) ?? null,
    requestHash: (row.request_hash as string | null) ?? null,
    progress: numOrNull(row.progress),
    message: (row.message as string | null) ?? null,
    result: fromJson(row.result),
    resultUrl: (row.result_url as string | null) ?? null,
    error: error === undefined || error === null ? null : (error as JobErrorInfo),
    attempt: num(row.attempt),
    maxAttempts: num(row.max_attempts),
    runAt: num(row.run_at),
    leaseOwner: (row.lease_owner as string | null) ?? null,
    leaseUntil: numOrNull(row.lease_until),
    cancelRequested: row.cancel_requested === true,
    callbackUrl: (row.callback_url as string | null) ?? null,
    deliveryStatus: (row.delivery_status as JobRecord['deliveryStatus']) ?? null,
    deliveryAttempts: num(row.delivery_attempts),
    deliveryNextAt: numOrNull(row.delivery_next_at),
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
    startedAt: numOrNull(row.started_at),
    finishedAt: numOrNull(row.finished_at),
    expiresAt: numOrNull(row.expires_at),
    seq: num(row.seq),
  };
}

/** A notification's changes: a JSON array of `[id, status, seq]` (migration 2), or one `{id, status, seq}` object. */
function parseChanges(payload: string): JobChange[] {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return [];
  }
  if (!Array.isArray(value)) {
    const one = value as Partial<JobChange> | null;
    if (typeof one?.id !== 'string' || typeof one.status !== 'string') return [];
    return [{ id: one.id, status: one.status, seq: Number(one.seq) }];
  }
  const changes: JobChange[] = [];
  for (const entry of value) {
    if (!Array.isArray(entry) || typeof entry[0] !== 'string' || typeof entry[1] !== 'string') continue;
    changes.push({ id: entry[0], status: entry[1] as JobStatus, seq: Number(entry[2]) });
  }
  return changes;
}
