// An API-only process (`worker: false`) next to a worker process on one PostgreSQL schema: the API process hears
// the worker's changes through LISTEN/NOTIFY at once, not at its watchers' 5 s poll.
// Over HTTP too: `Prefer: wait` answers 200 for a 10 ms job, and SSE relays progress well under that poll.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { respondAsync } from '../src/express.js';
import { createJobs, type Jobs } from '../src/index.js';
import { PostgresStore } from '../src/postgres.js';
import { closeAdmin, pgUrl, schemas } from './helpers/postgres.js';

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

/** An API process and a worker process (two runtimes, two pools) on one fresh schema, both ready. */
async function split(handler: (input: unknown, ctx: { progress(n: number): Promise<void> }) => Promise<unknown>) {
  const schema = fresh.next();
  const api = createJobs({
    store: new PostgresStore({ connectionString: pgUrl(), schema }),
    worker: false,
    logger: quiet,
  });
  const worker = createJobs({ store: new PostgresStore({ connectionString: pgUrl(), schema }), logger: quiet });
  runtimes.push(api, worker);
  const quick = api.define('quick', handler);
  worker.define('quick', handler);
  await api.ready();
  await worker.ready();
  return { api, worker, quick };
}

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
