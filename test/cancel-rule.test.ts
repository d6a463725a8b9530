// The store rule behind "DELETE answered 202 means the job ends canceled": once cancel() has answered
// 'requested', the worker's final write (complete, fail, or a retry) ends the job `canceled`, in the same write.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { JobStore } from '../src/core/store.js';
import { MemoryStore } from '../src/index.js';
import { PostgresStore } from '../src/postgres.js';
import { SqliteStore } from '../src/sqlite.js';
import { newJob } from './helpers/jobs.js';
import { closeAdmin, pgUrl, schemas } from './helpers/postgres.js';

const dir = mkdtempSync(join(tmpdir(), 'cancel-rule-'));
const fresh = schemas('cancelrule');
const stores: JobStore[] = [];
let files = 0;

afterAll(async () => {
  for (const store of stores) await store.close();
  await fresh.dropAll();
  await closeAdmin();
  rmSync(dir, { recursive: true, force: true });
});

const WORKER = 'worker-1';
const RETENTION = { retentionMs: 60_000 };

/** A job claimed by WORKER whose cancel was then requested (the DELETE that answers 202). */
async function canceledWhileRunning(store: JobStore): Promise<string> {
  const { job } = await store.create(newJob());
  const claimed = await store.claim({ names: ['task'], workerId: WORKER, limit: 10, leaseMs: 30_000 });
  expect(claimed.map((j) => j.id)).toContain(job.id);
  const answer = await store.cancel(job.id, RETENTION);
  expect(answer.outcome).toBe('requested');
  return job.id;
}

const cases: Array<[string, () => Promise<JobStore>]> = [
  ['MemoryStore', async () => new MemoryStore()],
  ['SqliteStore', async () => new SqliteStore({ path: join(dir, `rule-${++files}.sqlite`) })],
  ['PostgresStore', async () => new PostgresStore({ connectionString: pgUrl(), schema: fresh.next() })],
];

describe.each(cases)('%s: a requested cancel wins over the final write', (_name, open) => {
  async function store(): Promise<JobStore> {
    const opened = await open();
    stores.push(opened);
    await opened.init();
    return opened;
  }

  it('complete() ends the job canceled, without its result', async () => {
    const s = await store();
    const id = await canceledWhileRunning(s);
    const written = await s.complete(id, WORKER, { result: { secret: 1 }, resultUrl: '/x', ...RETENTION });
    expect(written?.status).toBe('canceled');
    const job = await s.get(id);
    expect(job).toMatchObject({ status: 'canceled', resultUrl: null, cancelRequested: false });
    expect(job?.result).toBeUndefined();
    expect(job?.expiresAt).not.toBeNull();
    // A second cancel now finds it finished (409).
    expect((await s.cancel(id, RETENTION)).outcome).toBe('finished');
  });

  it('a final fail() ends the job canceled, not failed', async () => {
    const s = await store();
    const id = await canceledWhileRunning(s);
    const error = { message: 'boom', code: 'E_BOOM' };
    await s.fail(id, WORKER, { error, retryAt: null, ...RETENTION });
    expect(await s.get(id)).toMatchObject({ status: 'canceled', error: null });
  });

  it('a fail() that would retry ends the job canceled, not queued again', async () => {
    const s = await store();
    const id = await canceledWhileRunning(s);
    const error = { message: 'boom', code: 'E_BOOM' };
    await s.fail(id, WORKER, { error, retryAt: Date.now(), ...RETENTION });
    const job = await s.get(id);
    expect(job).toMatchObject({ status: 'canceled', leaseOwner: null });
    expect(job?.finishedAt).not.toBeNull();
    expect(await s.claim({ names: ['task'], workerId: 'worker-2', limit: 10, leaseMs: 30_000 })).toEqual([]);
  });
});
