// Between two attempts the status document tells a retry apart: the attempt, the last error's public part, when
// the next attempt may start, and no progress left over from the failed attempt; progress values are rounded.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { toStatusDocument } from '../src/http/document.js';
import { createJobs, JobError, type Jobs, MemoryStore } from '../src/index.js';
import { PostgresStore } from '../src/postgres.js';
import { SqliteStore } from '../src/sqlite.js';
import { closeAdmin, pgUrl, schemas } from './helpers/postgres.js';

const fresh = schemas('retrydoc');
const runtimes: Jobs[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const jobs of runtimes.splice(0)) await jobs.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

afterAll(async () => {
  await fresh.dropAll();
  await closeAdmin();
});

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const stores = {
  memory: () => new MemoryStore(),
  sqlite: () => {
    const dir = mkdtempSync(join(tmpdir(), 'ra-retry-'));
    dirs.push(dir);
    return new SqliteStore({ path: join(dir, 'jobs.db') });
  },
  postgres: () => new PostgresStore({ connectionString: pgUrl(), schema: fresh.next() }),
};

describe.each(Object.entries(stores))('status document between attempts (%s)', (_name, newStore) => {
  it('shows the attempt, the error, retryAt and no stale progress; the next attempt starts from 0', async () => {
    const jobs = createJobs({ store: newStore(), pollIntervalMs: 20, logger: { error: () => {} } });
    runtimes.push(jobs);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const def = jobs.define(
      'flaky',
      async (_input, ctx) => {
        if (ctx.attempt === 1) {
          await ctx.progress(100 / 3, 'a third');
          throw new JobError('Upstream timed out', { code: 'E_UPSTREAM' });
        }
        await gate;
        return 'ok';
      },
      { attempts: 2, backoff: () => 400 },
    );
    const { job } = await jobs.submit(def, {});
    const queued = await until('the retry is queued', async () => {
      const latest = await jobs.get(job.id);
      return latest?.status === 'queued' && latest.attempt === 1 ? latest : undefined;
    });
    const doc = toStatusDocument(queued, `/jobs/${job.id}`);
    expect(doc).toMatchObject({
      status: 'queued',
      attempt: 1,
      error: { message: 'Upstream timed out', code: 'E_UPSTREAM' },
      retryAt: new Date(queued.runAt).toISOString(),
    });
    expect(doc.progress).toBeUndefined();
    expect(doc.message).toBeUndefined();
    expect(Date.parse(doc.retryAt!)).toBeGreaterThan(Date.now());

    const second = await until('the second attempt resets progress', async () => {
      const latest = await jobs.get(job.id);
      return latest?.status === 'processing' && latest.attempt === 2 && latest.progress === 0 ? latest : undefined;
    });
    const running = toStatusDocument(second, `/jobs/${job.id}`);
    expect(running).toMatchObject({ status: 'processing', attempt: 2, progress: 0 });
    expect(running.retryAt).toBeUndefined();
    expect(running.error).toBeUndefined();
    release();
    expect(await jobs.waitFor(job.id, 5000)).toMatchObject({ status: 'complete', result: 'ok' });
  });
});

describe('progress values', () => {
  it('are stored rounded to two decimals', async () => {
    const jobs = createJobs({ store: new MemoryStore(), pollIntervalMs: 20 });
    runtimes.push(jobs);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const def = jobs.define('thirds', async (_input, ctx) => {
      await ctx.progress(100 / 3);
      await gate;
      return null;
    });
    const { job } = await jobs.submit(def, {});
    const running = await until('progress is stored', async () => {
      const latest = await jobs.get(job.id);
      return latest?.progress !== null && latest?.progress !== undefined ? latest : undefined;
    });
    expect(running.progress).toBe(33.33);
    expect(toStatusDocument(running, '/jobs/x').progress).toBe(33.33);
    release();
  });
});
