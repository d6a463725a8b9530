// PostgresStore against a real PostgreSQL server (test/setup/global-postgres.ts): the shared conformance suite,
// then what only PostgreSQL does (advisory-locked migrations, LISTEN/NOTIFY, reconnects, a user's pool).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { JobStore } from '../src/core/store.js';
import { createJobs, type JobChange, type Jobs, StoreUnavailableError } from '../src/index.js';
import { PostgresStore } from '../src/postgres.js';
import { POSTGRES_MIGRATIONS } from '../src/stores/postgres-migrations.js';
import { describeStoreConformance } from '../src/testing/index.js';
import { newJob } from './helpers/jobs.js';
import { adminQuery, closeAdmin, eventually, listenRaw, pgUrl, schemaAtVersion, schemas } from './helpers/postgres.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const fresh = schemas('pgstore');
const open: JobStore[] = [];
const runtimes: Jobs[] = [];

function store(options: { schema?: string; pool?: pg.Pool; listen?: boolean } = {}): PostgresStore {
  const created = new PostgresStore({
    connectionString: options.pool ? undefined : pgUrl(),
    schema: options.schema ?? fresh.next(),
    pool: options.pool,
    listen: options.listen,
  });
  open.push(created);
  return created;
}

/** Wait until a LISTEN connection of `schema` is up, and return its backend pid. */
async function listenerPid(schema: string, not?: number): Promise<number> {
  return eventually(async () => {
    const rows = await adminQuery<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE application_name = 'respond-async-listen' AND query = $1 AND pid <> $2`,
      [`LISTEN "${schema}_changes"`, not ?? 0],
    );
    return rows[0]?.pid;
  }, 10_000);
}

describeStoreConformance(
  'PostgresStore',
  { describe, it, afterEach },
  {
    // A fresh schema per store: the suite's cases never see each other's jobs.
    createStore: async () => {
      const created = new PostgresStore({ connectionString: pgUrl(), schema: fresh.next() });
      await created.init();
      return created;
    },
    capabilities: {
      createClaimed: true,
      // The suite has closed `previous`: open its schema again, as a restarted process would.
      reopen: async (previous) => {
        const reopened = new PostgresStore({ connectionString: pgUrl(), schema: (previous as PostgresStore).schema });
        await reopened.init();
        return reopened;
      },
    },
  },
);

afterEach(async () => {
  await Promise.allSettled(runtimes.splice(0).map((jobs) => jobs.close({ timeoutMs: 100 })));
  await Promise.allSettled(open.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await fresh.dropAll();
  await closeAdmin();
});

describe('PostgresStore', () => {
  it('round-trips every field, JSON null apart from no result, with times from the database clock', async () => {
    const s = store();
    await s.init();
    const before = Date.now();
    const { job, created } = await s.create(
      newJob({ input: 'a bare string', owner: 'ann', idempotencyKey: 'k1', requestHash: 'h', callbackUrl: null }),
    );
    expect(created).toBe(true);
    expect(job).toMatchObject({ status: 'queued', input: 'a bare string', owner: 'ann', idempotencyKey: 'k1', seq: 1 });
    expect(job.result).toBeUndefined();
    expect(job.createdAt).toBeGreaterThanOrEqual(before - 1000);
    expect(job.createdAt).toBeLessThanOrEqual(Date.now() + 1000);
    expect(job.runAt).toBe(job.createdAt);

    const [claimed] = await s.claim({ names: ['task'], workerId: 'w1', limit: 5, leaseMs: 10_000 });
    expect(claimed).toMatchObject({ id: job.id, status: 'processing', attempt: 1, leaseOwner: 'w1', seq: 2 });
    expect(claimed.leaseUntil! - claimed.updatedAt).toBe(10_000);
    const done = await s.complete(job.id, 'w1', { result: null, resultUrl: null, retentionMs: 60_000 });
    expect(done).toMatchObject({ status: 'complete', result: null, progress: 100, leaseOwner: null, seq: 3 });
    expect(done!.expiresAt! - done!.finishedAt!).toBe(60_000);
    expect((await s.get(job.id))?.result).toBeNull();
  });

  it('creates one job for one idempotency key under concurrent creates from several instances', async () => {
    const schema = fresh.next();
    const stores = [store({ schema }), store({ schema }), store({ schema })];
    await Promise.all(stores.map((s) => s.init()));
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => stores[i % 3].create(newJob({ owner: 'o', idempotencyKey: 'same' }))),
    );
    const ids = new Set(results.map((r) => r.job.id));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    // Another owner's identical key is another job; a key with NUL-free scope separators is safe in text.
    const other = await stores[0].create(newJob({ owner: 'p', idempotencyKey: 'same' }));
    expect(other.created).toBe(true);
  });

  it('frees an expired idempotency key before it is purged', async () => {
    const s = store();
    await s.init();
    const first = await s.create(newJob({ idempotencyKey: 'k' }));
    await s.claim({ names: ['task'], workerId: 'w', limit: 1, leaseMs: 10_000 });
    await s.complete(first.job.id, 'w', { result: 1, resultUrl: null, retentionMs: 1 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await s.get(first.job.id)).toBeUndefined();
    const second = await s.create(newJob({ idempotencyKey: 'k' }));
    expect(second.created).toBe(true);
    expect(second.job.id).not.toBe(first.job.id);
  });

  it('never hands a job to two concurrent claimers', async () => {
    const schema = fresh.next();
    const stores = Array.from({ length: 5 }, () => store({ schema }));
    await Promise.all(stores.map((s) => s.init()));
    for (let i = 0; i < 200; i += 50) {
      await Promise.all(Array.from({ length: 50 }, () => stores[0].create(newJob())));
    }
    const seen = new Map<string, string>();
    await Promise.all(
      stores.map(async (s, n) => {
        for (;;) {
          const claimed = await s.claim({ names: ['task'], workerId: `w${n}`, limit: 7, leaseMs: 60_000 });
          if (claimed.length === 0) return;
          for (const job of claimed) {
            expect(seen.has(job.id), `job ${job.id} claimed twice`).toBe(false);
            seen.set(job.id, `w${n}`);
          }
        }
      }),
    );
    expect(seen.size).toBe(200);
  });

  it('pages an owner’s jobs and counts them on the owner index, without a sort', async () => {
    const s = store();
    await s.init();
    const schema = s.schema;
    // Enough rows, over many owners, that the planner prefers the index to a scan.
    await adminQuery(
      `INSERT INTO "${schema}".jobs (id, name, status, owner, max_attempts, run_at, created_at, updated_at)
       SELECT 'id' || g, 'task', 'queued', 'owner' || (g % 500), 3, g, g, g FROM generate_series(1, 20000) g`,
    );
    await adminQuery(`ANALYZE "${schema}".jobs`);
    const live = `(j.expires_at IS NULL OR j.expires_at > 1)`;
    const queries = [
      `SELECT * FROM "${schema}".jobs j WHERE j.owner = 'owner7' AND (j.created_at, j.id COLLATE "C") < (15000::bigint, 'x'::text COLLATE "C") AND ${live} ORDER BY j.created_at DESC, j.id COLLATE "C" DESC LIMIT 21`,
      `SELECT count(*)::integer AS n FROM (SELECT 1 FROM "${schema}".jobs j WHERE j.owner = 'owner7' AND ${live} LIMIT 10000) s`,
    ];
    for (const sql of queries) {
      const plan = (await adminQuery<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`))
        .map((r) => r['QUERY PLAN'])
        .join('\n');
      expect(plan, sql).toContain('jobs_owner_page_idx');
      expect(plan, sql).not.toMatch(/Sort|Seq Scan/);
    }
    const page = await s.list({ owner: 'owner7', limit: 3, before: { createdAt: 15000, id: 'x' } });
    expect(page.map((job) => job.createdAt)).toEqual([14507, 14007, 13507]);
    expect(await s.countByOwner('owner7', 10_000)).toBe(40);
  });

  it('reclaims a job whose lease lapsed, and refuses the former holder', async () => {
    const s = store();
    await s.init();
    const { job } = await s.create(newJob());
    await s.claim({ names: ['task'], workerId: 'old', limit: 1, leaseMs: 50 });
    expect(await s.claim({ names: ['task'], workerId: 'new', limit: 1, leaseMs: 10_000 })).toHaveLength(0);
    await new Promise((resolve) => setTimeout(resolve, 80));
    const [again] = await s.claim({ names: ['task'], workerId: 'new', limit: 1, leaseMs: 10_000 });
    expect(again).toMatchObject({ id: job.id, attempt: 2, leaseOwner: 'new' });
    expect(await s.complete(job.id, 'old', { result: 1, resultUrl: null, retentionMs: 1000 })).toBeUndefined();
    expect(await s.renew([job.id], 'old', 1000)).toEqual([{ id: job.id, held: false, cancelRequested: false }]);
    expect(await s.renew([job.id], 'new', 1000)).toEqual([{ id: job.id, held: true, cancelRequested: false }]);
  });

  it('lets 10 instances run init() at once on a fresh schema (advisory lock)', async () => {
    const schema = fresh.next();
    const stores = Array.from({ length: 10 }, () => store({ schema }));
    const results = await Promise.allSettled(stores.map((s) => s.init()));
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    const rows = await adminQuery<{ version: number }>(`SELECT version FROM "${schema}".migrations`);
    expect(rows.map((r) => r.version)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
    // A second round is a no-op.
    await Promise.all(stores.map((s) => s.init()));
    const created = await stores[9].create(newJob());
    expect((await stores[0].get(created.job.id))?.id).toBe(created.job.id);
  });

  it('uses a pool of your own and does not end it', async () => {
    const pool = new pg.Pool({ connectionString: pgUrl(), max: 3 });
    try {
      const s = store({ pool });
      await s.init();
      const { job } = await s.create(newJob());
      expect((await s.get(job.id))?.id).toBe(job.id);
      await s.close();
      expect(pool.ending).toBe(false);
      const { rows } = await pool.query('SELECT 1 AS one');
      expect(rows[0].one).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it('serves two schemas from one pool (prepared statement names do not clash)', async () => {
    const pool = new pg.Pool({ connectionString: pgUrl(), max: 1 });
    try {
      const a = store({ pool });
      const b = store({ pool });
      await Promise.all([a.init(), b.init()]);
      const ja = await a.create(newJob());
      const jb = await b.create(newJob());
      expect((await a.get(ja.job.id))?.id).toBe(ja.job.id);
      expect(await a.get(jb.job.id)).toBeUndefined();
      expect((await b.get(jb.job.id))?.id).toBe(jb.job.id);
    } finally {
      await pool.end();
    }
  });

  it('rejects a schema that is not a plain identifier', () => {
    expect(() => new PostgresStore({ schema: 'bad-name' })).toThrow(TypeError);
    expect(() => new PostgresStore({ schema: 'x"; DROP TABLE y; --' })).toThrow(TypeError);
    expect(() => new PostgresStore({ schema: '1abc' })).toThrow(TypeError);
    expect(() => new PostgresStore({ schema: 'a'.repeat(56) })).toThrow(TypeError);
    expect(new PostgresStore({ schema: 'a'.repeat(55) }).channel).toBe(`${'a'.repeat(55)}_changes`);
    expect(new PostgresStore({ listen: false }).subscribe).toBeUndefined();
  });

  it('surfaces an unreachable database as an error (StoreUnavailableError through the runtime)', async () => {
    const s = new PostgresStore({ connectionString: 'postgres://postgres:postgres@127.0.0.1:1/postgres' });
    open.push(s);
    await expect(s.init()).rejects.toThrow();
    await expect(s.get('x')).rejects.toThrow();
    const jobs = createJobs({ store: s, worker: false });
    runtimes.push(jobs);
    const def = jobs.define('task', async () => 1);
    await expect(jobs.submit(def, {})).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('survives its connections being terminated (a database restart) and serves again', async () => {
    const app = `ra_restart_${Math.random().toString(36).slice(2, 10)}`;
    const schema = fresh.next();
    const s = new PostgresStore({ connectionString: `${pgUrl()}?application_name=${app}`, schema });
    open.push(s);
    await s.init();
    const { job } = await s.create(newJob());
    await Promise.all([s.get(job.id), s.get(job.id), s.get(job.id)]); // several pooled connections
    const killed = await adminQuery(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
      [app],
    );
    expect(killed.length).toBeGreaterThan(0);
    // The idle connections' errors must not crash the process; the pool reconnects on the next queries.
    const back = await eventually(() => s.get(job.id).catch(() => undefined), 5000);
    expect(back?.id).toBe(job.id);
    expect((await s.create(newJob())).created).toBe(true);
  });

  it('does not load pg with the core, nor with respond-async/postgres before first use', async () => {
    const script = `
      import { createRequire } from 'node:module';
      const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => /node_modules[\\/]pg[\\/]/.test(k));
      await import('./src/index.ts');
      const core = loaded();
      const { PostgresStore } = await import('./src/postgres.ts');
      const store = new PostgresStore({ connectionString: process.argv[1] });
      const constructed = loaded();
      await store.init().catch(() => {});
      await store.close();
      console.log(JSON.stringify({ core, constructed, used: loaded() }));
    `;
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script, 'postgres://postgres:postgres@127.0.0.1:1/none'],
      { cwd: root },
    );
    expect(JSON.parse(stdout.trim().split('\n').pop()!)).toEqual({ core: false, constructed: false, used: true });
  });

  it('subscribe() hears a change made by another instance (NOTIFY), every change while watching', async () => {
    const schema = fresh.next();
    const listening = store({ schema });
    const writer = store({ schema, listen: false });
    await Promise.all([listening.init(), writer.init()]);
    const changes: JobChange[] = [];
    const unsubscribe = await listening.subscribe!((change) => changes.push(change));
    await listening.setWatching(true);
    const { job } = await writer.create(newJob());
    await eventually(() => changes.some((c) => c.id === job.id), 5000);
    expect(changes.find((c) => c.id === job.id)).toEqual({ id: job.id, status: 'queued', seq: 1 });
    await writer.claim({ names: ['task'], workerId: 'w', limit: 1, leaseMs: 10_000 });
    await writer.renew([job.id], 'w', 10_000); // not a change: no seq, no notification
    await writer.progress(job.id, 'w', 50, 'half');
    await eventually(() => changes.some((c) => c.id === job.id && c.seq === 3), 5000);
    expect(changes.filter((c) => c.id === job.id).map((c) => [c.status, c.seq])).toEqual([
      ['queued', 1],
      ['processing', 2],
      ['processing', 3],
    ]);
    await unsubscribe();
    await writer.create(newJob());
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(changes).toHaveLength(3);
  });

  it('subscribe() hears every change of a batched statement, in a few notifications, while watching', async () => {
    const schema = fresh.next();
    const listening = store({ schema });
    const writer = store({ schema, listen: false });
    await Promise.all([listening.init(), writer.init()]);
    const changes: JobChange[] = [];
    await listening.subscribe!((change) => changes.push(change));
    await listening.setWatching(true);
    const raw = await listenRaw(schema);
    try {
      // 250 creates in one turn: one INSERT statement, so 3 notifications of at most 100 changes.
      const created = await Promise.all(Array.from({ length: 250 }, () => writer.create(newJob())));
      const ids = new Set(created.map((c) => c.job.id));
      await eventually(() => changes.filter((c) => c.status === 'queued').length === 250, 5000);
      expect(new Set(changes.map((c) => c.id))).toEqual(ids);
      // One claim of all of them, then their completions sent with the next claim (one statement).
      const claimed = await writer.claim({ names: ['task'], workerId: 'w', limit: 250, leaseMs: 10_000 });
      expect(claimed).toHaveLength(250);
      const completions = claimed.map((job) =>
        writer.complete(job.id, 'w', { result: { ok: job.id }, resultUrl: null, retentionMs: 60_000 }),
      );
      expect(await writer.claim({ names: ['task'], workerId: 'w', limit: 10, leaseMs: 10_000 })).toEqual([]);
      const done = await Promise.all(completions);
      expect(done.map((job) => job?.status)).toEqual(claimed.map(() => 'complete'));
      await eventually(() => changes.filter((c) => c.status === 'complete').length === 250, 5000);
      expect(changes.filter((c) => c.status === 'processing')).toHaveLength(250);
      await eventually(() => raw.payloads.length === 9, 5000);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(raw.payloads).toHaveLength(9);
    } finally {
      await raw.end();
    }
  });

  it('without watchers, the feed carries what workers need (queued jobs, cancel requests), not claims or completions', async () => {
    const schema = fresh.next();
    const listening = store({ schema });
    const writer = store({ schema, listen: false });
    await Promise.all([listening.init(), writer.init()]);
    const changes: JobChange[] = [];
    await listening.subscribe!((change) => changes.push(change));
    const raw = await listenRaw(schema);
    try {
      const created = await Promise.all(Array.from({ length: 20 }, () => writer.create(newJob())));
      await eventually(() => changes.filter((c) => c.status === 'queued').length === 20, 5000);
      const claimed = await writer.claim({ names: ['task'], workerId: 'w', limit: 20, leaseMs: 10_000 });
      expect(claimed).toHaveLength(20);
      const [canceled, released, ...rest] = claimed;
      await writer.progress(released!.id, 'w', 50, 'half');
      await Promise.all(
        rest.map((job) => writer.complete(job.id, 'w', { result: null, resultUrl: null, retentionMs: 60_000 })),
      );
      // A cancel asked for on a running job reaches its worker; a job handed back goes to the queue again.
      expect((await writer.cancel(canceled!.id, { retentionMs: 60_000 })).outcome).toBe('requested');
      await eventually(() => changes.some((c) => c.id === canceled!.id && c.seq === 3), 5000);
      await writer.release(released!.id, 'w');
      await eventually(() => changes.some((c) => c.id === released!.id && c.status === 'queued' && c.seq > 1), 5000);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(changes.filter((c) => c.status === 'complete')).toEqual([]);
      expect(changes.filter((c) => c.status === 'processing').map((c) => c.id)).toEqual([canceled!.id]);
      // One notification for the creates, one for the cancel request, one for the release.
      expect(raw.payloads).toHaveLength(3);
      expect(created).toHaveLength(20);
    } finally {
      await raw.end();
    }
  });

  it('setWatching(true) announces every change until the last watcher goes; a closed store withdraws at once', async () => {
    const schema = fresh.next();
    const watching = store({ schema });
    const writer = store({ schema, listen: false });
    await Promise.all([watching.init(), writer.init()]);
    const rows = () => adminQuery<{ id: string }>(`SELECT id FROM "${schema}".watchers`);
    expect(await rows()).toEqual([]);
    await watching.setWatching(true);
    expect(await rows()).toHaveLength(1);
    const changes: JobChange[] = [];
    await watching.subscribe!((change) => changes.push(change));
    await writer.create(newJob());
    await writer.claim({ names: ['task'], workerId: 'w', limit: 1, leaseMs: 10_000 });
    await eventually(() => changes.some((c) => c.status === 'processing'), 5000);
    await watching.setWatching(false);
    await watching.close();
    expect(await rows()).toEqual([]);
  });

  it('claim() sends waiting completions in its statement, each with its own lease check', async () => {
    const s = store();
    await s.init();
    const jobs = await Promise.all(Array.from({ length: 4 }, () => s.create(newJob())));
    const [a, b] = await s.claim({ names: ['task'], workerId: 'w1', limit: 2, leaseMs: 10_000 });
    const outcome = { result: 'r', resultUrl: null, retentionMs: 60_000 };
    // b's completion names a worker that does not hold it: that row alone is refused.
    const completions = [s.complete(a.id, 'w1', outcome), s.complete(b.id, 'other', outcome)];
    const next = await s.claim({ names: ['task'], workerId: 'w1', limit: 10, leaseMs: 10_000 });
    const [doneA, doneB] = await Promise.all(completions);
    expect(doneA).toMatchObject({ id: a.id, status: 'complete', result: 'r', leaseOwner: null });
    expect(doneB).toBeUndefined();
    expect(next.map((job) => job.id).sort()).toEqual(
      jobs
        .map((c) => c.job.id)
        .filter((id) => id !== a.id && id !== b.id)
        .sort(),
    );
    expect(await s.get(b.id)).toMatchObject({ status: 'processing', leaseOwner: 'w1' });
  });

  it('a create whose idempotency key is bound already takes no slot an idle worker offers', async () => {
    const s = store({ listen: false });
    await s.init();
    const free = async () =>
      (await adminQuery<{ free: number }>(`SELECT free FROM "${s.schema}".workers WHERE id = 'w'`))[0]?.free;
    await s.offerSlots({ workerId: 'w', names: ['task'], free: 2, leaseMs: 10_000, ttlMs: 10_000 });
    const first = await s.create(newJob({ owner: 'u', idempotencyKey: 'k' }));
    expect(first).toMatchObject({ created: true, job: { status: 'processing', leaseOwner: 'w' } });
    expect(await free()).toBe(1);
    // A client's resubmit finds its job, and the slot stays on offer for the next new job.
    const again = await s.create(newJob({ owner: 'u', idempotencyKey: 'k' }));
    expect(again).toMatchObject({ created: false, job: { id: first.job.id } });
    expect(await free()).toBe(1);
    const other = await s.create(newJob({ owner: 'u', idempotencyKey: 'k2' }));
    expect(other).toMatchObject({ created: true, job: { status: 'processing', leaseOwner: 'w' } });
    expect(await free()).toBe(0);
  });

  it('claims from a large backlog on a table never analyzed by reading a few pages, not every queued row', async () => {
    // One connection: the store's prepared statements are then visible to this test's own queries.
    const pool = new pg.Pool({ connectionString: pgUrl(), max: 1 });
    try {
      const s = store({ pool, listen: false });
      await s.init();
      const schema = s.schema;
      // A backlog bulk-loaded into a fresh schema: no statistics yet (autovacuum has not come round).
      await adminQuery(
        `INSERT INTO "${schema}".jobs (id, name, status, max_attempts, run_at, created_at, updated_at)
         SELECT 'id' || g, 'task', 'queued', 3, g, g, g FROM generate_series(1, 80000) g`,
      );
      const held = await s.claim({ names: ['task'], workerId: 'w1', limit: 10, leaseMs: 60_000 });
      expect(held.map((job) => job.runAt)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      const outcome = { result: 'r', resultUrl: null, retentionMs: 60_000 };
      const completions = held.map((job) => s.complete(job.id, 'w1', outcome));
      await s.claim({ names: ['task'], workerId: 'w1', limit: 10, leaseMs: 60_000 });
      await Promise.all(completions);
      const mine = await s.claim({ names: ['task'], workerId: 'w1', limit: 10, leaseMs: 60_000 });
      const ids = mine.map((job) => job.id);
      const statements = new Map(
        (
          await pool.query<{ name: string; statement: string }>(
            `SELECT name, statement FROM pg_prepared_statements WHERE name LIKE '%claim' OR name LIKE '%completeAndClaim'`,
          )
        ).rows.map((row) => [row.name.endsWith('completeAndClaim') ? 'completeAndClaim' : 'claim', row.statement]),
      );
      const cases: Array<[string, unknown[]]> = [
        ['claim', [['task'], 'w2', 10, 60_000]],
        [
          'completeAndClaim',
          [
            ids,
            ids.map(() => 'w1'),
            ids.map(() => 'r'),
            ids.map(() => null),
            ids.map(() => 60_000),
            ['task'],
            'w1',
            10,
            60_000,
          ],
        ],
      ];
      const { rows } = await pool.query<{ pages: number }>(
        `SELECT (pg_relation_size('"${schema}".jobs') / current_setting('block_size')::integer)::integer AS pages`,
      );
      const heapPages = rows[0]?.pages ?? 0;
      expect(heapPages).toBeGreaterThan(1000);
      for (const [name, params] of cases) {
        const text = statements.get(name);
        expect(text, name).toBeDefined();
        // Twice: the first run in a session also reads the catalog to plan the function's query.
        for (let pass = 0; pass < 2; pass++) await explain(name, text, params, pass === 1);
      }
      async function explain(name: string, text: string | undefined, params: unknown[], check: boolean) {
        await pool.query('BEGIN');
        try {
          const explained = await pool.query<{ 'QUERY PLAN': Array<{ Plan: Record<string, number> }> }>(
            `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${text}`,
            params,
          );
          const plan = explained.rows[0]?.['QUERY PLAN'][0]?.Plan ?? {};
          const buffers = (plan['Shared Hit Blocks'] ?? 0) + (plan['Shared Read Blocks'] ?? 0);
          expect(plan['Actual Rows'], name).toBe(name === 'claim' ? 10 : 20);
          if (check) {
            expect(buffers, `${name}: ${buffers} buffers for ${heapPages} heap pages`).toBeLessThan(heapPages / 2);
          }
        } finally {
          await pool.query('ROLLBACK');
        }
      }
    } finally {
      await pool.end();
    }
  });

  it('migrates a schema made by version 1 and keeps its jobs and change feed', async () => {
    const schema = fresh.next();
    await schemaAtVersion(
      schema,
      1,
      `INSERT INTO jobs (id, name, status, input, max_attempts, run_at, created_at, updated_at)
        VALUES ('old-job', 'task', 'queued', '{"n":1}', 3, 0, 0, 0)`,
    );
    const s = store({ schema });
    await s.init();
    const rows = await adminQuery<{ version: number }>(`SELECT version FROM "${schema}".migrations ORDER BY version`);
    expect(rows.map((r) => r.version)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
    const changes: JobChange[] = [];
    await s.subscribe!((change) => changes.push(change));
    const [claimed] = await s.claim({ names: ['task'], workerId: 'w', limit: 1, leaseMs: 10_000 });
    expect(claimed).toMatchObject({ id: 'old-job', input: { n: 1 }, status: 'processing', attempt: 1 });
    // Nobody registered as a watcher, yet the claim is announced: processes of earlier versions watch without
    // registering, so an upgraded schema announces every change for a day (migration 15).
    await eventually(() => changes.some((c) => c.id === 'old-job' && c.status === 'processing'), 5000);
    const [upgrade] = await adminQuery<{ id: string; hours: number }>(
      `SELECT id, round((until - floor(extract(epoch from now()) * 1000)) / 3600000.0)::int AS hours FROM "${schema}".watchers`,
    );
    expect(upgrade).toEqual({ id: 'upgrade', hours: 24 });
    // A process still on version 1 during a rolling upgrade: its idempotent INSERT still finds the key's index.
    const oldInsert = `INSERT INTO "${schema}".jobs (id, name, status, input, idem_scope, max_attempts, run_at,
      created_at, updated_at) VALUES ($1, 'task', 'queued', '{}', 'scope-1', 3, 0, 0, 0)
      ON CONFLICT (idem_scope) DO NOTHING RETURNING id`;
    expect(await adminQuery(oldInsert, ['v1-a'])).toEqual([{ id: 'v1-a' }]);
    expect(await adminQuery(oldInsert, ['v1-b'])).toEqual([]);
  });

  it('migrates a schema at version 15 holding jobs: owner lists and the claim order unchanged', async () => {
    const schema = fresh.next();
    // Owned and owner-less jobs: queued, processing with a lapsed lease, finished.
    await schemaAtVersion(
      schema,
      15,
      `INSERT INTO jobs (id, name, status, owner, max_attempts, run_at, lease_owner, lease_until, finished_at,
        expires_at, created_at, updated_at) VALUES
        ('queued', 'task', 'queued', NULL, 3, 1, NULL, NULL, NULL, NULL, 1, 1),
        ('lapsed', 'task', 'processing', 'ann', 3, 2, 'gone', 1, NULL, NULL, 2, 2),
        ('done', 'task', 'complete', 'ann', 3, 0, NULL, NULL, 5, 9007199254740991, 3, 3),
        ('stray', 'task', 'queued', NULL, 3, 3, NULL, NULL, 7, NULL, 4, 4)`,
    );
    const s = store({ schema, listen: false });
    await s.init();
    const claimed = await s.claim({ names: ['task'], workerId: 'w', limit: 10, leaseMs: 10_000 });
    expect(claimed.map((job) => job.id)).toEqual(['queued', 'lapsed', 'stray']);
    expect((await s.list({ owner: 'ann', limit: 10 })).map((job) => job.id)).toEqual(['done', 'lapsed']);
    expect((await s.list({ owner: null, limit: 10 })).map((job) => job.id)).toEqual(['stray', 'queued']);
    expect(await s.countByOwner('ann', 10)).toBe(2);
  });

  it('counts per owner the jobs there before the upgrade, those of processes of the previous version, and concurrent writes', async () => {
    const schema = fresh.next();
    const insert = (ids: string[], owner: string | null) =>
      adminQuery(
        `INSERT INTO "${schema}".jobs (id, name, status, input, owner, max_attempts, run_at, created_at, updated_at)
        SELECT id, 'task', 'queued', '{}', $2, 3, 0, 0, 0 FROM unnest($1::text[]) id`,
        [ids, owner],
      );
    // A schema of the version before the count per owner, holding jobs.
    await schemaAtVersion(schema, 8);
    await insert(['a1', 'a2', 'a3'], 'ann');
    await insert(['b1', 'n1'], null);
    const s = store({ schema, listen: false });
    await s.init();
    expect(await s.countByOwner('ann', 100)).toBe(3);
    // A process of the previous version inserts and deletes with its own statements.
    await insert(['a4', 'a5'], 'ann');
    await adminQuery(`DELETE FROM "${schema}".jobs WHERE id = 'a1'`);
    expect(await s.countByOwner('ann', 100)).toBe(4);
    // Several instances create for a few owners at once while another purges and removes: every count stays exact.
    const others = [store({ schema, listen: false }), store({ schema, listen: false })];
    await Promise.all(others.map((other) => other.init()));
    await adminQuery(`UPDATE "${schema}".jobs SET status = 'complete', expires_at = 1 WHERE id IN ('a2', 'a3')`);
    await Promise.all([
      ...[s, ...others].flatMap((instance, i) =>
        Array.from({ length: 60 }, (_, j) => instance.create(newJob({ owner: ['ann', 'bob', 'cy'][(i + j) % 3] }))),
      ),
      s.purgeExpired(),
      s.remove!('a4'),
    ]);
    const counted = await adminQuery<{ owner: string; n: number }>(
      `SELECT owner, count(*)::integer AS n FROM "${schema}".jobs WHERE owner IS NOT NULL GROUP BY owner ORDER BY owner`,
    );
    expect(counted).toEqual([
      { owner: 'ann', n: 61 },
      { owner: 'bob', n: 60 },
      { owner: 'cy', n: 60 },
    ]);
    const kept = await adminQuery(`SELECT owner, n::integer AS n FROM "${schema}".owner_jobs ORDER BY owner`);
    expect(kept).toEqual(counted);
    for (const { owner, n } of counted) expect(await s.countByOwner(owner, 1000)).toBe(n);
  });

  it('subscribe() reconnects after its connection is terminated', async () => {
    const schema = fresh.next();
    const listening = store({ schema });
    const writer = store({ schema, listen: false });
    await Promise.all([listening.init(), writer.init()]);
    const changes: JobChange[] = [];
    await listening.subscribe!((change) => changes.push(change));
    const pid = await listenerPid(schema);
    const [{ terminated }] = await adminQuery<{ terminated: boolean }>(
      'SELECT pg_terminate_backend($1) AS terminated',
      [pid],
    );
    expect(terminated).toBe(true);
    const started = Date.now();
    const newPid = await listenerPid(schema, pid);
    console.log(`LISTEN connection back ${Date.now() - started} ms after pg_terminate_backend`);
    expect(newPid).not.toBe(pid);
    const { job } = await writer.create(newJob());
    await eventually(() => changes.some((c) => c.id === job.id), 5000);
  });

  it('an idle worker takes its own submits at once, but never ahead of jobs already queued', async () => {
    const schema = fresh.next();
    const jobs = createJobs({ store: store({ schema }), concurrency: 1, pollIntervalMs: 60_000 });
    runtimes.push(jobs);
    const started: string[] = [];
    const gates = new Map<string, () => void>();
    const step = jobs.define('step', async (input: { name: string }) => {
      started.push(input.name);
      await new Promise<void>((resolve) => gates.set(input.name, resolve));
    });
    await jobs.ready();
    await listenerPid(schema);
    await new Promise((resolve) => setTimeout(resolve, 100)); // the first claim found nothing
    // Idle, nothing queued: the job is created already claimed and starts without a claim.
    const first = await jobs.submit(step, { name: 'a' });
    expect(first.job).toMatchObject({ status: 'processing', leaseOwner: jobs.workerId, attempt: 1 });
    await eventually(() => started.length === 1, 2000, 2);
    // The slot is taken: these wait in the queue, in order.
    const b = await jobs.submit(step, { name: 'b' });
    const c = await jobs.submit(step, { name: 'c' });
    expect([b.job.status, c.job.status]).toEqual(['queued', 'queued']);
    // a ends; in the same event-loop turn (its slot free, the worker not yet looking for the next job), d is
    // submitted: it goes behind b and c, not into the free slot.
    gates.get('a')!();
    for (let i = 0; i < 50; i++) await Promise.resolve();
    const d = await jobs.submit(step, { name: 'd' });
    expect(d.job.status).toBe('queued');
    for (const name of ['b', 'c', 'd']) {
      await eventually(() => gates.has(name), 5000, 2);
      gates.get(name)!();
    }
    await eventually(() => started.length === 4, 5000, 2);
    expect(started).toEqual(['a', 'b', 'c', 'd']);
  });

  it('close() waits for a submit whose job is being created claimed, and drains that job', async () => {
    const schema = fresh.next();
    const s = store({ schema });
    const createClaimed = s.createClaimed.bind(s);
    let creating = 0;
    // A slow insert: close() starts while the job is on its way to the database, already claimed by this worker.
    s.createClaimed = async (job, lease) => {
      creating += 1;
      await new Promise((resolve) => setTimeout(resolve, 150));
      return createClaimed(job, lease);
    };
    const jobs = createJobs({ store: s, pollIntervalMs: 60_000 });
    runtimes.push(jobs);
    let finished = 0;
    const quick = jobs.define('quick', async () => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      finished += 1;
      return 'done';
    });
    await jobs.ready();
    await listenerPid(schema);
    await new Promise((resolve) => setTimeout(resolve, 100)); // the first claim found nothing
    const submitted = jobs.submit(quick, {});
    await eventually(() => creating === 1, 2000, 2);
    await jobs.close({ timeoutMs: 5000 });
    expect(finished).toBe(1);
    const { job } = await submitted;
    const [row] = await adminQuery<{ status: string; result: string }>(
      `SELECT status, result::text AS result FROM "${schema}".jobs WHERE id = $1`,
      [job.id],
    );
    expect(row).toEqual({ status: 'complete', result: '"done"' });
  });

  it('wakes an idle runtime (pollIntervalMs 60 s) when another instance submits (LISTEN/NOTIFY)', async () => {
    const schema = fresh.next();
    const worker = createJobs({ store: store({ schema }), pollIntervalMs: 60_000 });
    const api = createJobs({ store: store({ schema, listen: false }), worker: false });
    runtimes.push(worker, api);
    const startedAt = new Map<string, number>();
    worker.define('ping', async (_input, ctx) => {
      startedAt.set(ctx.jobId, Date.now());
      return 'pong';
    });
    const ping = api.define('ping', async () => 'never here');
    await Promise.all([worker.ready(), api.ready()]);
    await listenerPid(schema);
    // Let the worker's first claim pass, so that only a notification can wake it.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      const submitted = Date.now();
      const { job } = await api.submit(ping, { i });
      await eventually(() => startedAt.has(job.id), 2000, 2);
      delays.push(startedAt.get(job.id)! - submitted);
    }
    console.log(`submit on one instance to start on another: ${delays.join(', ')} ms`);
    expect(Math.max(...delays)).toBeLessThan(200);
  });
});

describe('PostgresStore: a worker claims ahead of its free slots while handlers are short', () => {
  /**
   * 40 short jobs, then two that hold their slot until released, then 12 short ones ("trailing"), all queued
   * before a worker of two slots starts. Once the two hold both slots, jobs claimed ahead wait on the worker: the
   * short jobs seen leased and not run (`ahead`). (With two claims in flight, one may land before the other: the
   * jobs waiting may be the last of the first 40 or trailing ones, and a trailing one may start before a slow one.)
   */
  async function backlog(leaseMs: number) {
    const schema = fresh.next();
    const api = createJobs({ store: store({ schema, listen: false }), worker: false });
    runtimes.push(api);
    const ran: string[] = [];
    const gates: Array<() => void> = [];
    const define = (jobs: Jobs) => {
      jobs.define('quick', async (_input: { i: number }, ctx) => {
        ran.push(ctx.jobId);
      });
      jobs.define('slow', async (_input: { i: number }, ctx) => {
        ran.push(ctx.jobId);
        await new Promise<void>((resolve) => gates.push(resolve));
      });
    };
    define(api);
    const queue = async (name: 'quick' | 'slow', n: number) => {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) ids.push((await api.submit(name, { i })).job.id);
      await new Promise((resolve) => setTimeout(resolve, 5)); // run_at: the next group comes after this one
      return ids;
    };
    await api.ready();
    const first = await queue('quick', 40);
    const slow = await queue('slow', 2);
    const trailing = await queue('quick', 12);
    const rows = (ids = [...first, ...trailing]) =>
      adminQuery<{ id: string; status: string; attempt: number }>(
        `SELECT id, status, attempt FROM "${schema}".jobs WHERE id = ANY($1) ORDER BY run_at, id`,
        [ids],
      );
    // The worker starts once all are queued.
    const worker = createJobs({ store: store({ schema }), concurrency: 2, leaseMs, pollIntervalMs: 50 });
    runtimes.push(worker);
    define(worker);
    await eventually(() => gates.length === 2, 10_000, 2);
    // Both slots held: the worker has trailing jobs leased, their handlers not started.
    let ahead: string[] = [];
    await eventually(
      async () => {
        const held = (await rows()).filter((row) => row.status === 'processing' && !ran.includes(row.id));
        ahead = held.map((row) => row.id);
        return ahead.length > 0;
      },
      5000,
      5,
    );
    return { schema, worker, ran, gates, first, slow, trailing, rows, ahead };
  }

  it('hands jobs claimed ahead back to the queue once they wait a heartbeat, and runs each job once', async () => {
    const { worker, ran, gates, first, slow, trailing, rows, ahead } = await backlog(900);
    // A heartbeat (a third of the lease) later, they are queued again, their attempt not counted, for any worker.
    await eventually(
      async () => (await rows(ahead)).every((row) => row.status === 'queued' && row.attempt === 0),
      3000,
    );
    // And the worker claims no more ahead while its slots stay busy: every short job not run yet stays queued.
    await new Promise((resolve) => setTimeout(resolve, 400));
    const waiting = (await rows()).filter((row) => !ran.includes(row.id));
    expect(waiting.length).toBeGreaterThanOrEqual(ahead.length);
    expect(waiting.every((row) => row.status === 'queued')).toBe(true);
    for (const release of gates) release();
    for (const id of [...first, ...slow, ...trailing]) {
      await eventually(async () => (await worker.get(id))?.status === 'complete', 5000);
    }
    expect([...ran].sort()).toEqual([...first, ...slow, ...trailing].sort());
  });

  it('close() hands jobs claimed ahead back to the queue without running them', async () => {
    const { worker, ran, rows, ahead } = await backlog(30_000);
    await worker.close({ timeoutMs: 100 });
    expect(await rows(ahead)).toEqual(ahead.map((id) => ({ id, status: 'queued', attempt: 0 })));
    expect(ran.filter((id) => ahead.includes(id))).toEqual([]);
  });

  it('a job canceled while claimed ahead ends canceled without its handler running', async () => {
    const { worker, ran, gates, ahead } = await backlog(30_000);
    const id = ahead[0]!;
    expect(await worker.cancel(id)).toMatchObject({ outcome: 'requested' });
    for (const release of gates) release();
    await eventually(async () => (await worker.get(id))?.status === 'canceled', 5000);
    expect(ran).not.toContain(id);
  });
});

describe('PostgresStore: completions and claims in flight', () => {
  it('a completion that comes while a claim is in flight goes with the next claim, or alone once none follows', async () => {
    const pool = new pg.Pool({ connectionString: pgUrl() });
    const sent: string[] = [];
    const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>;
    (pool as unknown as { query: unknown }).query = (...args: unknown[]) => {
      const first = args[0] as { name?: string };
      if (first?.name) sent.push(first.name.replace(/^.*_/, ''));
      return query(...args);
    };
    const s = new PostgresStore({ pool, schema: fresh.next(), listen: false });
    try {
      await s.init();
      for (let i = 0; i < 6; i++) await s.create(newJob());
      const [a, b] = await s.claim({ names: ['task'], workerId: 'w', limit: 2, leaseMs: 10_000 });
      const outcome = { result: 'r', resultUrl: null, retentionMs: 60_000 };
      sent.length = 0;
      const inFlight = s.claim({ names: ['task'], workerId: 'w', limit: 1, leaseMs: 10_000 });
      const doneA = s.complete(a!.id, 'w', outcome);
      // Another turn passes with the claim in flight: the completion waits for the next claim.
      await new Promise((resolve) => setImmediate(resolve));
      const next = s.claim({ names: ['task'], workerId: 'w', limit: 1, leaseMs: 10_000 });
      await Promise.all([inFlight, next]);
      expect(await doneA).toMatchObject({ id: a!.id, status: 'complete' });
      expect(sent).toEqual(['claim', 'completeAndClaim']);
      // No claim follows: the completion goes alone once the claim in flight lands.
      const later = s.claim({ names: ['task'], workerId: 'w', limit: 1, leaseMs: 10_000 });
      const doneB = s.complete(b!.id, 'w', outcome);
      await later;
      expect(await doneB).toMatchObject({ id: b!.id, status: 'complete' });
      expect(sent).toEqual(['claim', 'completeAndClaim', 'claim', 'complete']);
    } finally {
      await s.close();
      await pool.end();
    }
  });
});
