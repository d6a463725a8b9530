// GET {basePath} pages with a cursor (Link rel="next", nextCursor, summaries without result), and the per-owner
// quota answers 429 with Retry-After: over real sockets, on the adapters and on every store.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createJobs, type Jobs } from '../src/core/runtime.js';
import type { JobStore } from '../src/core/store.js';
import type { RequestSnapshot } from '../src/core/types.js';
import { MemoryStore } from '../src/stores/memory.js';
import { PostgresStore } from '../src/stores/postgres.js';
import { SqliteStore } from '../src/stores/sqlite.js';
import { type Framework, type RunningApp, startApp } from './helpers/apps.js';
import { closeAdmin, pgUrl, schemas } from './helpers/postgres.js';

const dir = mkdtempSync(join(tmpdir(), 'respond-async-list-quota-'));
const pgSchemas = schemas('listquota');
let files = 0;

const STORES: Array<[string, () => JobStore]> = [
  ['memory', () => new MemoryStore()],
  ['sqlite file', () => new SqliteStore({ path: join(dir, `jobs-${++files}.sqlite`) })],
  ['postgres', () => new PostgresStore({ connectionString: pgUrl(), schema: pgSchemas.next() })],
];

const running: Array<{ app: RunningApp; jobs: Jobs }> = [];

afterEach(async () => {
  for (const { app, jobs } of running.splice(0)) {
    await app.close();
    await jobs.close({ timeoutMs: 100 });
  }
});
afterAll(async () => {
  await pgSchemas.dropAll();
  await closeAdmin();
  rmSync(dir, { recursive: true, force: true });
});

interface Setup {
  store?: JobStore;
  perOwner?: number;
  retentionMs?: number;
  /** Start no worker: jobs stay queued. */
  worker?: boolean;
}

async function start(framework: Framework, setup: Setup = {}) {
  const jobs = createJobs({
    store: setup.store ?? new MemoryStore(),
    pollIntervalMs: 50,
    concurrency: 20,
    worker: setup.worker ?? true,
    ...(setup.retentionMs === undefined ? {} : { retentionMs: setup.retentionMs }),
    logger: { error() {} },
  });
  const echo = jobs.define('echo', async (req: RequestSnapshot<{ value?: unknown }>) => ({
    echo: req.body?.value ?? null,
  }));
  const app = await startApp(framework, {
    jobs,
    routes: [{ path: '/echo', job: echo }],
    options: { basePath: '/jobs', ...(setup.perOwner === undefined ? {} : { limits: { perOwner: setup.perOwner } }) },
  });
  running.push({ app, jobs });
  const submit = (user: string, body: unknown = {}, headers: Record<string, string> = {}) =>
    fetch(`${app.url}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user': user, ...headers },
      body: JSON.stringify(body),
    });
  const list = (user: string, query = '') => fetch(`${app.url}/jobs${query}`, { headers: { 'x-user': user } });
  return { app, jobs, submit, list };
}

async function expectProblem(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = await res.json();
  expect(body).toMatchObject({ status, code });
  return body;
}

const LINK = /^<(\/jobs\?cursor=([A-Za-z0-9_-]+)&limit=(\d+))>; rel="next"$/;

describe.each(['express', 'fastify', 'koa', 'fetch'] as const)('GET /jobs pages on %s', (framework) => {
  it('pages newest first with Link rel="next" and nextCursor, stable while jobs are added', async () => {
    const { app, submit, list } = await start(framework, { worker: false });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await (await submit('pager', { value: i })).json()).jobId);
      await submit('someone-else');
    }
    const first = await list('pager', '?limit=2');
    expect(first.status).toBe(200);
    const page1 = await first.json();
    expect(page1.jobs.map((j: { jobId: string }) => j.jobId)).toEqual([ids[4], ids[3]]);
    const link = LINK.exec(first.headers.get('link') ?? '');
    expect(link, first.headers.get('link') ?? 'no Link header').not.toBeNull();
    expect(link![2]).toBe(page1.nextCursor);
    expect(link![3]).toBe('2');
    // A job submitted between pages is newer than every page read: the next pages neither repeat nor skip.
    const added = (await (await submit('pager')).json()).jobId;
    const second = await fetch(`${app.url}${link![1]}`, { headers: { 'x-user': 'pager' } });
    const page2 = await second.json();
    expect(page2.jobs.map((j: { jobId: string }) => j.jobId)).toEqual([ids[2], ids[1]]);
    const third = await list('pager', `?limit=2&cursor=${page2.nextCursor}`);
    const page3 = await third.json();
    expect(page3.jobs.map((j: { jobId: string }) => j.jobId)).toEqual([ids[0]]);
    expect(third.headers.get('link')).toBeNull();
    expect(page3.nextCursor).toBeUndefined();
    // The first page again starts with the new job.
    expect((await (await list('pager', '?limit=1')).json()).jobs[0].jobId).toBe(added);
  });

  it('lists 20 by default, at most 100, and only the caller’s jobs', async () => {
    const { submit, list } = await start(framework, { worker: false });
    await Promise.all(Array.from({ length: 105 }, () => submit('many')));
    await submit('few');
    const byDefault = await (await list('many')).json();
    expect(byDefault.jobs).toHaveLength(20);
    expect(typeof byDefault.nextCursor).toBe('string');
    const most = await (await list('many', '?limit=100')).json();
    expect(most.jobs).toHaveLength(100);
    const rest = await (await list('many', `?limit=100&cursor=${most.nextCursor}`)).json();
    expect(rest.jobs).toHaveLength(5);
    expect(new Set([...most.jobs, ...rest.jobs].map((j: { jobId: string }) => j.jobId)).size).toBe(105);
    const few = await (await list('few')).json();
    expect(few.jobs).toHaveLength(1);
    expect(few.nextCursor).toBeUndefined();
  });

  it('lists summaries: status and statusUrl, no result', async () => {
    const { app, submit, list } = await start(framework);
    const { jobId, statusUrl } = await (await submit('summaries', { value: 'x'.repeat(1000) })).json();
    let doc: { status: string; result?: unknown } = { status: 'queued' };
    for (let i = 0; i < 200 && doc.status !== 'complete'; i++) {
      doc = await (await fetch(`${app.url}${statusUrl}`, { headers: { 'x-user': 'summaries' } })).json();
      if (doc.status !== 'complete') await new Promise((r) => setTimeout(r, 20));
    }
    expect(doc.result).toEqual({ echo: 'x'.repeat(1000) });
    const [item] = (await (await list('summaries')).json()).jobs;
    expect(item).toMatchObject({ jobId, status: 'complete', statusUrl });
    expect(item).not.toHaveProperty('result');
  });

  it('answers 400 problem+json to a bad limit or cursor', async () => {
    const { submit, list } = await start(framework, { worker: false });
    await submit('bad');
    await submit('bad');
    const { nextCursor } = await (await list('bad', '?limit=1')).json();
    expect(typeof nextCursor).toBe('string');
    for (const limit of ['0', '101', '-1', '1.5', 'abc', '', '1e2', '020']) {
      await expectProblem(await list('bad', `?limit=${limit}`), 400, 'ERR_RESPOND_ASYNC_BAD_LIMIT');
    }
    const [createdAt, id] = Buffer.from(nextCursor, 'base64url').toString().split('.');
    const forged = [`1.not-a-job-id`, `x.${id}`, `${createdAt}.${id}A`, `-1.${id}`, `${createdAt}`].map((text) =>
      Buffer.from(text).toString('base64url'),
    );
    for (const cursor of ['', 'x', '!!', '%00', ...forged, `${nextCursor}=`, 'A'.repeat(500)]) {
      await expectProblem(await list('bad', `?cursor=${cursor}`), 400, 'ERR_RESPOND_ASYNC_BAD_CURSOR');
    }
  });
});

describe.each(STORES)('per-owner quota on the %s store', (_label, makeStore) => {
  describe.each(['express', 'fastify'] as const)('%s', (framework) => {
    it('answers 429 with Retry-After past the quota, stores nothing, and still replays a known key', async () => {
      const { submit, list } = await start(framework, { store: makeStore(), perOwner: 3, worker: false });
      const keyed = await submit('quota', { value: 0 }, { 'idempotency-key': '"k-0"' });
      expect(keyed.status).toBe(202);
      const keyedId = (await keyed.json()).jobId;
      for (let i = 1; i < 3; i++) expect((await submit('quota', { value: i })).status).toBe(202);
      const over = await submit('quota', { value: 3 });
      const problem = await expectProblem(over, 429, 'ERR_RESPOND_ASYNC_QUOTA_EXCEEDED');
      expect(problem.title).toBe('Too Many Requests');
      expect(Number(over.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      // A new key is a new job: refused too.
      await expectProblem(
        await submit('quota', { value: 4 }, { 'idempotency-key': '"k-new"' }),
        429,
        'ERR_RESPOND_ASYNC_QUOTA_EXCEEDED',
      );
      // The same key and request: the job it made, as before the quota was reached.
      const replay = await submit('quota', { value: 0 }, { 'idempotency-key': '"k-0"' });
      expect(replay.status).toBe(202);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect((await replay.json()).jobId).toBe(keyedId);
      // Nothing was stored for the refused submits; other callers are not held back.
      expect((await (await list('quota', '?limit=100')).json()).jobs).toHaveLength(3);
      expect((await submit('another-user')).status).toBe(202);
    });

    it('counts finished jobs until their retention ends, then accepts again', async () => {
      const { submit, list } = await start(framework, { store: makeStore(), perOwner: 2, retentionMs: 300 });
      for (let i = 0; i < 2; i++) expect((await submit('expiring', { value: i })).status).toBe(202);
      await expectProblem(await submit('expiring'), 429, 'ERR_RESPOND_ASYNC_QUOTA_EXCEEDED');
      // Once both are complete, their results are kept, and count, until retention ends.
      let statuses: string[] = [];
      for (let i = 0; i < 100 && !(statuses.length === 2 && statuses.every((s) => s === 'complete')); i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 10));
        const { jobs } = await (await list('expiring')).json();
        statuses = jobs.map((j: { status: string }) => j.status);
      }
      expect(statuses).toEqual(['complete', 'complete']);
      await expectProblem(await submit('expiring'), 429, 'ERR_RESPOND_ASYNC_QUOTA_EXCEEDED');
      let accepted = 0;
      for (let i = 0; i < 100 && accepted === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const res = await submit('expiring');
        if (res.status === 202) accepted += 1;
        else await expectProblem(res, 429, 'ERR_RESPOND_ASYNC_QUOTA_EXCEEDED');
      }
      expect(accepted).toBe(1);
      expect((await (await list('expiring')).json()).jobs.length).toBeLessThanOrEqual(2);
    });
  });
});

describe('the default quota', () => {
  it('accepts a burst of 200 concurrent submits from one user, beyond 1 000 unfinished jobs', async () => {
    const { submit } = await start('express', { worker: false });
    for (let burst = 0; burst < 6; burst++) {
      const answers = await Promise.all(Array.from({ length: 200 }, () => submit('busy')));
      expect(answers.map((res) => res.status)).toEqual(answers.map(() => 202));
    }
  });

  it('refuses a perOwner that is not a whole number of at least 1', async () => {
    const jobs = createJobs({ store: new MemoryStore(), worker: false });
    try {
      for (const perOwner of [0, -1, 1.5, Number.NaN]) {
        await expect(startApp('express', { jobs, routes: [], options: { limits: { perOwner } } })).rejects.toThrow(
          /perOwner/,
        );
      }
    } finally {
      await jobs.close({ timeoutMs: 100 });
    }
  });
});
