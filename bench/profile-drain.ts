// What a drain costs the database, per job: statements and round trips the contender's clients send, commits,
// notifications its LISTEN connections receive, and row updates on the job table (how many were HOT).
//
//   npx tsx bench/profile-drain.ts [contender …]     (default respond-async:postgres pg-boss:batch graphile-worker)
//
// Each contender in this process, on a fresh schema: BENCH_JOBS (5000) jobs are queued with no worker running,
// then one worker with BENCH_CONCURRENCY (10) slots drains them; only the drain is counted. Counting wraps
// pg.Client#query and the 'notification' event, so it sees every library that uses `pg` (all three do).
//
// Experiments (environment):
//   PD_CPU_PROF=<dir>  write a CPU profile of this process during each drain (<dir>/<contender>.cpuprofile), to
//                      summarise with `npx tsx bench/profile.ts show <file>`
//   PD_SQL='a;;b'      statements run in the schema of each contender named with a trailing `+` (e.g.
//                      `respond-async:postgres+`), before its jobs are queued: an index or setting tried against the
//                      same contender without `+` in the same run
//   PD_PAUSE=<file>    wait before each drain until <file> exists (and remove it): time to attach
//                      `perf record -p <postmaster>`, whose pid is printed
//   BENCH_SRC          the tree to measure (default src/), built first
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import pg from 'pg';
import { libraryDir } from './lib/build.js';
import { type ContenderKind, openContender } from './lib/contenders.js';
import { dropSchemas, startPostgres } from './lib/pg.js';

const JOBS = Number(process.env.BENCH_JOBS ?? 5000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 10);
const kinds = (
  process.argv.slice(2).length > 0
    ? process.argv.slice(2)
    : ['respond-async:postgres', 'pg-boss:batch', 'graphile-worker']
) as ContenderKind[];

const counts = { queries: 0, notifications: 0, byStatement: new Map<string, number>() };
const originalQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  counts.queries += 1;
  const first = args[0] as string | { text?: string; name?: string };
  const text = typeof first === 'string' ? first : (first?.name ?? first?.text ?? '?');
  const key = text.replace(/\s+/g, ' ').trim().slice(0, 60);
  counts.byStatement.set(key, (counts.byStatement.get(key) ?? 0) + 1);
  return (originalQuery as (...a: unknown[]) => unknown).apply(this, args);
} as typeof pg.Client.prototype.query;
const originalEmit = pg.Client.prototype.emit;
pg.Client.prototype.emit = function (this: pg.Client, event: string | symbol, ...args: unknown[]) {
  if (event === 'notification') counts.notifications += 1;
  return originalEmit.call(this, event, ...args);
};

interface TableStats {
  upd: number;
  hot: number;
  commits: number;
}
async function tableStats(db: pg.Client): Promise<TableStats> {
  // The statistics collector reports with a delay; ask for a fresh snapshot.
  await db.query('SELECT pg_stat_clear_snapshot()');
  const t = await db.query<{ upd: string; hot: string }>(
    'SELECT coalesce(sum(n_tup_upd), 0) AS upd, coalesce(sum(n_tup_hot_upd), 0) AS hot FROM pg_stat_user_tables',
  );
  const d = await db.query<{ commits: string }>(
    'SELECT xact_commit AS commits FROM pg_stat_database WHERE datname = current_database()',
  );
  return { upd: Number(t.rows[0]?.upd), hot: Number(t.rows[0]?.hot), commits: Number(d.rows[0]?.commits) };
}

/**
 * CPU time (ms) of each process of the database server (the postmaster's children: backends, WAL writer,
 * checkpointer…), by pid, from /proc (Linux). CPU time, unlike a drain's wall time, barely moves with the load
 * other processes put on the machine, so it tells two trees apart where throughput cannot.
 */
function serverCpu(postmaster: number): Map<number, number> {
  const ticks = 100; // USER_HZ: 100 on Linux
  const cpu = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // Fields after the command name (which may hold spaces), from field 3 (state): ppid 4, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) !== postmaster) continue;
    cpu.set(Number(entry), ((Number(fields[11]) + Number(fields[12])) * 1000) / ticks);
  }
  return cpu;
}

/**
 * CPU ms the server's processes used between two serverCpu() readings (processes started meanwhile from 0), but
 * for the backend of `probe`: this script's polling, which costs more the longer a drain takes.
 */
function cpuBetween(before: Map<number, number>, after: Map<number, number>, probe: number | undefined): number {
  let total = 0;
  for (const [pid, ms] of after) if (pid !== probe) total += ms - (before.get(pid) ?? 0);
  return total;
}

async function postmasterPid(db: pg.Client): Promise<number | undefined> {
  // A backend's parent is the postmaster.
  const { rows } = await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const pid = rows[0]?.pid;
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined; // not Linux, or the server runs elsewhere
  }
}

async function main(): Promise<void> {
  process.env.BENCH_SRC = await libraryDir(process.env.BENCH_SRC);
  const server = await startPostgres();
  const db = new originalClient(server.url);
  await db.connect();
  const postmaster = await postmasterPid(db);
  const probe = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
  try {
    for (const spec of kinds) {
      const kind = spec.replace(/\+$/, '') as ContenderKind;
      const schema = `bench_pd_${kind.replace(/[^a-z]/g, '')}`;
      const submitter = await openContender(kind, { url: server.url, schema, concurrency: 0 });
      if (process.env.PD_SQL && spec.endsWith('+')) {
        await db.query(`SET search_path TO "${schema}"`);
        for (const statement of process.env.PD_SQL.split(';;')) await db.query(statement);
        await db.query('RESET search_path');
      }
      for (let i = 0; i < JOBS; i += 10)
        await Promise.all(Array.from({ length: 10 }, (_, j) => submitter.submit({ i: i + j })));
      await submitter.close();
      await new Promise((resolve) => setTimeout(resolve, 700));
      if (process.env.PD_NO_TRIGGER === '1' && kind === 'respond-async:postgres') {
        await db.query(`ALTER TABLE "${schema}".jobs DISABLE TRIGGER USER`);
      }
      if (process.env.PD_ANALYZE === '1') await db.query(`ANALYZE`);
      if (process.env.PD_PAUSE) {
        console.log(`PAUSED postmaster=${postmaster}`);
        while (!existsSync(process.env.PD_PAUSE)) await new Promise((resolve) => setTimeout(resolve, 100));
        rmSync(process.env.PD_PAUSE);
      }
      const wal0 = (await db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]?.lsn;
      const before = await tableStats(db);
      const q0 = counts.queries;
      const n0 = counts.notifications;
      counts.byStatement.clear();
      let ran = 0;
      let started = 0;
      const profiling = process.env.PD_CPU_PROF ? new Session() : undefined;
      if (profiling) {
        profiling.connect();
        await profiling.post('Profiler.enable');
        await profiling.post('Profiler.start');
      }
      const cpu0 = postmaster === undefined ? undefined : serverCpu(postmaster);
      const node0 = process.cpuUsage();
      const worker = await openContender(kind, {
        url: server.url,
        schema,
        concurrency: CONCURRENCY,
        onRun: () => {
          if (ran === 0) started = performance.now();
          ran += 1;
        },
      });
      const sql = worker.remainingSql;
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const left = sql ? Number((await db.query<{ n: number }>(sql)).rows[0]?.n) : JOBS - ran;
        if (left === 0) break;
      }
      const ms = performance.now() - started;
      const node = process.cpuUsage(node0);
      const nodeMs = (node.user + node.system) / 1000;
      const serverMs =
        cpu0 === undefined || postmaster === undefined ? Number.NaN : cpuBetween(cpu0, serverCpu(postmaster), probe);
      if (profiling) {
        const { profile } = await profiling.post('Profiler.stop');
        writeFileSync(
          join(process.env.PD_CPU_PROF ?? '', `${kind.replace(/\W/g, '-')}.cpuprofile`),
          JSON.stringify(profile),
        );
        profiling.disconnect();
      }
      const queries = counts.queries - q0;
      const notifications = counts.notifications - n0;
      await worker.close();
      await new Promise((resolve) => setTimeout(resolve, 700));
      const after = await tableStats(db);
      const walBytes = Number(
        (await db.query<{ n: string }>('SELECT pg_current_wal_lsn() - $1::pg_lsn AS n', [wal0])).rows[0]?.n,
      );
      const upd = after.upd - before.upd;
      const per = (n: number) => (n / JOBS).toFixed(2);
      console.log(
        `\n== ${spec}: ${JOBS} jobs drained in ${ms.toFixed(0)} ms (${((JOBS / ms) * 1000).toFixed(0)} jobs/s)`,
      );
      console.log(`  statements per job   ${per(queries)}   (${queries})`);
      console.log(`  notifications / job  ${per(notifications)}   (${notifications} received)`);
      console.log(`  commits per job      ${per(after.commits - before.commits)}   (whole database, polling included)`);
      console.log(`  WAL bytes per job    ${(walBytes / JOBS).toFixed(0)}   (the drain and the probes' reads)`);
      console.log(`  row updates per job  ${per(upd)}   (${after.hot - before.hot} of ${upd} HOT)`);
      const us = (cpuMs: number) => ((cpuMs * 1000) / JOBS).toFixed(0).padStart(4);
      console.log(
        `  server CPU per job   ${us(serverMs)} µs   (every process of the database server but this script's probe)`,
      );
      console.log(`  client CPU per job   ${us(nodeMs)} µs   (this process: the contender and the counting)`);
      const top = [...counts.byStatement].sort((a, b) => b[1] - a[1]).slice(0, 8);
      for (const [text, n] of top) console.log(`    ${String(n).padStart(6)}  ${text}`);
      await dropSchemas(server, schema);
    }
  } finally {
    await db.end();
    await server.stop();
  }
}

// The database's own probes run on a client the counting does not see.
class originalClient extends pg.Client {}
originalClient.prototype.query = originalQuery;

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
