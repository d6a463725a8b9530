// The per-owner quota's count and the creates that keep it, at the store level, on an empty store and on one
// holding a day of retained jobs: `npx tsx bench/quota.ts`. Run the same file from another tree for an A/B.
//   BENCH_QUOTA_ROWS     jobs seeded by SQL in the full store (1 000 000, over 1 000 owners)
//   BENCH_QUOTA_STORES   postgres,sqlite (default both)
//   BENCH_QUOTA_CALLS    countByOwner calls per measure (5000)
//   BENCH_QUOTA_CREATES  creates per concurrency measure (3000), BENCH_QUOTA_PARALLEL creates in flight (50)
//   BENCH_ROUNDS         rounds, empty and full alternating (3)
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { JobStore } from '../src/core/store.js';
import type { NewJob } from '../src/core/types.js';
import { PostgresStore } from '../src/postgres.js';
import { SqliteStore } from '../src/sqlite.js';
import { postgresSeedStatements, sqliteSeedStatements } from '../test/helpers/busy-day.js';
import { startEmbeddedPostgres } from '../test/helpers/embedded-postgres.js';
import { median } from './lib/stats.js';

const env = process.env;
const ROWS = Number(env.BENCH_QUOTA_ROWS ?? 1_000_000);
const STORES = (env.BENCH_QUOTA_STORES ?? 'postgres,sqlite').split(',');
const CALLS = Number(env.BENCH_QUOTA_CALLS ?? 5000);
const CREATES = Number(env.BENCH_QUOTA_CREATES ?? 3000);
const PARALLEL = Number(env.BENCH_QUOTA_PARALLEL ?? 50);
const ROUNDS = Number(env.BENCH_ROUNDS ?? 3);
const OWNERS = 1000;

interface Figures {
  /** µs per countByOwner call of an owner holding ROWS / OWNERS jobs. */
  count: number;
  /** creates/s, PARALLEL in flight, every one by one owner (its count row is the contended one). */
  oneOwner: number;
  /** creates/s, PARALLEL in flight, each by a random one of OWNERS owners. */
  manyOwners: number;
}

function newJob(owner: string): NewJob {
  return {
    id: randomUUID(),
    name: 'bench',
    input: { n: 1 },
    owner,
    idempotencyKey: null,
    requestHash: null,
    maxAttempts: 3,
    callbackUrl: null,
  };
}

async function createRate(store: JobStore, owner: (i: number) => string): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < CREATES) {
        const i = next++;
        await store.create(newJob(owner(i)));
      }
    }),
  );
  return CREATES / ((performance.now() - started) / 1000);
}

async function measure(store: JobStore): Promise<Figures> {
  const count = store.countByOwner!.bind(store);
  for (let i = 0; i < 200; i++) await count(`user-${i % OWNERS}`, 10_000);
  const started = performance.now();
  for (let i = 0; i < CALLS; i++) await count(`user-${(i * 7) % OWNERS}`, 10_000);
  const perCall = ((performance.now() - started) * 1000) / CALLS;
  const oneOwner = await createRate(store, () => 'user-7');
  const manyOwners = await createRate(store, (i) => `user-${(i * 13) % OWNERS}`);
  return { count: perCall, oneOwner, manyOwners };
}

async function postgres(): Promise<Record<'empty' | 'full', Figures[]>> {
  const server = await startEmbeddedPostgres({ name: 'respond-async-bench-quota' });
  const pool = new pg.Pool({ connectionString: server.url, max: 2 });
  const out: Record<'empty' | 'full', Figures[]> = { empty: [], full: [] };
  try {
    for (const [label, rows] of [
      ['empty', 0],
      ['full', ROWS],
    ] as const) {
      const store = new PostgresStore({ connectionString: server.url, schema: `quota_${label}`, listen: false });
      await store.init();
      await store.close();
      if (rows > 0) {
        for (const statement of postgresSeedStatements(`"quota_${label}"`, { rows, owners: OWNERS, live: 0 }))
          await pool.query(statement);
      }
      await pool.query(`VACUUM ANALYZE "quota_${label}".jobs`);
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const label of round % 2 === 0 ? (['empty', 'full'] as const) : (['full', 'empty'] as const)) {
        const store = new PostgresStore({ connectionString: server.url, schema: `quota_${label}`, listen: false });
        await store.init();
        out[label].push(await measure(store));
        await store.close();
        await pool.query(`DELETE FROM "quota_${label}".jobs WHERE name = 'bench'`);
        await pool.query(`VACUUM "quota_${label}".jobs`);
      }
    }
  } finally {
    await pool.end();
    await server.destroy();
  }
  return out;
}

async function sqlite(): Promise<Record<'empty' | 'full', Figures[]>> {
  const out: Record<'empty' | 'full', Figures[]> = { empty: [], full: [] };
  const path = (label: string) => join(tmpdir(), `respond-async-bench-quota-${process.pid}-${label}.sqlite`);
  for (const [label, rows] of [
    ['empty', 0],
    ['full', ROWS],
  ] as const) {
    const store = new SqliteStore({ path: path(label) });
    await store.init();
    await store.close();
    const file = new Database(path(label));
    file.transaction(() => {
      if (rows > 0)
        for (const statement of sqliteSeedStatements({ rows, owners: OWNERS, live: 0 }, Date.now()))
          file.exec(statement);
    })();
    file.exec('ANALYZE');
    file.close();
  }
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const label of round % 2 === 0 ? (['empty', 'full'] as const) : (['full', 'empty'] as const)) {
        const store = new SqliteStore({ path: path(label) });
        await store.init();
        out[label].push(await measure(store));
        store.database.prepare(`DELETE FROM respond_async_jobs WHERE name = 'bench'`).run();
        await store.close();
      }
    }
  } finally {
    for (const label of ['empty', 'full'])
      for (const suffix of ['', '-wal', '-shm']) rmSync(path(label) + suffix, { force: true });
  }
  return out;
}

function report(kind: string, out: Record<'empty' | 'full', Figures[]>): void {
  const med = (label: 'empty' | 'full', key: keyof Figures) => median(out[label].map((f) => f[key]));
  const rows: Array<[string, keyof Figures, boolean]> = [
    ['countByOwner µs per call', 'count', false],
    [`creates/s, ${PARALLEL} in flight, one owner`, 'oneOwner', true],
    [`creates/s, ${PARALLEL} in flight, ${OWNERS} owners`, 'manyOwners', true],
  ];
  console.log(
    `\n${kind} (${ROWS} rows, ${ROUNDS} rounds, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(', ')})`,
  );
  console.log('| measure | empty | full | full ÷ empty (rates), empty ÷ full (times) | per round: empty — full |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const [label, key, rate] of rows) {
    const e = med('empty', key);
    const f = med('full', key);
    const each = (l: 'empty' | 'full') => out[l].map((x) => x[key].toFixed(key === 'count' ? 1 : 0)).join(' / ');
    console.log(
      `| ${label} | ${e.toFixed(key === 'count' ? 1 : 0)} | ${f.toFixed(key === 'count' ? 1 : 0)} | **${(rate ? f / e : e / f).toFixed(2)}×** | ${each('empty')} — ${each('full')} |`,
    );
  }
}

if (STORES.includes('sqlite')) report('SQLite', await sqlite());
if (STORES.includes('postgres')) report('PostgreSQL', await postgres());
