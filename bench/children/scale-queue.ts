// The scale benchmark's queue processes (bench/scale.ts): no-op jobs named `noop` on a given store, so that the
// seeded rows (other names) and the accept path's queued jobs (`bench`) are never claimed.
//
//   e2e <kind>        a worker (BENCH_CONCURRENCY slots) in this process; BENCH_JOBS jobs submitted
//                     (BENCH_PARALLEL in flight); result: jobs/s until the store holds none of them unfinished
//   worker <kind>     a worker only; answers `cpu` with this process's CPU time
//   submitter <kind>  on `go { jobs, parallel }` submits them and answers `submitted`; answers `cpu` too
//
// kinds: respond-async:postgres, respond-async:sqlite, graphile-worker
// env: BENCH_PG_URL, BENCH_SCHEMA, BENCH_SQLITE_PATH, BENCH_JOBS, BENCH_CONCURRENCY, BENCH_PARALLEL
import Database from 'better-sqlite3';
import pg from 'pg';
import { type Contender, type ContenderKind, openContender } from '../lib/contenders.js';
import { main, receive, send, sleep } from '../lib/ipc.js';

const [role, kindArg] = process.argv.slice(2);
const kind = kindArg as ContenderKind;
const base = {
  url: process.env.BENCH_PG_URL,
  schema: process.env.BENCH_SCHEMA,
  sqlitePath: process.env.BENCH_SQLITE_PATH,
};
const jobs = Number(process.env.BENCH_JOBS ?? 3000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 10);
const parallel = Number(process.env.BENCH_PARALLEL ?? 10);
const timeoutMs = 120_000;

/** Submit `n` jobs with `inFlight` submits at a time. */
async function submitMany(contender: Contender, n: number, inFlight: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < n) {
        next += 1;
        await contender.submit({ i: next });
      }
    }),
  );
}

/** How many `noop` jobs the store holds unfinished (the claim index, in both stores). */
function unfinishedCounter(): () => Promise<number> {
  if (kind === 'respond-async:sqlite') {
    const db = new Database(base.sqlitePath ?? '', { readonly: true });
    const count = db.prepare<[], { n: number }>(
      "SELECT count(*) AS n FROM respond_async_jobs WHERE status IN ('queued', 'processing') AND name = 'noop'",
    );
    return async () => count.get()?.n ?? 0;
  }
  const client = new pg.Client(base.url);
  const connected = client.connect();
  const sql = `SELECT count(*)::int AS n FROM "${base.schema}".jobs WHERE status IN ('queued', 'processing') AND name = 'noop'`;
  return async () => {
    await connected;
    return (await client.query<{ n: number }>(sql)).rows[0].n;
  };
}

function answerCpu(): void {
  process.on('message', (message: { type: string }) => {
    if (message.type === 'cpu') {
      const usage = process.cpuUsage();
      send({ type: 'cpu', ms: (usage.user + usage.system) / 1000 });
    }
  });
}

main(
  async () => {
    if (role === 'e2e') {
      const contender = await openContender(kind, { ...base, concurrency });
      const unfinished = unfinishedCounter();
      await sleep(300); // LISTEN connections up, worker idle
      const started = performance.now();
      await submitMany(contender, jobs, parallel);
      let left = await unfinished();
      while (left > 0 && performance.now() - started < timeoutMs) {
        await sleep(10);
        left = await unfinished();
      }
      const elapsed = performance.now() - started;
      await contender.close();
      send({ type: 'result', perSecond: (jobs - left) / (elapsed / 1000), unfinished: left });
      return;
    }
    if (role === 'worker') {
      const contender = await openContender(kind, { ...base, concurrency });
      answerCpu();
      process.once('SIGTERM', () => {
        contender.close().finally(() => process.exit(0));
      });
      send({ type: 'ready' });
      return;
    }
    if (role === 'submitter') {
      const contender = await openContender(kind, { ...base, concurrency: 0 });
      answerCpu();
      process.once('SIGTERM', () => {
        contender.close().finally(() => process.exit(0));
      });
      send({ type: 'ready' });
      for (;;) {
        const go = await receive<{ type: string; jobs: number; parallel: number }>('go');
        const started = performance.now();
        await submitMany(contender, go.jobs, go.parallel);
        send({ type: 'submitted', ms: performance.now() - started });
      }
    }
    throw new Error(`unknown role ${role}`);
  },
  { exit: role === 'e2e' },
);
