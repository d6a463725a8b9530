// PostgreSQL test helpers: the server started by test/setup/global-postgres.ts, and a fresh schema per test
// (random name) so that test files and cases never see each other's jobs.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { POSTGRES_MIGRATIONS } from '../../src/stores/postgres-migrations.js';

/** The test server's URL; throws with the reason when globalSetup could not start one. */
export function pgUrl(): string {
  let url = '';
  let reason = '';
  try {
    url = inject('pgUrl');
    reason = inject('pgError');
  } catch {
    // Outside a vitest worker (a child process): the environment carries the URL.
  }
  url ||= process.env.RESPOND_ASYNC_TEST_PG_URL ?? '';
  if (!url) throw new Error(`PostgreSQL test server unavailable: ${reason || 'RESPOND_ASYNC_TEST_PG_URL not set'}`);
  return url;
}

/** A schema name no other test uses. */
export function randomSchema(prefix = 'test'): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

let admin: pg.Pool | undefined;

/** A small pool for test bookkeeping (dropping schemas, reading side tables). */
export function adminPool(): pg.Pool {
  if (!admin) {
    admin = new pg.Pool({ connectionString: pgUrl(), max: 3 });
    admin.on('error', () => {});
  }
  return admin;
}

export async function adminQuery<R extends pg.QueryResultRow = Record<string, unknown>>(
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  const result = await adminPool().query<R>(text, values);
  return result.rows;
}

export async function dropSchema(schema: string): Promise<void> {
  await adminQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

/** Hands out fresh schema names and drops them all at the end (call `dropAll` in afterAll). */
export function schemas(prefix = 'test') {
  const created = new Set<string>();
  return {
    next(): string {
      const schema = randomSchema(prefix);
      created.add(schema);
      return schema;
    },
    async dropAll(): Promise<void> {
      for (const schema of created) await dropSchema(schema).catch(() => {});
      created.clear();
    },
  };
}

/**
 * Create `schema` as a release at migration `version` left it, then run `sql` in it (the jobs that release wrote):
 * what an upgrade finds.
 */
export async function schemaAtVersion(schema: string, version: number, sql?: string): Promise<void> {
  const client = await adminPool().connect();
  try {
    await client.query(`CREATE SCHEMA "${schema}"; SET search_path TO "${schema}"`);
    await client.query(
      'CREATE TABLE migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    for (const migration of POSTGRES_MIGRATIONS.filter((m) => m.version <= version)) {
      await client.query(migration.sql);
      await client.query('INSERT INTO migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
    }
    if (sql) await client.query(sql);
  } finally {
    await client.query('RESET search_path').catch(() => {});
    client.release();
  }
}

export async function closeAdmin(): Promise<void> {
  const pool = admin;
  admin = undefined;
  await pool?.end().catch(() => {});
}

/** Poll `check` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 10_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/**
 * The raw notifications on `schema`'s change channel, heard on a connection of its own (what every process that
 * subscribes receives): their payloads, as they arrive.
 */
export async function listenRaw(schema: string): Promise<{ payloads: string[]; end(): Promise<void> }> {
  const client = new pg.Client({ connectionString: pgUrl() });
  const payloads: string[] = [];
  client.on('notification', (message) => payloads.push(message.payload ?? ''));
  await client.connect();
  await client.query(`LISTEN "${schema}_changes"`);
  return { payloads, end: () => client.end() };
}
