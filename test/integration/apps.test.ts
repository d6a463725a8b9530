// One existing app per framework (helmet/cors/compression, its body parser, auth, an `/api/v1` router, its own `/jobs`
// route, a wrapped handler of its own, the dashboard at `/ops`), with respond-async installed from the packed tarball:
// one process on the memory store, and an API process (`worker: false`) with a worker process (`jobs.start()`) on
// SQLite and on PostgreSQL, driven over HTTP as a client would.
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childEnv, installPackedTarball } from '../helpers/packed.js';
import { adminQuery, pgUrl, randomSchema } from '../helpers/postgres.js';

const LINKS = [
  'express',
  'fastify',
  'koa',
  'better-sqlite3',
  'pg',
  'helmet',
  '@fastify/helmet',
  'koa-helmet',
  'cors',
  'compression',
  '@fastify/cors',
  '@fastify/compress',
  '@koa/bodyparser',
  '@koa/cors',
  '@koa/router',
  'koa-compress',
  // Replays a wrapped Express or Koa handler: the README tells users to install it.
  'light-my-request',
];

let project = '';
let work = '';

beforeAll(async () => {
  ({ project, work } = await installPackedTarball(LINKS));
  cpSync(join(import.meta.dirname, 'apps'), project, { recursive: true });
}, 180_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Start `node <script>` in the project and wait for its first line; killed (SIGTERM) by `stop`. */
async function start(script: string, env: Record<string, string>): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, [script], {
    cwd: project,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) resolve(out.split('\n')[0]);
    });
    child.once('exit', (code) => reject(new Error(`${script} exited (${code}): ${stderr}`)));
  });
  return { child, line };
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

const USER = { 'x-user': 'alice', 'content-type': 'application/json' };

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const SETUPS = [
  ['memory', 'one process'],
  ['sqlite', 'API and worker processes'],
  ['postgres', 'API and worker processes'],
] as const;

describe.each(['express', 'fastify', 'koa'])('%s app from the packed tarball', (framework) => {
  describe.each(SETUPS)('on %s, %s', (kind) => {
    let api: ChildProcess;
    let worker: ChildProcess | undefined;
    let origin = '';
    let schema = '';

    beforeAll(async () => {
      schema = randomSchema('integration');
      if (kind === 'memory') {
        ({ child: api, line: origin } = await start(`${framework}.mjs`, { STORE: 'memory' }));
      } else {
        const store = kind === 'sqlite' ? `sqlite:${join(work, `${framework}.db`)}` : `${pgUrl()}#${schema}`;
        // The worker first: it creates the store's tables, so that the API process finds them. It wraps the app's
        // handler under the same name, which registers that job.
        ({ child: worker } = await start('worker.mjs', { STORE: store, FRAMEWORK: framework }));
        ({ child: api, line: origin } = await start(`${framework}.mjs`, { STORE: store, WORKER: 'false' }));
      }
      origin = `http://127.0.0.1:${origin.split(' ')[1]}`;
    }, 30_000);

    afterAll(async () => {
      await Promise.all([api && stop(api), worker && stop(worker)]);
      if (kind === 'postgres') await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    });

    const submit = (body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${origin}/api/v1/reports`, {
        method: 'POST',
        headers: { ...USER, ...headers },
        body: JSON.stringify(body),
      });

    it('answers 202 with the Location where the status routes are mounted, and serves the job there', async () => {
      const res = await submit({ steps: 2, stepMs: 10 });
      expect(res.status).toBe(202);
      // The app's helmet headers stay on the library's answers.
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      const location = res.headers.get('location') ?? '';
      expect(location).toMatch(/^\/api\/v1\/jobs\/[\w-]+$/);
      const accepted = await res.json();
      expect(accepted.statusUrl).toBe(location);
      // Poll the Location as given, the way a client would.
      const doc = await until(
        async () => (await fetch(new URL(location, origin), { headers: USER })).json(),
        (d) => d.status === 'complete',
      );
      expect(doc).toMatchObject({ status: 'complete', result: { user: 'alice', steps: 2 }, statusUrl: location });
      // Another user does not see it; the app's own /jobs route still answers.
      expect((await fetch(new URL(location, origin), { headers: { 'x-user': 'bob' } })).status).toBe(404);
      expect(await (await fetch(`${origin}/jobs/dev`)).json()).toEqual({ page: 'dev' });
      const missing = await fetch(`${origin}/nowhere`);
      expect(missing.status).toBe(404);
      expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    });

    it('streams progress through compression while the job runs', async () => {
      const res = await submit({ steps: 5, stepMs: 300 });
      const location = res.headers.get('location') ?? '';
      const events = await fetch(new URL(`${location}/events`, origin), {
        headers: { ...USER, 'accept-encoding': 'gzip, br' },
      });
      expect(events.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(events.headers.get('content-encoding')).toBeNull();
      const reader = (events.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = '';
      while (!text.includes('event: progress')) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      expect(text).toContain('event: progress');
      // The first progress event came while the job still ran: not all at once when it ended.
      const now = await (await fetch(new URL(location, origin), { headers: USER })).json();
      expect(now.status).toBe('processing');
      await reader.cancel();
    });

    it('cancels a running job at its Location', async () => {
      const res = await submit({ steps: 50, stepMs: 100 });
      const location = res.headers.get('location') ?? '';
      await until(
        async () => (await fetch(new URL(location, origin), { headers: USER })).json(),
        (d) => d.status === 'processing',
      );
      const canceled = await fetch(new URL(location, origin), { method: 'DELETE', headers: USER });
      expect([200, 202]).toContain(canceled.status);
      const doc = await until(
        async () => (await fetch(new URL(location, origin), { headers: USER })).json(),
        (d) => d.status === 'canceled',
      );
      expect(doc.status).toBe('canceled');
    });

    it('replays a submit with the same Idempotency-Key', async () => {
      const key = { 'idempotency-key': `"${schema}-${framework}"` };
      const first = await submit({ steps: 1, stepMs: 1 }, key);
      const again = await submit({ steps: 1, stepMs: 1 }, key);
      expect(again.status).toBe(202);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect((await again.json()).jobId).toBe((await first.json()).jobId);
    });

    it('answers problem+json for a bad or compressed body next to the app body parser', async () => {
      const bad = await fetch(`${origin}/api/v1/reports`, { method: 'POST', headers: USER, body: '{"steps":' });
      expect(bad.status).toBe(400);
      expect(bad.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect((await bad.json()).code).toBe('ERR_RESPOND_ASYNC_BAD_BODY');
      // Over maxBodyBytes (50 000), under the parser's own limit: the route's limit decides.
      const large = await submit({ value: 'x'.repeat(60_000) });
      expect(large.status).toBe(413);
      expect((await large.json()).code).toBe('ERR_RESPOND_ASYNC_BODY_TOO_LARGE');
      // gzip: inflated by the app where its other routes take it so (express.json(), @koa/bodyparser,
      // @fastify/compress), for a route and a wrapped handler alike.
      const gzipped = (path: string, body: unknown) =>
        fetch(`${origin}/api/v1${path}`, {
          method: 'POST',
          headers: { ...USER, 'content-encoding': 'gzip', prefer: 'wait=10' },
          body: gzipSync(JSON.stringify(body)),
        });
      const gz = await gzipped('/reports', { steps: 1, stepMs: 1 });
      expect(gz.status).toBe(200);
      expect(await gz.json()).toMatchObject({ status: 'complete', result: { user: 'alice', steps: 1 } });
      const exported = await gzipped('/users/3/exports', { rows: 2 });
      expect(exported.status).toBe(201);
      expect(await exported.json()).toMatchObject({ user: 'alice', id: '3', rows: 2 });
    });

    const exportRequest = (path: string, rows = 7) =>
      fetch(`${origin}/api/v1${path}?format=csv`, {
        method: 'POST',
        headers: { ...USER, 'accept-encoding': 'gzip' },
        body: JSON.stringify({ rows }),
      });

    it("runs the app's wrapped handler as a job, its result the handler's own response", async () => {
      // A few KB: compressed by the app's compression on the way out, like the handler's direct answer.
      const res = await exportRequest('/users/42/exports', 300);
      expect(res.status).toBe(202);
      const location = res.headers.get('location') ?? '';
      expect(location).toMatch(/^\/api\/v1\/jobs\/[\w-]+$/);
      // Poll the Location as given; the status document names the result.
      const doc = await until(
        async () => (await fetch(new URL(location, origin), { headers: USER })).json(),
        (d) => d.status !== 'queued' && d.status !== 'processing',
      );
      expect(doc).toMatchObject({ status: 'complete', resultUrl: `${location}/result` });
      const result = await fetch(new URL(doc.resultUrl, origin), { headers: { ...USER, 'accept-encoding': 'gzip' } });
      // What the handler answers unwrapped, for the same request, and the user set by the app's auth.
      const direct = await exportRequest('/direct/users/42/exports', 300);
      expect(direct.status).toBe(201);
      expect(direct.headers.get('content-encoding')).toBe('gzip');
      expect(result.status).toBe(201);
      expect(result.headers.get('content-encoding')).toBe('gzip');
      expect(result.headers.get('x-export-id')).toBe('exp-42');
      expect(result.headers.get('content-type')).toBe(direct.headers.get('content-type'));
      const bytes = Buffer.from(await result.arrayBuffer());
      expect(bytes.equals(Buffer.from(await direct.arrayBuffer()))).toBe(true);
      expect(JSON.parse(bytes.toString())).toEqual({
        user: 'alice',
        id: '42',
        format: 'csv',
        rows: 300,
        note: 'ünïcode ✓',
        lines: Array.from({ length: 300 }, (_, i) => `42,${i}`),
      });
      // Owner-scoped like the status document.
      expect((await fetch(new URL(doc.resultUrl, origin), { headers: { 'x-user': 'bob' } })).status).toBe(404);
    });

    it('replays a submit to the wrapped route with the same Idempotency-Key', async () => {
      const send = () =>
        fetch(`${origin}/api/v1/users/6/exports`, {
          method: 'POST',
          headers: { ...USER, 'idempotency-key': `"wrap-${schema}-${framework}"` },
          body: JSON.stringify({ rows: 1 }),
        });
      const first = await send();
      const again = await send();
      expect(again.status).toBe(202);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect((await again.json()).jobId).toBe((await first.json()).jobId);
    });

    it("answers the wrapped handler's own response to Prefer: wait once the job completes", async () => {
      const res = await fetch(`${origin}/api/v1/users/9/exports`, {
        method: 'POST',
        headers: { ...USER, prefer: 'wait=10' },
        body: JSON.stringify({ rows: 1 }),
      });
      expect(res.status).toBe(201);
      expect(res.headers.get('preference-applied')).toBe('wait=10');
      expect(res.headers.get('x-export-id')).toBe('exp-9');
      expect(await res.json()).toMatchObject({ user: 'alice', id: '9', rows: 1 });
    });

    it("tells the dashboard's live feed, through compression, of the jobs it runs", async () => {
      const events = await fetch(`${origin}/ops/api/events`, {
        headers: { 'x-user': 'ops', 'accept-encoding': 'gzip' },
      });
      expect(events.status).toBe(200);
      expect(events.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(events.headers.get('content-encoding')).toBeNull();
      const reader = (events.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = '';
      while (!text.includes(': connected')) text += decoder.decode((await reader.read()).value, { stream: true });
      const { jobId } = await (await exportRequest('/users/5/exports')).json();
      // The process that runs the job tells the feed; a worker process reaches it through PostgreSQL's change feed.
      // On SQLite the API process hears only what it did itself (the page reads the list again every 10 s).
      const last = kind === 'sqlite' ? 'queued' : 'complete';
      const seen = `"id":"${jobId}","status":"${last}"`;
      const deadline = Date.now() + 10_000;
      while (!text.includes(seen) && Date.now() < deadline) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      await reader.cancel();
      expect(text).toContain('event: change');
      expect(text).toContain(seen);
    });

    it('cancels a running wrapped job from the admin API, in whichever process runs it', async () => {
      const res = await fetch(`${origin}/api/v1/users/8/exports`, {
        method: 'POST',
        headers: USER,
        body: JSON.stringify({ waitMs: 30_000 }),
      });
      const { jobId, statusUrl } = await res.json();
      await until(
        async () => (await fetch(new URL(statusUrl, origin), { headers: USER })).json(),
        (d) => d.progress === 50,
      );
      const action = (headers: Record<string, string>) =>
        fetch(`${origin}/ops/api/jobs/${jobId}/cancel`, { method: 'POST', headers: { 'x-user': 'ops', ...headers } });
      // Without the admin header (a cross-site form could not send it): refused.
      expect((await action({})).status).toBe(403);
      const canceled = await action({ 'x-respond-async-admin': '1' });
      expect(canceled.status).toBe(200);
      // A running job is asked to stop: its handler sees `req.job.signal` abort.
      expect((await canceled.json()).outcome).toBe('requested');
      const doc = await until(
        async () => (await fetch(new URL(statusUrl, origin), { headers: USER })).json(),
        (d) => d.status === 'canceled',
      );
      expect(doc.status).toBe('canceled');
      const detail = await (await fetch(`${origin}/ops/api/jobs/${jobId}`, { headers: { 'x-user': 'ops' } })).json();
      expect(detail).toMatchObject({ id: jobId, status: 'canceled', owner: 'alice' });
    });

    it('serves the dashboard and its admin API at /ops, behind the app auth, next to helmet and compression', async () => {
      const res = await exportRequest('/users/7/exports');
      const { jobId } = await res.json();
      const list = (headers: Record<string, string>) => fetch(`${origin}/ops/api/jobs`, { headers });
      const anonymous = await list({});
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect((await list({ 'x-user': 'alice' })).status).toBe(403);
      const listed = await list({ 'x-user': 'ops' });
      expect(listed.status).toBe(200);
      const { jobs } = await listed.json();
      expect(jobs).toContainEqual(expect.objectContaining({ id: jobId, name: `${framework}-export`, owner: 'alice' }));

      const ops = { 'x-user': 'ops', 'accept-encoding': 'gzip' };
      const bare = await fetch(`${origin}/ops`, { headers: ops, redirect: 'manual' });
      expect(bare.status).toBe(308);
      expect(bare.headers.get('location')).toBe('/ops/');
      const page = await fetch(`${origin}/ops/`, { headers: ops });
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      // The dashboard's own policy, not helmet's, which would otherwise apply to the page: its script runs from here.
      const csp = page.headers.get('content-security-policy') ?? '';
      expect(csp.split(/\s*;\s*/)).toContain("script-src 'self'");
      expect(csp).toMatch(/^default-src 'none'/);
      expect(page.headers.get('x-content-type-options')).toBe('nosniff');
      expect(await page.text()).toContain('<script src="app.js" defer></script>');
      const script = await fetch(`${origin}/ops/app.js`, { headers: ops });
      expect(script.status).toBe(200);
      expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
      // Whole through the app's compression (fetch inflates it).
      const shipped = readFileSync(join(project, 'node_modules', 'respond-async', 'dashboard', 'app.js'), 'utf8');
      expect(await script.text()).toBe(shipped);
    });
  });
});

describe('a wrapped Express handler without light-my-request installed', () => {
  it('fails its job at the first attempt, the log saying what to install', async () => {
    // Last in the file: no app of the tests above runs any more.
    const link = join(project, 'node_modules', 'light-my-request');
    renameSync(link, `${link}.away`);
    try {
      const { child, line } = await start('no-driver.mjs', {});
      await stop(child);
      const { doc, logged } = JSON.parse(line);
      expect(doc).toMatchObject({ status: 'failed', attempt: 1 });
      expect(logged.join('\n')).toMatch(/ERR_RESPOND_ASYNC_DRIVER_MISSING.*npm install light-my-request/);
    } finally {
      renameSync(`${link}.away`, link);
    }
  });
});
