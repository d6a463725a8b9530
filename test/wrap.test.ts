// Wrapping unchanged Express, Fastify and Koa handlers: 202 at once, the handler replayed as a job, its response
// served byte for byte from `{statusUrl}/result`; secrets never stored. Memory store, and a SQLite file for the rows.
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import compress from '@fastify/compress';
import bodyParser from '@koa/bodyparser';
import { Validator } from '@seriousme/openapi-schema-validator';
import Database from 'better-sqlite3';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import inject from 'light-my-request';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { submit, waitFor } from '../src/client.js';
import { respondAsync as expressAdapter } from '../src/express.js';
import { respondAsync as fastifyAdapter } from '../src/fastify.js';
import {
  createJobs,
  type JobRecord,
  type JobStore,
  type Jobs,
  MemoryStore,
  openapiDocument,
  type RequestSnapshot,
} from '../src/index.js';
import { respondAsync as koaAdapter } from '../src/koa.js';
import { SqliteStore } from '../src/sqlite.js';
import { expressDispatch, FRAMEWORKS, type WrapFramework, wrapApp } from './helpers/wrap-apps.js';

const dir = mkdtempSync(join(tmpdir(), 'respond-async-wrap-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const runtimes: Jobs[] = [];
afterEach(async () => {
  for (const jobs of runtimes.splice(0)) await jobs.close({ timeoutMs: 200 });
});

const quiet = { error() {}, warn() {} };

function newJobs(store: JobStore = new MemoryStore(), options: { maxResultBytes?: number } = {}): Jobs {
  const jobs = createJobs({ store, pollIntervalMs: 20, logger: quiet, ...options });
  runtimes.push(jobs);
  return jobs;
}

async function settled(jobs: Jobs, id: string): Promise<JobRecord> {
  const job = await jobs.waitFor(id, 10_000);
  if (!job || !['complete', 'failed', 'canceled'].includes(job.status)) throw new Error(`job ${id} did not end`);
  return job;
}

const BYTES = Buffer.from([0, 1, 2, 127, 128, 200, 255, 0xef, 0xbb, 0xbf]);

describe.each(FRAMEWORKS)('%s: a wrapped handler', (framework: WrapFramework) => {
  it('answers 202 as every wrapped route, runs the handler, and serves its JSON response byte for byte', async () => {
    const jobs = newJobs();
    const app = await wrapApp(framework, jobs);
    const res = await app.call({ method: 'POST', url: '/json', headers: { 'x-user': 'ann' }, json: { n: 3 } });
    expect(res.statusCode).toBe(202);
    const accepted = res.json() as { jobId: string; statusUrl: string; status: string };
    expect(res.headers.location).toBe(`/jobs/${accepted.jobId}`);
    expect(res.headers['retry-after']).toBe('1');
    expect(accepted.status).toBe('queued');

    const job = await settled(jobs, accepted.jobId);
    expect(job.status).toBe('complete');
    const status = await app.call({ method: 'GET', url: accepted.statusUrl, headers: { 'x-user': 'ann' } });
    expect(status.statusCode).toBe(200);
    expect(status.json()).toMatchObject({ status: 'complete', resultUrl: `${accepted.statusUrl}/result` });
    expect(status.json()).not.toHaveProperty('result');

    const result = await app.call({ method: 'GET', url: `${accepted.statusUrl}/result`, headers: { 'x-user': 'ann' } });
    expect(result.statusCode).toBe(200);
    expect(result.headers['content-type']).toMatch(/^application\/json/);
    expect(result.rawPayload.equals(Buffer.from(JSON.stringify({ ok: true, n: 3, method: 'POST' })))).toBe(true);
    expect(Number(result.headers['content-length'])).toBe(result.rawPayload.byteLength);
    // Another owner sees nothing.
    const other = await app.call({ method: 'GET', url: `${accepted.statusUrl}/result`, headers: { 'x-user': 'bob' } });
    expect(other.statusCode).toBe(404);
  });

  it('keeps the status and headers the handler set', async () => {
    const jobs = newJobs();
    const app = await wrapApp(framework, jobs);
    const res = await app.call({ method: 'POST', url: '/created', headers: { 'x-user': 'ann' } });
    const { jobId, statusUrl } = res.json() as { jobId: string; statusUrl: string };
    await settled(jobs, jobId);
    const result = await app.call({ method: 'GET', url: `${statusUrl}/result`, headers: { 'x-user': 'ann' } });
    expect(result.statusCode).toBe(201);
    expect(result.headers['x-report']).toBe('r1');
    expect(result.headers.location).toBe('/reports/r1');
    expect(result.headers['set-cookie']).toBeUndefined();
    expect(result.body).toBe('created r1');
  });

  it('serves a Buffer it sent byte for byte, and keeps the request body as the bytes that came', async () => {
    const jobs = newJobs();
    const app = await wrapApp(framework, jobs);
    const res = await app.call({
      method: 'POST',
      url: '/echo',
      headers: { 'x-user': 'ann', 'content-type': 'application/octet-stream' },
      payload: BYTES,
    });
    expect(res.statusCode).toBe(202);
    const { jobId, statusUrl } = res.json() as { jobId: string; statusUrl: string };
    expect((await settled(jobs, jobId)).status).toBe('complete');
    const result = await app.call({ method: 'GET', url: `${statusUrl}/result`, headers: { 'x-user': 'ann' } });
    expect(result.statusCode).toBe(200);
    expect(result.headers['content-type']).toBe('application/octet-stream');
    expect(result.rawPayload.equals(BYTES)).toBe(true);
  });

  it('hands a gzip JSON body to the handler inflated and parsed', async () => {
    const jobs = newJobs();
    const app = await wrapApp(framework, jobs);
    const res = await app.call({
      method: 'POST',
      url: '/json',
      headers: { 'x-user': 'ann', 'content-type': 'application/json', 'content-encoding': 'gzip' },
      payload: gzipSync(JSON.stringify({ n: 5 })),
    });
    expect(res.statusCode).toBe(202);
    const { jobId, statusUrl } = res.json() as { jobId: string; statusUrl: string };
    expect((await settled(jobs, jobId)).status).toBe('complete');
    const result = await app.call({ method: 'GET', url: `${statusUrl}/result`, headers: { 'x-user': 'ann' } });
    expect(result.json()).toEqual({ ok: true, n: 5, method: 'POST' });
  });

  it('hands a form body to the handler parsed, as the app parser would', async () => {
    const jobs = newJobs();
    const app = await wrapApp(framework, jobs);
    const res = await app.call({
      method: 'POST',
      url: '/form',
      headers: { 'x-user': 'ann', 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'a=1&b=two&b=three',
    });
    const { jobId, statusUrl } = res.json() as { jobId: string; statusUrl: string };
    await settled(jobs, jobId);
    const result = await app.call({ method: 'GET', url: `${statusUrl}/result`, headers: { 'x-user': 'ann' } });
    expect(result.json()).toEqual({ a: '1', b: ['two', 'three'] });
  });

  it('reads the user its auth middleware set (capture/restore), its params and its query', async () => {
    const jobs = newJobs();
    const app = await wrapApp(framework, jobs);
    const res = await app.call({
      method: 'POST',
      url: '/users/42/exports?format=csv',
      headers: { 'x-user': 'ann', authorization: 'Bearer ann-token' },
    });
    expect(res.statusCode).toBe(202);
    const { jobId, statusUrl } = res.json() as { jobId: string; statusUrl: string };
    expect((await settled(jobs, jobId)).status).toBe('complete');
    const result = await app.call({ method: 'GET', url: `${statusUrl}/result`, headers: { 'x-user': 'ann' } });
    expect(result.json()).toEqual({ user: { name: 'ann', role: 'admin' }, id: '42', format: 'csv' });
  });

  it('fails the attempt when the handler throws, and retries it by the job options', async () => {
    const jobs = newJobs();
    const app = await wrapApp(framework, jobs);
    const res = await app.call({ method: 'POST', url: '/throws', headers: { 'x-user': 'ann' } });
    const { jobId, statusUrl } = res.json() as { jobId: string; statusUrl: string };
    const job = await settled(jobs, jobId);
    expect(job).toMatchObject({ status: 'failed', attempt: 2, error: { message: 'The job failed' } });
    expect(JSON.stringify(job.error)).not.toContain('db.internal');
    const result = await app.call({ method: 'GET', url: `${statusUrl}/result`, headers: { 'x-user': 'ann' } });
    expect(result.statusCode).toBe(409);
    expect(result.headers['content-type']).toMatch(/^application\/problem\+json/);
  });

  it('fails the attempt on next(err) or a 5xx answer, with the status public', async () => {
    const jobs = newJobs();
    const app = await wrapApp(framework, jobs);
    const failing = await app.call({ method: 'POST', url: '/next-error', headers: { 'x-user': 'ann' } });
    const failed = await settled(jobs, (failing.json() as { jobId: string }).jobId);
    expect(failed).toMatchObject({ status: 'failed', attempt: 2 });
    const unavailable = await app.call({ method: 'POST', url: '/unavailable', headers: { 'x-user': 'ann' } });
    const down = await settled(jobs, (unavailable.json() as { jobId: string }).jobId);
    expect(down).toMatchObject({
      status: 'failed',
      attempt: 2,
      error: { status: 503, code: 'ERR_RESPOND_ASYNC_HANDLER_FAILED' },
    });
  });

  it('fails the job at once when the handler answers 4xx, with that status in its public error', async () => {
    const jobs = newJobs();
    const app = await wrapApp(framework, jobs);
    const res = await app.call({ method: 'POST', url: '/refuse', headers: { 'x-user': 'ann' } });
    const { jobId, statusUrl } = res.json() as { jobId: string; statusUrl: string };
    expect(await settled(jobs, jobId)).toMatchObject({ status: 'failed', attempt: 1 });
    const status = await app.call({ method: 'GET', url: statusUrl, headers: { 'x-user': 'ann' } });
    expect(status.json()).toMatchObject({
      status: 'failed',
      error: { status: 422, code: 'ERR_RESPOND_ASYNC_HANDLER_REFUSED', message: 'The handler answered 422' },
    });
  });

  it('answers 404 problem for the result before the job completes, and reports progress from req.job', async () => {
    const jobs = newJobs();
    const app = await wrapApp(framework, jobs);
    const res = await app.call({ method: 'POST', url: '/progress', headers: { 'x-user': 'ann' } });
    const { jobId, statusUrl } = res.json() as { jobId: string; statusUrl: string };
    const early = await app.call({ method: 'GET', url: `${statusUrl}/result`, headers: { 'x-user': 'ann' } });
    expect(early.statusCode).toBe(404);
    expect(early.json()).toMatchObject({ code: 'ERR_RESPOND_ASYNC_RESULT_NOT_READY' });
    // The handler holds at 40% until the job is canceled, through req.job.signal.
    for (let i = 0; i < 200 && (await jobs.get(jobId))?.progress !== 40; i++) await sleep(10);
    expect(await jobs.get(jobId)).toMatchObject({ progress: 40, message: 'halfway' });
    const cancel = await app.call({ method: 'DELETE', url: statusUrl, headers: { 'x-user': 'ann' } });
    expect(cancel.statusCode).toBe(202);
    expect((await settled(jobs, jobId)).status).toBe('canceled');
    const late = await app.call({ method: 'GET', url: `${statusUrl}/result`, headers: { 'x-user': 'ann' } });
    expect(late.statusCode).toBe(409);
  });

  it('answers Prefer: wait with the handler own response once it completes in time', async () => {
    const jobs = newJobs();
    const app = await wrapApp(framework, jobs);
    const res = await app.call({ method: 'POST', url: '/created', headers: { 'x-user': 'ann', prefer: 'wait=5' } });
    expect(res.statusCode).toBe(201);
    expect(res.headers['preference-applied']).toBe('wait=5');
    expect(res.headers['x-report']).toBe('r1');
    expect(res.body).toBe('created r1');
  });

  it('replays the same job for the same Idempotency-Key and body', async () => {
    const jobs = newJobs();
    const app = await wrapApp(framework, jobs);
    const send = (n: number) =>
      app.call({ method: 'POST', url: '/json', headers: { 'x-user': 'ann', 'idempotency-key': '"k-1"' }, json: { n } });
    const first = (await send(1)).json() as { jobId: string };
    const again = await send(1);
    expect(again.statusCode).toBe(202);
    expect((again.json() as { jobId: string }).jobId).toBe(first.jobId);
    expect((await send(2)).statusCode).toBe(422);
  });

  it('fails the job when its response passes maxResultBytes', async () => {
    const jobs = newJobs(new MemoryStore(), { maxResultBytes: 1000 });
    const app = await wrapApp(framework, jobs);
    const res = await app.call({ method: 'POST', url: '/big', headers: { 'x-user': 'ann' } });
    const job = await settled(jobs, (res.json() as { jobId: string }).jobId);
    expect(job).toMatchObject({ status: 'failed', attempt: 1, error: { code: 'ERR_RESPOND_ASYNC_RESULT_TOO_LARGE' } });
  });

  it('stores no Authorization nor Cookie header unless the app names it', async () => {
    const path = join(dir, `secrets-${framework}.db`);
    const jobs = newJobs(new SqliteStore({ path }));
    const app = await wrapApp(framework, jobs);
    const headers = {
      'x-user': 'ann',
      authorization: 'Bearer s3cr3t-token',
      cookie: 'session=c00kie-value',
      'x-trace': 'kept-header',
    };
    const plain = await app.call({ method: 'POST', url: '/json', headers, json: { n: 1 } });
    const named = await app.call({ method: 'POST', url: '/keeps-auth', headers });
    for (const res of [plain, named]) await settled(jobs, (res.json() as { jobId: string }).jobId);
    const db = new Database(path, { readonly: true });
    const rows = db.prepare('SELECT * FROM respond_async_jobs').all() as Array<{ id: string; input: string }>;
    db.close();
    expect(rows).toHaveLength(2);
    const byId = new Map(rows.map((row) => [row.id, JSON.stringify(row)]));
    const plainRow = byId.get((plain.json() as { jobId: string }).jobId) ?? '';
    expect(plainRow).toContain('kept-header');
    expect(plainRow).not.toContain('s3cr3t-token');
    expect(plainRow).not.toContain('c00kie-value');
    const namedRow = byId.get((named.json() as { jobId: string }).jobId) ?? '';
    expect(namedRow).toContain('s3cr3t-token');
    expect(namedRow).not.toContain('c00kie-value');
  });

  it('refuses at wrap time a route the app says streams', async () => {
    const jobs = newJobs();
    await expect(wrapApp(framework, jobs, { streams: true })).rejects.toMatchObject({
      code: 'ERR_RESPOND_ASYNC_STREAMING_ROUTE',
    });
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('a wrapped handler in an existing app', () => {
  it('Express: under /api/v1 after a global express.json(): Location, baseUrl, path and body as the app saw', async () => {
    const jobs = newJobs();
    const app = express();
    app.use(express.json());
    const api = express.Router();
    const ra = expressAdapter(jobs, { owner: (req) => req.get('x-user') ?? null });
    api.post(
      '/exports/:kind',
      ra.wrap(
        (req, res) => void res.json({ baseUrl: req.baseUrl, path: req.path, kind: req.params.kind, body: req.body }),
        {
          name: 'mounted',
        },
      ),
    );
    api.use(ra.routes());
    app.use('/api/v1', api);
    const res = await inject(expressDispatch(app), {
      method: 'POST',
      url: '/api/v1/exports/csv',
      headers: { 'x-user': 'ann', 'content-type': 'application/json' },
      payload: JSON.stringify({ rows: [1, 2] }),
    });
    expect(res.statusCode).toBe(202);
    const { jobId, statusUrl } = res.json() as { jobId: string; statusUrl: string };
    expect(statusUrl).toBe(`/api/v1/jobs/${jobId}`);
    await settled(jobs, jobId);
    const result = await inject(expressDispatch(app), {
      method: 'GET',
      url: `${statusUrl}/result`,
      headers: { 'x-user': 'ann' },
    });
    expect(result.json()).toEqual({ baseUrl: '/api/v1', path: '/exports/csv', kind: 'csv', body: { rows: [1, 2] } });
  });

  it('Express: under a router mounted at a path with a param, whatever the param holds (`:`, `(`, `*`)', async () => {
    const jobs = newJobs();
    const app = express();
    app.use(express.json());
    const org = express.Router({ mergeParams: true });
    const ra = expressAdapter(jobs, { owner: (req) => req.get('x-user') ?? null });
    org.post(
      '/exports/:kind',
      ra.wrap(
        (req, res) => void res.json({ baseUrl: req.baseUrl, url: req.url, org: req.params.org, kind: req.params.kind }),
        { name: 'org-mounted', attempts: 1 },
      ),
    );
    org.use(ra.routes());
    app.use('/orgs/:org', org);
    // Concrete URL paths, which a mount given to app.use() would read as route patterns.
    for (const slug of ['urn:isbn:1', 'a(b)', 'x*y']) {
      const res = await inject(expressDispatch(app), {
        method: 'POST',
        url: `/orgs/${slug}/exports/csv?rows=2`,
        headers: { 'x-user': 'ann', 'content-type': 'application/json' },
        payload: '{}',
      });
      expect(res.statusCode).toBe(202);
      const { jobId, statusUrl } = res.json() as { jobId: string; statusUrl: string };
      expect(statusUrl).toBe(`/orgs/${slug}/jobs/${jobId}`);
      expect((await settled(jobs, jobId)).status).toBe('complete');
      const result = await inject(expressDispatch(app), {
        method: 'GET',
        url: `${statusUrl}/result`,
        headers: { 'x-user': 'ann' },
      });
      expect(result.json()).toEqual({ baseUrl: `/orgs/${slug}`, url: '/exports/csv?rows=2', org: slug, kind: 'csv' });
    }
  });

  it('Fastify: after @fastify/compress, which decompresses request bodies, a gzip body as its other routes read it', async () => {
    const jobs = newJobs();
    const report = jobs.define('report', async (input: RequestSnapshot<unknown>) => input.body);
    const app = Fastify();
    await app.register(compress);
    const ra = fastifyAdapter(jobs);
    await app.register(ra.plugin);
    app.post('/own', async (request) => request.body);
    app.post('/reports', ra.route(report));
    app.post(
      '/exports',
      ra.wrap(async (request, reply) => reply.code(201).send(request.body), { name: 'gzip-export', attempts: 1 }),
    );
    try {
      const post = (url: string) =>
        app.inject({
          method: 'POST',
          url,
          headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', prefer: 'wait=5' },
          payload: gzipSync(JSON.stringify({ rows: 3 })),
        });
      expect((await post('/own')).json()).toEqual({ rows: 3 });
      const reported = await post('/reports');
      expect(reported.statusCode).toBe(200);
      expect(reported.json()).toMatchObject({ status: 'complete', result: { rows: 3 } });
      const exported = await post('/exports');
      expect(exported.statusCode).toBe(201);
      expect(exported.json()).toEqual({ rows: 3 });
    } finally {
      await app.close();
    }
  });

  it('Express: after express.urlencoded({ extended: true }), a flat form replays, a nested one is refused', async () => {
    const errors: unknown[] = [];
    const jobs = createJobs({ pollIntervalMs: 20, logger: { error: (...args) => errors.push(args), warn() {} } });
    runtimes.push(jobs);
    const app = express();
    app.use(express.urlencoded({ extended: true }));
    const ra = expressAdapter(jobs);
    app.post(
      '/forms',
      ra.wrap((req, res) => void res.json(req.body), { name: 'form' }),
    );
    app.use(ra.routes());
    const post = (payload: string) =>
      inject(expressDispatch(app), {
        method: 'POST',
        url: '/forms',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload,
      });
    const flat = await post('n=1&tag=a&tag=b');
    expect(flat.statusCode).toBe(202);
    const { jobId, statusUrl } = flat.json() as { jobId: string; statusUrl: string };
    expect((await settled(jobs, jobId)).status).toBe('complete');
    const result = await inject(expressDispatch(app), { method: 'GET', url: `${statusUrl}/result` });
    expect(result.json()).toEqual({ n: '1', tag: ['a', 'b'] });
    // `user[name]=ann` was read into { user: { name: 'ann' } }: no form gives that back, so no job replays another body.
    const nested = await post('user[name]=ann&n=1');
    expect(nested.statusCode).toBe(500);
    expect(nested.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(JSON.stringify(errors)).toContain('ERR_RESPOND_ASYNC_BODY_ALREADY_PARSED');
  });

  it('behind a trusted proxy: the replayed handler sees the client, scheme and host the app saw', async () => {
    const forwarded = {
      'x-forwarded-proto': 'https',
      'x-forwarded-for': '203.0.113.5',
      'x-forwarded-host': 'api.example.com:8443',
    };
    const expected = {
      protocol: 'https',
      secure: true,
      ip: '203.0.113.5',
      hostname: 'api.example.com',
      host: 'api.example.com:8443',
    };
    const jobs = newJobs();

    const app = express();
    app.set('trust proxy', 'loopback');
    const ra = expressAdapter(jobs);
    const client = (req: express.Request, res: express.Response) =>
      void res.json({ protocol: req.protocol, secure: req.secure, ip: req.ip, hostname: req.hostname, host: req.host });
    app.post('/client', ra.wrap(client, { name: 'client-express' }));
    app.use(ra.routes());

    const koa = new Koa({ proxy: true });
    const koaRa = koaAdapter(jobs);
    koa.use(koaRa.routes());
    const koaClient = koaRa.wrap(
      async (ctx) => {
        ctx.body = { protocol: ctx.protocol, secure: ctx.secure, ip: ctx.ip, hostname: ctx.hostname, host: ctx.host };
      },
      { name: 'client-koa' },
    );
    koa.use((ctx, next) => (ctx.path === '/client' ? koaClient(ctx, next) : next()));

    const fastify = Fastify({ trustProxy: true });
    const fastifyRa = fastifyAdapter(jobs);
    await fastify.register(fastifyRa.plugin);
    fastify.post(
      '/client',
      fastifyRa.wrap(
        async (request) => ({
          protocol: request.protocol,
          secure: request.protocol === 'https',
          ip: request.ip,
          hostname: request.hostname,
          host: request.host,
        }),
        { name: 'client-fastify' },
      ),
    );
    try {
      type Call = (options: { method: 'GET' | 'POST'; url: string; headers?: Record<string, string> }) => Promise<{
        statusCode: number;
        json(): unknown;
      }>;
      const calls: Call[] = [
        (options) => inject(expressDispatch(app), options),
        (options) => inject(koa.callback(), options),
        (options) => fastify.inject(options),
      ];
      for (const call of calls) {
        const res = await call({ method: 'POST', url: '/client', headers: forwarded });
        expect(res.statusCode).toBe(202);
        const { jobId, statusUrl } = res.json() as { jobId: string; statusUrl: string };
        expect((await settled(jobs, jobId)).status).toBe('complete');
        const result = await call({ method: 'GET', url: `${statusUrl}/result` });
        expect(result.json()).toEqual(expected);
      }
    } finally {
      await fastify.close();
    }
  });

  it('Koa: after @koa/bodyparser, the body it read is kept as the text that came', async () => {
    const jobs = newJobs();
    const app = new Koa();
    const ra = koaAdapter(jobs, { owner: (ctx) => ctx.get('x-user') || null });
    app.use(ra.routes());
    app.use(bodyParser());
    const route = ra.wrap(
      async (ctx) => {
        ctx.body = { body: (ctx.request as { body?: unknown }).body };
      },
      { name: 'parsed' },
    );
    app.use((ctx, next) => (ctx.path === '/exports' ? route(ctx, next) : next()));
    const callback = app.callback();
    const text = '{"rows":  [1, 2], "note": "spaces kept"}';
    const res = await inject(callback, {
      method: 'POST',
      url: '/exports',
      headers: { 'x-user': 'ann', 'content-type': 'application/json' },
      payload: text,
    });
    expect(res.statusCode).toBe(202);
    const { jobId } = res.json() as { jobId: string };
    const job = await settled(jobs, jobId);
    expect(Buffer.from((job.input as { body: string }).body, 'base64').toString()).toBe(text);
    expect(job.result).toMatchObject({
      status: 200,
      body: JSON.stringify({ body: { rows: [1, 2], note: 'spaces kept' } }),
    });
  });

  it('refuses a body over maxBodyBytes with 413 problem+json, and stores nothing', async () => {
    const jobs = newJobs();
    const app = express();
    const ra = expressAdapter(jobs, { maxBodyBytes: 100 });
    app.post(
      '/exports',
      ra.wrap((_req, res) => void res.end(), { name: 'small' }),
    );
    const res = await inject(expressDispatch(app), {
      method: 'POST',
      url: '/exports',
      headers: { 'content-type': 'application/octet-stream' },
      payload: Buffer.alloc(101),
    });
    expect(res.statusCode).toBe(413);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(await jobs.list(null, 10)).toHaveLength(0);
  });
});

describe('GET {statusUrl}/result of a job that is not a wrapped handler', () => {
  it('answers its result as JSON', async () => {
    const jobs = newJobs();
    const sum = jobs.define('sum', async (req: RequestSnapshot<{ a: number; b: number }>) => ({
      sum: req.body.a + req.body.b,
    }));
    const app = express();
    const ra = expressAdapter(jobs);
    app.post('/sum', ra.route(sum));
    app.use(ra.routes());
    const res = await inject(expressDispatch(app), {
      method: 'POST',
      url: '/sum',
      headers: { 'content-type': 'application/json' },
      payload: '{"a":1,"b":2}',
    });
    const { jobId, statusUrl } = res.json() as { jobId: string; statusUrl: string };
    await settled(jobs, jobId);
    const result = await inject(expressDispatch(app), { method: 'GET', url: `${statusUrl}/result` });
    expect(result.statusCode).toBe(200);
    expect(result.json()).toEqual({ sum: 3 });
  });
});

describe('openapiDocument', () => {
  it('documents GET {basePath}/{jobId}/result, and still validates as OpenAPI 3.1', async () => {
    const doc = openapiDocument({ routes: [{ path: '/exports', job: 'export' }] });
    const result = doc.paths?.['/jobs/{jobId}/result'] as { get: { responses: Record<string, unknown> } };
    expect(Object.keys(result.get.responses)).toEqual(expect.arrayContaining(['default', '404', '409']));
    expect((await new Validator().validate(doc as never)).valid).toBe(true);
  });
});

describe('respond-async/client and a wrapped route', () => {
  it('waitFor() resolves to the JSON the handler answered, read from resultUrl', async () => {
    const jobs = newJobs();
    const app = express();
    const ra = expressAdapter(jobs, { owner: (req) => req.get('x-user') ?? null });
    app.post(
      '/exports',
      ra.wrap((req, res) => void res.status(201).json({ rows: req.body.rows }), { name: 'client' }),
    );
    app.use(ra.routes());
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      const headers = { 'x-user': 'ann' };
      const accepted = await submit(`http://127.0.0.1:${port}/exports`, { body: { rows: 7 }, headers });
      expect(await waitFor(accepted, { headers, timeoutMs: 10_000 })).toEqual({ rows: 7 });
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
