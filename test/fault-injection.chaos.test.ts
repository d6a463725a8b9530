// Fault injection (long; `npm run test:chaos`): load through all four adapters on every store while the store fails
// (FaultyStore: a fraction of every kind of call rejects, hangs or loses its reply), while a PostgreSQL server of the
// test's own is stopped and started (an in-process app and an example run as a child process), and while a pool of
// two connections is exhausted. Asserts what the README promises: the process never exits, no unhandledRejection,
// every non-2xx answer is problem+json (503 with Retry-After for a store outage), and once the faults stop every
// accepted job ends and none is lost (a job whose attempts ran out during the faults may end `failed`: counted apart).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobStore } from '../src/core/store.js';
import { isTerminal, type JobRecord } from '../src/core/types.js';
import { createJobs, type Jobs, MemoryStore } from '../src/index.js';
import { PostgresStore } from '../src/postgres.js';
import { SqliteStore } from '../src/sqlite.js';
import { FRAMEWORKS, type RunningApp, startApp } from './helpers/apps.js';
import { type EmbeddedPostgresServer, startEmbeddedPostgres } from './helpers/embedded-postgres.js';
import { type ExampleProcess, startExample } from './helpers/example-process.js';
import { FaultyStore } from './helpers/faulty-store.js';
import { closeAdmin, pgUrl, schemas } from './helpers/postgres.js';
import { sleep } from './helpers/time.js';

const dir = mkdtempSync(join(tmpdir(), 'fault-injection-'));
const fresh = schemas('faults');
const USER = 'chaos-user';
/** Lease of the in-process runtimes: short, so that jobs whose final write was given up run again within seconds. */
const LEASE_MS = 2000;
/** How long the jobs have to end once the faults stop. */
const SETTLE_MS = 45_000;

// Process-wide watchers: anything here is a crash the library would have caused outside a test.
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
const uncaught: unknown[] = [];
const onUncaught = (error: unknown) => uncaught.push(error);

beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
  process.on('uncaughtException', onUncaught);
});

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  process.off('uncaughtException', onUncaught);
  await fresh.dropAll();
  await closeAdmin();
  rmSync(dir, { recursive: true, force: true });
});

/** Counts of one scenario (and, summed, of the run). */
interface Tally {
  requests: number;
  /** Answers by status code. */
  statuses: Record<number, number>;
  /** Non-2xx answers that are not application/problem+json, or 503s without Retry-After: what they were. */
  nonProblem: string[];
  /** Non-2xx answers other than 409 (DELETE of a finished job) and 503 (store unavailable): what they were. */
  unexpected: string[];
  /** Requests that got no HTTP answer at all (reset, timeout). */
  noAnswer: string[];
  accepted: number;
  complete: number;
  canceled: number;
  failedByFaults: number;
  /** Accepted jobs missing, unfinished after SETTLE_MS, canceled without a DELETE, or with a wrong result. */
  lost: string[];
  injected: number;
}

function newTally(): Tally {
  return {
    requests: 0,
    statuses: {},
    nonProblem: [],
    unexpected: [],
    noAnswer: [],
    accepted: 0,
    complete: 0,
    canceled: 0,
    failedByFaults: 0,
    lost: [],
    injected: 0,
  };
}

const total = newTally();
/** Server processes that exited during a run (the child process; this one cannot count itself, it would not be here). */
let processesDied = 0;

/**
 * The job every in-process runtime runs: three steps with progress, then the input's `n` back. One in five takes
 * 1.5 s (its lease is renewed, its stream sees progress); one in seven throws on its first attempt (a retry).
 */
function defineWork(jobs: Jobs, flood = 0) {
  return jobs.define(
    'work',
    async (req: { body?: { n?: number } }, ctx) => {
      const n = req.body?.n ?? 0;
      const stepMs = n % 5 === 0 ? 500 : 15;
      for (let step = 1; step <= 3; step++) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(resolve, stepMs);
          ctx.signal.addEventListener('abort', () => {
            clearTimeout(timer);
            reject(ctx.signal.reason);
          });
        });
        // A handler that reports without awaiting (the pool-exhaustion case of issue 15): many writes at once.
        const writes = [ctx.progress(step * 30, `step ${step}`)];
        for (let i = 0; i < flood; i++) writes.push(ctx.progress(step * 30 + (i % 10)));
        await Promise.all(writes);
      }
      if (n % 7 === 0 && ctx.attempt === 1) throw new Error('first attempts of every seventh job fail');
      return { n: req.body?.n ?? null };
    },
    { attempts: 5, backoff: { delayMs: 100, maxDelayMs: 500 } },
  );
}

/** One HTTP call; checks the answer's shape and records it. Resolves to the answer, or undefined when none came. */
async function call(
  tally: Tally,
  where: string,
  url: string,
  init: RequestInit = {},
  read: (res: Response) => Promise<unknown> = (res) => res.text(),
): Promise<{ res: Response; body: unknown } | undefined> {
  tally.requests += 1;
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(20_000), ...init });
  } catch (error) {
    tally.noAnswer.push(`${where} ${init.method ?? 'GET'} ${url}: ${String(error)}`);
    return undefined;
  }
  tally.statuses[res.status] = (tally.statuses[res.status] ?? 0) + 1;
  const type = res.headers.get('content-type') ?? '';
  if (res.status < 200 || res.status > 299) {
    const text = await res.text().catch(() => '');
    if (![409, 503].includes(res.status)) {
      tally.unexpected.push(`${where} ${init.method ?? 'GET'} ${url}: ${res.status} ${text.slice(0, 300)}`);
    }
    if (!type.startsWith('application/problem+json')) {
      tally.nonProblem.push(`${where} ${init.method ?? 'GET'} ${url}: ${res.status} ${type} ${text.slice(0, 200)}`);
    } else if (res.status === 503 && !/^[1-9]\d*$/.test(res.headers.get('retry-after') ?? '')) {
      tally.nonProblem.push(`${where} ${init.method ?? 'GET'} ${url}: 503 without Retry-After`);
    }
    return { res, body: text };
  }
  return { res, body: await read(res).catch(() => undefined) };
}

/** Read an event stream for up to `ms`, or until its terminal event. */
async function readStream(res: Response, ms: number): Promise<void> {
  const reader = res.body?.getReader();
  if (!reader) return;
  const decoder = new TextDecoder();
  let text = '';
  const deadline = Date.now() + ms;
  try {
    while (Date.now() < deadline) {
      const chunk = await Promise.race([reader.read(), sleep(deadline - Date.now()).then(() => undefined)]);
      if (!chunk || chunk.done) break;
      text += decoder.decode(chunk.value, { stream: true });
      if (/event: (complete|failed|canceled)\n/.test(text)) break;
    }
  } catch {
    // The server ended the stream (its runtime closing): fine.
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/** What the lanes submit to: an app's origin, the submit path, and how to build a body. */
interface Target {
  label: string;
  url: string;
  path: string;
  body(n: number): Record<string, unknown>;
}

/** Accepted jobs: where, and whether a DELETE was sent (whatever its answer: a lost reply may still have canceled). */
interface Accepted {
  target: Target;
  id: string;
  statusUrl: string;
  n: number;
  cancelSent: boolean;
}

/**
 * `lanes` clients, each submitting to the targets in turn until `submits` are sent, and after each accepted submit
 * one of: two status polls, an event stream read for a while, a DELETE, or the caller's list. `during` runs
 * alongside (stopping and starting a server, holding a pool).
 */
async function drive(
  tally: Tally,
  targets: Target[],
  options: { submits: number; lanes: number; during?: (lanesDone: () => boolean) => Promise<void> },
): Promise<Accepted[]> {
  const accepted: Accepted[] = [];
  let next = 0;
  const headers = { 'x-user': USER };
  const lane = async () => {
    while (next < options.submits) {
      const n = next++;
      const target = targets[n % targets.length]!;
      const answer = await call(
        tally,
        target.label,
        `${target.url}${target.path}`,
        {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body: JSON.stringify(target.body(n)),
        },
        (res) => res.json(),
      );
      if (!answer) continue;
      if (answer.res.status !== 202) continue;
      const doc = answer.body as { jobId?: string; statusUrl?: string };
      if (typeof doc?.jobId !== 'string' || typeof doc.statusUrl !== 'string') {
        tally.lost.push(`${target.label}: a 202 without a job id: ${JSON.stringify(doc)}`);
        continue;
      }
      const job: Accepted = { target, id: doc.jobId, statusUrl: doc.statusUrl, n, cancelSent: false };
      accepted.push(job);
      const statusUrl = `${target.url}${doc.statusUrl}`;
      const choice = Math.random();
      if (choice < 0.4) {
        for (let i = 0; i < 2; i++) {
          await call(tally, target.label, statusUrl, { headers });
          await sleep(20);
        }
      } else if (choice < 0.65) {
        await call(tally, target.label, `${statusUrl}/events`, { headers }, (res) => readStream(res, 400));
      } else if (choice < 0.85) {
        await sleep(Math.random() * 60);
        job.cancelSent = true;
        await call(tally, target.label, statusUrl, { method: 'DELETE', headers });
      } else {
        await call(tally, target.label, `${target.url}/jobs`, { headers });
      }
    }
  };
  let lanesDone = false;
  const lanes = Promise.all(Array.from({ length: options.lanes }, lane)).finally(() => {
    lanesDone = true;
  });
  await Promise.all([lanes, options.during?.(() => lanesDone)]);
  tally.accepted += accepted.length;
  return accepted;
}

/**
 * Wait until every accepted job has ended (read with `read`), then classify: complete with its own result,
 * canceled after a DELETE, failed (attempts ran out during the faults), or lost.
 */
async function settle(
  tally: Tally,
  accepted: Accepted[],
  read: (job: Accepted) => Promise<Pick<JobRecord, 'status' | 'result' | 'error'> | undefined | null>,
): Promise<void> {
  const deadline = Date.now() + SETTLE_MS;
  const final = new Map<Accepted, Pick<JobRecord, 'status' | 'result' | 'error'> | undefined>();
  let pending = accepted;
  while (pending.length > 0 && Date.now() < deadline) {
    const still: Accepted[] = [];
    for (const job of pending) {
      // null: could not be read this time (a store still coming back).
      const record = await read(job).catch(() => null);
      if (record === null || (record !== undefined && !isTerminal(record.status))) still.push(job);
      else final.set(job, record);
    }
    pending = still;
    if (pending.length > 0) await sleep(250);
  }
  for (const job of pending) tally.lost.push(`${job.target.label} ${job.id}: not finished ${SETTLE_MS} ms after`);
  const failures = new Map<string, number>();
  for (const [job, record] of final) {
    const where = `${job.target.label} ${job.id}`;
    if (record === undefined) tally.lost.push(`${where}: missing`);
    else if (record.status === 'complete') {
      const n = (record.result as { n?: unknown; value?: unknown } | null)?.n ?? (record.result as any)?.value;
      if (n === job.n) tally.complete += 1;
      else tally.lost.push(`${where}: complete with ${JSON.stringify(record.result)}, not n=${job.n}`);
    } else if (record.status === 'canceled') {
      if (job.cancelSent) tally.canceled += 1;
      else tally.lost.push(`${where}: canceled, though no DELETE was sent`);
    } else {
      tally.failedByFaults += 1;
      const code = record.error?.code ?? record.error?.message ?? '?';
      failures.set(code, (failures.get(code) ?? 0) + 1);
    }
  }
  if (failures.size > 0) console.log(`  failed by faults: ${JSON.stringify(Object.fromEntries(failures))}`);
}

/** Add a scenario's counts to the run's, print its line, and assert what must hold for it. */
function report(label: string, tally: Tally, extra = ''): void {
  total.requests += tally.requests;
  for (const [status, count] of Object.entries(tally.statuses)) {
    total.statuses[Number(status)] = (total.statuses[Number(status)] ?? 0) + count;
  }
  total.nonProblem.push(...tally.nonProblem);
  total.noAnswer.push(...tally.noAnswer);
  total.unexpected.push(...tally.unexpected);
  total.accepted += tally.accepted;
  total.complete += tally.complete;
  total.canceled += tally.canceled;
  total.failedByFaults += tally.failedByFaults;
  total.lost.push(...tally.lost);
  total.injected += tally.injected;
  console.log(
    `${label}: requests ${tally.requests} ${JSON.stringify(tally.statuses)}, accepted ${tally.accepted} ` +
      `(complete ${tally.complete}, canceled ${tally.canceled}, failed by faults ${tally.failedByFaults}), ` +
      `non-problem answers ${tally.nonProblem.length}, no answer ${tally.noAnswer.length}, lost jobs ${tally.lost.length}, ` +
      `injected faults ${tally.injected}, unhandled rejections ${unhandled.length}${extra}`,
  );
  for (const line of [...tally.nonProblem, ...tally.unexpected, ...tally.noAnswer, ...tally.lost].slice(0, 8)) {
    console.log(`  ${line}`);
  }
  expect(tally.nonProblem).toEqual([]);
  expect(tally.noAnswer).toEqual([]);
  expect(tally.lost).toEqual([]);
  expect(unhandled).toEqual([]);
  expect(uncaught).toEqual([]);
  // The store failures reached the clients, as 503s, and the run still accepted work.
  expect(tally.statuses[503] ?? 0).toBeGreaterThan(0);
  expect(tally.accepted).toBeGreaterThan(0);
  expect(tally.complete).toBeGreaterThan(0);
  // Statuses the contract allows here: accepted, read, canceled, listed, already finished, unavailable.
  expect(tally.unexpected).toEqual([]);
}

/** A quiet logger that counts what the runtime logs (once per outage, not once per retry). */
function countingLogger() {
  const logged = { error: 0, warn: 0 };
  return {
    logged,
    logger: {
      error: () => {
        logged.error += 1;
      },
      warn: () => {
        logged.warn += 1;
      },
    },
  };
}

/** A runtime over `store` with the `work` job, served by all four adapters. */
async function serveAll(store: JobStore, flood = 0) {
  const { logged, logger } = countingLogger();
  const jobs = createJobs({ store, leaseMs: LEASE_MS, pollIntervalMs: 100, concurrency: 8, logger });
  const work = defineWork(jobs, flood);
  await jobs.ready();
  const apps: Array<{ framework: string; app: RunningApp }> = [];
  for (const framework of FRAMEWORKS) {
    const app = await startApp(framework, {
      jobs,
      routes: [{ path: '/work', job: work }],
      options: { basePath: '/jobs', heartbeatMs: 200, maxWaitSeconds: 0 },
    });
    apps.push({ framework, app });
  }
  const targets: Target[] = apps.map(({ framework, app }) => ({
    label: framework,
    url: app.url,
    path: '/work',
    body: (n) => ({ n }),
  }));
  return {
    jobs,
    logged,
    targets,
    async close() {
      for (const { app } of apps) await app.close();
      await jobs.close({ timeoutMs: 1000 });
    },
  };
}

const STORES: Array<{ label: string; make(): JobStore }> = [
  { label: 'memory', make: () => new MemoryStore() },
  { label: 'sqlite', make: () => new SqliteStore({ path: join(dir, `faults-${Date.now()}.sqlite`) }) },
  { label: 'postgres', make: () => new PostgresStore({ connectionString: pgUrl(), schema: fresh.next() }) },
];

describe('fault injection under load', () => {
  it.each(STORES)(
    '$label store: a quarter of every kind of store call fails (all of them for 1 s), on all four adapters',
    async ({ label, make }) => {
      const store = new FaultyStore(make(), { rate: 0.25, maxHangMs: 1200 });
      const served = await serveAll(store);
      const tally = newTally();
      let accepted: Accepted[] = [];
      try {
        store.on();
        accepted = await drive(tally, served.targets, {
          submits: 240,
          lanes: 8,
          during: async () => {
            // A full outage for a second in the middle of the run: every call fails.
            await sleep(1500);
            store.setRate(1);
            await sleep(1000);
            store.setRate(0.25);
          },
        });
        store.off();
        tally.injected = store.injected.total;
        await settle(tally, accepted, (job) => store.inner.get(job.id));
      } finally {
        store.off();
        await served.close();
      }
      report(
        `faults on ${label}, express+fastify+koa+fetch`,
        tally,
        `; store calls ${Object.values(store.calls).reduce((a, b) => a + b, 0)}` +
          `; faults by method ${JSON.stringify(store.injected.byMethod)} by kind ${JSON.stringify(store.injected.byKind)}; log lines ${served.logged.error}+${served.logged.warn}`,
      );
      // Every kind of call the runtime and the protocol make got faults (renew too, mostly: it is called less often).
      for (const method of ['create', 'get', 'list', 'claim', 'progress', 'complete', 'fail', 'cancel']) {
        expect(store.injected.byMethod[method] ?? 0, method).toBeGreaterThan(0);
      }
    },
  );

  describe('PostgreSQL stopped and started mid-run (a server of its own)', () => {
    let server: EmbeddedPostgresServer;
    let example: ExampleProcess;

    beforeAll(async () => {
      server = await startEmbeddedPostgres({ name: 'fault-injection-pg', flags: ['-c', 'fsync=off'] });
      example = await startExample('express', { STORE: server.url, LEASE_MS: '2000' }, { timeoutMs: 60_000 });
    }, 120_000);

    afterAll(async () => {
      await example?.kill('SIGKILL');
      await server?.destroy();
    });

    it('the in-process app and an example in a child process answer 503 while it is down and lose nothing', async () => {
      const schema = 'faults_restart';
      const served = await serveAll(new PostgresStore({ connectionString: server.url, schema }));
      const targets: Target[] = [
        ...served.targets,
        {
          label: 'express example (child process)',
          url: example.url,
          path: '/reports',
          body: (n) => ({ steps: 2, stepMs: 20, value: n }),
        },
      ];
      const tally = newTally();
      let accepted: Accepted[] = [];
      let downMs = 0;
      try {
        accepted = await drive(tally, targets, {
          submits: 200,
          lanes: 8,
          during: async () => {
            await sleep(1500);
            const stoppedAt = Date.now();
            await server.stop();
            await sleep(2500);
            await server.start();
            downMs = Date.now() - stoppedAt;
          },
        });
        const headers = { 'x-user': USER };
        await settle(tally, accepted, async (job) => {
          if (job.target.path === '/work') return served.jobs.store.get(job.id);
          const res = await fetch(`${job.target.url}${job.statusUrl}`, { headers, redirect: 'manual' });
          if (res.status === 404) return undefined;
          if (res.status !== 200) {
            await res.arrayBuffer();
            return null;
          }
          return (await res.json()) as Pick<JobRecord, 'status' | 'result' | 'error'>;
        });
      } finally {
        await served.close();
      }
      const exitedEarly = await Promise.race([example.exited.then(() => true), sleep(50).then(() => false)]);
      report(
        'postgres stopped and started',
        tally,
        `; down ${downMs} ms; child process alive ${!exitedEarly}; log lines ${served.logged.error}+${served.logged.warn}`,
      );
      if (exitedEarly) {
        processesDied += 1;
        console.log(example.output().slice(-2000));
      }
      expect(exitedEarly).toBe(false);
      // The child's own jobs were among the accepted ones.
      expect(accepted.filter((job) => job.target.path === '/reports').length).toBeGreaterThan(0);
    });
  });

  it('a pool of two connections, held by another client now and then, with a handler flooding progress', async () => {
    const pool = new pg.Pool({ connectionString: pgUrl(), max: 2, connectionTimeoutMillis: 300 });
    pool.on('error', () => {});
    const store = new PostgresStore({ pool, schema: fresh.next() });
    // Each step reports 200 times without awaiting: the runtime must coalesce them, not queue 200 queries.
    const served = await serveAll(store, 200);
    const tally = newTally();
    let holds = 0;
    let accepted: Accepted[] = [];
    try {
      accepted = await drive(tally, served.targets, {
        submits: 200,
        lanes: 8,
        during: async (lanesDone) => {
          // Take both connections for 700 ms every second: everything else waits, then times out (503).
          while (!lanesDone()) {
            await sleep(300);
            const clients = await Promise.allSettled([pool.connect(), pool.connect()]);
            const held = clients.flatMap((c) => (c.status === 'fulfilled' ? [c.value] : []));
            if (held.length === 2) holds += 1;
            await sleep(700);
            for (const client of held) client.release();
          }
        },
      });
      await settle(tally, accepted, (job) => store.get(job.id));
    } finally {
      await served.close();
      await pool.end();
    }
    report(
      'postgres pool of 2 exhausted',
      tally,
      `; pool held ${holds} times; log lines ${served.logged.error}+${served.logged.warn}`,
    );
    expect(holds).toBeGreaterThan(0);
  });

  it('summary: no process died, no unhandled rejection, every error problem+json, no job lost', () => {
    const line =
      `processes died ${processesDied}, unhandled rejections ${unhandled.length}, non-problem answers ${total.nonProblem.length}, ` +
      `lost jobs ${total.lost.length}; injected faults ${total.injected}, accepted jobs ${total.accepted}, ` +
      `failed-by-faults jobs ${total.failedByFaults} (complete ${total.complete}, canceled ${total.canceled}), ` +
      `requests ${total.requests} ${JSON.stringify(total.statuses)}`;
    console.log(line);
    expect(processesDied).toBe(0);
    expect(unhandled).toEqual([]);
    expect(uncaught).toEqual([]);
    expect(total.nonProblem).toEqual([]);
    expect(total.lost).toEqual([]);
    expect(total.accepted).toBeGreaterThan(500);
    expect(total.injected).toBeGreaterThan(0);
  });
});
