// An API-only process (`worker: false`) next to a worker process on one PostgreSQL schema: the API process hears
// the worker's changes through LISTEN/NOTIFY at once, not at its watchers' 5 s poll.
// Over HTTP too: `Prefer: wait` answers 200 for a 10 ms job, and SSE relays progress well under that poll.
// An idle worker offers its free slots: the API process inserts a job already leased to it (no claim); a worker
// that died, or one over capacity, loses or hands back such a job and another runs it, once.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { respondAsync } from '../src/express.js';
import { createJobs, type JobChange, type Jobs } from '../src/index.js';
import { PostgresStore } from '../src/postgres.js';
import { adminQuery, closeAdmin, eventually, listenRaw, pgUrl, schemas } from './helpers/postgres.js';

const fresh = schemas('split');
const runtimes: Jobs[] = [];
const servers: Server[] = [];
const quiet = { error: () => {}, warn: () => {} };

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  for (const jobs of runtimes.splice(0)) await jobs.close();
});
afterAll(async () => {
  await fresh.dropAll();
  await closeAdmin();
});

type Handler = (input: unknown, ctx: { progress(n: number): Promise<void> }) => Promise<unknown>;

/** An API process and a worker process (two runtimes, two pools) on one fresh schema, both ready. */
async function split(handler: Handler, workerOptions: { concurrency?: number; leaseMs?: number } = {}) {
  const schema = fresh.next();
  const api = createJobs({
    store: new PostgresStore({ connectionString: pgUrl(), schema }),
    worker: false,
    logger: quiet,
  });
  const worker = createJobs({
    store: new PostgresStore({ connectionString: pgUrl(), schema }),
    logger: quiet,
    ...workerOptions,
  });
  runtimes.push(api, worker);
  const quick = api.define('quick', handler);
  worker.define('quick', handler);
  await api.ready();
  await worker.ready();
  return { api, worker, quick, schema };
}

/** The slots a worker offers in `schema` (undefined: no offer). */
async function offered(schema: string, workerId: string): Promise<number | undefined> {
  const rows = await adminQuery<{ free: number }>(`SELECT free FROM "${schema}".workers WHERE id = $1`, [workerId]);
  return rows[0]?.free;
}

describe('hand-off to an idle worker (PostgreSQL)', () => {
  it("an API process's submit is inserted leased to the idle worker, which runs it without a claim", async () => {
    const { api, worker, schema } = await split(async () => ({ ok: true }), { concurrency: 4 });
    await eventually(async () => (await offered(schema, worker.workerId)) === 4, 5000);
    const { job } = await api.submit('quick', {});
    expect(job).toMatchObject({ status: 'processing', leaseOwner: worker.workerId, attempt: 1 });
    expect(await api.waitFor(job.id, 5000)).toMatchObject({ status: 'complete', result: { ok: true }, attempt: 1 });
  });

  it('a handed job too large for a notification is read by the worker, and runs with its whole input', async () => {
    const { api, worker, schema } = await split(async (input) => (input as { text: string }).text.length);
    await eventually(async () => ((await offered(schema, worker.workerId)) ?? 0) > 0, 5000);
    const { job } = await api.submit('quick', { text: 'x'.repeat(20_000) });
    expect(job).toMatchObject({ status: 'processing', leaseOwner: worker.workerId });
    expect(await api.waitFor(job.id, 5000)).toMatchObject({ status: 'complete', result: 20_000, attempt: 1 });
  });

  it('an API process with no worker leaves the job queued; a worker started later runs it', async () => {
    const schema = fresh.next();
    const api = createJobs({
      store: new PostgresStore({ connectionString: pgUrl(), schema }),
      worker: false,
      logger: quiet,
    });
    runtimes.push(api);
    api.define('quick', async () => 'never here');
    const { job } = await api.submit('quick', {});
    expect(job).toMatchObject({ status: 'queued', leaseOwner: null });
    const worker = createJobs({ store: new PostgresStore({ connectionString: pgUrl(), schema }), logger: quiet });
    runtimes.push(worker);
    worker.define('quick', async () => 'ran');
    await worker.ready();
    expect(await api.waitFor(job.id, 5000)).toMatchObject({ status: 'complete', result: 'ran', attempt: 1 });
  });

  it('a job handed to a worker that died is run by another once its lease lapses, once', async () => {
    let runs = 0;
    const { api, worker, schema } = await split(
      async () => {
        runs += 1;
        return 'ran';
      },
      { leaseMs: 300 },
    );
    await eventually(async () => (await offered(schema, worker.workerId)) !== undefined, 5000);
    // A worker process that offered its slots and died without withdrawing them (its offer has not lapsed yet).
    await adminQuery(`UPDATE "${schema}".workers SET free = 0 WHERE id = $1`, [worker.workerId]);
    await adminQuery(
      `INSERT INTO "${schema}".workers (id, names, free, lease_ms, until)
       VALUES ('dead-worker', '{quick}', 5, 300, floor(extract(epoch from now()) * 1000)::bigint + 60000)`,
    );
    const { job } = await api.submit('quick', {});
    expect(job).toMatchObject({ status: 'processing', leaseOwner: 'dead-worker' });
    const done = await api.waitFor(job.id, 10_000);
    expect(done).toMatchObject({ status: 'complete', result: 'ran', leaseOwner: null });
    expect(runs).toBe(1);
  });

  it('a worker whose LISTEN connection drops stops being handed jobs until it listens and offers again', async () => {
    const { api, worker, schema } = await split(async () => 'ran', { leaseMs: 600 });
    await eventually(async () => ((await offered(schema, worker.workerId)) ?? 0) > 0, 5000);
    await adminQuery(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'respond-async-listen' AND query = $1`,
      [`LISTEN "${schema}_changes"`],
    );
    await eventually(async () => (await offered(schema, worker.workerId)) === 0, 5000);
    const { job } = await api.submit('quick', {});
    expect(job).toMatchObject({ status: 'queued', leaseOwner: null });
    expect(await api.waitFor(job.id, 5000)).toMatchObject({ status: 'complete', result: 'ran' });
    // Listening again (the store reconnects), the idle worker offers its slots anew.
    await eventually(async () => ((await offered(schema, worker.workerId)) ?? 0) > 0, 10_000);
    const again = await api.submit('quick', {});
    expect(again.job).toMatchObject({ status: 'processing', leaseOwner: worker.workerId });
    expect(await api.waitFor(again.job.id, 5000)).toMatchObject({ status: 'complete', result: 'ran' });
  });

  it("a job handed to its own process's worker runs once, though the notification arrives after it ended", async () => {
    const schema = fresh.next();
    const store = new PostgresStore({ connectionString: pgUrl(), schema });
    // The create goes through the offered slot, not createClaimed; the notification comes late (a busy connection).
    Object.defineProperty(store, 'createClaimed', { value: undefined });
    const subscribe = store.subscribe!.bind(store);
    Object.defineProperty(store, 'subscribe', {
      value: (listener: (change: JobChange) => void) =>
        subscribe((change) => {
          setTimeout(() => listener(change), 300);
        }),
    });
    let runs = 0;
    const jobs = createJobs({ store, logger: quiet, concurrency: 2 });
    runtimes.push(jobs);
    jobs.define('quick', async () => {
      runs += 1;
      return null;
    });
    await jobs.ready();
    await eventually(async () => (await offered(schema, jobs.workerId)) === 2, 5000);
    const { job } = await jobs.submit('quick', {});
    expect(job.leaseOwner).toBe(jobs.workerId);
    expect(await jobs.waitFor(job.id, 5000)).toMatchObject({ status: 'complete', attempt: 1 });
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(runs).toBe(1);
  });

  it('a worker handed a job beyond its free slots hands it back; it runs once, never above concurrency', async () => {
    let running = 0;
    let most = 0;
    let gate!: () => void;
    const blocked = new Promise<void>((resolve) => {
      gate = resolve;
    });
    const runs: string[] = [];
    const { api, worker, schema } = await split(
      async (input) => {
        running += 1;
        most = Math.max(most, running);
        runs.push((input as { name: string }).name);
        if ((input as { name: string }).name === 'first') await blocked;
        running -= 1;
        return null;
      },
      { concurrency: 1 },
    );
    await eventually(async () => (await offered(schema, worker.workerId)) === 1, 5000);
    const first = await api.submit('quick', { name: 'first' });
    expect(first.job.leaseOwner).toBe(worker.workerId);
    await eventually(() => runs.length === 1, 5000);
    // An offer the worker no longer has room for (offers raced with its own work).
    await adminQuery(`UPDATE "${schema}".workers SET free = 1 WHERE id = $1`, [worker.workerId]);
    const second = await api.submit('quick', { name: 'second' });
    expect(second.job.leaseOwner).toBe(worker.workerId);
    await eventually(async () => (await api.get(second.job.id))?.status === 'queued', 5000);
    gate();
    expect(await api.waitFor(second.job.id, 5000)).toMatchObject({ status: 'complete', attempt: 1 });
    expect(runs).toEqual(['first', 'second']);
    expect(most).toBe(1);
  });
});

describe('API-only process on PostgreSQL', () => {
  it('waitFor (what Prefer: wait uses) of a 10 ms job run by another process resolves well under the poll', async () => {
    const { api } = await split(async () => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      return { ok: true };
    });
    const { job } = await api.submit('quick', {});
    const started = performance.now();
    const done = await api.waitFor(job.id, 5000);
    const elapsed = performance.now() - started;
    expect(done).toMatchObject({ status: 'complete', result: { ok: true } });
    expect(elapsed).toBeLessThan(1000);
  });

  it('watch (what SSE uses) hears progress reported in the worker process at once', async () => {
    let finish!: () => void;
    const release = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const { api } = await split(async (_input, ctx) => {
      await ctx.progress(50);
      await release;
      return null;
    });
    const { job } = await api.submit('quick', {});
    const started = performance.now();
    const heard = await new Promise<number>((resolve) => {
      const stop = api.watch(job.id, (change) => {
        if (change && change.status === 'processing') {
          api.get(job.id).then(
            (latest) => {
              if (latest?.progress === 50) {
                stop();
                resolve(performance.now() - started);
              }
            },
            () => {},
          );
        }
      });
    });
    finish();
    expect(heard).toBeLessThan(1000);
  });
});

describe('change notifications only while watched (PostgreSQL)', () => {
  it('a watcher in the API process hears processing, progress and complete from the worker process, in order', async () => {
    let go!: () => void;
    const gate = new Promise<void>((resolve) => {
      go = resolve;
    });
    const { api, schema } = await split(async (_input, ctx) => {
      await gate;
      await ctx.progress(50);
      await new Promise((resolve) => setTimeout(resolve, 20));
      await ctx.progress(80);
      return { ok: true };
    });
    const { job } = await api.submit('quick', {});
    const heard: Array<[string, number]> = [];
    const started = performance.now();
    const done = new Promise<number>((resolve) => {
      const stop = api.watch(job.id, (change) => {
        if (!change) return; // the poll, or the re-read once registered: only the feed counts here
        heard.push([change.status, change.seq]);
        if (change.status === 'complete') {
          stop();
          resolve(performance.now() - started);
        }
      });
    });
    // The API process registered its interest: from now on every change of the job is announced.
    await eventually(
      async () => (await adminQuery(`SELECT 1 FROM "${schema}".watchers WHERE id <> 'upgrade'`)).length === 1,
      5000,
    );
    const before = (await api.get(job.id))!;
    go();
    expect(await done).toBeLessThan(2000);
    const after = heard.filter(([, seq]) => seq > before.seq);
    expect(after).toEqual([
      ['processing', before.seq + 1],
      ['processing', before.seq + 2],
      ['complete', before.seq + 3],
    ]);
  });

  it('a drain with no watcher anywhere announces no claim, progress or completion', async () => {
    const { api, schema } = await split(async (_input, ctx) => {
      await ctx.progress(50);
      return null;
    });
    const raw = await listenRaw(schema);
    try {
      await Promise.all(Array.from({ length: 30 }, (_, i) => api.submit('quick', { i })));
      await eventually(
        async () => (await adminQuery(`SELECT 1 FROM "${schema}".jobs WHERE status = 'complete'`)).length === 30,
        10_000,
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
      const announced = raw.payloads.flatMap((payload) => JSON.parse(payload) as unknown[][]);
      // Only new queued jobs, and jobs handed to the idle worker (which name it), are announced.
      const unneeded = announced.filter((change) => change[1] !== 'queued' && change[3] === undefined);
      expect(unneeded).toEqual([]);
      expect(announced.length).toBeGreaterThanOrEqual(30);
    } finally {
      await raw.end();
    }
  });
});

/** The API process's HTTP side: `POST /quick` wrapped, status routes under /jobs (Express). */
async function serve({ api, quick }: Awaited<ReturnType<typeof split>>): Promise<string> {
  const ra = respondAsync(api);
  const app = express();
  app.post('/quick', ra.route(quick));
  app.use(ra.routes());
  const server = createServer(app);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('API-only process on PostgreSQL, over HTTP', () => {
  it('answers Prefer: wait=5 with 200 and the complete document for a 10 ms job run by the worker process', async () => {
    const origin = await serve(
      await split(async () => {
        await new Promise((resolve) => setTimeout(resolve, 10));
        return { ok: true };
      }),
    );
    const started = performance.now();
    const res = await fetch(`${origin}/quick`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', prefer: 'wait=5' },
      body: '{}',
    });
    const elapsed = performance.now() - started;
    expect(res.status).toBe(200);
    expect(res.headers.get('preference-applied')).toBe('wait=5');
    expect(await res.json()).toMatchObject({ status: 'complete', result: { ok: true } });
    expect(elapsed).toBeLessThan(1000);
  });

  it('relays progress reported in the worker process over SSE within 1 s (LISTEN/NOTIFY, not the 5 s poll)', async () => {
    let finish!: () => void;
    const release = new Promise<void>((resolve) => {
      finish = resolve;
    });
    let reportedAt = 0;
    const origin = await serve(
      await split(async (_input, ctx) => {
        // Time for the client to open its stream first.
        await new Promise((resolve) => setTimeout(resolve, 300));
        reportedAt = performance.now();
        await ctx.progress(50);
        await release;
        return null;
      }),
    );
    const accepted = await fetch(`${origin}/quick`, { method: 'POST' });
    const events = await fetch(`${origin}${accepted.headers.get('location')}/events`, {
      signal: AbortSignal.timeout(10_000),
    });
    const reader = (events.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!/event: progress\n(?:[^\n]+\n)*data: [^\n]*"progress":50/.test(text)) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const heard = performance.now() - reportedAt;
    finish();
    await reader.cancel();
    expect(text).toMatch(/event: progress/);
    expect(reportedAt).toBeGreaterThan(0);
    expect(heard).toBeLessThan(1000);
  });
});
