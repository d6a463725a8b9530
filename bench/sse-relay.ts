// SSE relay on an API-only process: how long after a worker process reports progress an API process started with
// `worker: false` on PostgreSQL delivers it to an SSE client (LISTEN/NOTIFY; its watchers' own poll is every 5 s).
// Three processes: this one (the SSE client), the API process and the worker process (`sse-relay.ts api|worker`).
// The worker puts the machine's monotonic clock in each progress message; the client reads it again on receipt.
//
//   npx tsx bench/sse-relay.ts        its own embedded PostgreSQL (or BENCH_PG_URL), prints the Markdown section
//   BENCH_SECTIONS=sse npm run bench  the same section inside bench/run.ts
// env: BENCH_SSE_JOBS jobs (default 11, the first not counted), BENCH_SSE_STEPS progress reports per job (20),
//      BENCH_SSE_GAP_MS between two reports (50)
import { pathToFileURL } from 'node:url';
import type { RequestSnapshot } from '../src/index.js';
import { Child } from './lib/child.js';
import { main, monoMs, send, sleep } from './lib/ipc.js';
import { type BenchPostgres, dropSchemas, startPostgres } from './lib/pg.js';
import { loadCore, loadExpress, loadPostgres } from './lib/src.js';
import { median, ms, percentile, table } from './lib/stats.js';

const JOBS = Number(process.env.BENCH_SSE_JOBS ?? 11);
const STEPS = Number(process.env.BENCH_SSE_STEPS ?? 20);
const GAP_MS = Number(process.env.BENCH_SSE_GAP_MS ?? 50);
const SCHEMA = 'bench_sse_relay';

type RelayInput = RequestSnapshot<{ steps: number; gapMs: number }>;

/** The runtime of one role on the shared schema: the `relay` job reports progress with its clock in the message. */
async function runtime(worker: boolean) {
  const { createJobs } = await loadCore();
  const { PostgresStore } = await loadPostgres();
  const store = new PostgresStore({ connectionString: process.env.BENCH_PG_URL, schema: process.env.BENCH_SCHEMA });
  const jobs = createJobs({ store, worker });
  const relay = jobs.define('relay', async (input: RelayInput, ctx) => {
    // Time for the client to open its stream before the first report.
    await sleep(300);
    for (let i = 1; i <= input.body.steps; i++) {
      await ctx.progress((100 * i) / input.body.steps, String(monoMs()));
      await sleep(input.body.gapMs);
    }
    return null;
  });
  await jobs.ready();
  return { jobs, relay };
}

/** A child role: `api` serves POST /relay and the status routes (Express, worker: false); `worker` runs the jobs. */
async function child(role: string): Promise<void> {
  const { jobs, relay } = await runtime(role === 'worker');
  let close = () => jobs.close();
  if (role === 'api') {
    const express = (await import('express')).default;
    const { respondAsync } = await loadExpress();
    const ra = respondAsync(jobs);
    const app = express();
    app.post('/relay', ra.route(relay));
    app.use(ra.routes());
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const address = server.address();
    close = async () => {
      server.closeAllConnections();
      server.close();
      await jobs.close();
    };
    send({ type: 'ready', port: typeof address === 'object' && address ? address.port : 0 });
  } else {
    send({ type: 'ready' });
  }
  process.once('SIGTERM', () => {
    close().finally(() => process.exit(0));
  });
}

/** One job followed over SSE: the delay of each progress event, from the worker's report to its receipt here. */
async function follow(origin: string): Promise<number[]> {
  const res = await fetch(`${origin}/relay`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ steps: STEPS, gapMs: GAP_MS }),
  });
  if (res.status !== 202) throw new Error(`POST /relay answered ${res.status}: ${await res.text()}`);
  const events = await fetch(`${origin}${res.headers.get('location')}/events`, { signal: AbortSignal.timeout(60_000) });
  const reader = (events.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const delays: number[] = [];
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return delays;
    const now = monoMs();
    buffer += decoder.decode(value, { stream: true });
    const blocks = buffer.split('\n\n');
    buffer = blocks.pop() ?? '';
    for (const block of blocks) {
      if (!block.includes('event: progress')) continue;
      const data = block.split('\n').find((line) => line.startsWith('data: '));
      const message = data ? JSON.parse(data.slice(6)).message : undefined;
      if (message) delays.push(now - Number(message));
    }
  }
}

export interface SseRelayResult {
  samples: number;
  median: number;
  p90: number;
  max: number;
}

/** Run the measurement on `db` and return its figures. */
export async function measureSseRelay(db: BenchPostgres): Promise<SseRelayResult> {
  await dropSchemas(db, SCHEMA);
  const env = { BENCH_PG_URL: db.url, BENCH_SCHEMA: SCHEMA };
  // The worker first: it creates the store's tables.
  const worker = new Child('sse-relay.ts', ['worker'], { env });
  let api: Child | undefined;
  try {
    await worker.next('ready', 60_000);
    api = new Child('sse-relay.ts', ['api'], { env });
    const { port } = await api.next<{ port: number }>('ready', 60_000);
    const delays: number[] = [];
    for (let i = 0; i < JOBS; i++) {
      const job = await follow(`http://127.0.0.1:${port}`);
      if (i > 0) delays.push(...job);
    }
    return { samples: delays.length, median: median(delays), p90: percentile(delays, 90), max: Math.max(...delays) };
  } finally {
    await Promise.all([api?.stop(), worker.stop()]);
    await dropSchemas(db, SCHEMA).catch(() => {});
  }
}

/** The Markdown section of bench/run.ts (and of a run by hand). */
export async function sseRelaySection(db: BenchPostgres, emit: (line?: string) => void): Promise<SseRelayResult> {
  const result = await measureSseRelay(db);
  emit('## SSE relay on an API-only PostgreSQL process');
  emit();
  emit(
    `A worker process reports progress ${STEPS} times per job, ${GAP_MS} ms apart; an API process started with ` +
      '`worker: false` (Express) relays each report to an SSE client in a third process, through LISTEN/NOTIFY. ' +
      `Delay from the report to its receipt by the client (one monotonic clock per machine), over ${JOBS - 1} jobs ` +
      "after one not counted. For scale: without notifications the API process's watchers poll every 5 s.",
  );
  emit();
  emit(
    table(
      ['samples', 'median', 'p90', 'max'],
      [[String(result.samples), `${ms(result.median)} ms`, `${ms(result.p90)} ms`, `${ms(result.max)} ms`]],
    ),
  );
  emit();
  return result;
}

const role = process.argv[2];
if (role === 'api' || role === 'worker') {
  main(() => child(role), { exit: false });
} else if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(async () => {
    const db = await startPostgres();
    try {
      await sseRelaySection(db, (line = '') => console.log(line));
    } finally {
      await db.stop();
    }
  });
}
