// Seeds a store's table by SQL the way a busy day looks (finished jobs retained, a few expired, a small live set),
// for the plan guard (test/query-plans.test.ts) and the scale benchmark (bench/scale.ts).

export interface BusyDay {
  /** Rows to insert. */
  rows: number;
  /** Share of the rows finished and past retention (expired, waiting for purge). Default 0.03. */
  expired?: number;
  /** Share of the rows queued or processing (half each; a tenth of the processing ones with a lapsed lease). Default 0.02. */
  live?: number;
  /** Distinct owners (`user-<n>`). Default 1 000. */
  owners?: number;
  /** Distinct job names (`job-<n>`). Default 10. */
  names?: number;
  /** Prefix of the ids, so that several seeds can share a table. Default `seed`. */
  idPrefix?: string;
  /** Rows per INSERT statement (the generated rows of one statement are held in memory by the database). Default 100 000. */
  chunk?: number;
  /**
   * PostgreSQL only: ids shaped as the library makes them, spread over the id index as a day of real jobs would be
   * (`random`: 22 random-looking base64url characters, as before time-ordered ids; `time`: the creation time in
   * base 32, then those), instead of `<idPrefix>_<md5>`. For the scale benchmark, whose inserts land among them.
   */
  ids?: 'prefixed' | 'random' | 'time';
}

interface Shape {
  rows: number;
  /** Of every 10 000 rows, how many are expired, and how many are live. */
  expiredPer10k: number;
  livePer10k: number;
  owners: number;
  names: number;
  idPrefix: string;
  chunk: number;
  ids: 'prefixed' | 'random' | 'time';
}

function shape(day: BusyDay): Shape {
  return {
    rows: day.rows,
    expiredPer10k: Math.round((day.expired ?? 0.03) * 10_000),
    livePer10k: Math.round((day.live ?? 0.02) * 10_000),
    owners: day.owners ?? 1000,
    names: day.names ?? 10,
    idPrefix: day.idPrefix ?? 'seed',
    chunk: day.chunk ?? 100_000,
    ids: day.ids ?? 'prefixed',
  };
}

/**
 * The INSERT statements for a PostgresStore schema (the quoted schema name interpolated), each over a range of
 * `generate_series`. Row g: `r = g % 10 000` decides its kind: r < expired → finished and expired; r < expired +
 * live → queued (even g) or processing (odd g; every tenth one with a lapsed lease); else finished and retained
 * (mostly complete, some failed or canceled). Created over the last day, oldest first; a third carry an
 * idempotency key; ids are random-looking (md5), as real ids are.
 */
export function postgresSeedStatements(schema: string, day: BusyDay): string[] {
  const s = shape(day);
  const now = 'floor(extract(epoch from now()) * 1000)::bigint';
  const statements: string[] = [];
  for (let from = 1; from <= s.rows; from += s.chunk) {
    const to = Math.min(s.rows, from + s.chunk - 1);
    statements.push(`
      INSERT INTO ${schema}.jobs AS j (id, name, status, input, owner, idempotency_key, idem_scope, request_hash,
        progress, result, error, attempt, max_attempts, run_at, lease_owner, lease_until, created_at, updated_at,
        started_at, finished_at, expires_at)
      SELECT ${postgresId(s)}, 'job-' || (g % ${s.names}), k.status, '{"n":1}', 'user-' || (g % ${s.owners}),
        CASE WHEN g % 3 = 0 THEN 'key-' || g END,
        CASE WHEN g % 3 = 0 THEN md5('${s.idPrefix}:' || g) END,
        CASE WHEN g % 3 = 0 THEN md5('req:' || g) END,
        CASE WHEN k.status = 'complete' THEN 100 END,
        CASE WHEN k.status = 'complete' THEN '{"ok":true}' END,
        CASE WHEN k.status = 'failed' THEN '{"message":"failed"}' END,
        CASE WHEN k.status = 'queued' THEN 0 ELSE 1 END, 3,
        t.created, k.lease_owner, k.lease_until, t.created, t.created + 50,
        CASE WHEN k.status <> 'queued' THEN t.created + 10 END,
        CASE WHEN k.finished THEN t.created + 50 END,
        CASE WHEN k.expired THEN t.now - 1000 - (g % 3600000) WHEN k.finished THEN t.created + 86400000 + 3600000 END
      FROM generate_series(${from}, ${to}) g
      CROSS JOIN LATERAL (SELECT ${now} AS now,
        ${now} - 86400000 + (g::bigint * 86400000 / ${s.rows}) AS created) t
      CROSS JOIN LATERAL (SELECT
        CASE WHEN g % 10000 < ${s.expiredPer10k} THEN 'complete'
             WHEN g % 10000 < ${s.expiredPer10k + s.livePer10k} THEN (CASE WHEN g % 2 = 0 THEN 'queued' ELSE 'processing' END)
             WHEN g % 50 = 1 THEN 'failed' WHEN g % 100 = 3 THEN 'canceled' ELSE 'complete' END AS status,
        g % 10000 < ${s.expiredPer10k} AS expired,
        g % 10000 >= ${s.expiredPer10k + s.livePer10k} OR g % 10000 < ${s.expiredPer10k} AS finished,
        CASE WHEN g % 10000 >= ${s.expiredPer10k} AND g % 10000 < ${s.expiredPer10k + s.livePer10k} AND g % 2 = 1
          THEN 'worker-' || (g % 4) END AS lease_owner,
        CASE WHEN g % 10000 >= ${s.expiredPer10k} AND g % 10000 < ${s.expiredPer10k + s.livePer10k} AND g % 2 = 1
          THEN ${now} + (CASE WHEN g % 20 = 1 THEN -60000 ELSE 60000 END) END AS lease_until) k`);
  }
  return statements;
}

/** The id of seeded row g (created at t.created) as SQL. */
function postgresId(s: Shape): string {
  if (s.ids === 'prefixed') return `'${s.idPrefix}_' || md5(g::text)`;
  const random = `left(translate(encode(decode(md5('${s.idPrefix}:' || g), 'hex'), 'base64'), '+/', '-_'), 22)`;
  if (s.ids === 'random') return random;
  const time = `(SELECT string_agg(substr('0123456789abcdefghijklmnopqrstuv', ((t.created >> (5 * (9 - d))) & 31)::integer + 1, 1), '' ORDER BY d) FROM generate_series(0, 9) d)`;
  return `${time} || ${random}`;
}

/** The same rows for a SqliteStore file (table respond_async_jobs), `now` in epoch ms. */
export function sqliteSeedStatements(day: BusyDay, now: number): string[] {
  const s = shape(day);
  const statements: string[] = [];
  for (let from = 1; from <= s.rows; from += s.chunk) {
    const to = Math.min(s.rows, from + s.chunk - 1);
    const kind = `(CASE WHEN g % 10000 < ${s.expiredPer10k} THEN 'expired'
      WHEN g % 10000 < ${s.expiredPer10k + s.livePer10k} THEN (CASE WHEN g % 2 = 0 THEN 'queued' ELSE 'processing' END)
      ELSE 'finished' END)`;
    statements.push(`
      WITH RECURSIVE gen(g) AS (SELECT ${from} UNION ALL SELECT g + 1 FROM gen WHERE g < ${to}),
      rows AS (SELECT g, ${kind} AS kind, ${now} - 86400000 + (g * 86400000 / ${s.rows}) AS created FROM gen)
      INSERT INTO respond_async_jobs (id, name, status, input, owner, idempotency_key, idem_scope, request_hash,
        progress, result, error, attempt, max_attempts, run_at, lease_owner, lease_until, created_at, updated_at,
        started_at, finished_at, expires_at)
      SELECT '${s.idPrefix}_' || lower(hex(randomblob(16))), 'job-' || (g % ${s.names}),
        CASE kind WHEN 'queued' THEN 'queued' WHEN 'processing' THEN 'processing'
          ELSE (CASE WHEN g % 50 = 1 THEN 'failed' WHEN g % 100 = 3 THEN 'canceled' ELSE 'complete' END) END,
        '{"n":1}', 'user-' || (g % ${s.owners}),
        CASE WHEN g % 3 = 0 THEN 'key-' || g END,
        CASE WHEN g % 3 = 0 THEN '${s.idPrefix}:' || g END,
        CASE WHEN g % 3 = 0 THEN 'req:' || g END,
        NULL, NULL, NULL,
        CASE WHEN kind = 'queued' THEN 0 ELSE 1 END, 3,
        created,
        CASE WHEN kind = 'processing' THEN 'worker-' || (g % 4) END,
        CASE WHEN kind = 'processing' THEN ${now} + (CASE WHEN g % 20 = 1 THEN -60000 ELSE 60000 END) END,
        created, created + 50,
        CASE WHEN kind <> 'queued' THEN created + 10 END,
        CASE WHEN kind IN ('finished', 'expired') THEN created + 50 END,
        CASE kind WHEN 'expired' THEN ${now} - 1000 - (g % 3600000) WHEN 'finished' THEN created + 86400000 + 3600000 END
      FROM rows`);
  }
  return statements;
}
