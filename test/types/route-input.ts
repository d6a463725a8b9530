// Type test: an adapter's `route(job)` without `input()` compiles only when the handler takes the default snapshot.
// The default input is `{ body, params, query }`; a handler typed for another shape would receive that at run time,
// so `tsc --noEmit` (npm run lint) must refuse it. `@ts-expect-error` lines are the calls that must not compile.
import type { JobDefinition } from '../../src/core/runtime.js';
import type { RequestSnapshot } from '../../src/core/types.js';
import type { ExpressRespondAsync } from '../../src/express.js';
import type { FastifyRespondAsync } from '../../src/fastify.js';
import type { FetchRespondAsync } from '../../src/fetch.js';
import type { KoaRespondAsync } from '../../src/koa.js';

declare const express: ExpressRespondAsync;
declare const fastify: FastifyRespondAsync;
declare const koa: KoaRespondAsync;
declare const fetchAdapter: FetchRespondAsync;

declare const custom: JobDefinition<{ userId: string; n: number }>;
declare const snapshot: JobDefinition<RequestSnapshot<{ steps: number }>>;
declare const plainSnapshot: JobDefinition<RequestSnapshot>;
declare const untyped: JobDefinition<unknown>;

// A custom input type needs `input()`: without it the handler would receive `{ body, params, query }`.
// @ts-expect-error route(job) without input() for a non-snapshot input
express.route(custom);
// @ts-expect-error options without input() are refused too
express.route(custom, { estimatedSeconds: 5 });
// @ts-expect-error route(job) without input() for a non-snapshot input
fastify.route(custom);
// @ts-expect-error route(job) without input() for a non-snapshot input
koa.route(custom);
// @ts-expect-error route(job) without input() for a non-snapshot input
koa.post('/reports', custom);
// @ts-expect-error route(job) without input() for a non-snapshot input
fetchAdapter.route(custom);
// @ts-expect-error input() must return the job's input type
express.route(custom, { input: (req) => ({ userId: String(req.get('x-user')) }) });

// With `input()` returning the job's input type, it compiles (and `req` is the framework's request).
express.route(custom, { input: (req) => ({ userId: String(req.get('x-user')), n: 1 }) });
fastify.route(custom, { input: (req) => ({ userId: String(req.headers['x-user']), n: 1 }) });
koa.route(custom, { input: (ctx) => ({ userId: ctx.get('x-user'), n: 1 }) });
koa.post('/reports', custom, { input: (_ctx, snap) => ({ userId: String(snap.params.id), n: 1 }) });
fetchAdapter.route(custom, { input: async (request) => ({ userId: request.headers.get('x-user') ?? '', n: 1 }) });

// The default snapshot (with any body type) and `unknown` need no options.
express.route(snapshot);
express.route(plainSnapshot, { estimatedSeconds: 5 });
express.route(untyped);
fastify.route(snapshot);
koa.route(snapshot);
koa.post('/reports', untyped);
fetchAdapter.route(snapshot);
