// One HTTP server for the accept-path benchmark, in its own process: `POST /reports` either wrapped by
// respond-async (memory, SQLite or PostgreSQL store, API-only: `worker: false`, so no job runs here) or the
// framework's bare handler answering the same 202 JSON without storing anything. `otel` is the memory route in a
// process that registered the OpenTelemetry SDK before loading the library, so its `send` spans and metrics are
// recorded; asked for a `summary`, it answers how many spans it exported.
//
// argv: <express|fastify|koa> <bare|memory|otel|sqlite|postgres>   env: BENCH_PG_URL, BENCH_PG_SCHEMA, BENCH_SQLITE_PATH
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import type { JobStore, Jobs } from '../../src/index.js';
import { main, receive, send } from '../lib/ipc.js';
import type { RegisteredOtel } from '../lib/otel.js';
import { loadCore, loadExpress, loadFastify, loadKoa, loadPostgres, loadSqlite } from '../lib/src.js';

const [framework, contender] = process.argv.slice(2);
const BASE = '/jobs';

/**
 * What the bare handlers answer: the same status, headers and body shape as a wrapped route's 202, with the id
 * a hand-written handler would use (`crypto.randomUUID()`).
 */
function bareAccepted(): { headers: Record<string, string>; body: string } {
  const jobId = randomUUID();
  const statusUrl = `${BASE}/${jobId}`;
  const body = JSON.stringify({ jobId, status: 'queued', statusUrl, createdAt: new Date().toISOString() });
  return {
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'cache-control': 'no-store',
      location: statusUrl,
      'retry-after': '1',
      vary: 'Prefer',
    },
    body,
  };
}

async function makeStore(): Promise<JobStore> {
  if (contender === 'memory' || contender === 'otel') {
    const { MemoryStore } = await loadCore();
    return new MemoryStore({ maxJobs: 10_000_000, maxBytes: Number.POSITIVE_INFINITY });
  }
  if (contender === 'sqlite') {
    const { SqliteStore } = await loadSqlite();
    return new SqliteStore({ path: required('BENCH_SQLITE_PATH') });
  }
  if (contender === 'postgres') {
    const { PostgresStore } = await loadPostgres();
    return new PostgresStore({ connectionString: required('BENCH_PG_URL'), schema: required('BENCH_PG_SCHEMA') });
  }
  throw new Error(`unknown contender ${contender}`);
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

async function runtime(): Promise<{ jobs: Jobs; job: ReturnType<Jobs['define']> }> {
  // API-only: jobs are stored and answered, never run here (the accept path is what is measured).
  const { createJobs } = await loadCore();
  const jobs = createJobs({ store: await makeStore(), worker: false });
  const job = jobs.define('bench', async () => ({ ok: true }));
  await jobs.ready();
  return { jobs, job };
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      try {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve(text ? JSON.parse(text) : undefined);
      } catch (error) {
        reject(error);
      }
    });
    req.on('error', reject);
  });
}

async function expressServer(): Promise<Server> {
  const app = express();
  app.use(express.json());
  if (contender === 'bare') {
    app.post('/reports', (req, res) => {
      if (typeof req.body !== 'object' || req.body === null) {
        res.status(400).end();
        return;
      }
      const { headers, body } = bareAccepted();
      res.writeHead(202, headers).end(body);
    });
  } else {
    const { respondAsync } = await loadExpress();
    const { jobs, job } = await runtime();
    const ra = respondAsync(jobs, { basePath: BASE });
    app.post('/reports', ra.route(job));
    app.use(ra.routes());
  }
  return new Promise((resolve) => {
    const server = app.listen(0, '127.0.0.1', () => resolve(server));
  });
}

async function fastifyServer(): Promise<Server> {
  const app = Fastify({ logger: false });
  if (contender === 'bare') {
    app.post('/reports', async (request, reply) => {
      if (typeof request.body !== 'object' || request.body === null) return reply.code(400).send();
      const { headers, body } = bareAccepted();
      return reply.code(202).headers(headers).send(body);
    });
  } else {
    const { respondAsync } = await loadFastify();
    const { jobs, job } = await runtime();
    const ra = respondAsync(jobs, { basePath: BASE });
    await app.register(ra.plugin);
    app.post('/reports', ra.route(job));
  }
  await app.listen({ port: 0, host: '127.0.0.1' });
  return app.server;
}

async function koaServer(): Promise<Server> {
  const app = new Koa();
  if (contender === 'bare') {
    app.use(async (ctx, next) => {
      if (ctx.method !== 'POST' || ctx.path !== '/reports') return next();
      const parsed = await readBody(ctx.req);
      if (typeof parsed !== 'object' || parsed === null) {
        ctx.status = 400;
        return;
      }
      const { headers, body } = bareAccepted();
      ctx.status = 202;
      ctx.set(headers);
      ctx.body = body;
    });
  } else {
    const { respondAsync } = await loadKoa();
    const { jobs, job } = await runtime();
    const ra = respondAsync(jobs, { basePath: BASE });
    app.use(ra.routes());
    app.use(ra.post('/reports', job));
  }
  return new Promise((resolve) => {
    const server = app.listen(0, '127.0.0.1', () => resolve(server));
  });
}

main(
  async () => {
    const servers: Record<string, () => Promise<Server>> = {
      express: expressServer,
      fastify: fastifyServer,
      koa: koaServer,
    };
    const start = servers[framework];
    if (!start) throw new Error(`unknown framework ${framework}`);
    // Before the library is loaded (by `start`), as an application registers the SDK first thing. The library
    // loads `@opentelemetry/api` lazily; every copy of it finds these providers through the API's global registry.
    let otel: RegisteredOtel | undefined;
    if (contender === 'otel') otel = (await import('../lib/otel.js')).registerOtel();
    const server = await start();
    const { port } = server.address() as AddressInfo;
    process.once('SIGTERM', () => process.exit(0));
    void receive('summary')
      .then(async () => send({ type: 'summary', ...(otel ? await otel.summary() : {}) }))
      .catch((error: unknown) => send({ type: 'error', message: String(error) }));
    send({ type: 'ready', port });
  },
  { exit: false },
);
