// Koa example: POST /reports runs the `report` job; status, cancel and events under /jobs. Scoped by X-User.
// Run: npx tsx examples/koa.ts   (PORT, STORE, LEASE_MS, WEBHOOK_SECRET, WEBHOOK_ALLOW_ORIGINS, ADMIN_TOKEN)
import Koa, { type Context } from 'koa';
import { respondAsync } from '../src/koa.js';
import { adminFromEnv } from './admin.js';
import { koaExport } from './exports.js';
import { otelFromEnv } from './otel.js';
import {
  createDemo,
  NOT_FOUND,
  port,
  ReportBody,
  reportInput,
  reportOpenApi,
  shutdownOnSignal,
  userOf,
  webhooksFromEnv,
} from './report.js';

await otelFromEnv();

const { jobs, report } = await createDemo();
const app = new Koa();
const ra = respondAsync(jobs, {
  basePath: '/jobs',
  owner: (ctx) => userOf(ctx.headers['x-user']),
  webhooks: webhooksFromEnv(),
});

app.use(ra.routes());
// The body is validated by its schema (400 problem+json with `errors`), then turned into the job input.
app.use(
  ra.post('/reports', report, { schema: { body: ReportBody }, input: (_ctx, snapshot) => reportInput(snapshot) }),
);
app.use((ctx, next) => {
  if (ctx.method !== 'GET' || ctx.path !== '/openapi.json') return next();
  ctx.body = reportOpenApi(report, 'export-koa');
});
// An ordinary middleware, wrapped unchanged: 202 here, run as job `export-koa` (here or by examples/worker.ts).
const exportRoute = ra.wrap(koaExport, { name: 'export-koa' });
app.use((ctx, next) => (ctx.method === 'POST' && ctx.path === '/exports' ? exportRoute(ctx, next) : next()));
// The operator dashboard at /admin, when ADMIN_TOKEN is set (examples/admin.ts).
const admin = adminFromEnv<Context>((ctx) => ctx.get('authorization') || undefined);
if (admin) app.use(ra.admin({ ...admin, path: '/admin' }));
// Anything no route answered: 404 problem+json.
app.use((ctx) => {
  ctx.status = 404;
  ctx.type = 'application/problem+json';
  ctx.body = NOT_FOUND;
});

const server = app.listen(port, () => console.log(`koa example on http://127.0.0.1:${port}`));
shutdownOnSignal(async () => {
  server.close();
  await jobs.close({ timeoutMs: 5000 });
});
