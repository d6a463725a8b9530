// What the operator's views cost on a large table: adminList pages (with and without filters, deep in the list),
// countJobs, throughput and timings, on PostgreSQL (embedded) and SQLite, over N finished jobs (1 % failed).
// Run: npx tsx bench/admin.ts   (ADMIN_BENCH_JOBS, default 200 000)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { AdminListOptions, JobStore } from '../src/core/store.js';
import { PostgresStore } from '../src/postgres.js';
import { SqliteStore } from '../src/sqlite.js';
import { startEmbeddedPostgres } from '../test/helpers/embedded-postgres.js';

const N = Number(process.env.ADMIN_BENCH_JOBS ?? 200_000);
const RUNS = 7;

/** Median wall time of `RUNS` calls, in ms. */
async function time(call: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    await call();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(RUNS / 2)];
}

async function measure(store: JobStore): Promise<Record<string, number>> {
  const list = (options: Omit<AdminListOptions, 'limit'>) => () => store.adminList!({ limit: 50, ...options });
  // A position 100 pages deep, to show that a page costs the same wherever it starts.
  let deep = await store.adminList!({ limit: 5000 });
  const position = { createdAt: deep[4999].createdAt, id: deep[4999].id };
  deep = [];
  const figures: Record<string, number> = {
    'adminList, first page': await time(list({})),
    'adminList, page at 5 000': await time(list({ before: position })),
    'adminList, status=failed (1 %)': await time(list({ statuses: ['failed'] })),
    'adminList, name=invoice': await time(list({ name: 'invoice' })),
    'adminList, owner=user-7': await time(list({ owner: 'user-7' })),
    countJobs: await time(() => store.countJobs!()),
    'throughput (last hour)': await time(() => store.throughput!({ windowMs: 3_600_000, bucketMs: 120_000 })),
    'timings (last hour)': await time(() => store.timings!({ windowMs: 3_600_000 })),
  };
  return figures;
}

const pgServer = await startEmbeddedPostgres({ name: 'respond-async-admin-bench' });
const dir = mkdtempSync(join(tmpdir(), 'respond-async-admin-bench-'));
try {
  const now = Date.now();
  // Finished jobs, one every 10 ms back from now (the last N × 10 ms), owners user-0 … user-999.
  const postgres = new PostgresStore({ connectionString: pgServer.url, schema: 'bench', listen: false });
  await postgres.init();
  const client = new pg.Client({ connectionString: pgServer.url });
  await client.connect();
  await client.query(
    `INSERT INTO bench.jobs (id, name, status, input, owner, max_attempts, attempt, run_at, created_at, updated_at,
       started_at, finished_at, expires_at)
     SELECT md5(i::text), (ARRAY['report', 'invoice', 'export'])[1 + i % 3],
       CASE WHEN i % 100 = 0 THEN 'failed' ELSE 'complete' END, '{}', 'user-' || (i % 1000), 3, 1,
       $1::bigint - ($2::bigint - i) * 10, $1::bigint - ($2::bigint - i) * 10, $1::bigint - ($2::bigint - i) * 10 + 5,
       $1::bigint - ($2::bigint - i) * 10 + 1, $1::bigint - ($2::bigint - i) * 10 + 5, $1::bigint + 86400000
     FROM generate_series(1, $2::integer) i`,
    [now, N],
  );
  await client.query('ANALYZE bench.jobs');
  await client.end();

  const sqlite = new SqliteStore({ path: join(dir, 'bench.sqlite') });
  await sqlite.init();
  sqlite.database
    .prepare(
      `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < @n)
       INSERT INTO respond_async_jobs (id, name, status, input, owner, max_attempts, attempt, run_at, created_at,
         updated_at, started_at, finished_at, expires_at)
       SELECT printf('%022d', i), CASE i % 3 WHEN 0 THEN 'report' WHEN 1 THEN 'invoice' ELSE 'export' END,
         CASE WHEN i % 100 = 0 THEN 'failed' ELSE 'complete' END, '{}', 'user-' || (i % 1000), 3, 1,
         @now - (@n - i) * 10, @now - (@n - i) * 10, @now - (@n - i) * 10 + 5, @now - (@n - i) * 10 + 1,
         @now - (@n - i) * 10 + 5, @now + 86400000
       FROM s`,
    )
    .run({ n: N, now });
  sqlite.database.exec('ANALYZE');

  const results = { postgres: await measure(postgres), sqlite: await measure(sqlite) };
  console.log(`Operator views over ${N} finished jobs, median of ${RUNS} calls (ms):\n`);
  console.log('| operation | PostgreSQL | SQLite |\n| --- | ---: | ---: |');
  for (const name of Object.keys(results.postgres)) {
    console.log(`| ${name} | ${results.postgres[name].toFixed(1)} | ${results.sqlite[name].toFixed(1)} |`);
  }
  await postgres.close();
  await sqlite.close();
} finally {
  await pgServer.destroy();
  rmSync(dir, { recursive: true, force: true });
}
