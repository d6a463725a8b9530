// `npm run bench:scale`: respond-async at scale. Does a store holding a day of finished jobs run as fast as an empty
// one (table size), does purging a million expired jobs stall the accept path (purge), and how does end-to-end
// throughput grow with worker processes on one PostgreSQL database, beside graphile-worker (workers).
//
// Settings (environment):
//   BENCH_SCALE_SECTIONS  size,purge,workers (default: all)
//   BENCH_SCALE_STORES    postgres,sqlite: the stores of the size and purge sections (default: both)
//   BENCH_SCALE_ROWS      finished jobs in the full store of the size section (1 000 000)
//   BENCH_SCALE_PURGE_ROWS  expired jobs the purge section purges (default BENCH_SCALE_ROWS)
//   BENCH_ROUNDS          rounds of the size and workers sections (3)
//   BENCH_DURATION, BENCH_WARMUP  seconds of accept-path load per turn, and not counted before it (2, 0.5)
//   BENCH_CONNECTIONS     autocannon connections (50)
//   BENCH_JOBS            end-to-end jobs per run of the size section (3000); BENCH_WORKER_JOBS of the workers section (6000)
//   BENCH_SAMPLES         submit→start samples per round (100); BENCH_HTTP_SAMPLES status and list requests (200)
//   BENCH_WORKERS         worker process counts of the workers section (1,2,4); BENCH_WORKER_PARALLEL submits in flight (50)
//   BENCH_SCALE_PG_SETTINGS  extra settings of the embedded server, comma-separated; shared_buffers=128MB for
//                         PostgreSQL's compiled-in default instead of the 1GB set here
//   BENCH_PG_URL          use this PostgreSQL server (with pg_stat_statements loaded) instead of an embedded one
//   BENCH_SCALE_QUOTA     off: the servers run without the per-owner quota (no count of the owner's jobs per submit)
//   BENCH_SCALE_OUT       where to write the Markdown (default .tmp/bench-scale.md)
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { PostgresStore } from '../src/postgres.js';
import { SqliteStore } from '../src/sqlite.js';
import { postgresSeedStatements, sqliteSeedStatements } from '../test/helpers/busy-day.js';
import { startEmbeddedPostgres } from '../test/helpers/embedded-postgres.js';
import { libraryDir } from './lib/build.js';
import { Child, processCpuNs, ROOT_DIR, runChild } from './lib/child.js';
import { Report, uptime } from './lib/report.js';
import { loadCore } from './lib/src.js';
import { int, median, ms, percentile, ratio, rotate, table } from './lib/stats.js';

const env = process.env;
const SECTIONS = (env.BENCH_SCALE_SECTIONS ?? 'size,purge,workers').split(',').map((s) => s.trim());
const STORES = (env.BENCH_SCALE_STORES ?? 'postgres,sqlite').split(',').map((s) => s.trim()) as StoreKind[];
const ROWS = Number(env.BENCH_SCALE_ROWS ?? 1_000_000);
const PURGE_ROWS = Number(env.BENCH_SCALE_PURGE_ROWS ?? ROWS);
const ROUNDS = Number(env.BENCH_ROUNDS ?? 3);
const DURATION = Number(env.BENCH_DURATION ?? 2);
const WARMUP = Number(env.BENCH_WARMUP ?? 0.5);
const CONNECTIONS = Number(env.BENCH_CONNECTIONS ?? 50);
const JOBS = Number(env.BENCH_JOBS ?? 3000);
const WORKER_JOBS = Number(env.BENCH_WORKER_JOBS ?? 6000);
const SAMPLES = Number(env.BENCH_SAMPLES ?? 100);
const HTTP_SAMPLES = Number(env.BENCH_HTTP_SAMPLES ?? 200);
const WORKERS = (env.BENCH_WORKERS ?? '1,2,4').split(',').map(Number);
const CONCURRENCY = 10;
const PARALLEL = 10;
/** Submits in flight in the workers section: enough that one submitter outpaces four workers. */
const WORKER_PARALLEL = Number(env.BENCH_WORKER_PARALLEL ?? 50);
const OWNERS = 1000;
const OUT = env.BENCH_SCALE_OUT ?? join(ROOT_DIR, '.tmp', 'bench-scale.md');
const PREFIX = 'bench_scale_';
/** The embedded server's settings, by name; BENCH_SCALE_PG_SETTINGS adds to them or replaces them. */
const PG_SETTINGS = new Map<string, string>([
  ['max_connections', '200'],
  ['shared_preload_libraries', 'pg_stat_statements'],
  // A production server's cache, not the compiled-in 128 MB: the PostgreSQL manual's starting point for a dedicated
  // server is a quarter of its memory, and this is a quarter of a 4 GB one.
  ['shared_buffers', '1GB'],
]);
for (const setting of (env.BENCH_SCALE_PG_SETTINGS ?? '').split(',').filter(Boolean)) {
  const [name, ...value] = setting.trim().split('=');
  PG_SETTINGS.set(name, value.join('='));
}
const PG_FLAGS = [...PG_SETTINGS].flatMap(([name, value]) => ['-c', `${name}=${value}`]);

type StoreKind = 'postgres' | 'sqlite';

const report = new Report();
const { emit, progress, targets } = report;

interface Db {
  url: string;
  pool: pg.Pool;
  version: string;
  stop(): Promise<void>;
}

async function startDb(): Promise<Db> {
  let url = env.BENCH_PG_URL;
  let stop = async () => {};
  if (!url) {
    const server = await startEmbeddedPostgres({ flags: PG_FLAGS, name: 'respond-async-bench-scale' });
    url = server.url;
    stop = () => server.destroy();
  }
  const pool = new pg.Pool({ connectionString: url, max: 3 });
  pool.on('error', () => {});
  await pool.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  const { rows } = await pool.query<{ server_version: string }>('SHOW server_version');
  return {
    url,
    pool,
    version: `PostgreSQL ${rows[0].server_version.split(' ')[0]}`,
    async stop() {
      await pool.end();
      await stop();
    },
  };
}

function sqlitePath(name: string): string {
  return join(tmpdir(), `respond-async-bench-scale-${process.pid}-${name}.sqlite`);
}
function removeSqlite(path: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(path + suffix, { force: true });
}

/** A store of the size or purge section: a PostgreSQL schema or a SQLite file, seeded with `rows` jobs. */
interface Place {
  kind: StoreKind;
  label: string;
  schema: string;
  path: string;
}

/** Create the store's schema and seed it by SQL; the seconds it took. */
async function prepare(db: Db | undefined, place: Place, rows: number, expired: number): Promise<number> {
  const started = performance.now();
  const day = { rows, expired, live: 0, owners: OWNERS, names: 10, idPrefix: place.label };
  if (place.kind === 'postgres') {
    if (!db) throw new Error('PostgreSQL unavailable');
    // Ids as the measured tree makes them (time-ordered or not), spread over the id index as a day of its jobs.
    const { newJobId } = await loadCore();
    const ids = newJobId().length > 22 ? 'time' : 'random';
    const store = new PostgresStore({ connectionString: db.url, schema: place.schema, listen: false });
    await store.init();
    await store.close();
    if (rows > 0)
      for (const statement of postgresSeedStatements(`"${place.schema}"`, { ...day, ids }))
        await db.pool.query(statement);
    // Autovacuum would get there after such an insert burst; the benchmark does not wait for it.
    await db.pool.query(`VACUUM ANALYZE "${place.schema}".jobs`);
  } else {
    removeSqlite(place.path);
    const store = new SqliteStore({ path: place.path });
    await store.init();
    await store.close();
    const file = new Database(place.path);
    if (rows > 0)
      file.transaction(() => {
        for (const statement of sqliteSeedStatements(day, Date.now())) file.exec(statement);
      })();
    file.exec('ANALYZE');
    file.pragma('wal_checkpoint(TRUNCATE)');
    file.close();
  }
  return (performance.now() - started) / 1000;
}

function childEnv(db: Db | undefined, place: Place): Record<string, string> {
  return { BENCH_PG_URL: db?.url ?? '', BENCH_SCHEMA: place.schema, BENCH_SQLITE_PATH: place.path };
}

async function startServer(db: Db | undefined, place: Place): Promise<{ child: Child; base: string }> {
  const child = new Child('children/scale-server.ts', [place.kind], { env: childEnv(db, place) });
  const { port } = await child.next<{ type: string; port: number }>('ready', 60_000);
  return { child, base: `http://127.0.0.1:${port}` };
}

/** Remove the accept path's jobs (queued, never run), so that each turn starts from the same table. */
async function removeAccepted(db: Db | undefined, place: Place): Promise<void> {
  if (place.kind === 'postgres') {
    await db?.pool.query(`DELETE FROM "${place.schema}".jobs WHERE status = 'queued' AND name = 'bench'`);
    await db?.pool.query(`VACUUM "${place.schema}".jobs`);
  } else {
    const file = new Database(place.path, { timeout: 10_000 });
    file.prepare("DELETE FROM respond_async_jobs WHERE status = 'queued' AND name = 'bench'").run();
    file.close();
  }
}

/**
 * p50 of `n` sequential requests to each of `count` servers made by `request(server, i)` (keep-alive, from this
 * process), the servers taking turns request by request, so that each figure sees the same moments of a shared
 * machine.
 */
async function sequentialP50s(
  n: number,
  count: number,
  request: (server: number, i: number) => Promise<Response>,
): Promise<number[]> {
  const times: number[][] = Array.from({ length: count }, () => []);
  for (let i = 0; i < n + 10; i++) {
    for (let server = 0; server < count; server++) {
      const started = performance.now();
      const response = await request(server, i);
      await response.arrayBuffer();
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      if (i >= 10) times[server].push(performance.now() - started);
    }
  }
  return times.map((t) => percentile(t, 50));
}

/**
 * Status GET and owner list latency of each server, their requests interleaved: `user-7` submits 40 jobs to each,
 * then reads them back one at a time.
 */
async function httpLatencies(bases: string[]): Promise<Array<{ get: number; list: number; cursor: number }>> {
  const headers = { 'content-type': 'application/json', 'x-user': 'user-7' };
  const urls: string[][] = [];
  const cursors: string[] = [];
  for (const base of bases) {
    const mine: string[] = [];
    for (let i = 0; i < 40; i++) {
      const response = await fetch(`${base}/reports`, { method: 'POST', headers, body: '{"steps":1}' });
      mine.push(((await response.json()) as { statusUrl: string }).statusUrl);
    }
    urls.push(mine);
    const first = (await (await fetch(`${base}/jobs?limit=20`, { headers })).json()) as { nextCursor?: string };
    if (!first.nextCursor) throw new Error('the first page has no next cursor');
    cursors.push(first.nextCursor);
  }
  const get = await sequentialP50s(HTTP_SAMPLES, bases.length, (b, i) =>
    fetch(`${bases[b]}${urls[b][i % urls[b].length]}`, { headers }),
  );
  const list = await sequentialP50s(HTTP_SAMPLES, bases.length, (b) => fetch(`${bases[b]}/jobs?limit=20`, { headers }));
  const cursor = await sequentialP50s(HTTP_SAMPLES, bases.length, (b) =>
    fetch(`${bases[b]}/jobs?limit=20&cursor=${encodeURIComponent(cursors[b])}`, { headers }),
  );
  return bases.map((_, b) => ({ get: get[b], list: list[b], cursor: cursor[b] }));
}

// ---------------------------------------------------------------------------------------------------------
// Table size
// ---------------------------------------------------------------------------------------------------------

interface SizeFigures {
  accept: number[];
  acceptP99: number[];
  acceptCpu: number[];
  e2e: number[];
  start: number[];
  get: number[];
  list: number[];
  cursor: number[];
}

/** The size section's figures; `target: false` marks the one that explains the others and is not among the targets. */
const MEASURES: Array<{ key: keyof SizeFigures; label: string; unit: 'per s' | 'ms' | 'µs'; target?: false }> = [
  { key: 'accept', label: `accept path req/s (${CONNECTIONS} connections)`, unit: 'per s' },
  { key: 'acceptP99', label: 'accept path p99 ms', unit: 'ms' },
  { key: 'acceptCpu', label: 'accept path: server CPU µs per request (all its threads)', unit: 'µs', target: false },
  { key: 'e2e', label: `end-to-end jobs/s (${JOBS} jobs, concurrency ${CONCURRENCY})`, unit: 'per s' },
  { key: 'start', label: 'submit → start p50 ms (one process)', unit: 'ms' },
  { key: 'get', label: 'status GET p50 ms', unit: 'ms' },
  { key: 'list', label: 'owner list, first page p50 ms', unit: 'ms' },
  { key: 'cursor', label: 'owner list, cursor page p50 ms', unit: 'ms' },
];

async function sizeSection(db: Db | undefined, loader: Child, kind: StoreKind): Promise<void> {
  const places: Place[] = ['empty', 'full'].map((label) => ({
    kind,
    label,
    schema: `${PREFIX}${label}`,
    path: sqlitePath(label),
  }));
  const seeded: Record<string, number> = {};
  for (const place of places) {
    progress(`size ${kind} ${place.label}: seed ${place.label === 'full' ? int(ROWS) : 0} rows`);
    seeded[place.label] = await prepare(db, place, place.label === 'full' ? ROWS : 0, 0);
  }
  const figures = new Map<string, SizeFigures>(
    places.map((p) => [
      p.label,
      { accept: [], acceptP99: [], acceptCpu: [], e2e: [], start: [], get: [], list: [], cursor: [] },
    ]),
  );
  const servers = new Map<string, { child: Child; base: string }>();
  const load0 = uptime();
  try {
    for (const place of places) servers.set(place.label, await startServer(db, place));
    for (let round = 0; round < ROUNDS; round++) {
      for (const place of rotate(places, round)) {
        progress(`size ${kind} ${place.label} round ${round + 1}/${ROUNDS}`);
        const f = figures.get(place.label) as SizeFigures;
        const server = servers.get(place.label) as { child: Child; base: string };
        const cpu0 = processCpuNs(server.child.process.pid);
        loader.send({
          type: 'load',
          url: `${server.base}/reports`,
          connections: CONNECTIONS,
          duration: DURATION,
          warmup: round === 0 ? 1 : WARMUP,
          owners: OWNERS,
        });
        const load = await loader.next<{ requestsPerSecond: number; p99: number; accepted: number; failures: number }>(
          'result',
          120_000,
        );
        if (load.failures > 0) progress(`  ${load.failures} failed requests`);
        f.accept.push(load.requestsPerSecond);
        f.acceptP99.push(load.p99);
        f.acceptCpu.push((processCpuNs(server.child.process.pid) - cpu0) / 1000 / load.accepted);
      }
      // Both stores as their accept turn left them, read in turns.
      const order = rotate(places, round);
      const http = await httpLatencies(order.map((place) => (servers.get(place.label) as { base: string }).base));
      order.forEach((place, i) => {
        const f = figures.get(place.label) as SizeFigures;
        f.get.push(http[i].get);
        f.list.push(http[i].list);
        f.cursor.push(http[i].cursor);
      });
      for (const place of order) {
        const f = figures.get(place.label) as SizeFigures;
        await removeAccepted(db, place);
        const e2e = await runChild<{ perSecond: number; unfinished: number }>(
          'children/scale-queue.ts',
          ['e2e', `respond-async:${kind}`],
          {
            env: { ...childEnv(db, place), BENCH_JOBS: String(JOBS), BENCH_PARALLEL: String(PARALLEL) },
            timeoutMs: 300_000,
          },
        );
        f.e2e.push(e2e.perSecond);
        const latency = await runChild<{ latencies: number[] }>(
          'children/latency.ts',
          ['inproc', `respond-async:${kind}`],
          {
            env: { ...childEnv(db, place), BENCH_SAMPLES: String(SAMPLES), BENCH_CONCURRENCY: String(CONCURRENCY) },
          },
        );
        f.start.push(percentile(latency.latencies.filter(Number.isFinite), 50));
      }
    }
  } finally {
    await Promise.all([...servers.values()].map((s) => s.child.stop()));
  }
  reportSize(kind, seeded.full, load0, figures.get('empty') as SizeFigures, figures.get('full') as SizeFigures);
  for (const place of places) {
    if (kind === 'postgres') await db?.pool.query(`DROP SCHEMA IF EXISTS "${place.schema}" CASCADE`);
    else removeSqlite(place.path);
  }
}

/** full ÷ empty of one figure, so that below 1 is always worse with the table full (empty ÷ full for times). */
function fullOverEmpty(unit: 'per s' | 'ms' | 'µs', empty: number, full: number): number {
  return unit === 'per s' ? full / empty : empty / full;
}

/**
 * The size section's table. Each figure twice: the ratio of the two stores' medians, and the median of the rounds'
 * own ratios. The latter is the steadier: a round's empty and full turns run seconds apart, so its ratio is not
 * moved by the machine's load drifting over the run, which moves the medians of each store's rounds apart (on a
 * loaded machine one store's median round may come from a quiet minute and the other's from a busy one). The target
 * asks for both.
 */
function reportSize(kind: StoreKind, seconds: number, load0: string, empty: SizeFigures, full: SizeFigures): void {
  const name = kind === 'postgres' ? 'PostgreSQL' : 'SQLite';
  emit(`### ${name}: empty store vs ${int(ROWS)} finished jobs`);
  emit();
  emit(
    `Seeded by SQL in ${seconds.toFixed(0)} s (${int(ROWS)} finished jobs within retention over the last day, ` +
      `${OWNERS} owners, 10 job names, a third with an idempotency key${kind === 'postgres' ? ', ids shaped as the measured tree makes them; then `VACUUM ANALYZE`' : '; then `ANALYZE`'}). ` +
      `Load average ${load0} at the start of the section, ${uptime()} at its end. ${ROUNDS} rounds.`,
  );
  emit();
  let worst = Number.POSITIVE_INFINITY; // of the median of the rounds' own ratios
  let worstOfMedians = Number.POSITIVE_INFINITY;
  const rows = MEASURES.map(({ key, label, unit, target }) => {
    const show = unit === 'per s' ? int : ms;
    const ofMedians = fullOverEmpty(unit, median(empty[key]), median(full[key]));
    const paired = empty[key].map((e, round) => fullOverEmpty(unit, e, full[key][round]));
    if (target !== false) {
      worst = Math.min(worst, median(paired));
      worstOfMedians = Math.min(worstOfMedians, ofMedians);
    }
    return [
      label,
      show(median(empty[key])),
      show(median(full[key])),
      `**${ratio(ofMedians)}**`,
      `**${ratio(median(paired))}** (${ratio(Math.min(...paired))}–${ratio(Math.max(...paired))})`,
      `${empty[key].map(show).join(' / ')} — ${full[key].map(show).join(' / ')}`,
    ];
  });
  emit(
    table(
      [
        'measure (median of rounds)',
        'empty',
        `${int(ROWS)} finished`,
        'full ÷ empty',
        "rounds' own ratios: median (range)",
        'per round: empty — full',
      ],
      rows,
    ),
  );
  emit();
  targets.push({
    name: `${name}: every figure with ${int(ROWS)} retained jobs ≥ 0.90× empty`,
    met: worst >= 0.9 && worstOfMedians >= 0.9,
    figures: `worst ${ratio(worstOfMedians)} by the ratio of medians, ${ratio(worst)} by the median of the rounds' own ratios`,
  });
}

// ---------------------------------------------------------------------------------------------------------
// Purge
// ---------------------------------------------------------------------------------------------------------

interface Samples {
  times: number[];
  latencies: number[];
  failures: number;
}

function window(samples: Samples, from: number, to: number): { rps: number; p50: number; p99: number; n: number } {
  const picked: number[] = [];
  for (let i = 0; i < samples.times.length; i++) {
    if (samples.times[i] >= from && samples.times[i] < to) picked.push(samples.latencies[i]);
  }
  return {
    rps: picked.length / ((to - from) / 1000),
    p50: percentile(picked, 50),
    p99: percentile(picked, 99),
    n: picked.length,
  };
}

const BEFORE_MS = 6000;

async function purgeSection(db: Db | undefined, loader: Child, kind: StoreKind): Promise<void> {
  const name = kind === 'postgres' ? 'PostgreSQL' : 'SQLite';
  const place: Place = { kind, label: 'purge', schema: `${PREFIX}purge`, path: sqlitePath('purge') };
  progress(`purge ${kind}: seed ${int(PURGE_ROWS)} expired rows`);
  const seconds = await prepare(db, place, PURGE_ROWS, 1);
  const load0 = uptime();
  const server = await startServer(db, place);
  let samples: Samples;
  let purged: { count: number; startedAt: number; endedAt: number };
  const started = Date.now();
  try {
    loader.send({ type: 'record', url: `${server.base}/reports`, connections: CONNECTIONS, owners: OWNERS });
    await new Promise((resolve) => setTimeout(resolve, 1000 + BEFORE_MS));
    progress(`purge ${kind}: purging`);
    server.child.send({ type: 'purge' });
    purged = await server.child.next('purged', 30 * 60_000);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    loader.send({ type: 'stop' });
    samples = await loader.next<Samples & { type: string }>('samples', 60_000);
  } finally {
    await server.child.stop();
  }
  const before = window(samples, started + 1000, purged.startedAt);
  const during = window(samples, purged.startedAt, purged.endedAt);
  const duration = (purged.endedAt - purged.startedAt) / 1000;
  emit(`### ${name}: purging ${int(PURGE_ROWS)} expired jobs under accept-path load`);
  emit();
  emit(
    `Seeded by SQL in ${seconds.toFixed(0)} s. The accept path under autocannon load (${CONNECTIONS} connections, a ` +
      `random one of ${OWNERS} owners per request) for ${BEFORE_MS / 1000} s after 1 s not counted, then ` +
      "`purgeExpired()` in the server's own process (where a runtime's purge timer would run it, beside the accept " +
      'path), load going on until it returned. Every response timed. ' +
      `Load average ${load0} at the start, ${uptime()} at the end; ${samples.failures} non-2xx answers.`,
  );
  emit();
  emit(
    table(
      ['accept path', 'req/s', 'p50 ms', 'p99 ms', 'requests'],
      [
        ['before the purge', int(before.rps), ms(before.p50), ms(before.p99), int(before.n)],
        ['during the purge', int(during.rps), ms(during.p50), ms(during.p99), int(during.n)],
        [
          'during ÷ before',
          ratio(during.rps / before.rps),
          ratio(during.p50 / before.p50),
          `**${ratio(during.p99 / before.p99)}**`,
          '',
        ],
      ],
    ),
  );
  emit();
  emit(
    `Purged ${int(purged.count)} jobs in ${duration.toFixed(1)} s (${int(purged.count / duration)} jobs/s), ` +
      `in statements of at most ${kind === 'postgres' ? '1 000' : '50'} rows, each followed by a pause ${kind === 'postgres' ? 'as long as' : 'twice as long as'} it took.`,
  );
  emit();
  targets.push({
    name: `${name}: accept p99 during a purge of ${int(PURGE_ROWS)} ≤ 2× before`,
    met: during.p99 <= 2 * before.p99,
    figures: `${ratio(during.p99 / before.p99)} (${ms(during.p99)} vs ${ms(before.p99)} ms); purge ${duration.toFixed(1)} s`,
  });
  if (kind === 'postgres') await db?.pool.query(`DROP SCHEMA IF EXISTS "${place.schema}" CASCADE`);
  else removeSqlite(place.path);
}

// ---------------------------------------------------------------------------------------------------------
// Worker scaling (PostgreSQL)
// ---------------------------------------------------------------------------------------------------------

const WORKER_KINDS = ['respond-async:postgres', 'graphile-worker'] as const;
const WORKER_LABEL: Record<string, string> = {
  'respond-async:postgres': 'respond-async',
  'graphile-worker': 'graphile-worker 0.18',
};

/** CPU ms used so far by the PostgreSQL server: the postmaster and every process it started (Linux /proc). */
async function databaseCpuMs(db: Db): Promise<number> {
  const { rows } = await db.pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const status = readFileSync(`/proc/${rows[0].pid}/status`, 'utf8');
  const postmaster = Number(/PPid:\s+(\d+)/.exec(status)?.[1]);
  const tick = 100; // USER_HZ on Linux
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(fields[1]);
      if (Number(entry) !== postmaster && ppid !== postmaster) continue;
      total += ((Number(fields[11]) + Number(fields[12])) * 1000) / tick;
    } catch {
      // The process ended meanwhile.
    }
  }
  return total;
}

async function childrenCpuMs(children: Child[]): Promise<number> {
  let total = 0;
  for (const child of children) {
    child.send({ type: 'cpu' });
    total += (await child.next<{ ms: number }>('cpu', 30_000)).ms;
  }
  return total;
}

interface WorkerRun {
  perSecond: number;
  wallMs: number;
  dbCpuMs: number;
  workerCpuMs: number;
  submitterCpuMs: number;
  submitMs: number;
  statements: number;
  execMs: number;
}

async function workerRun(db: Db, kind: string, workers: number, schema: string): Promise<WorkerRun> {
  const env = { BENCH_PG_URL: db.url, BENCH_SCHEMA: schema, BENCH_CONCURRENCY: String(CONCURRENCY) };
  const submitter = new Child('children/scale-queue.ts', ['submitter', kind], { env });
  const pool: Child[] = [];
  try {
    await submitter.next('ready', 60_000);
    for (let i = 0; i < workers; i++) pool.push(new Child('children/scale-queue.ts', ['worker', kind], { env }));
    await Promise.all(pool.map((child) => child.next('ready', 60_000)));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const remainingSql =
      kind === 'graphile-worker'
        ? `SELECT count(*)::int AS n FROM "${schema}"._private_jobs`
        : `SELECT count(*)::int AS n FROM "${schema}".jobs WHERE status IN ('queued', 'processing')`;
    await db.pool.query('SELECT pg_stat_statements_reset()');
    const db0 = await databaseCpuMs(db);
    const w0 = await childrenCpuMs(pool);
    const s0 = await childrenCpuMs([submitter]);
    const started = performance.now();
    submitter.send({ type: 'go', jobs: WORKER_JOBS, parallel: WORKER_PARALLEL });
    const submitted = submitter.next<{ ms: number }>('submitted', 300_000);
    let allSubmitted = false;
    void submitted.then(() => {
      allSubmitted = true;
    });
    let left = WORKER_JOBS;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      left = (await db.pool.query<{ n: number }>(remainingSql)).rows[0].n;
      // Before the first submit lands the table is empty too: done once every job is submitted and none is left.
      if ((left === 0 && allSubmitted) || performance.now() - started > 120_000) break;
    }
    const wallMs = performance.now() - started;
    const submitMs = (await submitted).ms;
    const dbCpuMs = (await databaseCpuMs(db)) - db0;
    const workerCpuMs = (await childrenCpuMs(pool)) - w0;
    const submitterCpuMs = (await childrenCpuMs([submitter])) - s0;
    const { rows } = await db.pool.query<{ calls: string; exec: number }>(
      `SELECT coalesce(sum(calls), 0) AS calls, coalesce(sum(total_exec_time), 0) AS exec FROM pg_stat_statements
       WHERE query NOT LIKE '%count(*)::int AS n%' AND query NOT LIKE '%pg_stat_statements%'
         AND query NOT LIKE '%pg_backend_pid%'`,
    );
    return {
      perSecond: (WORKER_JOBS - left) / (wallMs / 1000),
      wallMs,
      dbCpuMs,
      workerCpuMs,
      submitterCpuMs,
      submitMs,
      statements: Number(rows[0].calls),
      execMs: Number(rows[0].exec),
    };
  } finally {
    await Promise.all([submitter.stop(), ...pool.map((child) => child.stop())]);
    await db.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  }
}

async function workersSection(db: Db): Promise<void> {
  const shapes = WORKER_KINDS.flatMap((kind) => WORKERS.map((workers) => ({ kind, workers })));
  const results = new Map<string, WorkerRun[]>(shapes.map((s) => [`${s.kind}:${s.workers}`, []]));
  const load0 = uptime();
  for (let round = 0; round < ROUNDS; round++) {
    for (const shape of rotate(shapes, round)) {
      progress(`workers ${shape.kind} × ${shape.workers} round ${round + 1}/${ROUNDS}`);
      const schema = `${PREFIX}w_${shape.kind.replace(/[^a-z]/g, '')}_${shape.workers}_${round}`;
      results.get(`${shape.kind}:${shape.workers}`)?.push(await workerRun(db, shape.kind, shape.workers, schema));
    }
  }
  emit('### PostgreSQL: end-to-end throughput with 1, 2 and 4 worker processes');
  emit();
  emit(
    `A fresh schema per run. One submitter process queues ${int(WORKER_JOBS)} no-op jobs, ${WORKER_PARALLEL} in flight ` +
      `(respond-async \`jobs.submit()\` with \`worker: false\`; graphile-worker \`addJob()\` from \`makeWorkerUtils\`), to ` +
      `1, 2 or 4 worker processes already idle, concurrency ${CONCURRENCY} each (graphile-worker with its defaults). ` +
      'The clock runs from the first submit until the database holds no unfinished job (polled every 10 ms). ' +
      'CPU: the PostgreSQL server (the postmaster and all its processes, from /proc), the worker processes and the ' +
      'submitter (process.cpuUsage), over the run; "busy" is all of it over the 2 cores × wall time. Statements and ' +
      "their execution time in the server from `pg_stat_statements` (the benchmark's own polling left out). " +
      `Medians of ${ROUNDS} rounds (order rotating). Load average ${load0} at the start, ${uptime()} at the end.`,
  );
  emit();
  const rows = shapes.map(({ kind, workers }) => {
    const runs = results.get(`${kind}:${workers}`) ?? [];
    const m = (f: (r: WorkerRun) => number) => median(runs.map(f));
    const one = median((results.get(`${kind}:1`) ?? []).map((r) => r.perSecond));
    const perJob = (value: (r: WorkerRun) => number) => m((r) => (value(r) / WORKER_JOBS) * 1000);
    return [
      `${WORKER_LABEL[kind]}, ${workers} worker${workers > 1 ? 's' : ''}`,
      int(m((r) => r.perSecond)),
      ratio(m((r) => r.perSecond) / one),
      `${(perJob((r) => r.dbCpuMs) / 1000).toFixed(2)} / ${(perJob((r) => r.workerCpuMs) / 1000).toFixed(2)} / ${(perJob((r) => r.submitterCpuMs) / 1000).toFixed(2)}`,
      `${Math.round(m((r) => (r.dbCpuMs + r.workerCpuMs + r.submitterCpuMs) / (cpus().length * r.wallMs)) * 100)} %`,
      (m((r) => r.statements) / WORKER_JOBS).toFixed(2),
      ms(m((r) => r.execMs) / WORKER_JOBS),
      int(m((r) => WORKER_JOBS / (r.submitMs / 1000))),
      runs.map((r) => int(r.perSecond)).join(' / '),
    ];
  });
  emit(
    table(
      [
        'shape',
        'jobs/s (median)',
        '÷ 1 worker',
        'CPU ms per job: database / workers / submitter',
        'busy',
        'statements per job',
        'exec ms per job',
        'submit/s',
        'jobs/s per round',
      ],
      rows,
    ),
  );
  emit();
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  process.env.BENCH_SRC = await libraryDir(process.env.BENCH_SRC);
  const needPg = SECTIONS.includes('workers') || STORES.includes('postgres');
  const db = needPg ? await startDb() : undefined;
  emit('## Scale: a day of retained jobs, a large purge, several worker processes');
  emit();
  emit(
    `Run with \`npm run bench:scale\` (${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}; ` +
      `BENCH_SCALE_ROWS=${ROWS}, BENCH_SCALE_PURGE_ROWS=${PURGE_ROWS}, BENCH_ROUNDS=${ROUNDS}), ` +
      `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}, ${db?.version ?? 'no PostgreSQL'} (embedded, ` +
      `defaults except ${PG_FLAGS.filter((f) => f !== '-c').join(', ')}), load average at start ${uptime()}. ` +
      'respond-async built from its sources with esbuild, every server, load generator and worker in its own ' +
      'process, none pinned. The status GET and owner list latencies are sequential requests from the benchmark ' +
      'process (keep-alive) as the owner `user-7`, after it submitted 40 jobs: GET cycles over those, the list ' +
      'reads the newest page of 20 and the page after it (by its cursor); the empty and the full store take turns ' +
      'request by request, so that both see the same moments of the machine. Ratios are full ÷ empty for rates and ' +
      'empty ÷ full for times, so that below 1 is always worse with the table full.' +
      (env.BENCH_SCALE_QUOTA === 'off'
        ? ' **BENCH_SCALE_QUOTA=off**: the servers run without the per-owner quota (`limits.perOwner: Infinity`).'
        : ' The servers keep the default per-owner quota (`limits.perOwner` 10 000), counted on every submit.'),
  );
  emit();
  const loader = new Child('children/scale-load.ts', []);
  try {
    await loader.next('ready', 60_000);
    for (const kind of STORES) {
      if (kind === 'postgres' && !db) continue;
      if (SECTIONS.includes('size')) await sizeSection(db, loader, kind);
    }
    for (const kind of STORES) {
      if (kind === 'postgres' && !db) continue;
      if (SECTIONS.includes('purge')) await purgeSection(db, loader, kind);
    }
    if (SECTIONS.includes('workers') && db) await workersSection(db);
  } finally {
    await loader.stop();
    if (db) {
      const { rows } = await db.pool.query<{ nspname: string }>(
        'SELECT nspname FROM pg_namespace WHERE nspname LIKE $1',
        [`${PREFIX}%`],
      );
      for (const { nspname } of rows) await db.pool.query(`DROP SCHEMA IF EXISTS "${nspname}" CASCADE`);
      await db.stop().catch(() => {});
    }
  }
  report.closing('### Scale targets');
  report.write(OUT);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
