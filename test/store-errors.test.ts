// The stores' errors carry stable codes, and a permanent one (a schema from a newer version) is answered 500 with
// its code, not 503 "retry later".
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { NewJob } from '../src/core/types.js';
import { respondAsync } from '../src/fetch.js';
import { createJobs, type Jobs, newJobId, StoreUnavailableError } from '../src/index.js';
import { SqliteStore } from '../src/sqlite.js';
import { SQLITE_SCHEMA_VERSION } from '../src/stores/sqlite.js';

const dir = mkdtempSync(join(tmpdir(), 'respond-async-errors-'));
let files = 0;
const freshFile = () => join(dir, `store-${process.pid}-${++files}.sqlite`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

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
      const submit = () =>
        ra.route(task)(
          new Request('http://127.0.0.1/reports', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: '{"n":1}',
          }),
        );
      for (let attempt = 0; attempt < 2; attempt++) {
        const response = await submit();
        expect(response.status).toBe(500);
        expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(response.headers.get('retry-after')).toBeNull();
        expect(await response.json()).toMatchObject({ status: 500, code: 'ERR_RESPOND_ASYNC_SCHEMA_TOO_NEW' });
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
});
