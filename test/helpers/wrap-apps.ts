// The same unchanged handlers written for Express, Fastify and Koa, each wrapped with `ra.wrap`, for test/wrap.test.ts.
import express, { type NextFunction, type Request, type Response } from 'express';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import Koa, { type Context, type Next } from 'koa';
import inject, { type InjectOptions, type Response as InjectResponse } from 'light-my-request';
import type { Jobs } from '../../src/core/runtime.js';
import { respondAsync as expressAdapter } from '../../src/express.js';
import { respondAsync as fastifyAdapter } from '../../src/fastify.js';
import { respondAsync as koaAdapter } from '../../src/koa.js';

export const FRAMEWORKS = ['express', 'fastify', 'koa'] as const;
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
  return caller((options) => inject(app, options));
}

async function fastifyApp(_jobs: Jobs, _extra: { streams?: boolean }): Promise<WrapTestApp> {
  throw new Error('todo');
}

async function koaApp(_jobs: Jobs, _extra: { streams?: boolean }): Promise<WrapTestApp> {
  throw new Error('todo');
}

export type { Context, FastifyReply, FastifyRequest, Next };

void Fastify;
void Koa;
void fastifyAdapter;
void koaAdapter;
