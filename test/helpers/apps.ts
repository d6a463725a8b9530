// Start the same respond-async app on Express, Fastify, Koa and the Fetch adapter (via Hono), over real sockets.
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import express from 'express';
import express4 from 'express4';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import Koa2 from 'koa2';
import type { JobDefinition, Jobs } from '../../src/core/runtime.js';
import { respondAsync as expressAdapter } from '../../src/express.js';
import { respondAsync as fastifyAdapter } from '../../src/fastify.js';
import { respondAsync as fetchAdapter } from '../../src/fetch.js';
import type { RespondAsyncOptions, RouteOptions } from '../../src/http/protocol.js';
import { respondAsync as koaAdapter } from '../../src/koa.js';

export const FRAMEWORKS = ['express', 'fastify', 'koa', 'fetch'] as const;
/** FRAMEWORKS plus the older majors the peer ranges promise: Express 4 and Koa 2. */
export const FRAMEWORK_VERSIONS = [...FRAMEWORKS, 'express4', 'koa2'] as const;
export type Framework = (typeof FRAMEWORK_VERSIONS)[number];

export interface AppSpec {
  jobs: Jobs;
  /** Routes: POST path → job definition (and route options). */
  routes: Array<{ path: string; job: JobDefinition<any, any>; options?: RouteOptions<any, any> }>;
  /** Adapter options; `owner` reads the X-User header unless `anonymous`. */
  options?: Omit<RespondAsyncOptions<any>, 'owner'>;
  anonymous?: boolean;
  /** The app's own routes (answering `{ app: path }`), registered before the status routes. */
  appRoutesBefore?: AppRoute[];
  /** The app's own routes, registered after the status routes and the wrapped routes. */
  appRoutesAfter?: AppRoute[];
}

/** A route of the app itself: `path` in Express syntax (`/jobs/:id/notes`). */
export interface AppRoute {
  method: 'GET' | 'POST';
  path: string;
}

/** Koa has no router here: a middleware answering `route` when method and path match. */
function koaRoute(route: AppRoute) {
  const pattern = new RegExp(`^${route.path.replace(/:[^/]+/g, '[^/]+')}$`);
  return async (ctx: import('koa').Context, next: () => Promise<unknown>) => {
    if (ctx.method !== route.method || !pattern.test(ctx.path)) return next();
    ctx.body = { app: route.path };
  };
}

export interface RunningApp {
  url: string;
  close(): Promise<void>;
}

function header(value: string | string[] | undefined | null): string | null {
  const v = Array.isArray(value) ? value[0] : value;
  return v ? v : null;
}

/** Start `spec` on `framework`, listening on 127.0.0.1 and a free port. */
export async function startApp(framework: Framework, spec: AppSpec): Promise<RunningApp> {
  const base = spec.options ?? {};
  switch (framework) {
    case 'express':
    case 'express4': {
      const app = framework === 'express4' ? express4() : express();
      const ra = expressAdapter(spec.jobs, {
        ...base,
        owner: spec.anonymous ? undefined : (req) => header(req.headers['x-user']),
      });
      const own = (r: AppRoute) =>
        app[r.method === 'GET' ? 'get' : 'post'](r.path, (_req, res) => void res.json({ app: r.path }));
      for (const r of spec.appRoutesBefore ?? []) own(r);
      for (const r of spec.routes) app.post(r.path, ra.route(r.job, r.options));
      app.use(ra.routes());
      for (const r of spec.appRoutesAfter ?? []) own(r);
      return listenNode(app.listen(0, '127.0.0.1'));
    }
    case 'fastify': {
      const app = Fastify({ forceCloseConnections: true });
      const ra = fastifyAdapter(spec.jobs, {
        ...base,
        owner: spec.anonymous ? undefined : (req) => header(req.headers['x-user']),
      });
      const own = (r: AppRoute) => app.route({ method: r.method, url: r.path, handler: async () => ({ app: r.path }) });
      for (const r of spec.appRoutesBefore ?? []) own(r);
      await app.register(ra.plugin);
      for (const r of spec.routes) app.post(r.path, ra.route(r.job, r.options));
      for (const r of spec.appRoutesAfter ?? []) own(r);
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as AddressInfo;
      return { url: `http://127.0.0.1:${port}`, close: () => app.close() };
    }
    case 'koa':
    case 'koa2': {
      const app = framework === 'koa2' ? new Koa2() : new Koa();
      const ra = koaAdapter(spec.jobs, {
        ...base,
        owner: spec.anonymous ? undefined : (ctx) => header(ctx.headers['x-user']),
      });
      for (const r of spec.appRoutesBefore ?? []) app.use(koaRoute(r));
      app.use(ra.routes());
      for (const r of spec.routes) app.use(ra.post(r.path, r.job, r.options));
      for (const r of spec.appRoutesAfter ?? []) app.use(koaRoute(r));
      return listenNode(app.listen(0, '127.0.0.1'));
    }
    case 'fetch': {
      const app = new Hono();
      const own = (r: AppRoute) => app.on(r.method, r.path, (c) => c.json({ app: r.path }));
      for (const r of spec.appRoutesBefore ?? []) own(r);
      const ra = fetchAdapter(spec.jobs, {
        ...base,
        owner: spec.anonymous ? undefined : (req) => header(req.headers.get('x-user')),
      });
      for (const r of spec.routes) {
        const handler = ra.route(r.job, r.options);
        app.post(r.path, (c) => handler(c.req.raw, c.req.param()));
      }
      // Not a status path (undefined): on to the app's later routes, then Hono's 404.
      app.use('*', async (c, next) => (await ra.handle(c.req.raw)) ?? next());
      for (const r of spec.appRoutesAfter ?? []) own(r);
      const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
        const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
      });
      return listenNode(server as unknown as import('node:http').Server, true);
    }
  }
}

async function listenNode(server: import('node:http').Server, listening = false): Promise<RunningApp> {
  if (!listening && !server.listening) await new Promise((resolve) => server.once('listening', resolve));
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

/** Read an SSE response into events until it ends (or `limit` events). */
export async function readEvents(
  response: Response,
  limit = 1000,
): Promise<Array<{ event: string; id: string; data: any }>> {
  const events: Array<{ event: string; id: string; data: any }> = [];
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut = buffer.indexOf('\n\n');
    while (cut !== -1) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const fields: Record<string, string> = {};
      for (const line of block.split('\n')) {
        if (line.startsWith(':') || line === '') continue;
        const i = line.indexOf(':');
        fields[line.slice(0, i)] = line.slice(i + 1).trimStart();
      }
      if (fields.data !== undefined) {
        events.push({ event: fields.event ?? 'message', id: fields.id, data: JSON.parse(fields.data) });
        if (events.length >= limit) {
          await reader.cancel();
          return events;
        }
      }
      cut = buffer.indexOf('\n\n');
    }
  }
  return events;
}
