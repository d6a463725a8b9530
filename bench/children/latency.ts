// Latency from submit to handler start, one job at a time on an idle worker (concurrency BENCH_CONCURRENCY).
// The payload carries the machine's monotonic clock at submit; the handler's first line reads it again.
//
//   inproc <kind>     submitter and worker in this process; BENCH_SAMPLES jobs; result: latencies.
//   worker <kind>     worker only: sends `start { latency }` for every job it starts.
//   submitter <kind>  submitter only: on each `submit` message from the parent, queues one job.
//
// env: BENCH_PG_URL, BENCH_SCHEMA, BENCH_SQLITE_PATH, BENCH_SAMPLES, BENCH_CONCURRENCY,
//      BENCH_PREFILL (inproc, memory store: run this many jobs first, so that the store holds them finished)
import { type ContenderKind, openContender } from '../lib/contenders.js';
import { main, monoMs, receive, send, sleep } from '../lib/ipc.js';

const [role, kindArg] = process.argv.slice(2);
const kind = kindArg as ContenderKind;
const samples = Number(process.env.BENCH_SAMPLES ?? 200);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 10);
const prefill = Number(process.env.BENCH_PREFILL ?? 0);
const base = {
  url: process.env.BENCH_PG_URL,
  schema: process.env.BENCH_SCHEMA,
  sqlitePath: process.env.BENCH_SQLITE_PATH,
};
const WARMUP = 20;
/** Idle time between jobs, so that each one finds the worker waiting. */
const GAP_MS = 5;

main(
  async () => {
    if (role === 'inproc') {
      let started: ((latency: number) => void) | undefined;
      const contender = await openContender(kind, {
        ...base,
        concurrency,
        onRun: (payload) => started?.(monoMs() - (payload.t ?? Number.NaN)),
      });
      // Optionally fill the store first with finished jobs (they stay for the retention period).
      for (let done = 0; done < prefill; done += 1000) {
        const n = Math.min(1000, prefill - done);
        await Promise.all(Array.from({ length: n }, (_, i) => contender.submit({ i })));
        while (((await contender.remaining?.()) ?? 0) > 0) await sleep(1);
      }
      await sleep(300); // listeners up, worker idle
      const latencies: number[] = [];
      for (let i = 0; i < WARMUP + samples; i++) {
        const run = new Promise<number>((resolve) => {
          started = resolve;
        });
        await contender.submit({ t: monoMs() });
        const latency = await Promise.race([run, sleep(5000).then(() => Number.NaN)]);
        if (i >= WARMUP) latencies.push(latency);
        await sleep(GAP_MS);
      }
      await contender.close();
      send({ type: 'result', latencies });
      return;
    }
    if (role === 'worker') {
      const contender = await openContender(kind, {
        ...base,
        concurrency,
        onRun: (payload) => send({ type: 'start', latency: monoMs() - (payload.t ?? Number.NaN) }),
      });
      await sleep(300);
      process.once('SIGTERM', () => {
        contender.close().finally(() => process.exit(0));
      });
      send({ type: 'ready' });
      return;
    }
    if (role === 'submitter') {
      const contender = await openContender(kind, { ...base, concurrency: 0 });
      process.once('SIGTERM', () => {
        contender.close().finally(() => process.exit(0));
      });
      send({ type: 'ready' });
      for (;;) {
        await receive('submit');
        await contender.submit({ t: monoMs() });
        send({ type: 'submitted' });
      }
    }
    throw new Error(`unknown role ${role}`);
  },
  { exit: role === 'inproc' },
);
