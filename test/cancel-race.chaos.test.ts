// Cancel racing completion, on every store: a DELETE timed across the end of the handler. Once cancel() has
// answered 'requested' (DELETE 202) the job must end `canceled`; when it answers 'finished' (DELETE 409) the job
// had already ended. Counts the violations of that contract per store and expects none.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { JobStore } from '../src/core/store.js';
import { isTerminal, type JobRecord } from '../src/core/types.js';
import { createJobs, type Jobs, MemoryStore } from '../src/index.js';
import { PostgresStore } from '../src/postgres.js';
import { SqliteStore } from '../src/sqlite.js';
import { closeAdmin, pgUrl, schemas } from './helpers/postgres.js';

const TRIALS = 500;
/** Trials running at once: completions of one turn then share a batched write, as under real load. */
const LANES = 6;
/** How long the handler works once started; cancel() is sent this long after the start, plus an offset. */
const WORK_MS = 8;
/** Offsets (ms) around the handler's end: before it, at it, and while its completion is being written. */
const OFFSETS = [-3, -2, -1, 0, 0, 1, 1, 2, 2, 3, 4, 6];
const NAME = 'race';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const dir = mkdtempSync(join(tmpdir(), 'cancel-race-'));
const fresh = schemas('cancelrace');

afterAll(async () => {
  await fresh.dropAll();
  await closeAdmin();
  rmSync(dir, { recursive: true, force: true });
});

interface Setup {
  /** Submits and cancels. */
  api: Jobs;
  /** Runs the handler (the same runtime as `api` with one instance). */
  runtimes: Jobs[];
}

/** Resolvers of "the handler of job <id> has started", created by whichever side asks first. */
function startSignals() {
  const waiting = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  const entry = (id: string) => {
    let found = waiting.get(id);
    if (!found) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      found = { promise, resolve };
      waiting.set(id, found);
    }
    return found;
  };
  return {
    started: (id: string) => entry(id).resolve(),
    whenStarted: async (id: string) => {
      await entry(id).promise;
      waiting.delete(id);
    },
  };
}

function setUp(stores: JobStore[], signals: ReturnType<typeof startSignals>): Setup {
  const runtimes = stores.map((store, index) =>
    createJobs({
      store,
      // With two instances the first only answers requests (submit, cancel) and the second only works.
      worker: stores.length === 1 || index > 0,
      concurrency: LANES * 2,
      pollIntervalMs: 50,
      leaseMs: 10_000,
    }),
  );
  for (const jobs of runtimes) {
    jobs.define(
      NAME,
      async (_input: unknown, ctx) => {
        signals.started(ctx.jobId);
        await sleep(WORK_MS);
        return { done: ctx.jobId };
      },
      { attempts: 1 },
    );
  }
  return { api: runtimes[0], runtimes };
}

interface Tally {
  trials: number;
  violations: number;
  requested: number;
  finished: number;
  other: string[];
}

/** The job once it has ended. Polled: an instance without a worker does not follow the change feed. */
async function settled(api: Jobs, id: string): Promise<JobRecord | undefined> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const job = await api.get(id);
    if (!job || isTerminal(job.status) || Date.now() > deadline) return job;
    await sleep(5);
  }
}

async function trial(setup: Setup, signals: ReturnType<typeof startSignals>, n: number, tally: Tally) {
  const { api } = setup;
  const { job } = await api.submit(NAME, { n });
  await signals.whenStarted(job.id);
  await sleep(WORK_MS + OFFSETS[n % OFFSETS.length]);
  const answer = await api.cancel(job.id);
  const final = await settled(api, job.id);
  tally.trials += 1;
  const status = final?.status;
  if (answer.outcome === 'requested' || answer.outcome === 'canceled') {
    tally.requested += 1;
    if (status !== 'canceled') {
      tally.violations += 1;
      tally.other.push(`${answer.outcome} (202) but ended ${status}`);
    }
  } else if (answer.outcome === 'finished') {
    tally.finished += 1;
    if (answer.job?.status !== 'complete' || status !== 'complete') {
      tally.violations += 1;
      tally.other.push(`finished (409) as ${answer.job?.status}, ended ${status}`);
    }
  } else {
    tally.violations += 1;
    tally.other.push(`cancel answered ${answer.outcome}`);
  }
}

async function race(label: string, stores: () => JobStore[]) {
  const signals = startSignals();
  const setup = setUp(stores(), signals);
  const tally: Tally = { trials: 0, violations: 0, requested: 0, finished: 0, other: [] };
  try {
    let next = 0;
    const lane = async () => {
      while (next < TRIALS) await trial(setup, signals, next++, tally);
    };
    await Promise.all(Array.from({ length: LANES }, lane));
  } finally {
    for (const jobs of setup.runtimes) await jobs.close({ timeoutMs: 2000 });
  }
  console.log(
    `${label}: cancel violations ${tally.violations} of ${tally.trials} (202: ${tally.requested}, 409: ${tally.finished})`,
  );
  if (tally.other.length > 0) console.log(`${label}: first violations: ${tally.other.slice(0, 5).join('; ')}`);
  expect(tally.trials).toBe(TRIALS);
  // The offsets must straddle the completion, or the test proves nothing.
  expect(tally.requested).toBeGreaterThan(0);
  expect(tally.finished).toBeGreaterThan(0);
  expect(tally.violations).toBe(0);
}

describe('cancel racing completion: 202 means canceled, 409 means already finished', () => {
  it('memory store', async () => {
    await race('memory', () => [new MemoryStore()]);
  });

  it('SQLite file', async () => {
    await race('sqlite', () => [new SqliteStore({ path: join(dir, 'race.sqlite') })]);
  });

  it('PostgreSQL, one instance', async () => {
    const schema = fresh.next();
    await race('postgres', () => [new PostgresStore({ connectionString: pgUrl(), schema })]);
  });

  it('PostgreSQL, two instances (API on one, worker on the other)', async () => {
    const schema = fresh.next();
    await race('postgres x2', () => [
      new PostgresStore({ connectionString: pgUrl(), schema }),
      new PostgresStore({ connectionString: pgUrl(), schema }),
    ]);
  });
});
