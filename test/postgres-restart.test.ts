// Database restart: this file starts its own PostgreSQL server (not the shared one), runs an Express app over a
// PostgresStore on it, and stops and starts the server mid-run. During the outage submits and status reads answer
// 503 + Retry-After (never a 202 for a job not stored); afterwards the runtime reconnects by itself (pool and
// LISTEN connection), handlers that ran through the outage finish or are retried, and every accepted job completes.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RequestSnapshot } from '../src/core/types.js';
import { respondAsync } from '../src/express.js';
import { createJobs, type Jobs } from '../src/index.js';
import { PostgresStore } from '../src/postgres.js';
import { type EmbeddedPostgresServer, startEmbeddedPostgres } from './helpers/embedded-postgres.js';
import { sleep } from './helpers/time.js';

const SCHEMA = 'restart';
// The outage is shorter than a third of a lease (the heartbeat period): handlers still running when the server is
// back keep their lease and finish in place, and those that ended during the outage keep retrying their final write
// under the lease they still hold, so no handler runs twice.
const LEASE_MS = 15_000;
const OUTAGE_MS = 2000;
const LONG_MS = 6000;

function abortable(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

/** Stack frames or driver internals must never reach a client. */
function leaksInternals(body: string): boolean {
  return /\n\s+at |ECONNREFUSED|57P0|node_modules|terminat/i.test(body);
}

let server: EmbeddedPostgresServer | undefined;
let url = '';

beforeAll(async () => {
  // A clean (fast) shutdown checkpoints; fsync is not needed for data to survive it.
  server = await startEmbeddedPostgres({
    name: 'respond-async-pg-restart',
    flags: ['-c', 'fsync=off', '-c', 'full_page_writes=off'],
  });
  url = server.url;
}, 90_000);

afterAll(async () => {
  await server?.destroy();
});

describe('PostgreSQL restart under an Express app', () => {
  let jobs: Jobs | undefined;
  let http: Server | undefined;

  afterAll(async () => {
    await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
    await jobs?.close({ timeoutMs: 500 });
  });

  it('answers 503 + Retry-After while the database is down, reconnects by itself, and loses no accepted job', async () => {
    const logged: string[] = [];
    jobs = createJobs({
      store: new PostgresStore({ connectionString: url, schema: SCHEMA }),
      concurrency: 20,
      leaseMs: LEASE_MS,
      pollIntervalMs: 100,
      logger: { error: (message) => logged.push(message), warn: (message) => logged.push(message) },
    });
    const started = new Map<string, number>(); // job id -> handler runs started
    const finished = new Map<string, number>(); // job id -> handler runs that returned
    const inFlight = new Set<string>();
    const work = jobs.define(
      'work',
      async (req: RequestSnapshot<{ ms: number }>, ctx) => {
        started.set(ctx.jobId, (started.get(ctx.jobId) ?? 0) + 1);
        inFlight.add(ctx.jobId);
        try {
          await abortable(req.body.ms, ctx.signal);
        } finally {
          inFlight.delete(ctx.jobId);
        }
        finished.set(ctx.jobId, (finished.get(ctx.jobId) ?? 0) + 1);
        return { attempt: ctx.attempt };
      },
      { attempts: 10, backoff: { delayMs: 100, maxDelayMs: 500 } },
    );
    const app = express();
    const ra = respondAsync(jobs, { basePath: '/jobs', retryAfterSeconds: 2 });
    app.post('/work', ra.route(work));
    app.use(ra.routes());
    http = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => http!.once('listening', () => resolve()));
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;

    const accepted: string[] = [];
    const submit = async (ms: number) => {
      const res = await fetch(`${base}/work`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ms }),
      });
      const text = await res.text();
      if (res.status === 202) accepted.push((JSON.parse(text) as { jobId: string }).jobId);
      return { status: res.status, headers: res.headers, text };
    };
    const length = () => 300 + Math.floor(Math.random() * 500); // 300–800 ms

    // Before: 5 long jobs (they run through the outage) and 40 of 300–800 ms, on 20 slots.
    for (const r of await Promise.all(Array.from({ length: 5 }, () => submit(LONG_MS)))) {
      expect(r.status, r.text).toBe(202);
    }
    for (const r of await Promise.all(Array.from({ length: 40 }, () => submit(length())))) {
      expect(r.status, r.text).toBe(202);
    }
    const before = accepted.length;
    // Stop once some short jobs have finished and a full set of handlers is running.
    const deadline = Date.now() + 10_000;
    while ((finished.size < 5 || inFlight.size < 15) && Date.now() < deadline) await sleep(5);
    const runningAtStop = [...inFlight];
    const completeAtStop = finished.size;
    expect(runningAtStop.length).toBeGreaterThan(0);

    // Outage: stop the server with handlers running.
    const stopAt = Date.now();
    await server!.stop();
    const stopMs = Date.now() - stopAt;
    const outage = { submits: 0, submit503: 0, submit202: 0, reads: 0, read503: 0, other: [] as string[] };
    const outageEnds = Date.now() + OUTAGE_MS;
    let i = 0;
    while (Date.now() < outageEnds) {
      const r = await submit(length());
      outage.submits += 1;
      if (r.status === 202) outage.submit202 += 1;
      else if (
        r.status === 503 &&
        r.headers.get('retry-after') === '2' &&
        r.headers.get('content-type')?.startsWith('application/problem+json') &&
        !leaksInternals(r.text)
      ) {
        outage.submit503 += 1;
      } else outage.other.push(`POST ${r.status} ${r.headers.get('retry-after')} ${r.text}`);
      // A status read of a job accepted before the outage.
      const id = accepted[i++ % before];
      const read = await fetch(`${base}/jobs/${id}`);
      const body = await read.text();
      outage.reads += 1;
      if (
        read.status === 503 &&
        read.headers.get('retry-after') === '2' &&
        read.headers.get('content-type')?.startsWith('application/problem+json') &&
        !leaksInternals(body)
      ) {
        outage.read503 += 1;
      } else outage.other.push(`GET ${read.status} ${read.headers.get('retry-after')} ${body}`);
      await sleep(100);
    }
    expect(outage.other).toEqual([]);
    expect(outage.submit202).toBe(0);
    expect(outage.submit503).toBe(outage.submits);
    expect(outage.read503).toBe(outage.reads);

    // Restart on the same port and data directory; the test calls nothing on the runtime.
    const restartAt = Date.now();
    await server!.start();
    const upAt = Date.now();
    let firstAcceptedMs = -1;
    while (Date.now() - upAt < 15_000) {
      const r = await submit(length());
      if (r.status === 202) {
        firstAcceptedMs = Date.now() - upAt;
        break;
      }
      expect(r.status, r.text).toBe(503);
      await sleep(20);
    }
    expect(firstAcceptedMs).toBeGreaterThanOrEqual(0);
    for (const r of await Promise.all(Array.from({ length: 20 }, () => submit(length())))) {
      expect(r.status, r.text).toBe(202);
    }

    // The LISTEN connection came back by itself.
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    let listenBackMs = -1;
    try {
      while (Date.now() - upAt < 15_000) {
        const { rows } = await admin.query(
          `SELECT 1 FROM pg_stat_activity WHERE application_name = 'respond-async-listen' AND query = $1`,
          [`LISTEN "${SCHEMA}_changes"`],
        );
        if (rows.length > 0) {
          listenBackMs = Date.now() - upAt;
          break;
        }
        await sleep(50);
      }

      // Every accepted job ends complete, as the status endpoint tells it.
      const settleAt = Date.now();
      const pending = new Set(accepted);
      while (pending.size > 0 && Date.now() - settleAt < LEASE_MS + 10_000) {
        for (const id of [...pending]) {
          const res = await fetch(`${base}/jobs/${id}`);
          const doc = (await res.json()) as { status: string };
          expect(res.status).toBe(200);
          if (doc.status === 'complete') pending.delete(id);
          else expect(['queued', 'processing']).toContain(doc.status);
        }
        if (pending.size > 0) await sleep(100);
      }
      const settleMs = Date.now() - settleAt;

      // The store holds exactly the accepted jobs: no 202 for a job not stored, no job stored behind a 503.
      const { rows } = await admin.query<{ id: string; status: string; attempt: number }>(
        `SELECT id, status, attempt FROM "${SCHEMA}".jobs`,
      );
      const records = await Promise.all(accepted.map((id) => jobs!.get(id)));
      const completed = records.filter((job) => job?.status === 'complete').length;
      const attempts: Record<number, number> = {};
      for (const job of records) if (job) attempts[job.attempt] = (attempts[job.attempt] ?? 0) + 1;
      const reran = accepted.filter((id) => (started.get(id) ?? 0) > 1).length;
      // Handlers running when the server stopped: finished in place (one run), or run again after the outage.
      const inPlace = runningAtStop.filter((id) => started.get(id) === 1).length;
      console.log(
        [
          `postgres restart: stop took ${stopMs} ms with ${runningAtStop.length} handlers running (${completeAtStop} jobs finished before)`,
          `outage ${upAt - stopAt} ms: ${outage.submit503}/${outage.submits} submits and ${outage.read503}/${outage.reads} status reads answered 503 + Retry-After, 0 other answers`,
          `restart took ${upAt - restartAt} ms; first 202 ${firstAcceptedMs} ms after the server was up; LISTEN back after ${listenBackMs} ms`,
          `jobs submitted (202) ${accepted.length} (before ${before}, after ${accepted.length - before}); completed ${completed}; lost ${accepted.length - completed}; all complete ${settleMs} ms after LISTEN check`,
          `of the ${runningAtStop.length} handlers running at the stop: ${inPlace} finished in place, ${runningAtStop.length - inPlace} ran again`,
          `attempts per job ${JSON.stringify(attempts)}; jobs whose handler ran more than once ${reran}; runtime errors logged ${logged.length}`,
        ].join('\n'),
      );
      expect(pending.size).toBe(0);
      expect(completed).toBe(accepted.length);
      expect(rows.length).toBe(accepted.length);
      expect(new Set(rows.map((row) => row.id))).toEqual(new Set(accepted));
      expect(rows.every((row) => row.status === 'complete')).toBe(true);
      expect(listenBackMs).toBeGreaterThanOrEqual(0);
      expect(firstAcceptedMs).toBeLessThan(10_000);
      // A handler that finished during the outage is recorded once the store is back, not run again.
      expect(reran).toBe(0);
    } finally {
      await admin.end();
    }
  }, 60_000);
});
