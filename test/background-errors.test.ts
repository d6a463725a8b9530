// Store failures in background paths (claim, renew, purge, progress, a change read) never crash the process: each
// is caught, logged once per outage, and retried; a handler flooding ctx.progress() cannot flood the store.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OutageLog } from '../src/core/outage-log.js';
import { createJobs, type Jobs } from '../src/core/runtime.js';
import type { JobStore } from '../src/core/store.js';
import type { JobChange } from '../src/core/types.js';
import { startWebhookDeliveries } from '../src/http/webhooks.js';
import { PostgresStore } from '../src/postgres.js';
import { SqliteStore } from '../src/sqlite.js';
import { MemoryStore } from '../src/stores/memory.js';
import { closeAdmin, eventually, pgUrl, randomSchema } from './helpers/postgres.js';

/** A real store whose chosen methods reject while `failing` holds their name; counts every call. */
function faultyStore<S extends JobStore>(inner: S) {
  const failing = new Set<string>();
  const calls = new Map<string, number>();
  let feed: ((change: JobChange) => void) | undefined;
  const store = new Proxy(inner, {
    get(target, key, receiver) {
      if (key === 'subscribe' && target.subscribe === undefined) {
        // A change feed the test drives, so that the runtime's reaction to remote changes runs.
        return async (listener: (change: JobChange) => void) => {
          feed = listener;
          return async () => {
            feed = undefined;
          };
        };
      }
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== 'function' || typeof key !== 'string') return value;
      return (...args: unknown[]) => {
        calls.set(key, (calls.get(key) ?? 0) + 1);
        if (failing.has(key)) return Promise.reject(new Error(`injected ${key} failure`));
        return value.apply(target, args);
      };
    },
  }) as S;
  return {
    store,
    failing,
    calls: (name: string) => calls.get(name) ?? 0,
    emit: (change: JobChange) => feed?.(change),
  };
}

function recordingLogger() {
  const errors: string[] = [];
  const warnings: string[] = [];
  return {
    errors,
    warnings,
    logger: {
      error: (message: string) => errors.push(message),
      warn: (message: string) => warnings.push(message),
    },
    count: (list: string[], part: string) => list.filter((m) => m.includes(part)).length,
  };
}

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await closeAdmin();
});

const runtimes: Jobs[] = [];
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const jobs of runtimes.splice(0)) await jobs.close({ timeoutMs: 200 }).catch(() => {});
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('OutageLog', () => {
  it('logs the first failure of a kind, suppresses the repeats, and logs one line on recovery', () => {
    const log = recordingLogger();
    const outages = new OutageLog(log.logger);
    for (let i = 0; i < 50; i++) outages.failed('claim', 'claiming failed', new Error('down'));
    outages.failed('renew', 'renewing failed', new Error('down'));
    expect(log.errors).toEqual(['claiming failed', 'renewing failed']);
    expect(outages.isDown('claim')).toBe(true);
    outages.recovered('claim');
    outages.recovered('claim');
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]).toContain('reachable again');
    expect(outages.isDown('claim')).toBe(false);
    outages.failed('claim', 'claiming failed', new Error('down again'));
    expect(log.errors).toHaveLength(3);
  });

  it('starts a new outage when a kind fails again after a quiet spell without a success', async () => {
    const log = recordingLogger();
    const outages = new OutageLog(log.logger, { quietMs: 30 });
    outages.failed('renew', 'renewing failed', new Error('down'));
    outages.failed('renew', 'renewing failed', new Error('down'));
    expect(log.errors).toHaveLength(1);
    await sleep(60);
    outages.failed('renew', 'renewing failed', new Error('down later'));
    expect(log.errors).toHaveLength(2);
  });
});

describe('store failures in background paths', () => {
  it('never leave an unhandled rejection, log once per outage, and the job ends after the store is back', async () => {
    const faulty = faultyStore(new MemoryStore());
    const log = recordingLogger();
    const jobs = createJobs({
      store: faulty.store,
      logger: log.logger,
      pollIntervalMs: 10,
      leaseMs: 90, // heartbeat every 30 ms
      retentionMs: 20, // purge every 20 ms
    });
    runtimes.push(jobs);
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let progressRejected = 0;
    const work = jobs.define('work', async (_input, ctx) => {
      const ticker = setInterval(() => {
        ctx.progress(50).catch(() => {
          progressRejected += 1;
        });
      }, 5);
      await released;
      clearInterval(ticker);
      return 'done';
    });
    const before = unhandled.length;
    const { job } = await jobs.submit(work, {});
    await eventually(async () => (await jobs.get(job.id))?.status === 'processing');

    for (const name of ['get', 'progress', 'renew', 'purgeExpired', 'claim']) faulty.failing.add(name);
    // A change made elsewhere to the running job: the runtime reads the job to see whether a cancel was asked.
    for (let seq = 1000; seq < 1020; seq++) faulty.emit({ id: job.id, status: 'processing', seq });
    await sleep(400);

    expect(faulty.calls('renew')).toBeGreaterThan(3);
    expect(faulty.calls('purgeExpired')).toBeGreaterThan(3);
    expect(faulty.calls('claim')).toBeGreaterThan(3);
    expect(faulty.calls('progress')).toBeGreaterThan(3);
    expect(unhandled.length - before).toBe(0);
    expect(progressRejected).toBe(0);
    expect(log.count(log.errors, 'renewing leases failed')).toBe(1);
    expect(log.count(log.errors, 'purging expired jobs failed')).toBe(1);
    expect(log.count(log.errors, 'claiming jobs failed')).toBe(1);
    expect(log.count(log.errors, 'store write (progress) failed')).toBe(1);
    expect(log.count(log.errors, 'reading a changed job failed')).toBe(1);

    // Finished jobs are purged after 20 ms here: the completion is seen through watch(), not a later read.
    let completed = false;
    jobs.watch(job.id, (change) => {
      if (change?.status === 'complete') completed = true;
    });
    faulty.failing.clear();
    await eventually(() => log.count(log.warnings, 'renew works again') === 1);
    release();
    await eventually(() => completed);
    expect(log.count(log.warnings, 'purge works again')).toBe(1);
    expect(unhandled.length - before).toBe(0);
  });
});

describe('store failures in the webhook delivery loop', () => {
  it('are logged once per outage and once on recovery', async () => {
    const faulty = faultyStore(new MemoryStore());
    const log = recordingLogger();
    const jobs = createJobs({ store: faulty.store, logger: log.logger, pollIntervalMs: 10 });
    runtimes.push(jobs);
    faulty.failing.add('claimDeliveries');
    startWebhookDeliveries(jobs, {
      webhooks: { secret: `whsec_${Buffer.alloc(32, 7).toString('base64')}` },
      statusUrl: (id) => `/jobs/${id}`,
      pollIntervalMs: 10,
    });
    jobs.define('noop', async () => null);
    await eventually(() => faulty.calls('claimDeliveries') > 10);
    expect(log.count(log.errors, 'claiming webhook deliveries failed')).toBe(1);
    faulty.failing.clear();
    await eventually(() => log.count(log.warnings, 'webhook claim works again') === 1);
  });
});

/** A handler that fires 100 000 progress reports without awaiting any, then returns. */
function flood(jobs: Jobs) {
  return jobs.define('flood', async (_input, ctx) => {
    for (let i = 0; i < 100_000; i++) void ctx.progress(i / 1000, `step ${i}`);
    await ctx.progress(100, 'last');
    return { reported: 100_000 };
  });
}

describe.each(['sqlite', 'postgres'] as const)('100 000 un-awaited progress calls on %s', (kind) => {
  it('complete the job with a bounded number of store writes and no unhandled rejection', async () => {
    let inner: JobStore;
    if (kind === 'sqlite') {
      const dir = mkdtempSync(join(tmpdir(), 'ra-flood-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      inner = new SqliteStore({ path: join(dir, 'jobs.db') });
    } else {
      // A small pool, as in production: 100 000 queued queries would exhaust it.
      const pool = new pg.Pool({ connectionString: pgUrl(), max: 3, connectionTimeoutMillis: 2000 });
      cleanups.push(() => pool.end());
      inner = new PostgresStore({ pool, schema: randomSchema('flood'), listen: false });
    }
    const faulty = faultyStore(inner);
    const log = recordingLogger();
    const jobs = createJobs({ store: faulty.store, logger: log.logger, pollIntervalMs: 20 });
    runtimes.push(jobs);
    const job = flood(jobs);
    const before = unhandled.length;
    const { job: submitted } = await jobs.submit(job, {});
    const done = await eventually(async () => {
      const latest = await jobs.get(submitted.id);
      return latest?.status === 'complete' ? latest : undefined;
    }, 20_000);
    expect(done?.result).toEqual({ reported: 100_000 });
    // One write in flight per job, the latest value next: a handful of writes, not 100 000.
    expect(faulty.calls('progress')).toBeLessThan(20);
    expect(unhandled.length - before).toBe(0);
    expect(log.errors).toEqual([]);
  }, 40_000);
});
