// Latency from submit to handler start, one job at a time on an idle worker (concurrency BENCH_CONCURRENCY).
// The payload carries the machine's monotonic clock at submit; the handler's first line reads it again.
//
//   inproc <kind>     submitter and worker in this process; BENCH_SAMPLES jobs; result: latencies.
//   worker <kind>     worker only: sends `start { latency }` for every job it starts.
//   submitter <kind>  submitter only: on each `submit` message from the parent, queues one job.
//
// env: BENCH_PG_URL, BENCH_SCHEMA, BENCH_SQLITE_PATH, BENCH_SAMPLES, BENCH_CONCURRENCY,
//      BENCH_PREFILL (inproc, memory store: run this many jobs first, so that the store holds them finished),
//      BENCH_HOPS=1 (worker and submitter: also report the time of each hop on the way, read off the pg client)
import pg from 'pg';
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

/**
 * BENCH_HOPS=1: the monotonic time of the last notification received, and of the last query sent and answered,
 * on any pg client of this process (respond-async, graphile-worker and pg-boss all use this `pg`). The LISTEN
 * connection and the pool are told apart by what they do, not by name.
 */
const hops = { notified: Number.NaN, sent: Number.NaN, returned: Number.NaN, statement: '' };
if (process.env.BENCH_HOPS === '1') {
  const proto = pg.Client.prototype as unknown as {
    emit(event: string, ...args: unknown[]): boolean;
    query(...args: unknown[]): unknown;
  };
  const emit = proto.emit;
  proto.emit = function (this: unknown, event: string, ...args: unknown[]) {
    if (event === 'notification') hops.notified = monoMs();
    return emit.call(this, event, ...args);
  };
  const query = proto.query;
  proto.query = function (this: unknown, ...args: unknown[]) {
    const first = args[0] as string | { text?: string; name?: string } | undefined;
    const text = typeof first === 'string' ? first : (first?.name ?? first?.text ?? '');
    if (/^\s*(LISTEN|UNLISTEN)/i.test(text)) return query.apply(this, args);
    hops.sent = monoMs();
    hops.statement = text.replace(/\s+/g, ' ').trim().slice(0, 60);
    const last = args.length - 1;
    const callback = args[last];
    if (typeof callback === 'function') {
      // pg-pool passes a callback (and gets no promise back).
      args[last] = (...results: unknown[]) => {
        hops.returned = monoMs();
        return callback(...results);
      };
    }
    const result = query.apply(this, args);
    if (result && typeof (result as Promise<unknown>).then === 'function') {
      (result as Promise<unknown>).then(
        () => {
          hops.returned = monoMs();
        },
        () => {},
      );
    }
    return result;
  };
}

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
        onRun: (payload) => {
          const now = monoMs();
          const t = payload.t ?? Number.NaN;
          send({ type: 'start', latency: now - t, hops: { ...hops, t, start: now } });
        },
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
        const t = monoMs();
        await contender.submit({ t });
        send({ type: 'submitted', hops: { t, sent: hops.sent, returned: monoMs(), statement: hops.statement } });
      }
    }
    throw new Error(`unknown role ${role}`);
  },
  { exit: role === 'inproc' },
);
