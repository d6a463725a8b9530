// PostgresStore: a JobStore over PostgreSQL (pg), for several processes on several machines.
//
// - Migrations: numbered (./postgres-migrations.ts), run by init() in one transaction under an advisory lock.
// - Times are epoch ms taken from the database clock, so lease and expiry comparisons agree across machines.
// - create() is idempotent through a unique index (INSERT … ON CONFLICT DO NOTHING), not read-then-write.
// - claim() is one UPDATE over a `FOR UPDATE SKIP LOCKED` selection: no job goes to two live leases.
// - A statement trigger announces changes (batched per statement) on '<schema>_changes'; subscribe() LISTENs. While no
//   process has watchers (setWatching), only what workers need: queued jobs and cancel requests.
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client, ClientConfig, Pool, PoolConfig, QueryResult } from 'pg';
import { DriverMissingError, InputError, SchemaTooNewError, StoreClosedError } from '../core/errors.js';
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
  Percentiles,
  SlotOffer,
  ThroughputBucket,
} from '../core/store.js';
import type { JobChange, JobErrorInfo, JobRecord, JobStatus, NewJob } from '../core/types.js';
import { isTerminal } from '../core/types.js';
import { type JobRow, keyScope, parseHistory, rowToRecord, toJsonText } from './common.js';
import { POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION } from './postgres-migrations.js';

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
/** A row as pg returns it (bigint columns as strings); completeAndClaim adds `done`. */
type Row = JobRow & { done?: boolean };

let pgModule: Promise<PgModule> | undefined;

/** Load `pg` on first use, so that importing the core never does. */
function loadPg(): Promise<PgModule> {
  pgModule ??= import('pg').then(
    (mod) => ((mod as unknown as { default?: PgModule }).default ?? mod) as PgModule,
    (error: unknown) => {
      pgModule = undefined;
      const code = (error as { code?: unknown } | null)?.code;
      if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
        throw new DriverMissingError('pg', 'install it (npm install pg) or pass `pool` (a pg.Pool)', error);
      }
      throw error;
    },
  );
  return pgModule;
}

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** The channel is `<schema>_changes`, and PostgreSQL names are at most 63 bytes. */
const MAX_SCHEMA_LENGTH = 63 - '_changes'.length;

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The NOTIFY channel, as a SQL string literal, of the schema `schema` (a quoted identifier of SCHEMA_NAME). */
function channelLiteral(schema: string): string {
  return `'${schema.slice(1, -1)}_changes'`;
}

/** The largest row a hand-off notification carries (PostgreSQL's payload limit is 8000 bytes). */
const HANDOFF_ROW_BYTES = 7000;

/**
 * Every statement the store runs, one per operation, given the store's schema (`schema`, a quoted identifier, the
 * one thing interpolated). Each runs as a named prepared statement; its parameters are bound by name through
 * PARAMS below.
 *
 * - The clock is the database's: `floor(extract(epoch from now()) * 1000)::bigint`, epoch ms. `now()` is the
 *   transaction's start, so it is one value within a statement, and comparisons with it can use an index.
 * - A row is live while `expires_at IS NULL OR expires_at > now`; a worker holds a job while `status =
 *   'processing' AND lease_owner = <worker>`.
 * - When a job ends (complete, fail for good, cancel) its lease goes, its retention starts and its webhook, if
 *   any, is armed.
 * - A job whose cancel was requested (DELETE answered 202) ends canceled whatever its attempt's outcome: the final
 *   writes (complete, failFinal, failRetry) check the flag in the same UPDATE, so a cancel committed first wins.
 * - Rows come back as an explicit column list rather than `*`: a column added by a later migration must not
 *   change the result type of a statement that a process of this version has prepared (PostgreSQL refuses to run
 *   it then), during a rolling upgrade.
 */
const SQL = {
  // $1 scope. An expired job keeps its row (hidden, until purgeExpired) but gives up its key.
  freeExpiredKey: (schema: string) => `
    UPDATE ${schema}.jobs j SET idem_scope = NULL
    WHERE j.idem_scope = $1 AND j.expires_at <= floor(extract(epoch from now()) * 1000)::bigint`,

  // $1 id, $2 name, $3 input, $4 owner, $5 idempotency_key, $6 idem_scope, $7 request_hash, $8 max_attempts,
  // $9 callback_url, $10 worker, $11 lease ms, $12 trace_context. A job created already claimed (createClaimed) has a worker;
  // a queued one has NULL in both. A worker that takes a job of its own process so uses up one of the slots it
  // offers (migration 14), if any and not being taken by another create, so that no create hands it a job on top.
  insert: (schema: string) => `
    WITH own AS (
      UPDATE ${schema}.workers w SET free = w.free - 1
      WHERE w.id = (SELECT o.id FROM ${schema}.workers o WHERE o.id = $10 AND o.free > 0 FOR UPDATE SKIP LOCKED))
    INSERT INTO ${schema}.jobs AS j
      (id, name, status, input, owner, idempotency_key, idem_scope, request_hash, max_attempts, callback_url,
       trace_context, attempt, lease_owner, lease_until, started_at, run_at, created_at, updated_at)
    VALUES ($1, $2, CASE WHEN $10::text IS NULL THEN 'queued' ELSE 'processing' END, $3, $4, $5, $6, $7, $8, $9,
      $12,
      CASE WHEN $10::text IS NULL THEN 0 ELSE 1 END,
      $10,
      CASE WHEN $10::text IS NULL THEN NULL ELSE floor(extract(epoch from now()) * 1000)::bigint + $11::bigint END,
      CASE WHEN $10::text IS NULL THEN NULL ELSE floor(extract(epoch from now()) * 1000)::bigint END,
      floor(extract(epoch from now()) * 1000)::bigint,
      floor(extract(epoch from now()) * 1000)::bigint,
      floor(extract(epoch from now()) * 1000)::bigint)
    ON CONFLICT (idem_scope) DO NOTHING
    RETURNING j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context`,

  // A lone create ($1..$9 as insert's, $10 trace_context) that takes a slot an idle worker offers for its job's name
  // (migration 14), if any, and inserts the job already leased to that worker for the worker's lease length; queued
  // otherwise. A locked offer is skipped, not waited for. A handed job is announced to its worker in the same
  // transaction, ahead of the trigger's notification, as [[id, status, seq, lease_owner, row]]: the worker starts
  // it without a claim, or a read where the row would not fit in a notification (row null). A create whose key is
  // bound already (a client's resubmit) takes no slot; one that loses a race for its key has used the slot for
  // nothing, and the worker offers again when idle.
  insertHanded: (schema: string) => `
    WITH offer AS (
      UPDATE ${schema}.workers w SET free = w.free - 1
      WHERE w.id = (
        SELECT o.id FROM ${schema}.workers o
        WHERE o.free > 0 AND o.until > floor(extract(epoch from now()) * 1000)::bigint AND $2::text = ANY(o.names)
          AND NOT EXISTS (SELECT 1 FROM ${schema}.jobs k WHERE k.idem_scope = $6)
        ORDER BY o.free DESC
        LIMIT 1
        FOR UPDATE SKIP LOCKED)
      RETURNING w.id, w.lease_ms),
    created AS (
      INSERT INTO ${schema}.jobs AS j
        (id, name, status, input, owner, idempotency_key, idem_scope, request_hash, max_attempts, callback_url,
         trace_context, attempt, lease_owner, lease_until, started_at, run_at, created_at, updated_at)
      VALUES ($1, $2, CASE WHEN (SELECT h.id FROM offer h) IS NULL THEN 'queued' ELSE 'processing' END, $3, $4, $5,
        $6, $7, $8, $9, $10,
        CASE WHEN (SELECT h.id FROM offer h) IS NULL THEN 0 ELSE 1 END,
        (SELECT h.id FROM offer h),
        floor(extract(epoch from now()) * 1000)::bigint + (SELECT h.lease_ms FROM offer h),
        CASE WHEN (SELECT h.id FROM offer h) IS NULL THEN NULL ELSE floor(extract(epoch from now()) * 1000)::bigint END,
        floor(extract(epoch from now()) * 1000)::bigint,
        floor(extract(epoch from now()) * 1000)::bigint,
        floor(extract(epoch from now()) * 1000)::bigint)
      ON CONFLICT (idem_scope) DO NOTHING
      RETURNING j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
        j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
        j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
        j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context),
    -- One row whatever happens, so that the join below keeps the created row; volatile, so it always runs.
    announced AS (
      SELECT count(pg_notify(${channelLiteral(schema)}, json_build_array(json_build_array(c.id, c.status, c.seq,
        c.lease_owner, CASE WHEN octet_length(to_json(c)::text) <= ${HANDOFF_ROW_BYTES} THEN to_json(c) END))::text))
      FROM created c
      WHERE c.lease_owner IS NOT NULL)
    SELECT c.id, c.name, c.status, c.input, c.owner, c.idempotency_key, c.request_hash, c.progress, c.message,
      c.result, c.result_url, c.error, c.attempt, c.max_attempts, c.run_at, c.lease_owner, c.lease_until,
      c.cancel_requested, c.callback_url, c.delivery_status, c.delivery_attempts, c.delivery_next_at,
      c.created_at, c.updated_at, c.started_at, c.finished_at, c.expires_at, c.seq, c.trace_context
    FROM created c, announced`,

  // $1 worker, $2 names, $3 free slots (NULL: keep the count, extend the offer), $4 lease ms, $5 ttl ms. An idle
  // worker's offer (migration 14); lapsed offers of other workers (processes that died) go at the same time.
  offerSlots: (schema: string) => `
    WITH lapsed AS (
      DELETE FROM ${schema}.workers g
      WHERE g.until < floor(extract(epoch from now()) * 1000)::bigint AND g.id <> $1)
    INSERT INTO ${schema}.workers AS w (id, names, free, lease_ms, until)
    VALUES ($1, $2, COALESCE($3::integer, 0), $4, floor(extract(epoch from now()) * 1000)::bigint + $5::bigint)
    ON CONFLICT (id) DO UPDATE SET names = excluded.names, free = COALESCE($3::integer, w.free),
      lease_ms = excluded.lease_ms, until = excluded.until
    RETURNING w.free`,

  // $1 worker
  withdrawSlots: (schema: string) => `
    DELETE FROM ${schema}.workers w WHERE w.id = $1`,

  // $1 process, $2 ttl ms. A process with watchers asks for every change to be announced until `until` (migration
  // 15); lapsed rows of other processes (that died) go at the same time.
  registerWatcher: (schema: string) => `
    WITH lapsed AS (
      DELETE FROM ${schema}.watchers g
      WHERE g.until < floor(extract(epoch from now()) * 1000)::bigint AND g.id <> $1)
    INSERT INTO ${schema}.watchers AS w (id, until)
    VALUES ($1, floor(extract(epoch from now()) * 1000)::bigint + $2::bigint)
    ON CONFLICT (id) DO UPDATE SET until = excluded.until`,

  // $1 process
  withdrawWatcher: (schema: string) => `
    DELETE FROM ${schema}.watchers w WHERE w.id = $1`,

  // Group commit: the creates of one event-loop turn in one statement, as parallel arrays of insert's
  // parameters ($1..$12), rows in the order they were submitted. Two rows with one key in the same statement:
  // the first is inserted, the other skipped (DO NOTHING).
  insertMany: (schema: string) => `
    WITH own AS (
      UPDATE ${schema}.workers w SET free = GREATEST(0, w.free - c.n)
      FROM (SELECT u.worker, count(*) AS n FROM unnest($10::text[]) u(worker) WHERE u.worker IS NOT NULL
        GROUP BY u.worker) c
      WHERE w.id = c.worker AND w.id IN (
        SELECT o.id FROM ${schema}.workers o
        WHERE o.id = ANY($10::text[]) AND o.free > 0
        FOR UPDATE SKIP LOCKED))
    INSERT INTO ${schema}.jobs AS j
      (id, name, status, input, owner, idempotency_key, idem_scope, request_hash, max_attempts, callback_url,
       trace_context, attempt, lease_owner, lease_until, started_at, run_at, created_at, updated_at)
    SELECT u.id, u.name, CASE WHEN u.worker::text IS NULL THEN 'queued' ELSE 'processing' END, u.input, u.owner,
      u.idempotency_key, u.idem_scope, u.request_hash, u.max_attempts, u.callback_url, u.trace_context,
      CASE WHEN u.worker::text IS NULL THEN 0 ELSE 1 END,
      u.worker,
      CASE WHEN u.worker::text IS NULL THEN NULL ELSE floor(extract(epoch from now()) * 1000)::bigint + u.lease_ms END,
      CASE WHEN u.worker::text IS NULL THEN NULL ELSE floor(extract(epoch from now()) * 1000)::bigint END,
      floor(extract(epoch from now()) * 1000)::bigint,
      floor(extract(epoch from now()) * 1000)::bigint,
      floor(extract(epoch from now()) * 1000)::bigint
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
      $8::integer[], $9::text[], $10::text[], $11::bigint[], $12::text[])
      WITH ORDINALITY AS u(id, name, input, owner, idempotency_key, idem_scope, request_hash, max_attempts,
        callback_url, worker, lease_ms, trace_context, n)
    ORDER BY u.n
    ON CONFLICT (idem_scope) DO NOTHING
    RETURNING j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context`,

  // $1 scope
  getByKey: (schema: string) => `
    SELECT j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context
    FROM ${schema}.jobs j
    WHERE j.idem_scope = $1
      AND (j.expires_at IS NULL OR j.expires_at > floor(extract(epoch from now()) * 1000)::bigint)`,

  // $1 id
  get: (schema: string) => `
    SELECT j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context
    FROM ${schema}.jobs j
    WHERE j.id = $1
      AND (j.expires_at IS NULL OR j.expires_at > floor(extract(epoch from now()) * 1000)::bigint)`,

  // $1 owner, $2 $3 the position to list after (created_at, id), $4 limit (or the page size written in: see
  // PostgresStore.list). A page of an owner's jobs: its positions from the index of migration 4 alone (it holds
  // expires_at), then each job by its key, in the page's order. Read that way, a page costs PostgreSQL's estimate
  // the same for any owner and position, so the one generic plan is kept (a single index scan is judged cheaper
  // for owners with many jobs than for the average owner, and planned again for every call). The first page
  // passes a position after every job. Ids compare bytewise (COLLATE "C"), as in the other stores.
  listOwner: (schema: string, limit: number | '$4' = '$4') => `
    SELECT j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context
    FROM (
      SELECT p.id, p.created_at FROM ${schema}.jobs p
      WHERE p.owner = $1 AND (p.created_at, p.id COLLATE "C") < ($2::bigint, $3::text COLLATE "C")
        AND (p.expires_at IS NULL OR p.expires_at > floor(extract(epoch from now()) * 1000)::bigint)
      ORDER BY p.created_at DESC, p.id COLLATE "C" DESC
      LIMIT ${limit}) k
    JOIN ${schema}.jobs j ON j.id = k.id
    ORDER BY k.created_at DESC, k.id COLLATE "C" DESC`,

  // $1 $2 the position to list after (created_at, id), $3 limit (or the page size written in), read as listOwner
  // reads, on the index of migration 8.
  listNoOwner: (schema: string, limit: number | '$3' = '$3') => `
    SELECT j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context
    FROM (
      SELECT p.id, p.created_at FROM ${schema}.jobs p
      WHERE p.owner IS NULL AND (p.created_at, p.id COLLATE "C") < ($1::bigint, $2::text COLLATE "C")
        AND (p.expires_at IS NULL OR p.expires_at > floor(extract(epoch from now()) * 1000)::bigint)
      ORDER BY p.created_at DESC, p.id COLLATE "C" DESC
      LIMIT ${limit}) k
    JOIN ${schema}.jobs j ON j.id = k.id
    ORDER BY k.created_at DESC, k.id COLLATE "C" DESC`,

  // $1 owner, $2 up to. The per-owner quota. The rows the owner holds (owner_jobs, kept by triggers, migration 9)
  // bound its unexpired jobs from above: under $2 they answer (the interface allows jobs past expires_at in a count
  // under the bound). At $2, only an exact count may say the owner is at the bound: the owner's unexpired jobs on
  // jobs_owner_page_idx, counted no further than $2 (the subquery runs only then).
  countOwner: (schema: string) => `
    SELECT CASE WHEN h.n < $2 THEN h.n ELSE (
      SELECT count(*)::integer FROM (
        SELECT 1 FROM ${schema}.jobs j
        WHERE j.owner = $1
        AND (j.expires_at IS NULL OR j.expires_at > floor(extract(epoch from now()) * 1000)::bigint)
        LIMIT $2) s) END AS n
    FROM (SELECT COALESCE((SELECT o.n FROM ${schema}.owner_jobs o WHERE o.owner = $1), 0)::integer AS n) h`,

  // $1 names, $2 worker, $3 limit, $4 lease ms. Due jobs of those names, oldest first: queued ones, and
  // processing ones whose lease lapsed (claim_jobs, migration 6).
  claim: (schema: string) => `
    SELECT j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context
    FROM ${schema}.claim_jobs($1::text[], $2::text, $3::integer, $4::bigint, '{}'::text[]) j`,

  // completeMany's parameters ($1..$5) and claim's ($6 names, $7 worker, $8 limit, $9 lease ms): the completions
  // waiting in this turn and the claim of the next jobs in one statement (one round trip, one commit). The jobs
  // being completed are left out of the claim: one statement may not update a row twice. The rows to complete are
  // found by id (`= ANY`, on the primary key); the status check is written `IS TRUE` (status is NOT NULL, so it
  // means the same) so that the planner does not also read the whole partial claim index to check it.
  completeAndClaim: (schema: string) => `
    WITH done AS (
      UPDATE ${schema}.jobs j SET
        result = CASE WHEN j.cancel_requested THEN j.result ELSE u.result END,
        result_url = CASE WHEN j.cancel_requested THEN j.result_url ELSE u.result_url END,
        progress = CASE WHEN j.cancel_requested THEN j.progress ELSE 100 END,
        status = CASE WHEN j.cancel_requested THEN 'canceled' ELSE 'complete' END,
        lease_owner = NULL, lease_until = NULL, cancel_requested = false,
        finished_at = floor(extract(epoch from now()) * 1000)::bigint,
        expires_at = floor(extract(epoch from now()) * 1000)::bigint + u.retention::bigint,
        delivery_status = CASE WHEN j.callback_url IS NOT NULL THEN 'pending' ELSE j.delivery_status END,
        delivery_next_at = CASE WHEN j.callback_url IS NOT NULL
          THEN floor(extract(epoch from now()) * 1000)::bigint ELSE j.delivery_next_at END,
        updated_at = floor(extract(epoch from now()) * 1000)::bigint, seq = j.seq + 1
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
        AS u(id, worker, result, result_url, retention)
      WHERE j.id = ANY($1::text[]) AND j.id = u.id AND (j.status = 'processing') IS TRUE AND j.lease_owner = u.worker
      RETURNING j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
        j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
        j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
        j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context, true AS done
    ),
    claimed AS (
      SELECT j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
        j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
        j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
        j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context, false AS done
      FROM ${schema}.claim_jobs($6::text[], $7::text, $8::integer, $9::bigint, $1::text[]) j
    )
    SELECT * FROM done UNION ALL SELECT * FROM claimed`,

  // $1 ids, $2 worker, $3 lease ms
  renew: (schema: string) => `
    UPDATE ${schema}.jobs j SET lease_until = floor(extract(epoch from now()) * 1000)::bigint + $3::bigint
    WHERE j.id = ANY($1::text[]) AND j.status = 'processing' AND j.lease_owner = $2
    RETURNING j.id, j.cancel_requested`,

  // $1 id, $2 worker, $3 progress, $4 message
  progress: (schema: string) => `
    UPDATE ${schema}.jobs j SET progress = $3, message = $4,
      updated_at = floor(extract(epoch from now()) * 1000)::bigint, seq = j.seq + 1
    WHERE j.id = $1 AND j.status = 'processing' AND j.lease_owner = $2
    RETURNING j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context`,

  // $1 id, $2 worker, $3 result, $4 result URL, $5 retention ms
  complete: (schema: string) => `
    UPDATE ${schema}.jobs j SET
      result = CASE WHEN j.cancel_requested THEN j.result ELSE $3 END,
      result_url = CASE WHEN j.cancel_requested THEN j.result_url ELSE $4 END,
      progress = CASE WHEN j.cancel_requested THEN j.progress ELSE 100 END,
      status = CASE WHEN j.cancel_requested THEN 'canceled' ELSE 'complete' END,
      lease_owner = NULL, lease_until = NULL, cancel_requested = false,
      finished_at = floor(extract(epoch from now()) * 1000)::bigint,
      expires_at = floor(extract(epoch from now()) * 1000)::bigint + $5::bigint,
      delivery_status = CASE WHEN j.callback_url IS NOT NULL THEN 'pending' ELSE j.delivery_status END,
      delivery_next_at = CASE WHEN j.callback_url IS NOT NULL
        THEN floor(extract(epoch from now()) * 1000)::bigint ELSE j.delivery_next_at END,
      updated_at = floor(extract(epoch from now()) * 1000)::bigint, seq = j.seq + 1
    WHERE j.id = $1 AND j.status = 'processing' AND j.lease_owner = $2
    RETURNING j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context`,

  // complete's parameters as parallel arrays ($1 ids, $2 workers, $3 results, $4 result URLs, $5 retentions):
  // the completions of one event-loop turn (distinct ids) in one statement, each row with its own lease check.
  // Rows found by id, as in completeAndClaim.
  completeMany: (schema: string) => `
    UPDATE ${schema}.jobs j SET
      result = CASE WHEN j.cancel_requested THEN j.result ELSE u.result END,
      result_url = CASE WHEN j.cancel_requested THEN j.result_url ELSE u.result_url END,
      progress = CASE WHEN j.cancel_requested THEN j.progress ELSE 100 END,
      status = CASE WHEN j.cancel_requested THEN 'canceled' ELSE 'complete' END,
      lease_owner = NULL, lease_until = NULL, cancel_requested = false,
      finished_at = floor(extract(epoch from now()) * 1000)::bigint,
      expires_at = floor(extract(epoch from now()) * 1000)::bigint + u.retention::bigint,
      delivery_status = CASE WHEN j.callback_url IS NOT NULL THEN 'pending' ELSE j.delivery_status END,
      delivery_next_at = CASE WHEN j.callback_url IS NOT NULL
        THEN floor(extract(epoch from now()) * 1000)::bigint ELSE j.delivery_next_at END,
      updated_at = floor(extract(epoch from now()) * 1000)::bigint, seq = j.seq + 1
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
      AS u(id, worker, result, result_url, retention)
    WHERE j.id = ANY($1::text[]) AND j.id = u.id AND (j.status = 'processing') IS TRUE AND j.lease_owner = u.worker
    RETURNING j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context`,

  // $1 id, $2 worker, $3 error, $4 retention ms, $5 the attempt for the history (JSON text, or NULL), appended to the
  // JSON array in `attempts` as text (no JSON parse, so that any text the other stores keep is kept).
  failFinal: (schema: string) => `
    UPDATE ${schema}.jobs j SET
      attempts = CASE WHEN $5::text IS NULL THEN j.attempts WHEN j.attempts IS NULL THEN '[' || $5::text || ']'
        ELSE left(j.attempts, -1) || ',' || $5::text || ']' END,
      error = CASE WHEN j.cancel_requested THEN j.error ELSE $3 END,
      status = CASE WHEN j.cancel_requested THEN 'canceled' ELSE 'failed' END,
      lease_owner = NULL, lease_until = NULL, cancel_requested = false,
      finished_at = floor(extract(epoch from now()) * 1000)::bigint,
      expires_at = floor(extract(epoch from now()) * 1000)::bigint + $4::bigint,
      delivery_status = CASE WHEN j.callback_url IS NOT NULL THEN 'pending' ELSE j.delivery_status END,
      delivery_next_at = CASE WHEN j.callback_url IS NOT NULL
        THEN floor(extract(epoch from now()) * 1000)::bigint ELSE j.delivery_next_at END,
      updated_at = floor(extract(epoch from now()) * 1000)::bigint, seq = j.seq + 1
    WHERE j.id = $1 AND j.status = 'processing' AND j.lease_owner = $2
    RETURNING j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context`,

  // $1 id, $2 worker, $3 error, $4 retry at (epoch ms), $5 retention ms, $6 the attempt (as in failFinal). A retry
  // goes back to the queue; with a cancel requested the job ends canceled instead, and its retention ($5) starts.
  failRetry: (schema: string) => `
    UPDATE ${schema}.jobs j SET
      attempts = CASE WHEN $6::text IS NULL THEN j.attempts WHEN j.attempts IS NULL THEN '[' || $6::text || ']'
        ELSE left(j.attempts, -1) || ',' || $6::text || ']' END,
      error = CASE WHEN j.cancel_requested THEN j.error ELSE $3 END,
      status = CASE WHEN j.cancel_requested THEN 'canceled' ELSE 'queued' END,
      run_at = CASE WHEN j.cancel_requested THEN j.run_at ELSE $4::bigint END,
      lease_owner = NULL, lease_until = NULL, cancel_requested = false,
      finished_at = CASE WHEN j.cancel_requested
        THEN floor(extract(epoch from now()) * 1000)::bigint ELSE j.finished_at END,
      expires_at = CASE WHEN j.cancel_requested
        THEN floor(extract(epoch from now()) * 1000)::bigint + $5::bigint ELSE j.expires_at END,
      delivery_status = CASE WHEN j.cancel_requested AND j.callback_url IS NOT NULL THEN 'pending'
        ELSE j.delivery_status END,
      delivery_next_at = CASE WHEN j.cancel_requested AND j.callback_url IS NOT NULL
        THEN floor(extract(epoch from now()) * 1000)::bigint ELSE j.delivery_next_at END,
      updated_at = floor(extract(epoch from now()) * 1000)::bigint, seq = j.seq + 1
    WHERE j.id = $1 AND j.status = 'processing' AND j.lease_owner = $2
    RETURNING j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context`,

  // $1 id, $2 retention ms. Queued: canceled at once. Processing: cancel_requested. SET expressions read the
  // row as it was.
  cancel: (schema: string) => `
    UPDATE ${schema}.jobs j SET
      status = CASE WHEN j.status = 'queued' THEN 'canceled' ELSE j.status END,
      cancel_requested = (j.status = 'processing'),
      lease_owner = CASE WHEN j.status = 'queued' THEN NULL ELSE j.lease_owner END,
      lease_until = CASE WHEN j.status = 'queued' THEN NULL ELSE j.lease_until END,
      finished_at = CASE WHEN j.status = 'queued'
        THEN floor(extract(epoch from now()) * 1000)::bigint ELSE j.finished_at END,
      expires_at = CASE WHEN j.status = 'queued'
        THEN floor(extract(epoch from now()) * 1000)::bigint + $2::bigint ELSE j.expires_at END,
      delivery_status = CASE WHEN j.status = 'queued' AND j.callback_url IS NOT NULL THEN 'pending'
        ELSE j.delivery_status END,
      delivery_next_at = CASE WHEN j.status = 'queued' AND j.callback_url IS NOT NULL
        THEN floor(extract(epoch from now()) * 1000)::bigint ELSE j.delivery_next_at END,
      updated_at = floor(extract(epoch from now()) * 1000)::bigint, seq = j.seq + 1
    WHERE j.id = $1 AND j.status IN ('queued', 'processing')
    RETURNING j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context`,

  // $1 id, $2 worker, $3 retention ms
  markCanceled: (schema: string) => `
    UPDATE ${schema}.jobs j SET status = 'canceled',
      lease_owner = NULL, lease_until = NULL, cancel_requested = false,
      finished_at = floor(extract(epoch from now()) * 1000)::bigint,
      expires_at = floor(extract(epoch from now()) * 1000)::bigint + $3::bigint,
      delivery_status = CASE WHEN j.callback_url IS NOT NULL THEN 'pending' ELSE j.delivery_status END,
      delivery_next_at = CASE WHEN j.callback_url IS NOT NULL
        THEN floor(extract(epoch from now()) * 1000)::bigint ELSE j.delivery_next_at END,
      updated_at = floor(extract(epoch from now()) * 1000)::bigint, seq = j.seq + 1
    WHERE j.id = $1 AND j.status = 'processing' AND j.lease_owner = $2
    RETURNING j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context`,

  // $1 id, $2 worker
  release: (schema: string) => `
    UPDATE ${schema}.jobs j SET status = 'queued', attempt = GREATEST(0, j.attempt - 1),
      lease_owner = NULL, lease_until = NULL,
      updated_at = floor(extract(epoch from now()) * 1000)::bigint, seq = j.seq + 1
    WHERE j.id = $1 AND j.status = 'processing' AND j.lease_owner = $2`,

  // $1 limit. One bounded batch of expired jobs (purgeExpired repeats it), found on jobs_expires_idx and deleted by
  // id through the primary key: with `id IN (subquery)` the planner may join the batch to a scan of the whole
  // table, which costs more with every retained job; an array of ids can only be looked up.
  purge: (schema: string) => `
    DELETE FROM ${schema}.jobs j WHERE j.id = ANY(ARRAY(
      SELECT p.id FROM ${schema}.jobs p
      WHERE p.expires_at <= floor(extract(epoch from now()) * 1000)::bigint
      LIMIT $1
      FOR UPDATE SKIP LOCKED))`,

  // $1 limit, $2 lease ms
  claimDeliveries: (schema: string) => `
    WITH picked AS MATERIALIZED (
      SELECT c.id FROM ${schema}.jobs c
      WHERE c.delivery_status = 'pending' AND c.delivery_next_at <= floor(extract(epoch from now()) * 1000)::bigint
      ORDER BY c.delivery_next_at
      LIMIT $1
      FOR UPDATE SKIP LOCKED
    )
    UPDATE ${schema}.jobs j SET delivery_next_at = floor(extract(epoch from now()) * 1000)::bigint + $2::bigint
    FROM picked WHERE j.id = picked.id
    RETURNING j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context`,

  // $1 id, $2 status, $3 attempts, $4 next at (epoch ms), $5 the attempt for the history (JSON text, or NULL), appended
  // to the JSON array in `delivery_log` as text, as failFinal does with `attempts`.
  recordDelivery: (schema: string) => `
    UPDATE ${schema}.jobs j SET delivery_status = $2, delivery_attempts = $3, delivery_next_at = $4::bigint,
      delivery_log = CASE WHEN $5::text IS NULL THEN j.delivery_log WHEN j.delivery_log IS NULL THEN '[' || $5::text || ']'
        ELSE left(j.delivery_log, -1) || ',' || $5::text || ']' END
    WHERE j.id = $1`,

  // The operator's views (migration 7). $1 $2 the position to list after (created_at, id), $3 statuses, $4 name,
  // $5 any owner, $6 owner, $7 created from, $8 created before, $9 limit: each filter is off when NULL (owner: when
  // $5). On jobs_created_page_idx, from the position given; the first page passes one after every job.
  adminList: (schema: string) => `
    SELECT j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context
    FROM ${schema}.jobs j
    WHERE (j.created_at, j.id COLLATE "C") < ($1::bigint, $2::text COLLATE "C")
      AND ($3::text[] IS NULL OR j.status = ANY($3::text[]))
      AND ($4::text IS NULL OR j.name = $4::text)
      AND ($5::boolean OR j.owner IS NOT DISTINCT FROM $6::text)
      AND ($7::bigint IS NULL OR j.created_at >= $7::bigint)
      AND ($8::bigint IS NULL OR j.created_at < $8::bigint)
      AND (j.expires_at IS NULL OR j.expires_at > floor(extract(epoch from now()) * 1000)::bigint)
    ORDER BY j.created_at DESC, j.id COLLATE "C" DESC
    LIMIT $9`,

  // adminList of one owner's jobs ($5 owner; $6 from, $7 before, $8 limit, the rest as adminList), on the owner's
  // index (jobs_owner_page_idx): a page costs the same however rare that owner's jobs are.
  adminListOwner: (schema: string) => `
    SELECT j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context
    FROM ${schema}.jobs j
    WHERE j.owner = $5::text AND (j.created_at, j.id COLLATE "C") < ($1::bigint, $2::text COLLATE "C")
      AND ($3::text[] IS NULL OR j.status = ANY($3::text[]))
      AND ($4::text IS NULL OR j.name = $4::text)
      AND ($6::bigint IS NULL OR j.created_at >= $6::bigint)
      AND ($7::bigint IS NULL OR j.created_at < $7::bigint)
      AND (j.expires_at IS NULL OR j.expires_at > floor(extract(epoch from now()) * 1000)::bigint)
    ORDER BY j.created_at DESC, j.id COLLATE "C" DESC
    LIMIT $8`,

  countJobs: (schema: string) => `
    SELECT j.name, j.status, count(*)::integer AS n FROM ${schema}.jobs j
    WHERE (j.expires_at IS NULL OR j.expires_at > floor(extract(epoch from now()) * 1000)::bigint)
    GROUP BY j.name, j.status`,

  // $1 window ms, $2 bucket ms
  throughput: (schema: string) => `
    SELECT j.name, (j.finished_at / $2::bigint) * $2::bigint AS at,
      (count(*) FILTER (WHERE j.status = 'complete'))::integer AS complete,
      (count(*) FILTER (WHERE j.status = 'failed'))::integer AS failed,
      (count(*) FILTER (WHERE j.status = 'canceled'))::integer AS canceled
    FROM ${schema}.jobs j
    WHERE j.finished_at >= floor(extract(epoch from now()) * 1000)::bigint - $1::bigint AND (j.expires_at IS NULL OR j.expires_at > floor(extract(epoch from now()) * 1000)::bigint)
    GROUP BY 1, 2`,

  // $1 window ms. Nearest-rank percentiles (percentile_disc), as the other stores compute them.
  timings: (schema: string) => `
    SELECT count(*)::integer AS n,
      percentile_disc(ARRAY[0.5, 0.95, 0.99, 1]) WITHIN GROUP (ORDER BY j.started_at - j.created_at) AS wait,
      percentile_disc(ARRAY[0.5, 0.95, 0.99, 1]) WITHIN GROUP (ORDER BY j.finished_at - j.started_at) AS run
    FROM ${schema}.jobs j
    WHERE j.finished_at >= floor(extract(epoch from now()) * 1000)::bigint - $1::bigint AND j.started_at IS NOT NULL AND (j.expires_at IS NULL OR j.expires_at > floor(extract(epoch from now()) * 1000)::bigint)`,

  // $1 id
  retry: (schema: string) => `
    UPDATE ${schema}.jobs j SET status = 'queued', attempt = 0, run_at = floor(extract(epoch from now()) * 1000)::bigint,
      progress = NULL, message = NULL, result = NULL, result_url = NULL, error = NULL,
      lease_owner = NULL, lease_until = NULL, cancel_requested = false,
      delivery_status = NULL, delivery_attempts = 0, delivery_next_at = NULL,
      started_at = NULL, finished_at = NULL, expires_at = NULL,
      updated_at = floor(extract(epoch from now()) * 1000)::bigint, seq = j.seq + 1
    WHERE j.id = $1 AND j.status IN ('failed', 'canceled') AND (j.expires_at IS NULL OR j.expires_at > floor(extract(epoch from now()) * 1000)::bigint)
    RETURNING j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context`,

  // $1 id
  remove: (schema: string) => `
    DELETE FROM ${schema}.jobs j WHERE j.id = $1 AND (j.expires_at IS NULL OR j.expires_at > floor(extract(epoch from now()) * 1000)::bigint)`,

  // $1 id
  redeliver: (schema: string) => `
    UPDATE ${schema}.jobs j SET delivery_status = 'pending', delivery_attempts = 0, delivery_next_at = floor(extract(epoch from now()) * 1000)::bigint
    WHERE j.id = $1 AND j.callback_url IS NOT NULL AND j.status IN ('complete', 'failed', 'canceled') AND (j.expires_at IS NULL OR j.expires_at > floor(extract(epoch from now()) * 1000)::bigint)
    RETURNING j.id, j.name, j.status, j.input, j.owner, j.idempotency_key, j.request_hash, j.progress, j.message,
      j.result, j.result_url, j.error, j.attempt, j.max_attempts, j.run_at, j.lease_owner, j.lease_until,
      j.cancel_requested, j.callback_url, j.delivery_status, j.delivery_attempts, j.delivery_next_at,
      j.created_at, j.updated_at, j.started_at, j.finished_at, j.expires_at, j.seq, j.trace_context`,

  // $1 id
  history: (schema: string) => `
    SELECT j.attempts, j.delivery_log FROM ${schema}.jobs j WHERE j.id = $1 AND (j.expires_at IS NULL OR j.expires_at > floor(extract(epoch from now()) * 1000)::bigint)`,
};

type StatementName = keyof typeof SQL;

/** The largest page size list() writes into its statement (see list()): the HTTP list's largest page, and one more. */
const LITERAL_PAGE_SIZES = 101;

/** @internal Every statement by name, for the plan guard (test/query-plans.test.ts). */
export { SQL as POSTGRES_STATEMENTS };

/**
 * The operator's views run unnamed, so that PostgreSQL plans each call with its values: one generic plan for every
 * combination of their optional filters would sort a whole owner's or status's rows. They are not on a hot path.
 */
export const PLANNED_PER_CALL: ReadonlySet<StatementName> = new Set([
  'adminList',
  'adminListOwner',
  'countJobs',
  'throughput',
  'timings',
]);

/** A create's parameters (insert, and one row of insertMany). */
interface CreateParams {
  id: string;
  name: string;
  input: string | null;
  owner: string | null;
  idempotencyKey: string | null;
  /** sha256 of the key's scope, or null without a key. */
  scope: string | null;
  requestHash: string | null;
  maxAttempts: number;
  callbackUrl: string | null;
  /** The worker of a job created already claimed, or null. */
  worker: string | null;
  leaseMs: number | null;
  traceContext: string | null;
}

/** A completion's parameters (complete, and one row of completeMany). */
interface CompleteParams {
  id: string;
  worker: string;
  result: string | null;
  resultUrl: string | null;
  retentionMs: number;
}

interface ClaimParams {
  names: string[];
  worker: string;
  limit: number;
  leaseMs: number;
}

function createValues(p: CreateParams): unknown[] {
  const leaseMs = p.leaseMs === null ? null : ms(p.leaseMs);
  return [
    p.id,
    p.name,
    p.input,
    p.owner,
    p.idempotencyKey,
    p.scope,
    p.requestHash,
    p.maxAttempts,
    p.callbackUrl,
    p.worker,
    leaseMs,
    p.traceContext,
  ];
}

function completeValues(p: CompleteParams): unknown[] {
  return [p.id, p.worker, p.result, p.resultUrl, ms(p.retentionMs)];
}

/**
 * Each statement's parameters by name, returned in the order of its `$n`. Every millisecond count or time goes
 * to a bigint parameter, so it is rounded to a whole number.
 */
/** A list position: created_at (epoch ms, or a bigint as text) and id. */
type ListAfter = [number | string, string];

const PARAMS = {
  freeExpiredKey: (p: { scope: string | null }) => [p.scope],
  insert: createValues,
  insertMany: (rows: readonly CreateParams[]) => columnsOf(rows.map(createValues)),
  insertHanded: (p: CreateParams) => [
    p.id,
    p.name,
    p.input,
    p.owner,
    p.idempotencyKey,
    p.scope,
    p.requestHash,
    p.maxAttempts,
    p.callbackUrl,
    p.traceContext,
  ],
  offerSlots: (p: SlotOffer) => [p.workerId, [...p.names], p.free, ms(p.leaseMs), ms(p.ttlMs)],
  withdrawSlots: (p: { workerId: string }) => [p.workerId],
  registerWatcher: (p: { id: string; ttlMs: number }) => [p.id, ms(p.ttlMs)],
  withdrawWatcher: (p: { id: string }) => [p.id],
  getByKey: (p: { scope: string | null }) => [p.scope],
  get: (p: { id: string }) => [p.id],
  listOwner: (p: { owner: string; after: ListAfter; limit: number }) => [p.owner, ...p.after, p.limit],
  listNoOwner: (p: { after: ListAfter; limit: number }) => [...p.after, p.limit],
  countOwner: (p: { owner: string; upTo: number }) => [p.owner, p.upTo],
  claim: (p: ClaimParams) => [p.names, p.worker, p.limit, ms(p.leaseMs)],
  completeAndClaim: (p: { completions: readonly CompleteParams[]; claim: ClaimParams }) => [
    ...columnsOf(p.completions.map(completeValues)),
    p.claim.names,
    p.claim.worker,
    p.claim.limit,
    ms(p.claim.leaseMs),
  ],
  renew: (p: { ids: string[]; worker: string; leaseMs: number }) => [p.ids, p.worker, ms(p.leaseMs)],
  progress: (p: { id: string; worker: string; progress: number; message: string | null }) => [
    p.id,
    p.worker,
    p.progress,
    p.message,
  ],
  complete: completeValues,
  completeMany: (rows: readonly CompleteParams[]) => columnsOf(rows.map(completeValues)),
  failFinal: (p: {
    id: string;
    worker: string;
    error: string | null;
    retentionMs: number;
    attempt?: string | null;
  }) => [p.id, p.worker, p.error, ms(p.retentionMs), p.attempt ?? null],
  failRetry: (p: {
    id: string;
    worker: string;
    error: string | null;
    retryAt: number;
    retentionMs: number;
    attempt?: string | null;
  }) => [p.id, p.worker, p.error, ms(p.retryAt), ms(p.retentionMs), p.attempt ?? null],
  cancel: (p: { id: string; retentionMs: number }) => [p.id, ms(p.retentionMs)],
  markCanceled: (p: { id: string; worker: string; retentionMs: number }) => [p.id, p.worker, ms(p.retentionMs)],
  release: (p: { id: string; worker: string }) => [p.id, p.worker],
  purge: (p: { limit: number }) => [p.limit],
  claimDeliveries: (p: { limit: number; leaseMs: number }) => [p.limit, ms(p.leaseMs)],
  recordDelivery: (p: {
    id: string;
    status: string;
    attempts: number;
    nextAt: number | null;
    attempt: string | null;
  }) => [p.id, p.status, p.attempts, p.nextAt === null ? null : ms(p.nextAt), p.attempt],
  adminList: (p: AdminListOptions) => [
    // Without a position, one after every job: the largest bigint, and '' (no id sorts before it).
    p.before?.createdAt ?? '9223372036854775807',
    p.before?.id ?? '',
    p.statuses === undefined ? null : [...p.statuses],
    p.name ?? null,
    p.owner === undefined,
    p.owner ?? null,
    p.from === undefined ? null : ms(p.from),
    p.to === undefined ? null : ms(p.to),
    Math.max(0, Math.floor(p.limit)),
  ],
  adminListOwner: (p: AdminListOptions & { owner: string }) => [
    p.before?.createdAt ?? '9223372036854775807',
    p.before?.id ?? '',
    p.statuses === undefined ? null : [...p.statuses],
    p.name ?? null,
    p.owner,
    p.from === undefined ? null : ms(p.from),
    p.to === undefined ? null : ms(p.to),
    Math.max(0, Math.floor(p.limit)),
  ],
  countJobs: (_p: Record<string, never>) => [],
  throughput: (p: { windowMs: number; bucketMs: number }) => [ms(p.windowMs), Math.max(1, Math.floor(p.bucketMs))],
  timings: (p: { windowMs: number }) => [ms(p.windowMs)],
  retry: (p: { id: string }) => [p.id],
  remove: (p: { id: string }) => [p.id],
  redeliver: (p: { id: string }) => [p.id],
  history: (p: { id: string }) => [p.id],
} satisfies Record<StatementName, (params: never) => unknown[]>;

type Params<N extends StatementName> = Parameters<(typeof PARAMS)[N]>[0];

/** Parallel arrays (one per parameter, for unnest()) of rows of parameters. */
function columnsOf(rows: readonly unknown[][]): unknown[][] {
  return rows[0].map((_, index) => rows.map((row) => row[index]));
}

/** A whole number of ms for a bigint parameter. */
function ms(value: number): number {
  return Math.round(value);
}

/**
 * Expired jobs deleted per statement by purgeExpired(). The owner-count trigger locks the counter row of every owner
 * the batch touches until it commits, so a submit for one of them waits for the whole batch: small batches keep
 * that wait short.
 */
const PURGE_BATCH = 1000;
/** A process's registration as a watcher lasts this long unless renewed (migration 15), and is renewed this often. */
const WATCH_TTL_MS = 30_000;
const WATCH_RENEW_MS = 10_000;
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
  readonly remoteClaims = true;
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
  readonly #quoted: string;
  /** The list statements with their page size written in, by statement name (see list()). */
  readonly #pages = new Map<string, string>();
  readonly #prefix: string;
  readonly #subscriptions = new Set<() => Promise<void>>();
  /** Workers that offered slots through this store: they hear of handed jobs through its LISTEN connection. */
  readonly #offering = new Set<string>();
  /** This process's row in `watchers` (migration 15), kept while it has watchers. */
  readonly #watcherId = randomUUID();
  #watchWanted = false;
  /** Settles when the row is written; undefined while not registered. */
  #watchRegistered: Promise<void> | undefined;
  /** Renews the row while wanted, withdraws it at the first tick after the last watcher went. */
  #watchTimer: NodeJS.Timeout | undefined;
  /** The row's writes, in order: a withdrawal must not overtake the registration after it. */
  #watchWrites: Promise<unknown> = Promise.resolve();
  /** Creates and completions waiting for the end of this event-loop turn, to go in one statement each. */
  #creates: Array<Pending<CreateParams, CreateResult>> = [];
  #completes: Array<Pending<CompleteParams, JobRecord | undefined>> = [];
  /** Claims in flight: completions wait to go with the next one. */
  #claiming = 0;

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
    const quoted = quoteIdent(schema);
    this.#quoted = quoted;
    this.#sql = Object.fromEntries(Object.entries(SQL).map(([name, statement]) => [name, statement(quoted)])) as Record<
      StatementName,
      string
    >;
    // Prepared statement names are per connection: a user pool may serve stores of several schemas.
    this.#prefix = `ra_${createHash('sha256').update(schema).digest('hex').slice(0, 10)}_`;
    if (options.listen ?? true) this.subscribe = (listener) => this.#subscribe(listener);
  }

  /** Create the schema or bring it up to date. Safe from many processes at once (advisory lock). */
  init(): Promise<void> {
    if (this.#closed) return Promise.reject(new StoreClosedError('PostgreSQL'));
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
    return this.#create(job, lease.workerId, lease.leaseMs);
  }

  #create(job: NewJob, workerId: string | null, leaseMs: number | null): Promise<CreateResult> {
    return new Promise((resolve, reject) => {
      // A value JSON cannot hold rejects this create alone (JsonRefusedError), before it joins a batch.
      const params: CreateParams = {
        id: job.id,
        name: job.name,
        input: job.inputJson ?? toJsonText(job.input, 'input'),
        owner: job.owner,
        idempotencyKey: job.idempotencyKey,
        scope: job.idempotencyKey === null ? null : scopeHash(keyScope(job.owner, job.idempotencyKey)),
        requestHash: job.requestHash,
        maxAttempts: job.maxAttempts,
        callbackUrl: job.callbackUrl,
        worker: workerId,
        leaseMs,
        traceContext: job.traceContext ?? null,
      };
      if (this.#creates.length === 0) setImmediate(() => this.#flushCreates());
      this.#creates.push({ params, resolve, reject });
    });
  }

  #flushCreates(): void {
    const batch = this.#creates;
    this.#creates = [];
    if (batch.length === 1) {
      settle(batch[0], this.#createOne(batch[0].params, true));
      return;
    }
    this.#query(
      'insertMany',
      batch.map((pending) => pending.params),
    ).then(
      (rows) => {
        const inserted = new Map(rows.map((row) => [row.id, row]));
        for (const pending of batch) {
          const row = inserted.get(pending.params.id);
          if (row) pending.resolve({ job: rowToRecord(row), created: true });
          // Not inserted: its key is bound (by an earlier job or one of this batch).
          else settle(pending, this.#createOne(pending.params, false));
        }
      },
      // One bad row must not fail the others: each goes alone, and fails alone.
      () => {
        for (const pending of batch) settle(pending, this.#createOne(pending.params, true));
      },
    );
  }

  /** One create; `insert` false when the INSERT already ran and found the key bound. */
  async #createOne(params: CreateParams, insert: boolean): Promise<CreateResult> {
    try {
      return await this.#createOneAttempt(params, insert);
    } catch (error) {
      // A value the database refuses is the request's fault, not an outage: retrying cannot help.
      if (refusedValue(error)) throw new InputError('The job cannot be stored: the database refuses one of its values');
      throw error;
    }
  }

  async #createOneAttempt(params: CreateParams, insert: boolean): Promise<CreateResult> {
    const { scope } = params;
    // Without a key nothing conflicts (NULLs are distinct). With one, the unique index decides the race; a
    // conflict with an expired job (its row is kept until purgeExpired) takes the key from it and tries again.
    for (let tries = 0; ; tries++) {
      if (insert || tries > 0) {
        // A plain create's first insert may hand the job to an idle worker (a retry after a key conflict need not).
        const [inserted] =
          params.worker === null && tries === 0
            ? await this.#query('insertHanded', params)
            : await this.#query('insert', params);
        if (inserted) return { job: rowToRecord(inserted), created: true };
      }
      const [existing] = await this.#query('getByKey', { scope });
      if (existing) return { job: rowToRecord(existing), created: false };
      if (tries >= 5) throw new Error('respond-async: could not create or find the job for this idempotency key');
      await this.#query('freeExpiredKey', { scope });
    }
  }

  /**
   * An idle worker offers its free slots until `ttlMs` from now (`free: null` keeps the count and extends the
   * offer): a lone create() of one of `names` takes one and inserts its job leased to the worker, whose change feed
   * names it as `leaseOwner`. Resolves to the slots still offered.
   */
  async offerSlots(offer: SlotOffer): Promise<number> {
    this.#offering.add(offer.workerId);
    const [row] = await this.#query('offerSlots', offer);
    return Number((row as { free?: unknown } | undefined)?.free ?? 0);
  }

  /** Withdraw the offer of `workerId` (it stops claiming). */
  async withdrawSlots(workerId: string): Promise<void> {
    this.#offering.delete(workerId);
    await this.#query('withdrawSlots', { workerId });
  }

  /**
   * Whether this process has watchers (migration 15): while some process has, the change feed reports every change
   * of every job; otherwise only what workers need (new queued jobs, cancel requests, hand-offs). `true` resolves
   * once every change is announced: a change committed just before may have gone unannounced, so re-read what you
   * watch then. `false` withdraws at the next renewal tick, unless watchers come back meanwhile.
   */
  setWatching(watching: boolean): Promise<void> {
    this.#watchWanted = watching;
    if (!watching || this.#closed) return Promise.resolve();
    this.#watchTimer ??= setInterval(() => this.#renewWatching(), WATCH_RENEW_MS).unref();
    this.#watchRegistered ??= this.#writeWatcher('registerWatcher').catch((error: unknown) => {
      this.#watchRegistered = undefined;
      throw error;
    });
    return this.#watchRegistered;
  }

  #renewWatching(): void {
    if (this.#watchWanted) {
      this.#writeWatcher('registerWatcher').then(
        () => {
          this.#watchRegistered ??= Promise.resolve();
        },
        () => {
          // The row may lapse: a later setWatching(true) registers anew; watchers poll meanwhile.
          this.#watchRegistered = undefined;
        },
      );
      return;
    }
    clearInterval(this.#watchTimer);
    this.#watchTimer = undefined;
    this.#watchRegistered = undefined;
    this.#writeWatcher('withdrawWatcher').catch(() => {});
  }

  #writeWatcher(name: 'registerWatcher' | 'withdrawWatcher'): Promise<void> {
    const write = this.#watchWrites.then(() => this.#query(name, { id: this.#watcherId, ttlMs: WATCH_TTL_MS }));
    this.#watchWrites = write.catch(() => {});
    return write.then(() => undefined);
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const [row] = await this.#query('get', { id });
    return row && rowToRecord(row);
  }

  /**
   * A page size up to `LITERAL_PAGE_SIZES` (the HTTP list's largest page and one more) is written into the statement,
   * one prepared statement per size. With `LIMIT $n`, PostgreSQL's generic plan assumes a tenth of the matching rows
   * are wanted; once an owner holds about a thousand jobs it judges that plan dearer than one made for the values at
   * hand, and plans every call again (planning costs several times what reading the page does). With the size known,
   * the generic plan costs what those do, and PostgreSQL keeps it.
   */
  async list(options: ListOptions): Promise<JobRecord[]> {
    const limit = Math.max(0, Math.floor(options.limit));
    // Without a position, one after every job: the largest bigint, and '' (no id sorts before it).
    const after: ListAfter = [options.before?.createdAt ?? '9223372036854775807', options.before?.id ?? ''];
    const owner = options.owner;
    if (limit > LITERAL_PAGE_SIZES) {
      const rows =
        owner === null
          ? await this.#query('listNoOwner', { after, limit })
          : await this.#query('listOwner', { owner, after, limit });
      return rows.map(rowToRecord);
    }
    const name = `${owner === null ? 'listNoOwner' : 'listOwner'}_${limit}`;
    let text = this.#pages.get(name);
    if (text === undefined) {
      text = owner === null ? SQL.listNoOwner(this.#quoted, limit) : SQL.listOwner(this.#quoted, limit);
      this.#pages.set(name, text);
    }
    const pool = await this.#getPool();
    const values = owner === null ? after : [owner, ...after];
    const { rows } = await pool.query<Row>({ name: this.#prefix + name, text, values });
    return rows.map(rowToRecord);
  }

  async countByOwner(owner: string, upTo: number): Promise<number> {
    const [row] = await this.#query('countOwner', { owner, upTo: Math.max(0, Math.floor(upTo)) });
    return Number((row as { n?: unknown } | undefined)?.n ?? 0);
  }

  async getByKey(owner: string, idempotencyKey: string): Promise<JobRecord | undefined> {
    const [row] = await this.#query('getByKey', { scope: scopeHash(keyScope(owner, idempotencyKey)) });
    return row && rowToRecord(row);
  }

  /**
   * Claims due jobs. Completions waiting for the end of this turn go in the same statement (one round trip, one
   * commit for both): a worker that frees slots and claims again pays once.
   */
  async claim(options: ClaimOptions): Promise<JobRecord[]> {
    const limit = Math.floor(options.limit);
    if (limit <= 0 || options.names.length === 0) return [];
    const claim: ClaimParams = { names: [...options.names], worker: options.workerId, limit, leaseMs: options.leaseMs };
    this.#claiming += 1;
    try {
      return await this.#completeAndClaim(claim);
    } finally {
      // Completions that came while claims were in flight go with the worker's next claim, or alone if none comes
      // in this turn.
      this.#claiming -= 1;
      if (this.#claiming === 0 && this.#completes.length > 0) setImmediate(() => this.#flushCompletes());
    }
  }

  async #completeAndClaim(claim: ClaimParams): Promise<JobRecord[]> {
    const batch = this.#takeCompletes();
    if (batch.length === 0) {
      const rows = await this.#query('claim', claim);
      return rows.map(rowToRecord).sort(byRunAt);
    }
    let rows: Row[];
    try {
      rows = await this.#query('completeAndClaim', { completions: batch.map((pending) => pending.params), claim });
    } catch (error) {
      // The completions go on alone (each fails alone); the claim is retried by the worker loop.
      for (const pending of batch) settle(pending, this.#completeOne(pending.params));
      throw error;
    }
    const claimed: JobRecord[] = [];
    const done = new Map<string, Row>();
    for (const row of rows) {
      if (row.done === true) done.set(row.id, row);
      else claimed.push(rowToRecord(row));
    }
    resolveCompletes(batch, done);
    return claimed.sort(byRunAt);
  }

  async renew(ids: readonly string[], workerId: string, leaseMs: number): Promise<LeaseState[]> {
    if (ids.length === 0) return [];
    const rows = await this.#query('renew', { ids: [...ids], worker: workerId, leaseMs });
    const held = new Map(rows.map((row) => [row.id, row.cancel_requested === true]));
    return ids.map((id) => ({ id, held: held.has(id), cancelRequested: held.get(id) ?? false }));
  }

  async progress(id: string, workerId: string, progress: number, message: string | null) {
    const [row] = await this.#query('progress', { id, worker: workerId, progress, message });
    return row && rowToRecord(row);
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
    return new Promise((resolve, reject) => {
      const params: CompleteParams = {
        id,
        worker: workerId,
        result: toJsonText(outcome.result, 'result'),
        resultUrl: outcome.resultUrl,
        retentionMs: outcome.retentionMs,
      };
      // While a claim is in flight the completions wait for the next one (the worker claims again as its slots
      // free): one statement and one commit for both.
      if (this.#completes.length === 0 && this.#claiming === 0) setImmediate(() => this.#flushCompletes());
      this.#completes.push({ params, resolve, reject });
    });
  }

  /** Send the waiting completions, unless a claim is in flight (they go with the next claim then). */
  #flushCompletes(): void {
    if (this.#claiming > 0) return;
    const batch = this.#takeCompletes();
    if (batch.length === 0) return;
    if (batch.length === 1) {
      settle(batch[0], this.#completeOne(batch[0].params));
      return;
    }
    this.#query(
      'completeMany',
      batch.map((pending) => pending.params),
    ).then(
      (rows) => resolveCompletes(batch, new Map(rows.map((row) => [row.id, row]))),
      () => {
        for (const pending of batch) settle(pending, this.#completeOne(pending.params));
      },
    );
  }

  /** The waiting completions with distinct ids; a job twice in one turn (not expected) goes alone. */
  #takeCompletes(): Array<Pending<CompleteParams, JobRecord | undefined>> {
    const all = this.#completes;
    if (all.length === 0) return all;
    this.#completes = [];
    const seen = new Set<string>();
    const batch: typeof all = [];
    for (const pending of all) {
      if (!seen.has(pending.params.id)) {
        seen.add(pending.params.id);
        batch.push(pending);
      } else {
        settle(pending, this.#completeOne(pending.params));
      }
    }
    return batch;
  }

  async #completeOne(params: CompleteParams): Promise<JobRecord | undefined> {
    try {
      const [row] = await this.#query('complete', params);
      return row && rowToRecord(row);
    } catch (error) {
      if (!refusedValue(error)) throw error;
      // A result the database refuses would fail the same way on every attempt: the job fails at once, with a code
      // saying why, instead of being retried as if the store were down.
      const { id, worker, retentionMs } = params;
      const notStorable = toJsonText(RESULT_NOT_STORABLE, 'error');
      const [row] = await this.#query('failFinal', { id, worker, error: notStorable, retentionMs });
      return row && rowToRecord(row);
    }
  }

  async fail(
    id: string,
    workerId: string,
    outcome: { error: JobErrorInfo; retryAt: number | null; retentionMs: number; attempt?: AttemptRecord },
  ): Promise<JobRecord | undefined> {
    const error = toJsonText(outcome.error, 'error');
    const attempt = toJsonText(outcome.attempt, 'attempt');
    const { retryAt, retentionMs } = outcome;
    const [row] =
      retryAt !== null
        ? await this.#query('failRetry', { id, worker: workerId, error, retryAt, retentionMs, attempt })
        : await this.#query('failFinal', { id, worker: workerId, error, retentionMs, attempt });
    return row && rowToRecord(row);
  }

  async cancel(id: string, options: { retentionMs: number }): Promise<{ outcome: CancelOutcome; job?: JobRecord }> {
    for (let tries = 0; tries < 10; tries++) {
      const [changed] = await this.#query('cancel', { id, retentionMs: options.retentionMs });
      if (changed) {
        const job = rowToRecord(changed);
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
    const [row] = await this.#query('markCanceled', { id, worker: workerId, retentionMs: options.retentionMs });
    return row && rowToRecord(row);
  }

  async release(id: string, workerId: string): Promise<void> {
    await this.#query('release', { id, worker: workerId });
  }

  /**
   * Deletes expired jobs in batches of PURGE_BATCH, each its own statement, pausing after each as long as it took:
   * the database spends at most half its time on the purge and the accept path keeps the rest.
   */
  async purgeExpired(): Promise<number> {
    let removed = 0;
    for (;;) {
      const started = performance.now();
      const result = await this.#execute('purge', { limit: PURGE_BATCH });
      const count = result.rowCount ?? 0;
      removed += count;
      if (count < PURGE_BATCH) return removed;
      await sleep(performance.now() - started);
    }
  }

  async claimDeliveries(options: { limit: number; leaseMs: number }): Promise<JobRecord[]> {
    const limit = Math.floor(options.limit);
    if (limit <= 0) return [];
    const rows = await this.#query('claimDeliveries', { limit, leaseMs: options.leaseMs });
    return rows.map(rowToRecord).sort((a, b) => (a.deliveryNextAt ?? 0) - (b.deliveryNextAt ?? 0));
  }

  async recordDelivery(id: string, update: DeliveryUpdate): Promise<void> {
    await this.#query('recordDelivery', {
      id,
      status: update.status,
      attempts: update.attempts,
      nextAt: update.nextAt,
      attempt: toJsonText(update.attempt, 'attempt'),
    });
  }

  async adminList(options: AdminListOptions): Promise<JobRecord[]> {
    const { owner } = options;
    const rows =
      typeof owner === 'string'
        ? await this.#query('adminListOwner', { ...options, owner })
        : await this.#query('adminList', options);
    return rows.map(rowToRecord);
  }

  async countJobs(): Promise<JobCount[]> {
    const rows = (await this.#query('countJobs', {})) as unknown as Array<{
      name: string;
      status: JobStatus;
      n: number;
    }>;
    return rows.map(({ name, status, n }) => ({ name, status, count: Number(n) }));
  }

  async throughput(options: { windowMs: number; bucketMs: number }): Promise<ThroughputBucket[]> {
    const rows = (await this.#query('throughput', options)) as unknown as ThroughputBucket[];
    return rows.map((row) => ({ ...row, at: Number(row.at) }));
  }

  async timings(options: { windowMs: number }): Promise<JobTimings> {
    const [row] = (await this.#query('timings', options)) as unknown as Array<{
      n: number;
      wait: Array<string | number> | null;
      run: Array<string | number> | null;
    }>;
    const of = (values: Array<string | number> | null | undefined): Percentiles => {
      const [p50, p95, p99, max] = (values ?? [null, null, null, null]).map((v) => (v === null ? null : Number(v)));
      return { count: Number(row?.n ?? 0), p50, p95, p99, max };
    };
    return { waitMs: of(row?.wait), runMs: of(row?.run) };
  }

  async retry(id: string): Promise<AdminOutcome<'retried'>> {
    const [row] = await this.#query('retry', { id });
    if (row) return { outcome: 'retried', job: rowToRecord(row) };
    const job = await this.get(id);
    return job ? { outcome: 'refused', job } : { outcome: 'missing' };
  }

  async remove(id: string): Promise<boolean> {
    return ((await this.#execute('remove', { id })).rowCount ?? 0) > 0;
  }

  async redeliver(id: string): Promise<AdminOutcome<'redelivering'>> {
    const [row] = await this.#query('redeliver', { id });
    if (row) return { outcome: 'redelivering', job: rowToRecord(row) };
    const job = await this.get(id);
    return job ? { outcome: 'refused', job } : { outcome: 'missing' };
  }

  async history(id: string): Promise<JobHistory> {
    const [row] = (await this.#query('history', { id })) as unknown as Array<{
      attempts: string | null;
      delivery_log: string | null;
    }>;
    return parseHistory(row);
  }

  /** Ends LISTEN connections and the pool the store created (never a pool you passed in). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#subscriptions].map((unsubscribe) => unsubscribe()));
    clearInterval(this.#watchTimer);
    if (this.#watchTimer || this.#watchRegistered) {
      this.#watchTimer = undefined;
      this.#watchRegistered = undefined;
      // Other processes' notifications need not wait for the row to lapse.
      await this.#watchWrites;
      await this.#pool?.query(this.#sql.withdrawWatcher, [this.#watcherId]).catch(() => {});
    }
    if (this.#ownsPool) {
      const pool = this.#pool ?? (await this.#poolPromise?.catch(() => undefined));
      this.#pool = undefined;
      await pool?.end().catch(() => {});
    }
  }

  async #getPool(): Promise<Pool> {
    if (this.#closed) throw new StoreClosedError('PostgreSQL');
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
      throw new StoreClosedError('PostgreSQL');
    }
    return pool;
  }

  /** Runs the named statement (prepared once per connection) with its parameters bound by name. */
  async #execute<N extends StatementName>(name: N, params: Params<N>): Promise<QueryResult<Row>> {
    const values = (PARAMS[name] as (params: Params<N>) => unknown[])(params);
    const pool = await this.#getPool();
    const text = this.#sql[name];
    return pool.query<Row>(PLANNED_PER_CALL.has(name) ? { text, values } : { name: this.#prefix + name, text, values });
  }

  async #query<N extends StatementName>(name: N, params: Params<N>): Promise<Row[]> {
    return (await this.#execute(name, params)).rows;
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
      // A newer respond-async migrated this schema: this version cannot know what its tables now mean.
      const newest = Math.max(0, ...applied);
      if (newest > POSTGRES_SCHEMA_VERSION) throw new SchemaTooNewError('PostgreSQL', newest, POSTGRES_SCHEMA_VERSION);
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
    if (this.#closed) throw new StoreClosedError('PostgreSQL');
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
      // Jobs handed over while nobody listens would wait for their lease to lapse: stop offering until the worker,
      // idle again, offers anew (its renewal learns that nothing is offered).
      for (const workerId of this.#offering) {
        this.#query('offerSlots', { workerId, names: [], free: 0, leaseMs: 0, ttlMs: 0 }).catch(() => {});
      }
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

interface Pending<Params, Result> {
  params: Params;
  resolve(result: Result): void;
  reject(error: unknown): void;
}

/** Each completion gets its row, or undefined where its lease was no longer held. */
function resolveCompletes(
  batch: ReadonlyArray<Pending<CompleteParams, JobRecord | undefined>>,
  done: Map<string, Row>,
) {
  for (const pending of batch) {
    const row = done.get(pending.params.id);
    pending.resolve(row && rowToRecord(row));
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

/**
 * A notification's changes: a JSON array of `[id, status, seq]` (migration 2) or, for a job handed to a worker,
 * `[id, status, seq, lease_owner, row or null]` (insertHanded); or one `{id, status, seq}` object.
 */
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
    const change: JobChange = { id: entry[0], status: entry[1] as JobStatus, seq: Number(entry[2]) };
    // A job handed to a worker (insertHanded) names it, and carries its row where it fits.
    if (typeof entry[3] === 'string') change.leaseOwner = entry[3];
    if (typeof entry[4] === 'object' && entry[4] !== null) change.job = rowToRecord(entry[4] as Row);
    changes.push(change);
  }
  return changes;
}
