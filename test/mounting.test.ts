// Where the status routes live and what Location says: under an Express router's mount path, a Fastify prefix, a
// @koa/router prefix, behind a proxy (publicUrl, trustProxy); and body errors next to the app's parsers, as problem+json.
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import Router from '@koa/router';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import { respondAsync as expressAdapter } from '../src/express.js';
import { respondAsync as fastifyAdapter } from '../src/fastify.js';
import { respondAsync as fetchAdapter } from '../src/fetch.js';
import type { RespondAsyncOptions } from '../src/http/protocol.js';
import { createJobs, MemoryStore } from '../src/index.js';
import { respondAsync as koaAdapter } from '../src/koa.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function setup() {
  const jobs = createJobs({ store: new MemoryStore() });
  const task = jobs.define('task', async () => ({ ok: true }));
  cleanups.push(() => jobs.close());
  return { jobs, task };
}

async function listen(handler: Parameters<typeof import('node:http').createServer>[1]): Promise<string> {
  const { createServer } = await import('node:http');
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** An Express app with the route and the status routes on one router, mounted at /api/v1. */
async function expressApp(options: RespondAsyncOptions<express.Request> = {}) {
  const { jobs, task } = setup();
  const ra = expressAdapter(jobs, options);
  const app = express();
  app.use(express.json({ limit: '100kb' }));
  app.get('/jobs/:slug', (req, res) => void res.json({ app: req.params.slug }));
  const api = express.Router();
  api.post('/reports', ra.route(task));
  api.use(ra.routes());
  app.use('/api/v1', api);
  app.use(ra.errors());
  return listen(app);
}

const JSON_BODY = { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":1}' };

describe('Express under a router mount path', () => {
  it('answers Location under the mount path, and serves the job there, not at the app root', async () => {
    const origin = await expressApp();
    const res = await fetch(`${origin}/api/v1/reports`, JSON_BODY);
    const location = res.headers.get('location') ?? '';
    expect(location).toMatch(/^\/api\/v1\/jobs\/[\w-]+$/);
    const status = await fetch(`${origin}${location}`);
    expect(status.status).toBe(200);
    expect((await status.json()).statusUrl).toBe(location);
    // The app's own /jobs route at the root is not taken.
    const id = location.split('/').pop();
    expect(await (await fetch(`${origin}/jobs/${id}`)).json()).toEqual({ app: id });
  });

  it('makes Location absolute on publicUrl', async () => {
    const origin = await expressApp({ publicUrl: 'https://api.example.com/' });
    const res = await fetch(`${origin}/api/v1/reports`, JSON_BODY);
    const location = res.headers.get('location') ?? '';
    expect(location).toMatch(/^https:\/\/api\.example\.com\/api\/v1\/jobs\/[\w-]+$/);
    expect((await res.json()).statusUrl).toBe(location);
  });

  it('follows Forwarded and X-Forwarded-Prefix only with trustProxy', async () => {
    const headers = {
      ...JSON_BODY.headers,
      forwarded: 'for=192.0.2.1;host="public.example:8443";proto=https, for=10.0.0.1',
      'x-forwarded-prefix': '/svc/',
    };
    const trusting = await expressApp({ trustProxy: true });
    const res = await fetch(`${trusting}/api/v1/reports`, { ...JSON_BODY, headers });
    expect(res.headers.get('location')).toMatch(/^https:\/\/public\.example:8443\/svc\/api\/v1\/jobs\/[\w-]+$/);
    // A malformed host is ignored, not echoed.
    const bad = await fetch(`${trusting}/api/v1/reports`, {
      ...JSON_BODY,
      headers: { ...JSON_BODY.headers, forwarded: 'host="evil/x"' },
    });
    expect(bad.headers.get('location')).toMatch(/^\/api\/v1\/jobs\//);
    const plain = await expressApp();
    const ignored = await fetch(`${plain}/api/v1/reports`, { ...JSON_BODY, headers });
    expect(ignored.headers.get('location')).toMatch(/^\/api\/v1\/jobs\//);
  });

  it('answers the global parser errors before a wrapped route as problem+json (ra.errors())', async () => {
    const origin = await expressApp();
    const bad = await fetch(`${origin}/api/v1/reports`, { ...JSON_BODY, body: '{"n":' });
    expect([bad.status, bad.headers.get('content-type')]).toEqual([400, 'application/problem+json; charset=utf-8']);
    expect((await bad.json()).code).toBe('ERR_RESPOND_ASYNC_BAD_BODY');
    const large = await fetch(`${origin}/api/v1/reports`, {
      ...JSON_BODY,
      body: JSON.stringify({ v: 'x'.repeat(200_000) }),
    });
    expect(large.status).toBe(413);
    expect((await large.json()).code).toBe('ERR_RESPOND_ASYNC_BODY_TOO_LARGE');
  });
});

describe('Fastify under a register prefix', () => {
  it('serves the status routes under the prefix and says so in Location; basePath stays relative', async () => {
    for (const basePath of [undefined, '/tasks']) {
      const { jobs, task } = setup();
      const ra = fastifyAdapter(jobs, { basePath });
      const app = Fastify();
      await app.register(
        async (api) => {
          await api.register(ra.plugin);
          api.post('/reports', ra.route(task));
        },
        { prefix: '/api/v1' },
      );
      cleanups.push(() => app.close());
      const res = await app.inject({ method: 'POST', url: '/api/v1/reports', payload: { n: 1 } });
      const location = res.headers.location as string;
      expect(location).toMatch(new RegExp(`^/api/v1${basePath ?? '/jobs'}/[\\w-]+$`));
      const status = await app.inject({ method: 'GET', url: location });
      expect(status.statusCode).toBe(200);
      expect(status.json().statusUrl).toBe(location);
    }
  });
});

describe('Koa on a prefixed @koa/router', () => {
  /** `v1.use(ra.routes())`, with the app's own `/jobs/:slug` route and a 404 fallback. */
  async function koaApp(nest: boolean) {
    const { jobs, task } = setup();
    const ra = koaAdapter(jobs);
    const app = new Koa();
    const own = new Router();
    own.get('/jobs/:slug', (ctx) => {
      ctx.body = { app: ctx.params.slug };
    });
    const v1 = new Router({ prefix: nest ? '/v1' : '/api/v1' });
    v1.post('/reports', ra.route(task));
    v1.use(ra.routes());
    let outer = v1;
    if (nest) {
      outer = new Router({ prefix: '/api' });
      outer.use(v1.routes());
    }
    app.use(own.routes());
    app.use(outer.routes());
    app.use((ctx) => {
      ctx.status = 404;
      ctx.body = { fallback: true };
    });
    return listen(app.callback());
  }

  for (const nest of [false, true]) {
    it(`serves the status routes under the router's prefix and says so in Location${nest ? ' (nested routers)' : ''}`, async () => {
      const origin = await koaApp(nest);
      const res = await fetch(`${origin}/api/v1/reports`, JSON_BODY);
      expect(res.status).toBe(202);
      const location = res.headers.get('location') ?? '';
      expect(location).toMatch(/^\/api\/v1\/jobs\/[\w-]+$/);
      expect((await res.json()).statusUrl).toBe(location);
      const status = await fetch(`${origin}${location}`, { headers: { prefer: 'wait=5' } });
      expect(status.status).toBe(200);
      expect((await status.json()).statusUrl).toBe(location);
      const events = await fetch(`${origin}${location}/events`);
      expect(events.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(await events.text()).toContain('event: complete');
      // A method the job's path does not take: 405 with Allow, from the library.
      const put = await fetch(`${origin}${location}`, { method: 'PUT' });
      expect([put.status, put.headers.get('content-type')]).toEqual([405, 'application/problem+json; charset=utf-8']);
      // Not the library's: a deeper path under the base path, and the app's own /jobs route at the root.
      expect(await (await fetch(`${origin}${location}/deeper`)).json()).toEqual({ fallback: true });
      const id = location.split('/').pop();
      expect(await (await fetch(`${origin}/jobs/${id}`)).json()).toEqual({ app: id });
    });
  }
});

describe('a compressed body', () => {
  it('is refused with 415 ERR_RESPOND_ASYNC_UNSUPPORTED_ENCODING where the library reads the body', async () => {
    const { jobs, task } = setup();
    const koa = koaAdapter(jobs);
    const app = new Koa();
    app.use(koa.post('/reports', task));
    const origin = await listen(app.callback());
    const fetchRoute = fetchAdapter(jobs).route(task);
    const init = {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync('{"n":1}'),
    };
    for (const res of [
      await fetch(`${origin}/reports`, init),
      await fetchRoute(new Request('http://127.0.0.1/reports', init)),
    ]) {
      expect(res.status).toBe(415);
      expect((await res.json()).code).toBe('ERR_RESPOND_ASYNC_UNSUPPORTED_ENCODING');
    }
  });
});
