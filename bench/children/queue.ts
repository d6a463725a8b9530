// Queue throughput of one contender on PostgreSQL, in its own process, each phase on a fresh schema:
//   submit-only: jobs queued one at a time (sequential), then with BENCH_PARALLEL submits in flight; no worker.
//   drain:       then a worker (BENCH_CONCURRENCY slots) starts on that schema and runs the jobs queued above.
//   end-to-end:  a worker with BENCH_CONCURRENCY slots runs in this process; BENCH_JOBS no-op jobs are submitted
//                (BENCH_PARALLEL in flight) and the clock stops when the database holds no unfinished job.
//
// argv: <contender kind>
// env: BENCH_PG_URL, BENCH_SCHEMA, BENCH_JOBS, BENCH_SUBMIT_JOBS, BENCH_SEQ_JOBS, BENCH_CONCURRENCY, BENCH_PARALLEL
import pg from 'pg';
import { type Contender, type ContenderKind, openContender } from '../lib/contenders.js';
import { main, send, sleep } from '../lib/ipc.js';

const kind = process.argv[2] as ContenderKind;
const url = process.env.BENCH_PG_URL ?? '';
const schema = process.env.BENCH_SCHEMA ?? 'bench';
const jobs = Number(process.env.BENCH_JOBS ?? 5000);
const submitJobs = Number(process.env.BENCH_SUBMIT_JOBS ?? 2000);
const seqJobs = Number(process.env.BENCH_SEQ_JOBS ?? 500);
const WARMUP = 200;
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 10);
const parallel = Number(process.env.BENCH_PARALLEL ?? 10);
const timeoutMs = Number(process.env.BENCH_E2E_TIMEOUT_MS ?? 60_000);
const phases = (process.env.BENCH_PHASES ?? 'submit,drain,e2e').split(',');

/** Submit `n` jobs with `inFlight` submits at a time; the elapsed ms. */
async function submitMany(contender: Contender, n: number, inFlight: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < n) {
        next += 1;
        await contender.submit({ i: next });
      }
    }),
  );
  return performance.now() - started;
}

/** Poll the database every 10 ms until no job is unfinished (or the timeout); jobs finished per second. */
async function waitDone(
  db: pg.Client,
  contender: Contender,
  total: number,
  started: number,
): Promise<{ perSecond: number; ms: number; unfinished: number }> {
  const remaining = async (): Promise<number> => {
    if (contender.remainingSql) return (await db.query<{ n: number }>(contender.remainingSql)).rows[0].n;
    return contender.remaining ? contender.remaining() : 0;
  };
  let left = await remaining();
  while (left > 0 && performance.now() - started < timeoutMs) {
    await sleep(10);
    left = await remaining();
  }
  const ms = performance.now() - started;
  return { perSecond: (total - left) / (ms / 1000), ms, unfinished: left };
}

main(async () => {
  const result: Record<string, unknown> = { type: 'result' };
  const db = new pg.Client(url);
  await db.connect();

  if (phases.includes('submit')) {
    const submitter = await openContender(kind, { url, schema: `${schema}_s`, concurrency: 0 });
    await submitMany(submitter, WARMUP, 1); // warm-up, not counted
    result.sequentialPerSecond = seqJobs / ((await submitMany(submitter, seqJobs, 1)) / 1000);
    result.parallelPerSecond = submitJobs / ((await submitMany(submitter, submitJobs, parallel)) / 1000);
    await submitter.close();
  }

  if (phases.includes('drain') && phases.includes('submit')) {
    // The clock starts when the first job starts, so that each library's start-up is not counted.
    const queued = WARMUP + seqJobs + submitJobs;
    let firstStart = Number.NaN;
    const worker = await openContender(kind, {
      url,
      schema: `${schema}_s`,
      concurrency,
      onRun: () => {
        if (Number.isNaN(firstStart)) firstStart = performance.now();
      },
    });
    while (Number.isNaN(firstStart)) await sleep(1);
    const drain = await waitDone(db, worker, queued, firstStart);
    result.drainPerSecond = drain.perSecond;
    result.drainUnfinished = drain.unfinished;
    await worker.close();
  }

  if (phases.includes('e2e')) {
    let ran = 0;
    const worker = await openContender(kind, {
      url,
      schema: `${schema}_e`,
      concurrency,
      onRun: () => {
        ran += 1;
      },
    });
    await sleep(500); // LISTEN connections up, workers idle
    const started = performance.now();
    result.e2eSubmitMs = await submitMany(worker, jobs, parallel);
    const e2e = await waitDone(db, worker, jobs, started);
    result.e2ePerSecond = e2e.perSecond;
    result.e2eMs = e2e.ms;
    result.e2eUnfinished = e2e.unfinished;
    result.ran = ran;
    await worker.close();
  }

  await db.end();
  send(result as { type: string });
});
