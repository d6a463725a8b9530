// Numbered schema migrations of SqliteStore. `PRAGMA user_version` holds how many have run; `SqliteStore.init()`
// runs the ones past it, in order, in one `BEGIN IMMEDIATE` transaction. Never edit a released migration: add the next one.

/** @internal */
export interface SqliteMigration {
  version: number;
  name: string;
  sql: string;
}

/** @internal */
export const SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    version: 1,
    name: 'jobs',
    sql: `
CREATE TABLE respond_async_jobs (
  id TEXT PRIMARY KEY NOT NULL,
  name TEXT NOT NULL,
  status TEXT NOT NULL,
  input TEXT,
  owner TEXT,
  idempotency_key TEXT,
  -- keyScope(owner, key), or NULL: one live job per owner and key (NULLs do not collide in a UNIQUE index).
  idem_scope TEXT UNIQUE,
  request_hash TEXT,
  progress REAL,
  message TEXT,
  result TEXT,
  result_url TEXT,
  error TEXT,
  attempt INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  -- Times are epoch milliseconds.
  run_at INTEGER NOT NULL,
  lease_owner TEXT,
  lease_until INTEGER,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  callback_url TEXT,
  delivery_status TEXT,
  delivery_attempts INTEGER NOT NULL DEFAULT 0,
  delivery_next_at INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  expires_at INTEGER,
  seq INTEGER NOT NULL DEFAULT 1
);
-- claim(): due queued jobs, and processing ones whose lease lapsed.
CREATE INDEX respond_async_jobs_claim_due ON respond_async_jobs (status, run_at);
CREATE INDEX respond_async_jobs_claim_lapsed ON respond_async_jobs (status, lease_until);
-- purgeExpired()
CREATE INDEX respond_async_jobs_expires ON respond_async_jobs (expires_at) WHERE expires_at IS NOT NULL;
-- list(): an owner's jobs, newest first.
CREATE INDEX respond_async_jobs_owner_created ON respond_async_jobs (owner, created_at);
-- claimDeliveries()
CREATE INDEX respond_async_jobs_deliveries ON respond_async_jobs (delivery_status, delivery_next_at)
  WHERE delivery_status IS NOT NULL;
`,
  },
  {
    version: 2,
    name: 'list by owner, paged',
    // list() pages by (created_at, id), newest first, from a position: this index serves both the order and the
    // keyset condition, and with expires_at in it countByOwner() (the per-owner quota) reads the index alone. It
    // replaces the index on (owner, created_at).
    // Processes of the previous version already running keep working (SQLite prepares their statements again).
    sql: `
CREATE INDEX IF NOT EXISTS respond_async_jobs_owner_page ON respond_async_jobs (owner, created_at DESC, id DESC, expires_at);
DROP INDEX IF EXISTS respond_async_jobs_owner_created;
`,
  },
  {
    version: 3,
    name: 'trace context',
    // The OpenTelemetry context of the submit (W3C traceparent/tracestate as JSON), so that a job run after a
    // restart or by another process joins the request's trace. Nullable: processes of the previous version keep
    // inserting rows without it.
    sql: `
ALTER TABLE respond_async_jobs ADD COLUMN trace_context TEXT;
`,
  },
  {
    version: 4,
    name: 'operator views',
    // The operator's list (every owner's jobs, newest first, paged like list()) walks an index of its own; the
    // throughput and timing views read the jobs finished in a recent window by finished_at; `attempts` keeps each
    // failed attempt (timings and the full server-side error) as a JSON array appended by fail(), `delivery_log`
    // each webhook delivery attempt, appended by recordDelivery(). Processes of the previous version keep working:
    // they neither read nor write the new columns.
    sql: `
ALTER TABLE respond_async_jobs ADD COLUMN attempts TEXT;
ALTER TABLE respond_async_jobs ADD COLUMN delivery_log TEXT;
CREATE INDEX IF NOT EXISTS respond_async_jobs_created_page ON respond_async_jobs (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS respond_async_jobs_finished ON respond_async_jobs (finished_at) WHERE finished_at IS NOT NULL;
`,
  },
  {
    version: 5,
    name: 'jobs per owner',
    // The per-owner quota reads how many rows each owner holds from this table instead of counting the owner's
    // entries in the owner index on every submit (a cost that grew with every retained job). Triggers keep it in
    // step with every insert and delete, whichever process or statement makes them (processes of the previous
    // version during a rolling upgrade, an operator's SQL), and the table is filled from the rows already there.
    // No statement changes a job's owner, so updates need no trigger.
    // It counts rows, expired ones not yet purged too: countByOwner() counts the owner's unexpired jobs exactly
    // only when this figure reaches the bound.
    sql: `
CREATE TABLE respond_async_owner_jobs (owner TEXT PRIMARY KEY NOT NULL, n INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO respond_async_owner_jobs (owner, n)
  SELECT owner, count(*) FROM respond_async_jobs WHERE owner IS NOT NULL GROUP BY owner;
CREATE TRIGGER respond_async_owner_jobs_insert AFTER INSERT ON respond_async_jobs
  WHEN new.owner IS NOT NULL
BEGIN
  INSERT INTO respond_async_owner_jobs (owner, n) VALUES (new.owner, 1)
    ON CONFLICT (owner) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER respond_async_owner_jobs_delete AFTER DELETE ON respond_async_jobs
  WHEN old.owner IS NOT NULL
BEGIN
  UPDATE respond_async_owner_jobs SET n = n - 1 WHERE owner = old.owner;
  DELETE FROM respond_async_owner_jobs WHERE owner = old.owner AND n <= 0;
END;
`,
  },
];
