// SqliteStore: the shared conformance suite on real SQLite files, then what is specific to SQLite.
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createJobs, StoreUnavailableError } from '../src/index.js';
import { SqliteStore } from '../src/sqlite.js';
import { SQLITE_SCHEMA_VERSION } from '../src/stores/sqlite.js';
import { SQLITE_MIGRATIONS } from '../src/stores/sqlite-migrations.js';
import { describeStoreConformance } from '../src/testing/index.js';
import { newJob } from './helpers/jobs.js';
import { sleep } from './helpers/time.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'respond-async-sqlite-'));
let files = 0;
const freshFile = () => join(dir, `store-${process.pid}-${++files}.sqlite`);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Jobs in the database file itself, without its WAL: what a checkpoint has copied there. */
function jobsInMainFile(path: string): number {
  const copy = `${path}.copy`;
  copyFileSync(path, copy);
  const db = new Database(copy, { readonly: true });
  try {
    const table = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'respond_async_jobs'").get();
    return table ? (db.prepare('SELECT count(*) AS n FROM respond_async_jobs').get() as { n: number }).n : 0;
  } finally {
    db.close();
    rmSync(copy);
  }
}

describeStoreConformance(
  'SqliteStore',
  { describe, it, afterEach },
  {
    createStore: async () => {
      const store = new SqliteStore({ path: freshFile() });
      await store.init();
      return store;
    },
    capabilities: {
      // The suite has closed `previous`; open its file again, as a restarted process would.
      reopen: async (previous) => {
        const store = new SqliteStore({ path: (previous as SqliteStore).database.name });
        await store.init();
        return store;
      },
    },
  },
);

describe('SqliteStore (SQLite specific)', () => {
  const open: Array<{ close(): unknown }> = [];
  const track = <T extends { close(): unknown }>(value: T): T => {
    open.push(value);
    return value;
  };
  afterEach(async () => {
    for (const item of open.splice(0).reverse()) await item.close();
  });

  it('needs exactly one of path or database', () => {
    expect(() => new SqliteStore({})).toThrow(TypeError);
    const db = track(new Database(':memory:'));
    expect(() => new SqliteStore({ path: freshFile(), database: db })).toThrow(TypeError);
  });

  it('turns WAL on, with synchronous = NORMAL, checkpoints every 10 000 pages, and the busy timeout', async () => {
    const store = track(new SqliteStore({ path: freshFile(), busyTimeoutMs: 1234 }));
    await store.init();
    expect(store.database.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(store.database.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
    expect(store.database.pragma('wal_autocheckpoint', { simple: true })).toBe(10_000);
    expect(store.database.pragma('busy_timeout', { simple: true })).toBe(1234);
    expect(store.database.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
  });

  it('accepts a user Database, leaves it open on close(), and reads numbers even with safe integers on', async () => {
    const path = freshFile();
    const db = track(new Database(path));
    db.defaultSafeIntegers(true);
    const store = new SqliteStore({ database: db });
    await store.init();
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    // The user's own checkpoint setting is left alone.
    expect(Number(db.pragma('wal_autocheckpoint', { simple: true }))).toBe(1000);
    const { job } = await store.create(newJob({ input: { big: 1 } }));
    const [claimed] = await store.claim({ names: ['task'], workerId: 'w', limit: 1, leaseMs: 1000 });
    expect(claimed.id).toBe(job.id);
    expect(typeof claimed.createdAt).toBe('number');
    expect(typeof claimed.attempt).toBe('number');
    expect(claimed.attempt).toBe(1);
    const states = await store.renew([job.id], 'w', 1000);
    expect(states).toEqual([{ id: job.id, held: true, cancelRequested: false }]);
    await store.close();
    expect(db.open).toBe(true);
    expect(db.prepare('SELECT count(*) AS n FROM respond_async_jobs').safeIntegers(false).get()).toEqual({ n: 1 });
    await expect(store.get(job.id)).rejects.toMatchObject({ code: 'ERR_RESPOND_ASYNC_STORE_CLOSED' });
  });

  it('closes a Database it opened itself; close() is idempotent', async () => {
    const store = new SqliteStore({ path: freshFile() });
    await store.init();
    await store.close();
    await store.close();
    expect(store.database.open).toBe(false);
  });

  it('runs init on first use when the caller did not', async () => {
    const store = track(new SqliteStore({ path: freshFile() }));
    const { created } = await store.create(newJob());
    expect(created).toBe(true);
  });

  it('keeps JSON values: null and undefined apart, nested input, result and error', async () => {
    const store = track(new SqliteStore({ path: freshFile() }));
    await store.init();
    const a = await store.create(newJob({ input: null }));
    const b = await store.create(newJob({ input: undefined }));
    const c = await store.create(newJob({ input: { body: { list: [1, 'two', { three: true }] }, params: {} } }));
    expect((await store.get(a.job.id))?.input).toBeNull();
    expect((await store.get(b.job.id))?.input).toBeUndefined();
    expect((await store.get(c.job.id))?.input).toEqual({ body: { list: [1, 'two', { three: true }] }, params: {} });
    const claimed = await store.claim({ names: ['task'], workerId: 'w', limit: 3, leaseMs: 10_000 });
    expect(claimed.map((job) => job.id)).toEqual([a.job.id, b.job.id, c.job.id]);
    await store.complete(a.job.id, 'w', { result: null, resultUrl: null, retentionMs: 60_000 });
    await store.complete(b.job.id, 'w', { result: undefined, resultUrl: '/files/1', retentionMs: 60_000 });
    await store.fail(c.job.id, 'w', {
      error: { message: 'nope', code: 'E_NOPE' },
      retryAt: null,
      retentionMs: 60_000,
    });
    const [ra, rb, rc] = await Promise.all([a, b, c].map((r) => store.get(r.job.id)));
    expect(ra?.result).toBeNull();
    expect(ra?.progress).toBe(100);
    expect(rb?.result).toBeUndefined();
    expect(rb?.resultUrl).toBe('/files/1');
    expect(rc?.status).toBe('failed');
    expect(rc?.error).toEqual({ message: 'nope', code: 'E_NOPE' });
    expect(rc?.expiresAt).toBeGreaterThan(Date.now());
  });

  it('hides expired rows from get and list, and an expired job frees its idempotency key', async () => {
    const store = track(new SqliteStore({ path: freshFile() }));
    await store.init();
    const first = await store.create(newJob({ owner: 'alice', idempotencyKey: 'k1' }));
    const again = await store.create(newJob({ owner: 'alice', idempotencyKey: 'k1' }));
    expect(again.created).toBe(false);
    expect(again.job.id).toBe(first.job.id);
    const bob = await store.create(newJob({ owner: 'bob', idempotencyKey: 'k1' }));
    expect(bob.created).toBe(true);
    const anonymous = await store.create(newJob({ owner: null, idempotencyKey: 'k1' }));
    expect(anonymous.created).toBe(true);

    await store.claim({ names: ['task'], workerId: 'w', limit: 10, leaseMs: 10_000 });
    await store.complete(first.job.id, 'w', { result: 1, resultUrl: null, retentionMs: 30 });
    expect(await store.get(first.job.id)).toBeDefined();
    await sleep(60);
    expect(await store.get(first.job.id)).toBeUndefined();
    expect((await store.list({ owner: 'alice', limit: 10 })).map((job) => job.id)).toEqual([]);
    expect((await store.cancel(first.job.id, { retentionMs: 1000 })).outcome).toBe('missing');

    // The expired row still holds the key in the UNIQUE column until purged; create unbinds it in the same
    // transaction as its insert, and the purge removes the row later.
    const keyOf = (id: string) =>
      store.database.prepare('SELECT idem_scope AS scope FROM respond_async_jobs WHERE id = ?').get(id);
    expect(keyOf(first.job.id)).toEqual({ scope: 'alice\u0000k1' });
    const fresh = await store.create(newJob({ owner: 'alice', idempotencyKey: 'k1' }));
    expect(fresh.created).toBe(true);
    expect(fresh.job.id).not.toBe(first.job.id);
    expect(keyOf(first.job.id)).toEqual({ scope: null });
    expect(keyOf(fresh.job.id)).toEqual({ scope: 'alice\u0000k1' });
    expect(await store.purgeExpired()).toBe(1);
    expect(keyOf(first.job.id)).toBeUndefined();
    expect((await store.create(newJob({ owner: 'alice', idempotencyKey: 'k1' }))).job.id).toBe(fresh.job.id);
  });

  it('purges only expired jobs, with the expires_at index', async () => {
    const store = track(new SqliteStore({ path: freshFile() }));
    await store.init();
    const keep = await store.create(newJob());
    const drop = await store.create(newJob());
    await store.claim({ names: ['task'], workerId: 'w', limit: 10, leaseMs: 10_000 });
    await store.complete(drop.job.id, 'w', { result: 1, resultUrl: null, retentionMs: 1 });
    await sleep(10);
    expect(await store.purgeExpired()).toBe(1);
    expect(await store.get(keep.job.id)).toBeDefined();
    const plan = store.database
      .prepare('EXPLAIN QUERY PLAN DELETE FROM respond_async_jobs WHERE expires_at IS NOT NULL AND expires_at <= 1')
      .all() as Array<{ detail: string }>;
    expect(plan.map((row) => row.detail).join(' ')).toContain('respond_async_jobs_expires');
  });

  it('purges a large backlog of expired jobs in batches, letting the accept path in between', async () => {
    const store = track(new SqliteStore({ path: freshFile() }));
    await store.init();
    seedExpired(store, 5000);
    const order: string[] = [];
    const purged = store.purgeExpired().then((n) => order.push(`purged ${n}`));
    const created = store.create(newJob()).then(() => order.push('created'));
    await Promise.all([purged, created]);
    // One statement would have deleted all 5 000 before this process could commit the submit.
    expect(order).toEqual(['created', 'purged 5000']);
    expect(await store.purgeExpired()).toBe(0);
  });

  it('leaves the event loop free at least about half the time while it purges', async () => {
    const store = track(new SqliteStore({ path: freshFile() }));
    await store.init();
    seedExpired(store, 20000);
    // Requests wait behind each batch; if the next batch followed at once, the purge would take the whole
    // loop and a busy server's queue would only grow until it ended.
    const start = performance.eventLoopUtilization();
    expect(await store.purgeExpired()).toBe(20000);
    const busy = performance.eventLoopUtilization(start).utilization;
    expect(busy).toBeLessThan(0.7);
  });

  it('copies committed jobs into the database file in the background, and ends that thread on close', async () => {
    const path = freshFile();
    const store = new SqliteStore({ path });
    await store.init();
    for (let i = 0; i < 20; i++) await store.create(newJob());
    // The WAL is far below SQLite's inline checkpoint (10 000 pages): only the store's checkpoint thread moves
    // these jobs into the main file, so that no commit of the accept path has to.
    const deadline = Date.now() + 5000;
    while (jobsInMainFile(path) < 20 && Date.now() < deadline) await sleep(50);
    expect(jobsInMainFile(path)).toBe(20);
    await store.close();
    // The last connection to close removes the WAL: the thread's connection is closed too.
    expect(existsSync(`${path}-wal`)).toBe(false);
  });

  it('leaves checkpoints inline when backgroundCheckpoints is false', async () => {
    const path = freshFile();
    const store = track(new SqliteStore({ path, backgroundCheckpoints: false }));
    await store.init();
    await store.create(newJob());
    await sleep(300);
    expect(await store.get((await store.create(newJob())).job.id)).toBeDefined();
    // Committed (in the WAL), and left there until SQLite checkpoints inline.
    expect(jobsInMainFile(path)).toBe(0);
  });

  it('uses an index for every query (no full table scan)', async () => {
    const store = track(new SqliteStore({ path: freshFile() }));
    await store.init();
    const T = 'respond_async_jobs';
    const queries = [
      `SELECT * FROM ${T} WHERE owner IS 'a' AND (expires_at IS NULL OR expires_at > 1) ORDER BY created_at DESC, id DESC LIMIT 5`,
      `SELECT * FROM ${T} WHERE owner IS 'a' AND (created_at, id) < (5, 'x') AND (expires_at IS NULL OR expires_at > 1) ORDER BY created_at DESC, id DESC LIMIT 5`,
      `SELECT * FROM ${T} WHERE owner IS NULL AND (created_at, id) < (5, 'x') AND (expires_at IS NULL OR expires_at > 1) ORDER BY created_at DESC, id DESC LIMIT 5`,
      `SELECT count(*) FROM (SELECT 1 FROM ${T} WHERE owner = 'a' AND (expires_at IS NULL OR expires_at > 1) LIMIT 5)`,
      `SELECT id FROM ${T} WHERE status = 'queued' AND run_at <= 1 ORDER BY run_at LIMIT 5`,
      `SELECT id FROM ${T} WHERE status = 'processing' AND lease_until < 1`,
      `SELECT id FROM ${T} WHERE delivery_status = 'pending' AND delivery_next_at <= 1 ORDER BY delivery_next_at LIMIT 5`,
      `SELECT id FROM ${T} WHERE idem_scope = 'x'`,
    ];
    for (const sql of queries) {
      const plan = (store.database.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>)
        .map((row) => row.detail)
        .join('; ');
      expect(plan, sql).toMatch(/USING (COVERING )?INDEX/);
      expect(plan, sql).not.toMatch(/TEMP B-TREE/);
    }
  });

  it('two instances on one file see each other’s jobs and never claim one job twice', async () => {
    const path = freshFile();
    const a = track(new SqliteStore({ path }));
    const b = track(new SqliteStore({ path }));
    await Promise.all([a.init(), b.init()]);
    const ids: string[] = [];
    for (let i = 0; i < 20; i += 1) ids.push((await (i % 2 ? a : b).create(newJob({ owner: 'o' }))).job.id);
    expect((await a.get(ids[0]))?.id).toBe(ids[0]);
    expect((await b.get(ids[1]))?.id).toBe(ids[1]);
    expect(await a.list({ owner: 'o', limit: 100 })).toHaveLength(20);
    const claims = await Promise.all(
      [a, b, a, b, a, b].map((store, i) =>
        store.claim({ names: ['task'], workerId: `w${i}`, limit: 4, leaseMs: 10_000 }),
      ),
    );
    const claimed = claims.flat().map((job) => job.id);
    expect(claimed).toHaveLength(20);
    expect(new Set(claimed).size).toBe(20);
    const cancel = await b.cancel(ids[0], { retentionMs: 1000 });
    expect(cancel.outcome).toBe('requested');
    const holder = claims.findIndex((batch) => batch.some((job) => job.id === ids[0]));
    const states = await a.renew([ids[0]], `w${holder}`, 10_000);
    expect(states[0]).toEqual({ id: ids[0], held: true, cancelRequested: true });
  });

  it('runs migrations once when two instances init concurrently, and again is a no-op', async () => {
    const path = freshFile();
    const a = track(new SqliteStore({ path }));
    const b = track(new SqliteStore({ path }));
    await Promise.all([a.init(), b.init(), a.init(), b.init()]);
    const c = track(new SqliteStore({ path }));
    await c.init();
    expect(c.database.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    const tables = c.database
      .prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'respond_async_jobs'")
      .get();
    expect(tables).toEqual({ n: 1 });
  });

  it('runs migrations once when four processes open a new file at the same moment', async () => {
    const path = freshFile();
    const startAt = Date.now() + 2500;
    const children = Array.from({ length: 4 }, () =>
      run(process.execPath, ['--import', 'tsx', 'test/fixtures/sqlite-migrate.ts', path, String(startAt)], {
        cwd: root,
        timeout: 30_000,
      }),
    );
    const outputs = (await Promise.all(children)).map(({ stdout }) => JSON.parse(stdout.trim()));
    expect(outputs.map((out) => out.version)).toEqual([1, 1, 1, 1].map(() => SQLITE_SCHEMA_VERSION));
    // One idempotency key, four concurrent creates: one job.
    expect(new Set(outputs.map((out) => out.jobId)).size).toBe(1);
    const db = track(new Database(path, { readonly: true }));
    expect(db.prepare('SELECT count(*) AS n FROM respond_async_jobs').get()).toEqual({ n: 1 });
  }, 60_000);

  it('counts per owner the jobs there before the upgrade and those of processes of the previous version', async () => {
    const path = freshFile();
    const db = track(new Database(path));
    // A file of the version before the count per owner, holding jobs.
    for (const migration of SQLITE_MIGRATIONS.filter((m) => m.version < 5)) db.exec(migration.sql);
    db.pragma('user_version = 4');
    const insert = db.prepare(`INSERT INTO respond_async_jobs (id, name, status, input, owner, max_attempts, run_at,
      created_at, updated_at) VALUES (?, 'task', 'queued', '{}', ?, 3, 0, 0, 0)`);
    for (const [id, owner] of [
      ['a1', 'ann'],
      ['a2', 'ann'],
      ['b1', 'bob'],
      ['n1', null],
    ])
      insert.run(id, owner);
    const store = track(new SqliteStore({ path }));
    await store.init();
    expect(await store.countByOwner('ann', 100)).toBe(2);
    expect(await store.countByOwner('bob', 100)).toBe(1);
    // A process of the previous version inserts and deletes with its own statements.
    insert.run('a3', 'ann');
    db.prepare(`DELETE FROM respond_async_jobs WHERE id IN ('a1', 'b1')`).run();
    expect(await store.countByOwner('ann', 100)).toBe(2);
    expect(await store.countByOwner('bob', 100)).toBe(0);
    expect(db.prepare('SELECT owner, n FROM respond_async_owner_jobs ORDER BY owner').all()).toEqual([
      { owner: 'ann', n: 2 },
    ]);
  });

  it('refuses a schema newer than it knows', async () => {
    const path = freshFile();
    const db = track(new Database(path));
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    const store = track(new SqliteStore({ path }));
    await expect(store.init()).rejects.toMatchObject({
      code: 'ERR_RESPOND_ASYNC_SCHEMA_TOO_NEW',
      message: expect.stringMatching(/newer/),
    });
  });

  it('surfaces SQLITE_BUSY when another connection holds the write lock past busyTimeoutMs; the runtime maps it to StoreUnavailableError', async () => {
    const path = freshFile();
    const store = track(new SqliteStore({ path, busyTimeoutMs: 50 }));
    await store.init();
    const blocker = track(new Database(path));
    blocker.exec('BEGIN IMMEDIATE');
    try {
      await expect(store.create(newJob())).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
      const jobs = createJobs({ store, worker: false });
      jobs.define('task', async () => 1);
      await expect(jobs.submit('task', {})).rejects.toBeInstanceOf(StoreUnavailableError);
      // Readers are not blocked by a writer in WAL mode.
      expect(await store.list({ owner: null, limit: 1 })).toEqual([]);
    } finally {
      blocker.exec('ROLLBACK');
    }
    expect((await store.create(newJob())).created).toBe(true);
  });

  it('hands a lapsed lease to another worker, and the old holder can no longer write', async () => {
    const store = track(new SqliteStore({ path: freshFile() }));
    await store.init();
    const { job } = await store.create(newJob());
    const [first] = await store.claim({ names: ['task'], workerId: 'w1', limit: 5, leaseMs: 30 });
    expect(first.leaseOwner).toBe('w1');
    expect(await store.claim({ names: ['task'], workerId: 'w2', limit: 5, leaseMs: 30 })).toEqual([]);
    await sleep(50);
    const [second] = await store.claim({ names: ['task'], workerId: 'w2', limit: 5, leaseMs: 10_000 });
    expect(second.id).toBe(job.id);
    expect(second.attempt).toBe(2);
    expect(second.startedAt).toBe(first.startedAt);
    expect(await store.complete(job.id, 'w1', { result: 1, resultUrl: null, retentionMs: 1000 })).toBeUndefined();
    expect(await store.renew([job.id], 'w1', 1000)).toEqual([{ id: job.id, held: false, cancelRequested: false }]);
    expect((await store.complete(job.id, 'w2', { result: 2, resultUrl: null, retentionMs: 1000 }))?.result).toBe(2);
  });

  it('says how to install better-sqlite3 when it is missing', async () => {
    const script = `
      const { SqliteStore } = await import('./src/sqlite.ts');
      try { new SqliteStore({ path: ':memory:' }); console.log('constructed'); }
      catch (error) { console.log(JSON.stringify({ code: error.code, message: error.message })); }`;
    const { stdout } = await run(
      process.execPath,
      ['--require', './test/fixtures/sqlite-hide-driver.cjs', '--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: root, timeout: 30_000 },
    );
    expect(JSON.parse(stdout.trim())).toEqual({
      code: 'ERR_RESPOND_ASYNC_DRIVER_MISSING',
      message:
        'respond-async: cannot import `better-sqlite3`: install it (npm install better-sqlite3@12) or pass `database` (an open better-sqlite3 Database)',
    });
  }, 60_000);

  it('does not load better-sqlite3 when the core, or even respond-async/sqlite, is imported', async () => {
    const script = `
      import { createRequire } from 'node:module';
      const require = createRequire(process.cwd() + '/');
      const loaded = () => Object.keys(require.cache).some((file) => file.includes('better-sqlite3'));
      await import('./src/index.ts');
      const afterCore = loaded();
      const { SqliteStore } = await import('./src/sqlite.ts');
      const afterSubpath = loaded();
      new SqliteStore({ path: ':memory:' });
      console.log(JSON.stringify({ afterCore, afterSubpath, afterConstruct: loaded() }));`;
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root,
      timeout: 30_000,
    });
    expect(JSON.parse(stdout.trim())).toEqual({ afterCore: false, afterSubpath: false, afterConstruct: true });
  }, 60_000);
});

/** `count` finished jobs whose retention ended a second ago, inserted by SQL in one statement. */
function seedExpired(store: SqliteStore, count: number): void {
  const past = Date.now() - 1000;
  store.database.exec(`
    WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ${count})
    INSERT INTO respond_async_jobs (id, name, status, max_attempts, run_at, created_at, updated_at, finished_at,
      expires_at)
    SELECT 'old_' || n, 'task', 'complete', 3, ${past}, ${past}, ${past}, ${past}, ${past} FROM g`);
}
