// The stores' errors carry stable codes, and a permanent one (a schema from a newer version) is answered 500 with
// its code, not 503 "retry later".
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { NewJob } from '../src/core/types.js';
import { respondAsync } from '../src/fetch.js';
import { createJobs, type Jobs, newJobId, StoreUnavailableError } from '../src/index.js';
import { PostgresStore } from '../src/postgres.js';
import { SqliteStore } from '../src/sqlite.js';
import { POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION } from '../src/stores/postgres-migrations.js';
import { SQLITE_SCHEMA_VERSION } from '../src/stores/sqlite.js';
import { adminQuery, closeAdmin, pgUrl, schemas } from './helpers/postgres.js';

const dir = mkdtempSync(join(tmpdir(), 'respond-async-errors-'));
let files = 0;
const freshFile = () => join(dir, `store-${process.pid}-${++files}.sqlite`);
const pgSchemas = schemas('errors');
const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await pgSchemas.dropAll();
  await closeAdmin();
});

const newJob = (id: string, input: unknown = {}): NewJob => ({
  id,
  name: 'task',
  input,
  owner: null,
  idempotencyKey: null,
  requestHash: null,
  maxAttempts: 1,
  callbackUrl: null,
});

const silent = { error() {}, warn() {}, info() {}, debug() {} };

/** POST a job to a route's handler (the fetch adapter), as a client would. */
const post = (handler: (request: Request) => Promise<Response>) =>
  handler(
    new Request('http://127.0.0.1/reports', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"n":1}',
    }),
  );

/** A permanent failure answered as HTTP clients must see it: 500 problem+json with its code, never "retry later". */
async function expectPermanent(response: Response, code: string): Promise<void> {
  expect(response.status).toBe(500);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(response.headers.get('retry-after')).toBeNull();
  expect(await response.json()).toMatchObject({ status: 500, code });
}

describe('store errors', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const task of cleanup.splice(0).reverse()) await task();
  });

  it('a closed SqliteStore answers every call with ERR_RESPOND_ASYNC_STORE_CLOSED', async () => {
    const store = new SqliteStore({ path: freshFile() });
    await store.init();
    const { job } = await store.create(newJob('a'));
    await store.close();
    const closed = { code: 'ERR_RESPOND_ASYNC_STORE_CLOSED', message: expect.stringMatching(/closed/) };
    await expect(store.get(job.id)).rejects.toMatchObject(closed);
    await expect(store.create(newJob('b'))).rejects.toMatchObject(closed);
    await expect(store.claim({ names: ['task'], workerId: 'w', limit: 1, leaseMs: 1000 })).rejects.toMatchObject(
      closed,
    );
    await expect(store.init()).rejects.toMatchObject(closed);
  });

  it('a closed store is not permanent: jobs.submit answers StoreUnavailableError (503) with the closed code as its cause', async () => {
    const store = new SqliteStore({ path: freshFile() });
    const jobs = createJobs({ store, worker: false, logger: silent });
    cleanup.push(() => jobs.close());
    jobs.define('task', async () => 1);
    await jobs.ready();
    await store.close();
    const error = await jobs.submit('task', {}).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as StoreUnavailableError).cause).toMatchObject({ code: 'ERR_RESPOND_ASYNC_STORE_CLOSED' });
  });

  describe('a SQLite file whose schema is newer than this version', () => {
    const tooNew = async (): Promise<{ jobs: Jobs; store: SqliteStore }> => {
      const path = freshFile();
      const db = new Database(path);
      db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
      db.close();
      const store = new SqliteStore({ path });
      const jobs = createJobs({ store, worker: false, logger: silent });
      cleanup.push(() => store.close());
      cleanup.push(() => jobs.close());
      return { jobs, store };
    };

    it('fails init with ERR_RESPOND_ASYNC_SCHEMA_TOO_NEW', async () => {
      const { store } = await tooNew();
      await expect(store.init()).rejects.toMatchObject({
        code: 'ERR_RESPOND_ASYNC_SCHEMA_TOO_NEW',
        permanent: true,
        message: expect.stringMatching(/newer than this version of respond-async knows/),
      });
    });

    it('an HTTP submit answers 500 problem+json with that code, without Retry-After, not 503', async () => {
      const { jobs } = await tooNew();
      const task = jobs.define('task', async () => 1);
      const ra = respondAsync(jobs);
      for (let attempt = 0; attempt < 2; attempt++) {
        await expectPermanent(await post(ra.route(task)), 'ERR_RESPOND_ASYNC_SCHEMA_TOO_NEW');
      }
      const status = await ra.handle(new Request(`http://127.0.0.1${ra.statusUrl(newJobId())}`));
      expect(status?.status).toBe(500);
      expect(await status?.json()).toMatchObject({ code: 'ERR_RESPOND_ASYNC_SCHEMA_TOO_NEW' });
    });
  });

  it('a value JSON cannot hold fails its own create with ERR_RESPOND_ASYNC_JSON_REFUSED; the others of its batch are stored', async () => {
    const store = new SqliteStore({ path: freshFile() });
    cleanup.push(() => store.close());
    await store.init();
    const [good, bad] = await Promise.allSettled([
      store.create(newJob('good', { n: 1 })),
      store.create(newJob('bad', { n: 1n })),
    ]);
    expect(good).toMatchObject({ status: 'fulfilled', value: { created: true } });
    expect(bad).toMatchObject({ status: 'rejected', reason: { code: 'ERR_RESPOND_ASYNC_JSON_REFUSED' } });
    expect(await store.get('good')).toBeDefined();
    expect(await store.get('bad')).toBeUndefined();

    // Retrying cannot help, so jobs.submit passes it through as it is, not as StoreUnavailableError.
    const jobs = createJobs({ store, worker: false, logger: silent });
    cleanup.push(() => jobs.close());
    jobs.define('task', async () => 1);
    await expect(jobs.submit('task', { n: 2n })).rejects.toMatchObject({
      code: 'ERR_RESPOND_ASYNC_JSON_REFUSED',
      permanent: true,
    });
  });

  describe('PostgreSQL', () => {
    it('a closed PostgresStore answers every call with ERR_RESPOND_ASYNC_STORE_CLOSED', async () => {
      const store = new PostgresStore({ connectionString: pgUrl(), schema: pgSchemas.next() });
      await store.init();
      const { job } = await store.create(newJob(newJobId()));
      await store.close();
      const closed = { code: 'ERR_RESPOND_ASYNC_STORE_CLOSED', message: expect.stringMatching(/closed/) };
      await expect(store.get(job.id)).rejects.toMatchObject(closed);
      await expect(store.create(newJob(newJobId()))).rejects.toMatchObject(closed);
      await expect(store.claim({ names: ['task'], workerId: 'w', limit: 1, leaseMs: 1000 })).rejects.toMatchObject(
        closed,
      );
      await expect(store.subscribe?.(() => {})).rejects.toMatchObject(closed);
      await expect(store.init()).rejects.toMatchObject(closed);
    });

    describe('a schema migrated by a newer version', () => {
      // A newer respond-async ran a migration this version does not have: its row in the migrations table says so.
      const tooNew = async (): Promise<{ jobs: Jobs; store: PostgresStore }> => {
        const schema = pgSchemas.next();
        const current = new PostgresStore({ connectionString: pgUrl(), schema, listen: false });
        await current.init();
        await current.close();
        await adminQuery(`INSERT INTO "${schema}".migrations (version, name) VALUES ($1, 'from the future')`, [
          POSTGRES_SCHEMA_VERSION + 1,
        ]);
        const store = new PostgresStore({ connectionString: pgUrl(), schema });
        const jobs = createJobs({ store, worker: false, logger: silent });
        cleanup.push(() => store.close());
        cleanup.push(() => jobs.close());
        return { jobs, store };
      };

      it('fails init with ERR_RESPOND_ASYNC_SCHEMA_TOO_NEW, and migrates nothing', async () => {
        const { store } = await tooNew();
        await expect(store.init()).rejects.toMatchObject({
          code: 'ERR_RESPOND_ASYNC_SCHEMA_TOO_NEW',
          permanent: true,
          found: POSTGRES_SCHEMA_VERSION + 1,
          known: POSTGRES_SCHEMA_VERSION,
          message: expect.stringMatching(/PostgreSQL schema is version \d+, newer than this version/),
        });
        const rows = await adminQuery(`SELECT version FROM "${store.schema}".migrations`);
        // Every migration this version knows, and the newer one (versions need not be consecutive).
        expect(rows).toHaveLength(POSTGRES_MIGRATIONS.length + 1);
      });

      it('an HTTP submit answers 500 problem+json with that code, without Retry-After, not 503', async () => {
        const { jobs } = await tooNew();
        const task = jobs.define('task', async () => 1);
        const ra = respondAsync(jobs);
        for (let attempt = 0; attempt < 2; attempt++) {
          await expectPermanent(await post(ra.route(task)), 'ERR_RESPOND_ASYNC_SCHEMA_TOO_NEW');
        }
      });
    });

    it('says how to install pg when it is missing', async () => {
      // Makes `pg` look uninstalled to the ESM resolver (the store imports it dynamically).
      const hide = `data:text/javascript,${encodeURIComponent(`
        import { register } from 'node:module';
        register('data:text/javascript,' + encodeURIComponent(
          'export async function resolve(specifier, context, next) {' +
          '  if (specifier === "pg") throw Object.assign(new Error("Cannot find package pg"), { code: "ERR_MODULE_NOT_FOUND" });' +
          '  return next(specifier, context);' +
          '}'));`)}`;
      const script = `
        const { PostgresStore } = await import('./src/postgres.ts');
        const store = new PostgresStore({ connectionString: 'postgres://127.0.0.1:1/none' });
        const error = await store.init().then(() => undefined, (caught) => caught);
        console.log(JSON.stringify({ code: error?.code, permanent: error?.permanent, message: error?.message }));`;
      const { stdout } = await run(
        process.execPath,
        ['--import', hide, '--import', 'tsx', '--input-type=module', '-e', script],
        { cwd: root, timeout: 30_000 },
      );
      expect(JSON.parse(stdout.trim().split('\n').pop() as string)).toEqual({
        code: 'ERR_RESPOND_ASYNC_DRIVER_MISSING',
        permanent: true,
        message: 'respond-async: cannot import `pg`: install it (npm install pg) or pass `pool` (a pg.Pool)',
      });
    }, 60_000);
  });
});
