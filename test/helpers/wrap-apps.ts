// The same unchanged handlers written for Express, Fastify and Koa, each wrapped with `ra.wrap`, for test/wrap.test.ts.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import express, { type NextFunction, type Request, type Response } from 'express';
import Fastify, { type FastifyRequest } from 'fastify';
import Koa, { type Middleware } from 'koa';
import compose from 'koa-compose';
import inject, { type InjectOptions, type Response as InjectResponse } from 'light-my-request';
import type { Jobs } from '../../src/core/runtime.js';
import { respondAsync as expressAdapter } from '../../src/express.js';
import { respondAsync as fastifyAdapter } from '../../src/fastify.js';
import { pinOwnMethods } from '../../src/http/replay.js';
import { respondAsync as koaAdapter } from '../../src/koa.js';

export const FRAMEWORKS = ['express', 'fastify', 'koa'] as const;

/**
 * An Express app as light-my-request's dispatch function. Given the app itself, light-my-request detects Express
 * and re-parents Express's shared request and response prototypes onto its own classes, for the whole process:
 * a real Express server there then fails every request. A plain function is not detected.
 */
export function expressDispatch(app: express.Express) {
  return (req: IncomingMessage, res: ServerResponse) => {
    pinOwnMethods(req);
    pinOwnMethods(res);
    app(req, res);
  };
}
export type WrapFramework = (typeof FRAMEWORKS)[number];

export interface WrapTestApp {
  /** Send a request to the app, in process. */
  call(options: InjectOptions & { json?: unknown }): Promise<InjectResponse>;
}

interface User {
  name: string;
  role: string;
}

/** The app's own authentication: a bearer token names the user. Runs at submit only; the replay restores. */
function userOfToken(authorization: string | undefined): User | undefined {
  return authorization === 'Bearer ann-token' ? { name: 'ann', role: 'admin' } : undefined;
}

const retried = { attempts: 2, backoff: () => 10 };
const owner = (value: string | string[] | undefined) => (typeof value === 'string' && value !== '' ? value : null);

function caller(dispatch: (options: InjectOptions) => Promise<InjectResponse>) {
  return {
    call(options: InjectOptions & { json?: unknown }) {
      const { json, ...rest } = options;
      if (json === undefined) return dispatch(rest);
      return dispatch({
        ...rest,
        headers: { ...rest.headers, 'content-type': 'application/json' },
        payload: JSON.stringify(json),
      });
    },
  };
}

/** An app of `framework` with every test route wrapped on `jobs`; `extra` options go to the `/json` route. */
export async function wrapApp(
  framework: WrapFramework,
  jobs: Jobs,
  extra: { streams?: boolean } = {},
): Promise<WrapTestApp> {
  switch (framework) {
    case 'express':
      return expressApp(jobs, extra);
    case 'fastify':
      return fastifyApp(jobs, extra);
    case 'koa':
      return koaApp(jobs, extra);
  }
}

declare global {
  namespace Express {
    interface Request {
      user?: User;
    }
  }
}

function waitForAbort(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => signal?.addEventListener('abort', () => resolve(), { once: true }));
}

async function expressApp(jobs: Jobs, extra: { streams?: boolean }): Promise<WrapTestApp> {
  const app = express();
  const ra = expressAdapter(jobs, { owner: (req) => owner(req.headers['x-user']) });
  const auth = (req: Request, _res: Response, next: NextFunction) => {
    req.user = userOfToken(req.headers.authorization);
    next();
  };
  app.post(
    '/json',
    ra.wrap(async (req, res) => void res.json({ ok: true, n: req.body.n, method: req.method }), {
      name: 'json',
      ...extra,
    }),
  );
  app.post(
    '/created',
    ra.wrap(
      (_req, res) => {
        res.status(201).set({ 'x-report': 'r1', location: '/reports/r1' }).cookie('session', 'abc');
        res.type('text/plain').send('created r1');
      },
      { name: 'created' },
    ),
  );
  app.post(
    '/echo',
    ra.wrap((req, res) => void res.type('application/octet-stream').send(req.body), { name: 'echo' }),
  );
  app.post(
    '/form',
    ra.wrap((req, res) => void res.json(req.body), { name: 'form' }),
  );
  app.post(
    '/users/:id/exports',
    auth,
    ra.wrap(
      (req: Request<{ id: string }>, res) =>
        void res.json({ user: req.user, id: req.params.id, format: req.query.format }),
      {
        name: 'user-export',
        capture: (req) => ({ user: req.user }),
        restore: (req, captured) => (req.user = captured.user),
      },
    ),
  );
  app.post(
    '/throws',
    ra.wrap(
      async () => {
        throw new Error('password=hunter2 at db.internal:5432');
      },
      { name: 'throws', ...retried },
    ),
  );
  app.post(
    '/next-error',
    ra.wrap((_req, _res, next) => next(new Error('boom')), { name: 'next-error', ...retried }),
  );
  app.post(
    '/unavailable',
    ra.wrap((_req, res) => void res.status(503).send('busy'), { name: 'unavailable', ...retried }),
  );
  app.post(
    '/refuse',
    ra.wrap((_req, res) => void res.status(422).json({ error: 'rows' }), { name: 'refuse' }),
  );
  app.post(
    '/progress',
    ra.wrap(
      async (req, res) => {
        await req.job?.progress(40, 'halfway');
        await waitForAbort(req.job?.signal);
        res.json({ late: true });
      },
      { name: 'progress' },
    ),
  );
  app.post(
    '/big',
    ra.wrap(
      (_req, res) => {
        res.type('text/plain');
        for (let i = 0; i < 50; i++) res.write('x'.repeat(100));
        res.end();
      },
      { name: 'big' },
    ),
  );
  app.post(
    '/keeps-auth',
    ra.wrap((req, res) => void res.json({ auth: req.headers.authorization }), {
      name: 'keeps-auth',
      headers: ['Authorization'],
    }),
  );
  app.use(ra.routes());
  return caller((options) => inject(expressDispatch(app), options));
}

async function fastifyApp(jobs: Jobs, extra: { streams?: boolean }): Promise<WrapTestApp> {
  const app = Fastify();
  const ra = fastifyAdapter(jobs, { owner: (req) => owner(req.headers['x-user']) });
  await app.register(ra.plugin);
  app.decorateRequest('user', undefined);
  type Body = { n?: number } | Buffer | Record<string, string>;
  app.post(
    '/json',
    ra.wrap(
      async (request: FastifyRequest<{ Body: { n: number } }>) => ({
        ok: true,
        n: request.body.n,
        method: request.method,
      }),
      {
        name: 'json',
        ...extra,
      },
    ),
  );
  app.post(
    '/created',
    ra.wrap(
      async (_request, reply) => {
        reply.code(201).header('x-report', 'r1').header('location', '/reports/r1').header('set-cookie', 'session=abc');
        return reply.type('text/plain').send('created r1');
      },
      { name: 'created' },
    ),
  );
  app.post(
    '/echo',
    ra.wrap(
      async (request: FastifyRequest<{ Body: Body }>, reply) =>
        reply.type('application/octet-stream').send(request.body),
      {
        name: 'echo',
      },
    ),
  );
  app.post(
    '/form',
    ra.wrap(async (request: FastifyRequest<{ Body: Body }>) => request.body, { name: 'form' }),
  );
  app.post('/users/:id/exports', {
    ...ra.wrap(
      async (request: FastifyRequest<{ Params: { id: string }; Querystring: { format: string } }>) => ({
        user: request.user,
        id: request.params.id,
        format: request.query.format,
      }),
      {
        name: 'user-export',
        capture: (request) => ({ user: request.user }),
        restore: (request, captured) => {
          request.user = captured.user;
        },
      },
    ),
    onRequest: async (request) => {
      request.user = userOfToken(request.headers.authorization);
    },
  });
  app.post(
    '/throws',
    ra.wrap(
      async () => {
        throw new Error('password=hunter2 at db.internal:5432');
      },
      { name: 'throws', ...retried },
    ),
  );
  app.post(
    '/next-error',
    ra.wrap(async (_request, reply) => reply.send(new Error('boom')), { name: 'next-error', ...retried }),
  );
  app.post(
    '/unavailable',
    ra.wrap(async (_request, reply) => reply.code(503).send('busy'), { name: 'unavailable', ...retried }),
  );
  app.post(
    '/refuse',
    ra.wrap(async (_request, reply) => reply.code(422).send({ error: 'rows' }), { name: 'refuse' }),
  );
  app.post(
    '/progress',
    ra.wrap(
      async (request) => {
        await request.job?.progress(40, 'halfway');
        await waitForAbort(request.job?.signal);
        return { late: true };
      },
      { name: 'progress' },
    ),
  );
  app.post(
    '/big',
    ra.wrap(async (_request, reply) => reply.type('text/plain').send('x'.repeat(5000)), { name: 'big' }),
  );
  app.post(
    '/keeps-auth',
    ra.wrap(async (request) => ({ auth: request.headers.authorization }), {
      name: 'keeps-auth',
      headers: ['Authorization'],
    }),
  );
  await app.ready();
  return caller((options) => app.inject(options) as unknown as Promise<InjectResponse>);
}

declare module 'fastify' {
  interface FastifyRequest {
    user?: User;
  }
}

async function koaApp(jobs: Jobs, extra: { streams?: boolean }): Promise<WrapTestApp> {
  const app = new Koa();
  const ra = koaAdapter(jobs, { owner: (ctx) => owner(ctx.get('x-user')) });
  app.use(ra.routes());
  const routes: Array<{ pattern: RegExp; names: string[]; stack: Middleware[] }> = [];
  const post = (path: string, ...stack: Middleware[]) => {
    const names = [...path.matchAll(/:([^/]+)/g)].map((match) => match[1]);
    routes.push({ pattern: new RegExp(`^${path.replace(/:[^/]+/g, '([^/]+)')}$`), names, stack });
  };
  type Body = { n?: number } & Record<string, unknown>;
  post(
    '/json',
    ra.wrap(
      async (ctx) => {
        ctx.body = { ok: true, n: (ctx.request as { body?: Body }).body?.n, method: ctx.method };
      },
      { name: 'json', ...extra },
    ),
  );
  post(
    '/created',
    ra.wrap(
      async (ctx) => {
        ctx.status = 201;
        ctx.set({ 'x-report': 'r1', location: '/reports/r1' });
        ctx.cookies.set('session', 'abc');
        ctx.type = 'text/plain';
        ctx.body = 'created r1';
      },
      { name: 'created' },
    ),
  );
  post(
    '/echo',
    ra.wrap(
      async (ctx) => {
        ctx.type = 'application/octet-stream';
        ctx.body = (ctx.request as { body?: Buffer }).body;
      },
      { name: 'echo' },
    ),
  );
  post(
    '/form',
    ra.wrap(
      async (ctx) => {
        ctx.body = (ctx.request as { body?: Body }).body;
      },
      { name: 'form' },
    ),
  );
  post(
    '/users/:id/exports',
    async (ctx, next) => {
      ctx.state.user = userOfToken(ctx.get('authorization') || undefined);
      await next();
    },
    ra.wrap(
      async (ctx) => {
        ctx.body = { user: ctx.state.user, id: ctx.params.id, format: ctx.query.format };
      },
      {
        name: 'user-export',
        capture: (ctx) => ({ user: ctx.state.user }),
        restore: (ctx, captured) => {
          ctx.state.user = captured.user;
        },
      },
    ),
  );
  post(
    '/throws',
    ra.wrap(
      async () => {
        throw new Error('password=hunter2 at db.internal:5432');
      },
      { name: 'throws', ...retried },
    ),
  );
  post(
    '/next-error',
    ra.wrap(async (ctx) => ctx.throw(500, 'boom'), { name: 'next-error', ...retried }),
  );
  post(
    '/unavailable',
    ra.wrap(
      async (ctx) => {
        ctx.status = 503;
        ctx.body = 'busy';
      },
      { name: 'unavailable', ...retried },
    ),
  );
  post(
    '/refuse',
    ra.wrap(
      async (ctx) => {
        ctx.status = 422;
        ctx.body = { error: 'rows' };
      },
      { name: 'refuse' },
    ),
  );
  post(
    '/progress',
    ra.wrap(
      async (ctx) => {
        await ctx.job?.progress(40, 'halfway');
        await waitForAbort(ctx.job?.signal);
        ctx.body = { late: true };
      },
      { name: 'progress' },
    ),
  );
  post(
    '/big',
    ra.wrap(
      async (ctx) => {
        ctx.type = 'text/plain';
        ctx.body = Readable.from(Array.from({ length: 50 }, () => 'x'.repeat(100)));
      },
      { name: 'big' },
    ),
  );
  post(
    '/keeps-auth',
    ra.wrap(
      async (ctx) => {
        ctx.body = { auth: ctx.get('authorization') };
      },
      { name: 'keeps-auth', headers: ['authorization'] },
    ),
  );
  // A router of a few lines: the params as @koa/router sets them.
  app.use(async (ctx, next) => {
    if (ctx.method !== 'POST') return next();
    for (const { pattern, names, stack } of routes) {
      const match = pattern.exec(ctx.path);
      if (!match) continue;
      ctx.params = Object.fromEntries(names.map((name, i) => [name, match[i + 1]]));
      return compose(stack)(ctx, next);
    }
    return next();
  });
  const callback = app.callback();
  return caller((options) => inject(callback, options));
}
