// Numbered schema migrations of PostgresStore. Each runs once per schema, in order, inside the migration
// transaction that `PostgresStore.init()` holds under an advisory lock, with `search_path` set to the store's
// schema (so the SQL below names tables without a schema). Never edit a released migration: add the next one.

/** @internal */
export interface PostgresMigration {
  version: number;
  name: string;
  sql: string;
}

/**
 * A statement trigger's function announcing the changed rows `rows` selects (alias `n`) on '<schema>_changes', as
 * JSON arrays of [id, status, seq], 100 rows per notification.
 */
function notifyFunction(name: string, rows: string): string {
  return `CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  payload text;
BEGIN
  FOR payload IN
    SELECT json_agg(json_build_array(c.id, c.status, c.seq))::text
    FROM (SELECT n.id, n.status, n.seq, (row_number() OVER () - 1) / 100 AS chunk ${rows}) c
    GROUP BY c.chunk
  LOOP
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_changes', payload);
  END LOOP;
  RETURN NULL;
END
$fn$;`;
}

/**
 * Migration 15's statement trigger function: like notifyFunction, but it announces the changes no worker needs
 * (claims, progress, completions) only while some process registered its interest in every change (a row of
 * `watchers` not yet lapsed). Workers need `queued` rows (new, retried and released jobs) and cancel requests;
 * `needed` selects those (aliases `n`, and `o` where `rows` joins the old rows).
 */
function notifyWatchedFunction(name: string, rows: string, needed: string, anyNeeded: string): string {
  return `CREATE OR REPLACE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  payload text;
  everything boolean;
BEGIN
  everything := EXISTS (SELECT 1 FROM watchers w WHERE w.until > floor(extract(epoch from now()) * 1000)::bigint);
  -- Nobody watches and no worker needs to hear of these rows (a claim, a completion): nothing to announce.
  IF NOT everything AND NOT EXISTS (SELECT 1 FROM new_rows n WHERE ${anyNeeded}) THEN
    RETURN NULL;
  END IF;
  FOR payload IN
    SELECT json_agg(json_build_array(c.id, c.status, c.seq))::text
    FROM (SELECT n.id, n.status, n.seq, (row_number() OVER () - 1) / 100 AS chunk ${rows}
      AND (everything OR ${needed})) c
    GROUP BY c.chunk
  LOOP
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_changes', payload);
  END LOOP;
  RETURN NULL;
END
$fn$;`;
}

/** @internal */
export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    name: 'jobs',
    sql: `
CREATE TABLE jobs (
  id text PRIMARY KEY,
  name text NOT NULL,
  status text NOT NULL CHECK (status IN ('queued', 'processing', 'complete', 'failed', 'canceled')),
  input jsonb,
  owner text,
  idempotency_key text,
  -- sha256 of keyScope(owner, key): one live job per owner and key, enforced by the index, not by a read.
  idem_scope text UNIQUE,
  request_hash text,
  progress double precision,
  message text,
  result jsonb,
  result_url text,
  error jsonb,
  attempt integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL,
  -- Times are epoch milliseconds taken from the database clock (now()), so that every machine agrees.
  run_at bigint NOT NULL,
  lease_owner text,
  lease_until bigint,
  cancel_requested boolean NOT NULL DEFAULT false,
  callback_url text,
  delivery_status text CHECK (delivery_status IN ('pending', 'delivered', 'failed')),
  delivery_attempts integer NOT NULL DEFAULT 0,
  delivery_next_at bigint,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  started_at bigint,
  finished_at bigint,
  expires_at bigint,
  seq bigint NOT NULL DEFAULT 1,
  -- Insertion order: breaks ties of created_at in list().
  ord bigint GENERATED ALWAYS AS IDENTITY
);

-- claim(): queued jobs by run_at, and processing ones whose lease may have lapsed.
CREATE INDEX jobs_claim_idx ON jobs (run_at) WHERE status IN ('queued', 'processing');
-- purgeExpired()
CREATE INDEX jobs_expires_idx ON jobs (expires_at) WHERE expires_at IS NOT NULL;
-- list(): an owner's jobs, newest first.
CREATE INDEX jobs_owner_idx ON jobs (owner, created_at DESC, ord DESC);
-- claimDeliveries()
CREATE INDEX jobs_delivery_idx ON jobs (delivery_next_at) WHERE delivery_status = 'pending';

-- Every change of a job (insert, or an update that moves seq) is announced on '<schema>_changes'.
CREATE FUNCTION notify_job_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify(
    TG_TABLE_SCHEMA || '_changes',
    json_build_object('id', NEW.id, 'status', NEW.status, 'seq', NEW.seq)::text
  );
  RETURN NULL;
END
$fn$;

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs
  FOR EACH ROW EXECUTE FUNCTION notify_job_change();
CREATE TRIGGER jobs_notify_update AFTER UPDATE ON jobs
  FOR EACH ROW WHEN (NEW.seq IS DISTINCT FROM OLD.seq) EXECUTE FUNCTION notify_job_change();
`,
  },
  {
    version: 2,
    name: 'notify per statement',
    // One NOTIFY per statement instead of one per row: a batch of creates, claims or completions is announced as
    // one JSON array of [id, status, seq] (at most 100 changes per notification, well under the 8000-byte payload
    // limit). Updates that leave seq alone (lease renewals, webhook bookkeeping) announce nothing.
    // The tables and indexes are unchanged, so that processes of the previous version keep working against a
    // migrated schema during a rolling upgrade (they ignore the new payloads and find jobs by polling).
    sql: `
DROP TRIGGER jobs_notify_insert ON jobs;
DROP TRIGGER jobs_notify_update ON jobs;
DROP FUNCTION notify_job_change();

${notifyFunction('notify_jobs_inserted', 'FROM new_rows n')}

${notifyFunction(
  'notify_jobs_updated',
  'FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE n.seq IS DISTINCT FROM o.seq',
)}

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION notify_jobs_inserted();
CREATE TRIGGER jobs_notify_update AFTER UPDATE ON jobs
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION notify_jobs_updated();
`,
  },
  {
    version: 3,
    name: 'json as text',
    // jsonb refuses what JSON allows and the other stores keep: "\u0000" (in a value or a key) and lone surrogates
    // such as "\ud800". The store now keeps the JSON text it is given (JSON.stringify's, or the request body's own)
    // and parses it when read, so the same request gets the same answer on every store. No query looks inside
    // these columns. Processes of the previous version keep working during a rolling upgrade: their jsonb
    // parameters are assigned to text, and they read the columns as text already.
    // Rewrites the table (ACCESS EXCLUSIVE while it runs).
    sql: `
ALTER TABLE jobs
  ALTER COLUMN input TYPE text USING input::text,
  ALTER COLUMN result TYPE text USING result::text,
  ALTER COLUMN error TYPE text USING error::text;
`,
  },
  {
    version: 4,
    name: 'list by owner, paged',
    // list() pages by (created_at, id), newest first, with a keyset condition; ids compare bytewise (COLLATE "C")
    // so that every store lists in one order. This index serves that order, the condition and countByOwner() (the
    // per-owner quota, from the index alone where the visibility map allows, hence expires_at); it replaces jobs_owner_idx on (owner, created_at, ord). Processes of the previous version
    // keep working during a rolling upgrade: their list() finds the owner's rows on this index and sorts them.
    sql: `
CREATE INDEX IF NOT EXISTS jobs_owner_page_idx ON jobs (owner, created_at DESC, id COLLATE "C" DESC)
  INCLUDE (expires_at);
DROP INDEX IF EXISTS jobs_owner_idx;
`,
  },
  {
    version: 5,
    name: 'trace context',
    // The OpenTelemetry context of the submit (W3C traceparent/tracestate as JSON), so that a job run by another
    // process or after a restart joins the request's trace. A nullable column without a default: no table rewrite,
    // and processes of the previous version keep working during a rolling upgrade (their inserts leave it NULL and
    // their statements list their columns).
    sql: `
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS trace_context text;
`,
  },
  {
    version: 6,
    name: 'claim function',
    // A claim: the due jobs of the given names, oldest first on jobs_claim_idx, locked FOR UPDATE SKIP LOCKED and
    // taken, in one function (its lock and its update see the same rows). Left to the planner, a table whose
    // statistics predate a backlog (a fresh schema, or one analyzed while nearly every job was finished) gets a
    // plan that reads and sorts every queued row for each claim, so a drain slows as its backlog grows; the
    // function's own settings rule those plans out. `skip`: jobs the calling statement completes. Processes of
    // the previous version keep working during a rolling upgrade: their statements do not call it.
    sql: `
CREATE FUNCTION claim_jobs(names text[], worker text, lim integer, lease_ms bigint, skip text[]) RETURNS SETOF jobs
  LANGUAGE sql VOLATILE
  SET search_path FROM CURRENT
  SET enable_seqscan = off
  SET enable_bitmapscan = off
AS $fn$
  WITH picked AS MATERIALIZED (
    SELECT c.id FROM jobs c
    WHERE c.name = ANY(names) AND c.status IN ('queued', 'processing')
      AND ((c.status = 'queued' AND c.run_at <= floor(extract(epoch from now()) * 1000)::bigint)
        OR (c.status = 'processing' AND c.lease_until < floor(extract(epoch from now()) * 1000)::bigint))
      AND c.id <> ALL(skip)
    ORDER BY c.run_at
    LIMIT lim
    FOR UPDATE SKIP LOCKED
  )
  UPDATE jobs j SET status = 'processing', attempt = j.attempt + 1,
    lease_owner = worker, lease_until = floor(extract(epoch from now()) * 1000)::bigint + lease_ms,
    started_at = COALESCE(j.started_at, floor(extract(epoch from now()) * 1000)::bigint),
    updated_at = floor(extract(epoch from now()) * 1000)::bigint, seq = j.seq + 1
  FROM picked WHERE j.id = picked.id
  RETURNING j.*
$fn$;
`,
  },
  {
    version: 7,
    name: 'operator views',
    // The operator's list (every owner's jobs, newest first, paged like list(), ids bytewise) walks an index of its
    // own; the throughput and timing views read the jobs finished in a recent window by finished_at; `attempts`
    // keeps each failed attempt (timings and the full server-side error) as a JSON array, as text, appended by
    // fail(); `delivery_log` each webhook delivery attempt, appended by recordDelivery(). Nullable columns without a
    // default: no table rewrite. Processes of the previous version keep working
    // during a rolling upgrade: their statements list their columns and leave the new one alone.
    sql: `
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS attempts text;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS delivery_log text;
CREATE INDEX IF NOT EXISTS jobs_created_page_idx ON jobs (created_at DESC, id COLLATE "C" DESC);
CREATE INDEX IF NOT EXISTS jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;
`,
  },
  {
    version: 8,
    name: 'list without owner, paged',
    // list({ owner: null }) pages the jobs submitted without an owner, newest first. On jobs_owner_page_idx
    // `owner IS NULL` is not an equality, so PostgreSQL read every owner-less job and sorted them for each page:
    // a cost that grows with every retained job. This partial index serves the order and the keyset condition.
    // Built inside the migration transaction (writes to jobs wait while it builds: seconds per million rows).
    // Processes of the previous version keep working during a rolling upgrade: their statement is the same.
    sql: `
CREATE INDEX IF NOT EXISTS jobs_no_owner_page_idx ON jobs (created_at DESC, id COLLATE "C" DESC)
  INCLUDE (expires_at) WHERE owner IS NULL;
`,
  },
  {
    version: 9,
    name: 'jobs per owner',
    // The per-owner quota reads how many rows each owner holds from owner_jobs instead of counting the owner's
    // entries in jobs_owner_page_idx on every submit (a cost that grew with every retained job). Statement
    // triggers keep it in step with every insert and delete, whichever process or statement makes them
    // (processes of the previous version during a rolling upgrade, the batched purge, an operator's SQL): one
    // upsert per owner per statement. No statement changes a job's owner, so updates need no trigger. Every
    // trigger takes the owners' rows in one order (ORDER BY owner through an upsert), so two statements touching
    // several owners cannot deadlock. The triggers are created before
    // the table is filled: creating them locks out writes to jobs until this transaction commits, so no row is
    // missed or counted twice. Rows are counted, expired ones not yet purged too: countByOwner() counts the
    // owner's unexpired jobs exactly only when this figure reaches the bound.
    sql: `
CREATE TABLE owner_jobs (owner text PRIMARY KEY, n bigint NOT NULL);
CREATE FUNCTION owner_jobs_inserted() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  INSERT INTO owner_jobs AS o (owner, n)
    SELECT i.owner, count(*) FROM inserted i WHERE i.owner IS NOT NULL GROUP BY i.owner ORDER BY i.owner
    ON CONFLICT (owner) DO UPDATE SET n = o.n + excluded.n;
  RETURN NULL;
END
$fn$;
CREATE FUNCTION owner_jobs_deleted() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  INSERT INTO owner_jobs AS o (owner, n)
    SELECT d.owner, -count(*) FROM deleted d WHERE d.owner IS NOT NULL GROUP BY d.owner ORDER BY d.owner
    ON CONFLICT (owner) DO UPDATE SET n = o.n + excluded.n;
  -- An owner without jobs leaves no row behind (owners may be many and short-lived). Looked up by key: the
  -- rows locked just above.
  DELETE FROM owner_jobs o
  WHERE o.owner = ANY(ARRAY(SELECT DISTINCT d.owner FROM deleted d WHERE d.owner IS NOT NULL)) AND o.n <= 0;
  RETURN NULL;
END
$fn$;
CREATE TRIGGER owner_jobs_insert AFTER INSERT ON jobs REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION owner_jobs_inserted();
CREATE TRIGGER owner_jobs_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS deleted
  FOR EACH STATEMENT EXECUTE FUNCTION owner_jobs_deleted();
INSERT INTO owner_jobs (owner, n) SELECT owner, count(*) FROM jobs WHERE owner IS NOT NULL GROUP BY owner;
`,
  },
  {
    version: 14,
    name: 'hand-off to idle workers',
    // An idle worker offers its free slots (one row per worker process, valid until `until`, epoch ms); a lone
    // create takes one and inserts its job already leased to that worker (for the worker's lease length), which
    // hears of it through a notification carrying the job and starts it without a claim. The offer is a hint: the
    // lease decides who runs the job (a worker over capacity hands it back, one that died loses it at lease
    // expiry). Processes of the previous version keep working during a rolling upgrade: they never offer slots, so
    // no job is handed to them, and they read the hand-off's notification as an ordinary change.
    sql: `
CREATE TABLE workers (
  id text PRIMARY KEY,
  names text[] NOT NULL,
  free integer NOT NULL,
  lease_ms bigint NOT NULL,
  until bigint NOT NULL
);
`,
  },
  {
    version: 15,
    name: 'announce to watchers only while watched',
    // Every notification wakes every listening backend, which reads it and sends it to its client: announcing each
    // claim and completion costs the database work that nobody uses while nobody watches. Workers need only new
    // queued jobs (inserts, retries, releases), cancel requests and hand-offs (sent by insertHanded); watchers (event streams, `Prefer: wait`, the operator's live feed) need every change of their jobs. A process
    // with watchers keeps a row here (renewed before `until`, epoch ms; removed some seconds after its last watcher
    // goes); while any row is unexpired, the triggers announce every change as before, otherwise only what workers
    // need. A process that just registered re-reads its watched jobs, and watchers keep their fallback poll.
    // Rolling upgrade: processes of the previous version watch without registering. On a schema that existed before
    // this migration, the row 'upgrade' keeps every change announced for 24 hours; processes of the previous version
    // still running after that hear of other processes' claims, progress and completions through their watchers'
    // poll (every 5 s) instead, and their operator's live feed shows only new jobs and cancel requests from others.
    sql: `
CREATE TABLE watchers (id text PRIMARY KEY, until bigint NOT NULL);
INSERT INTO watchers (id, until)
  SELECT 'upgrade', floor(extract(epoch from now()) * 1000)::bigint + 86400000
  WHERE EXISTS (SELECT 1 FROM migrations m WHERE m.applied_at < now());

${notifyWatchedFunction('notify_jobs_inserted', 'FROM new_rows n WHERE true', "n.status = 'queued'", "n.status = 'queued'")}

${notifyWatchedFunction(
  'notify_jobs_updated',
  'FROM new_rows n JOIN old_rows o ON o.id = n.id WHERE n.seq IS DISTINCT FROM o.seq',
  "(n.status = 'queued' OR (n.cancel_requested AND NOT o.cancel_requested))",
  "n.status = 'queued' OR n.cancel_requested",
)}
`,
  },
  {
    version: 16,
    name: 'owner-less jobs out of the owner index',
    // An update that is not HOT adds an entry to every index of the table, and each job is updated at least twice
    // (its claim, its end). jobs_owner_page_idx held owner-less jobs too, which list({ owner: null }) finds on
    // jobs_no_owner_page_idx (migration 8); every statement reading it asks for `owner = $n`, which implies the new
    // predicate. Built inside the migration transaction: writes to jobs wait while it builds (seconds per million
    // rows); reads wait only from the drop at the end. Processes of the previous version keep working: their
    // statements are unchanged.
    sql: `
CREATE INDEX jobs_owner_page_16_idx ON jobs (owner, created_at DESC, id COLLATE "C" DESC)
  INCLUDE (expires_at) WHERE owner IS NOT NULL;
DROP INDEX IF EXISTS jobs_owner_page_idx;
ALTER INDEX jobs_owner_page_16_idx RENAME TO jobs_owner_page_idx;
`,
  },
];

/** The newest migration this version knows: a schema migrated further was written by a newer respond-async. */
export const POSTGRES_SCHEMA_VERSION = Math.max(...POSTGRES_MIGRATIONS.map((migration) => migration.version));
