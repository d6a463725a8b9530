// A Koa 3 API as it exists before respond-async: helmet, cors, compress, @koa/bodyparser, an auth middleware, its own
// `/jobs/:slug` route, and an `/api/v1` router, where one route runs as a job and one existing middleware is
// wrapped; the operator's dashboard at `/ops`.
import bodyParser from '@koa/bodyparser';
import cors from '@koa/cors';
import Router from '@koa/router';
import Koa from 'koa';
import compress from 'koa-compress';
import helmet from 'koa-helmet';
import { respondAsync } from 'respond-async/koa';
import { koaExport, opsOnly, wrapOf } from './handlers.mjs';
import { announce, createAppJobs, NOT_FOUND, UNAUTHORIZED, userOf } from './jobs.mjs';

const { jobs, report } = await createAppJobs();
const ra = respondAsync(jobs, { owner: (ctx) => ctx.state.user, maxBodyBytes: 50_000 });
const app = new Koa();
app.use(helmet());
app.use(cors({ exposeHeaders: ['Location', 'Retry-After'] }));
app.use(compress());
app.use(ra.admin({ path: '/ops', authorize: (ctx) => opsOnly(userOf(ctx.get('x-user') || undefined)) }));
app.use(ra.errors());
app.use(bodyParser());

const own = new Router();
own.get('/jobs/:slug', (ctx) => {
  ctx.body = { page: ctx.params.slug };
});
app.use(own.routes());

app.use(async (ctx, next) => {
  if (!ctx.path.startsWith('/api/')) return next();
  ctx.state.user = userOf(ctx.get('x-user') || undefined);
  if (ctx.state.user === null) {
    ctx.status = 401;
    ctx.type = 'application/problem+json';
    ctx.body = UNAUTHORIZED;
    return;
  }
  await next();
});
const v1 = new Router({ prefix: '/api/v1' });
v1.post('/reports', ra.route(report)); // Location: /api/v1/jobs/<id>
v1.post('/users/:id/exports', ra.wrap(...wrapOf.koa));
// The same middleware, not wrapped: what it answers directly.
v1.post('/direct/users/:id/exports', koaExport);
v1.use(ra.routes()); // GET|DELETE /api/v1/jobs/:id, GET /api/v1/jobs/:id/events
app.use(v1.routes());
app.use((ctx) => {
  ctx.status = 404;
  ctx.type = 'application/problem+json';
  ctx.body = NOT_FOUND;
});

const server = app.listen(0, '127.0.0.1', () => {
  announce(server.address().port, async () => {
    server.close();
    server.closeAllConnections();
    await jobs.close({ timeoutMs: 2000 });
  });
});
