// The admin API contract (the operator's dashboard), on Express, Fastify, Koa and the Fetch adapter, over every store
// (and on Express 4 and Koa 2, over the memory store):
// authorization (401 with the app's challenge, 403), filters and stable paging, each action, the live feed, the page.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import express from 'express';
import express4 from 'express4';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import Koa2 from 'koa2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobStore } from '../src/core/store.js';
import { respondAsync as expressAdapter } from '../src/express.js';
import { respondAsync as fastifyAdapter } from '../src/fastify.js';
import { respondAsync as fetchAdapter } from '../src/fetch.js';
import type { AdminOptions } from '../src/http/admin.js';
import { createJobs, JobError, type Jobs, MemoryStore } from '../src/index.js';
import { respondAsync as koaAdapter } from '../src/koa.js';
import { PostgresStore } from '../src/postgres.js';
import { SqliteStore } from '../src/sqlite.js';
import { readEvents } from './helpers/apps.js';
import { closeAdmin, eventually, pgUrl, schemas } from './helpers/postgres.js';

const FRAMEWORKS = ['express', 'fastify', 'koa', 'fetch', 'express4', 'koa2'] as const;
/** The older majors the adapters support, run on one store: the admin mount is the same code. */
const OLDER = new Set<Framework>(['express4', 'koa2']);
const STORES = ['memory', 'sqlite', 'postgres'] as const;
type Framework = (typeof FRAMEWORKS)[number];

const fresh = schemas('admin');
const dir = mkdtempSync(join(tmpdir(), 'respond-async-admin-'));

/** A webhook receiver that answers 503 to a job's first delivery and 204 to the others. */
const seen = new Map<string, number>();
const receiver = createServer((req, res) => {
  const id = req.headers['webhook-id'] as string;
  seen.set(id, (seen.get(id) ?? 0) + 1);
  req.resume();
  req.on('end', () => {
    res.statusCode = seen.get(id) === 1 ? 503 : 204;
    res.end();
  });
});
let hookUrl = '';
beforeAll(async () => {
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
});
const webhooks = () => ({
  secret: `whsec_${randomBytes(32).toString('base64')}`,
  allowOrigins: [new URL(hookUrl).origin],
  backoff: { delayMs: 20, maxDelayMs: 50 },
});

afterAll(async () => {
  receiver.closeAllConnections();
  await new Promise((resolve) => receiver.close(resolve));
  await fresh.dropAll();
  await closeAdmin();
  rmSync(dir, { recursive: true, force: true });
});

function newStore(kind: (typeof STORES)[number], name: string): JobStore {
  if (kind === 'memory') return new MemoryStore();
  if (kind === 'sqlite') return new SqliteStore({ path: join(dir, `${name}.sqlite`) });
  return new PostgresStore({ connectionString: pgUrl(), schema: fresh.next() });
}

/** Bearer `ok` is allowed, bearer `no` is authenticated but refused, anything else is not authenticated. */
function decide(authorization: string | undefined | null) {
  if (authorization === 'Bearer ok') return true as const;
  if (authorization === 'Bearer no') return 403 as const;
  return 401 as const;
}

const CHALLENGE = 'Bearer realm="ops"';

/** Start an app on `framework` with the dashboard at /admin. */
async function startAdminApp(framework: Framework, jobs: Jobs) {
  const options = <Req>(header: (req: Req) => string | undefined | null): AdminOptions<Req> => ({
    authorize: (req) => decide(header(req)),
    wwwAuthenticate: CHALLENGE,
    actor: () => 'operator-1',
  });
  switch (framework) {
    case 'express':
    case 'express4': {
      const app = framework === 'express4' ? express4() : express();
      const ra = expressAdapter(jobs, { webhooks: webhooks() });
      app.use('/admin', ra.admin(options((req) => req.get('authorization'))));
      return listen(app.listen(0, '127.0.0.1'));
    }
    case 'fastify': {
      const app = Fastify({ forceCloseConnections: true });
      const ra = fastifyAdapter(jobs, { webhooks: webhooks() });
      await app.register(ra.admin(options((req) => req.headers.authorization)), { prefix: '/admin' });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as AddressInfo;
      return { url: `http://127.0.0.1:${port}`, close: () => app.close() };
    }
    case 'koa':
    case 'koa2': {
      const app = framework === 'koa2' ? new Koa2() : new Koa();
      const ra = koaAdapter(jobs, { webhooks: webhooks() });
      app.use(ra.admin({ path: '/admin', ...options((ctx) => ctx.get('authorization')) }));
      return listen(app.listen(0, '127.0.0.1'));
    }
    case 'fetch': {
      const app = new Hono();
      const ra = fetchAdapter(jobs, { webhooks: webhooks() });
      const admin = ra.admin({ path: '/admin', ...options((req) => req.headers.get('authorization')) });
      app.use('*', async (c, next) => (await admin(c.req.raw)) ?? next());
      const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
        const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
      });
      return listen(server as unknown as import('node:http').Server);
    }
  }
}

async function listen(server: import('node:http').Server) {
  if (!server.listening) await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

const AUTH = { authorization: 'Bearer ok' };
const ACT = { ...AUTH, 'x-respond-async-admin': '1' };

for (const storeKind of STORES) {
  for (const framework of FRAMEWORKS) {
    if (OLDER.has(framework) && storeKind !== 'memory') continue;
    describe(`admin API: ${framework} on the ${storeKind} store`, () => {
      let jobs: Jobs;
      let app: { url: string; close(): Promise<void> };
      const audit: Array<{ message: string; details: unknown }> = [];
      /** While false, `flaky` jobs fail with a server-side message clients never see. */
      let healthy = false;

      beforeAll(async () => {
        jobs = createJobs({
          store: newStore(storeKind, framework),
          pollIntervalMs: 50,
          logger: { error: () => {}, warn: (message, details) => void audit.push({ message, details }) },
        });
        jobs.define(
          'flaky',
          async () => {
            if (!healthy) throw Object.assign(new Error('db password rejected for user "svc"'), { code: 'E_DB' });
            return { ok: true };
          },
          { attempts: 2, backoff: () => 10 },
        );
        jobs.define('quick', async (input: { n?: number }) => ({ n: input.n ?? 0 }));
        jobs.define(
          'slow',
          (_input, ctx) =>
            new Promise((_resolve, reject) =>
              ctx.signal.addEventListener('abort', () => reject(new JobError('stopped'))),
            ),
        );
        await jobs.ready();
        app = await startAdminApp(framework, jobs);
      });

      afterAll(async () => {
        await app?.close();
        await jobs?.close({ timeoutMs: 1000 });
      });

      const get = (path: string, headers: Record<string, string> = AUTH) =>
        fetch(`${app.url}/admin${path}`, { headers });
      const post = (path: string, headers: Record<string, string> = ACT, method = 'POST') =>
        fetch(`${app.url}/admin${path}`, { method, headers });
      const job = async (id: string) => (await (await get(`/api/jobs/${id}`)).json()) as any;

      it('answers 401 with the app’s challenge without credentials, 403 when authorize refuses, for the page, API and actions', async () => {
        for (const path of ['/', '/app.js', '/api/jobs', '/api/stats', '/api/events']) {
          const none = await get(path, {});
          expect(none.status).toBe(401);
          expect(none.headers.get('www-authenticate')).toBe(CHALLENGE);
          expect(none.headers.get('content-type')).toMatch(/^application\/problem\+json/);
          expect((await none.json()).code).toBe('ERR_RESPOND_ASYNC_ADMIN_UNAUTHENTICATED');
          const refused = await get(path, { authorization: 'Bearer no' });
          expect(refused.status).toBe(403);
          expect(refused.headers.get('www-authenticate')).toBeNull();
          expect((await refused.json()).code).toBe('ERR_RESPOND_ASYNC_ADMIN_FORBIDDEN');
        }
        const { job: queued } = await jobs.submit('quick', { n: 1 });
        expect((await post(`/api/jobs/${queued.id}/retry`, { 'x-respond-async-admin': '1' })).status).toBe(401);
        expect(
          (await post(`/api/jobs/${queued.id}`, { authorization: 'Bearer no', 'x-respond-async-admin': '1' }, 'DELETE'))
            .status,
        ).toBe(403);
        expect(await jobs.get(queued.id)).toBeDefined();
      });

      it('serves the page at the mount with a CSP without unsafe-inline, its script and style from the mount', async () => {
        const bare = await fetch(`${app.url}/admin`, { headers: AUTH, redirect: 'manual' });
        expect(bare.status).toBe(308);
        expect(bare.headers.get('location')).toBe('/admin/');
        const page = await get('/');
        expect(page.status).toBe(200);
        expect(page.headers.get('content-type')).toMatch(/^text\/html/);
        const csp = page.headers.get('content-security-policy') ?? '';
        expect(csp).toContain("script-src 'self'");
        expect(csp).toContain("style-src 'self'");
        expect(csp).not.toContain('unsafe-inline');
        const html = await page.text();
        expect(html).toContain('src="app.js"');
        expect(html).not.toMatch(/<script>|style=/);
        expect((await get('/app.js')).headers.get('content-type')).toMatch(/^text\/javascript/);
        expect((await get('/app.css')).headers.get('content-type')).toMatch(/^text\/css/);
        const missing = await get('/nothing-here');
        expect(missing.status).toBe(404);
        expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      });

      it('lists jobs across owners, filtered, newest first, in pages that stay stable while jobs are added', async () => {
        const mine: string[] = [];
        for (let i = 0; i < 7; i++) {
          const { job: created } = await jobs.submit('quick', { n: i }, { owner: i % 2 ? 'alice' : 'bob' });
          mine.push(created.id);
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
        const all = (await (await get('/api/jobs?name=quick&limit=200')).json()) as any;
        const listed = all.jobs.map((j: { id: string }) => j.id);
        // Newest first: the seven just made head the list, in reverse order of creation.
        expect(listed.slice(0, 7)).toEqual([...mine].reverse());
        expect(all.jobs[0]).toMatchObject({ name: 'quick', owner: 'bob' });
        expect(all.jobs[0].input).toBeUndefined(); // rows stay small: input and result are in the job view

        const alice = (await (await get('/api/jobs?owner=alice&name=quick')).json()) as any;
        expect(alice.jobs.map((j: { id: string }) => j.id)).toEqual(mine.filter((_, i) => i % 2).reverse());

        const paged: string[] = [];
        let cursor: string | null = null;
        for (let page = 0; page < 20; page++) {
          const query: string = `/api/jobs?name=quick&limit=3${cursor ? `&cursor=${cursor}` : ''}`;
          const body = (await (await get(query)).json()) as any;
          paged.push(...body.jobs.map((j: { id: string }) => j.id));
          cursor = body.nextCursor;
          if (!cursor) break;
          await jobs.submit('quick', { n: 100 + page }); // comes first, before every page already read
        }
        expect(paged).toEqual(listed);

        const from = (await jobs.get(mine[2]))!.createdAt;
        const to = (await jobs.get(mine[5]))!.createdAt;
        const window = (await (await get(`/api/jobs?name=quick&from=${from}&to=${to}`)).json()) as any;
        expect(window.jobs.map((j: { id: string }) => j.id)).toEqual(mine.slice(2, 5).reverse());

        for (const bad of ['status=done', 'limit=0', 'cursor=nope', 'from=yesterday']) {
          const refused = await get(`/api/jobs?${bad}`);
          expect(refused.status).toBe(400);
          expect((await refused.json()).code).toBe('ERR_RESPOND_ASYNC_ADMIN_BAD_QUERY');
        }
      });

      it('retries a failed job: the same id completes; its attempts keep the full server-side errors; audited', async () => {
        healthy = false;
        const { job: submitted } = await jobs.submit('flaky', {});
        await eventually(async () => (await jobs.get(submitted.id))?.status === 'failed');
        const failed = (await (await get('/api/jobs?status=failed&name=flaky')).json()) as any;
        expect(failed.jobs.map((j: { id: string }) => j.id)).toContain(submitted.id);
        const before = await job(submitted.id);
        expect(before.error).toEqual({ message: 'The job failed' }); // what clients see
        expect(before.attempts).toHaveLength(2);
        expect(before.attempts[0]).toMatchObject({
          attempt: 1,
          retried: true,
          error: { message: 'db password rejected for user "svc"', code: 'E_DB' },
        });
        expect(before.attempts[1]).toMatchObject({ attempt: 2, retried: false });
        expect(before.attempts[0].error.stack).toBeUndefined(); // stacks only where the app opts in
        expect(before.attempts[0].finishedAt).toBeGreaterThanOrEqual(before.attempts[0].startedAt);

        const forged = await post(`/api/jobs/${submitted.id}/retry`, AUTH);
        expect(forged.status).toBe(403);
        expect((await forged.json()).code).toBe('ERR_RESPOND_ASYNC_ADMIN_CROSS_SITE');
        const crossSite = await post(`/api/jobs/${submitted.id}/retry`, { ...ACT, 'sec-fetch-site': 'cross-site' });
        expect(crossSite.status).toBe(403);

        healthy = true;
        audit.length = 0;
        const retried = await post(`/api/jobs/${submitted.id}/retry`);
        expect(retried.status).toBe(200);
        const body = (await retried.json()) as any;
        expect(body.outcome).toBe('retried');
        expect(body.job).toMatchObject({
          id: submitted.id,
          status: 'queued',
          attempt: 0,
          error: null,
          finishedAt: null,
        });
        expect(body.job.seq).toBeGreaterThan(before.seq);
        await eventually(async () => (await jobs.get(submitted.id))?.status === 'complete');
        const after = await job(submitted.id);
        expect(after.result).toEqual({ ok: true });
        expect(after.attempts).toHaveLength(2);
        expect(audit).toContainEqual({
          message: `respond-async admin: retry job ${submitted.id}: retried`,
          details: { action: 'retry', outcome: 'retried', actor: 'operator-1' },
        });
        const again = await post(`/api/jobs/${submitted.id}/retry`);
        expect(again.status).toBe(409);
        expect((await again.json()).code).toBe('ERR_RESPOND_ASYNC_ADMIN_CONFLICT');
      });

      it('cancels a running job, redelivers only with a webhook, deletes, and answers 404 for unknown jobs', async () => {
        const { job: running } = await jobs.submit('slow', {});
        await eventually(async () => (await jobs.get(running.id))?.status === 'processing');
        const canceled = await post(`/api/jobs/${running.id}/cancel`);
        expect(canceled.status).toBe(200);
        expect(((await canceled.json()) as any).outcome).toBe('requested');
        await eventually(async () => (await jobs.get(running.id))?.status === 'canceled');
        expect((await post(`/api/jobs/${running.id}/cancel`)).status).toBe(409);

        const redeliver = await post(`/api/jobs/${running.id}/redeliver`);
        expect(redeliver.status).toBe(409);
        expect(((await redeliver.json()) as any).detail).toBe('The job has no callback URL');

        expect((await post(`/api/jobs/${running.id}`, ACT, 'DELETE')).status).toBe(204);
        expect(await jobs.get(running.id)).toBeUndefined();
        expect((await get(`/api/jobs/${running.id}`)).status).toBe(404);
        expect((await post(`/api/jobs/${running.id}`, ACT, 'DELETE')).status).toBe(404);
        expect((await post('/api/jobs/not-an-id/retry')).status).toBe(404);
        const wrongMethod = await post(`/api/jobs/${running.id}/retry`, ACT, 'PUT');
        expect(wrongMethod.status).toBe(405);
        expect(wrongMethod.headers.get('allow')).toBe('POST');
        expect(audit.map((line) => line.message)).toContain(`respond-async admin: delete job ${running.id}: deleted`);
      });

      it('shows each webhook delivery attempt, and redelivers a finished job’s webhook', async () => {
        const { job: hooked } = await jobs.submit('quick', { n: 1 }, { callbackUrl: hookUrl });
        await eventually(async () => (await jobs.get(hooked.id))?.deliveryStatus === 'delivered');
        const delivered = (await job(hooked.id)).delivery;
        expect(delivered).toMatchObject({ callbackUrl: hookUrl, status: 'delivered', attempts: 2 });
        expect(delivered.history).toMatchObject([
          { attempt: 1, outcome: 'retrying', httpStatus: 503, reason: 'the receiver answered 503' },
          { attempt: 2, outcome: 'delivered', httpStatus: 204, reason: null },
        ]);
        const response = await post(`/api/jobs/${hooked.id}/redeliver`);
        expect(response.status).toBe(200);
        const body = (await response.json()) as any;
        expect(body.outcome).toBe('redelivering');
        expect(body.job.deliveryStatus).toBe('pending');
        await eventually(async () => (await job(hooked.id)).delivery.history.length === 3);
        expect((await job(hooked.id)).delivery).toMatchObject({ status: 'delivered', attempts: 1 });
        expect(seen.get(`msg_${hooked.id}`)).toBe(3);
      });

      it('reports counts by job name and status that match the store, and timing percentiles', async () => {
        const stats = (await (await get('/api/stats')).json()) as any;
        const inStore = await jobs.store.countJobs!();
        const key = (c: { name: string; status: string; count: number }) => `${c.name}/${c.status}=${c.count}`;
        expect(stats.counts.map(key).sort()).toEqual(inStore.map(key).sort());
        expect(stats.counts.find((c: any) => c.name === 'quick' && c.status === 'complete')?.count).toBeGreaterThan(0);
        const completed = stats.throughput
          .filter((b: any) => b.name === 'quick')
          .reduce((sum: number, b: any) => sum + b.complete, 0);
        expect(completed).toBeGreaterThan(0);
        expect(stats.timings.runMs.count).toBeGreaterThan(0);
        expect(stats.timings.waitMs.p50).toBeGreaterThanOrEqual(0);
      });

      it('streams changes of every job on the live feed', async () => {
        const controller = new AbortController();
        const response = await fetch(`${app.url}/admin/api/events`, { headers: AUTH, signal: controller.signal });
        expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
        const reader = response.body!.getReader();
        const decoder = new TextDecoder();
        let text = '';
        await reader.read(); // the connected comment
        const { job: submitted } = await jobs.submit('quick', { n: 2 });
        const deadline = Date.now() + 5000;
        while (!text.includes(`"status":"complete"`) && Date.now() < deadline) {
          const { value, done } = await reader.read();
          if (done) break;
          text += decoder.decode(value);
        }
        controller.abort();
        expect(text).toContain('event: change');
        expect(text).toContain(`{"id":"${submitted.id}","status":"complete"`);
      });
    });
  }
}

describe('admin() without authorize', () => {
  it('refuses to mount on every framework, with a stable code', () => {
    const jobs = createJobs({ worker: false, logger: { error: () => {} } });
    const mounts = [
      () => expressAdapter(jobs).admin({} as never),
      () => fastifyAdapter(jobs).admin({} as never),
      () => koaAdapter(jobs).admin({} as never),
      () => fetchAdapter(jobs).admin({ path: '/admin' } as never),
    ];
    for (const mount of mounts) {
      expect(mount).toThrow(expect.objectContaining({ code: 'ERR_RESPOND_ASYNC_ADMIN_AUTHORIZE_REQUIRED' }));
    }
  });

  it('refuses a Koa or Fetch mount without a path (it would take over every path of the app)', () => {
    const jobs = createJobs({ worker: false, logger: { error: () => {} } });
    const authorize = () => true as const;
    for (const path of [undefined, '', '/', 'admin']) {
      for (const mount of [
        () => koaAdapter(jobs).admin({ authorize, path } as never),
        () => fetchAdapter(jobs).admin({ authorize, path } as never),
      ]) {
        expect(mount, String(path)).toThrow(expect.objectContaining({ code: 'ERR_RESPOND_ASYNC_ADMIN_PATH_REQUIRED' }));
      }
    }
    expect(() => koaAdapter(jobs).admin({ authorize, path: '/ops/admin/' })).not.toThrow();
  });
});

describe('admin API when the store fails', () => {
  it('answers 503 problem+json with Retry-After, as the status endpoints do, not 500', async () => {
    const database = new (await import('better-sqlite3')).default(join(dir, 'failing.sqlite'));
    const jobs = createJobs({ store: new SqliteStore({ database }), worker: false, logger: { error: () => {} } });
    await jobs.ready();
    const app = await startAdminApp('express', jobs);
    try {
      database.close(); // the database goes away under the running app
      for (const path of ['/api/jobs', '/api/stats', '/api/jobs/AAAAAAAAAAAAAAAAAAAAAA']) {
        const response = await fetch(`${app.url}/admin${path}`, { headers: AUTH });
        expect(response.status, path).toBe(503);
        expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
        expect((await response.json()).code).toBe('ERR_RESPOND_ASYNC_STORE_UNAVAILABLE');
      }
    } finally {
      await app.close();
      await jobs.close({ timeoutMs: 100 }).catch(() => {});
    }
  });
});

describe('admin API with historyStacks', () => {
  it('shows the stack of each failed attempt where the app opts in, and never to clients', async () => {
    const jobs = createJobs({ historyStacks: true, pollIntervalMs: 20, logger: { error: () => {} } });
    jobs.define(
      'broken',
      () => {
        throw new Error('cannot read the ledger');
      },
      { attempts: 1 },
    );
    const app = await startAdminApp('express', jobs);
    try {
      const { job } = await jobs.submit('broken', {});
      await eventually(async () => (await jobs.get(job.id))?.status === 'failed');
      const detail = (await (await fetch(`${app.url}/admin/api/jobs/${job.id}`, { headers: AUTH })).json()) as any;
      expect(detail.attempts[0].error.message).toBe('cannot read the ledger');
      expect(detail.attempts[0].error.stack).toMatch(/^Error: cannot read the ledger\n\s+at /);
      expect((await jobs.get(job.id))?.error).toEqual({ message: 'The job failed' });
    } finally {
      await app.close();
      await jobs.close({ timeoutMs: 100 });
    }
  });
});

describe('admin live feed on an API-only process (PostgreSQL)', () => {
  it('streams the changes a worker process makes, heard through LISTEN/NOTIFY', async () => {
    const schema = fresh.next();
    const api = createJobs({
      store: new PostgresStore({ connectionString: pgUrl(), schema }),
      worker: false,
      logger: { error: () => {} },
    });
    const worker = createJobs({ store: new PostgresStore({ connectionString: pgUrl(), schema }), pollIntervalMs: 50 });
    for (const jobs of [api, worker]) jobs.define('remote', async () => ({ done: true }));
    await Promise.all([api.ready(), worker.start()]);
    const app = await startAdminApp('express', api);
    const controller = new AbortController();
    try {
      const response = await fetch(`${app.url}/admin/api/events`, { headers: AUTH, signal: controller.signal });
      const reader = response.body!.getReader();
      await reader.read(); // the connected comment
      const { job } = await api.submit('remote', {});
      let text = '';
      const deadline = Date.now() + 10_000;
      while (!text.includes(`{"id":"${job.id}","status":"complete"`) && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      expect(text).toContain(`{"id":"${job.id}","status":"processing"`);
      expect(text).toContain(`{"id":"${job.id}","status":"complete"`);
    } finally {
      controller.abort();
      await app.close();
      await Promise.all([api.close({ timeoutMs: 100 }), worker.close({ timeoutMs: 100 })]);
    }
  });
});

describe('a retried job on its status event stream', () => {
  it('moves again for a client resuming after the failure (Last-Event-ID): seq kept counting', async () => {
    let healthy = false;
    const jobs = createJobs({ pollIntervalMs: 20, logger: { error: () => {} } });
    jobs.define(
      'flaky',
      async () => {
        if (!healthy) throw new Error('not yet');
        return { ok: true };
      },
      { attempts: 1 },
    );
    const app = express();
    const ra = expressAdapter(jobs);
    app.use(ra.routes());
    app.use('/admin', ra.admin({ authorize: () => true }));
    const running = await listen(app.listen(0, '127.0.0.1'));
    try {
      const { job } = await jobs.submit('flaky', {});
      await eventually(async () => (await jobs.get(job.id))?.status === 'failed');
      const failedSeq = (await jobs.get(job.id))!.seq;
      healthy = true;
      const retried = await fetch(`${running.url}/admin/api/jobs/${job.id}/retry`, {
        method: 'POST',
        headers: { 'x-respond-async-admin': '1' },
      });
      expect(retried.status).toBe(200);
      const stream = await fetch(`${running.url}/jobs/${job.id}/events`, {
        headers: { 'last-event-id': String(failedSeq) },
      });
      const events = await readEvents(stream);
      expect(events.length).toBeGreaterThan(0);
      expect(Number(events[0].id)).toBeGreaterThan(failedSeq);
      expect(events.at(-1)).toMatchObject({ event: 'complete', data: { status: 'complete', result: { ok: true } } });
    } finally {
      await running.close();
      await jobs.close({ timeoutMs: 100 });
    }
  });
});
