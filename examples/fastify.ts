// Fastify example: POST /reports runs the `report` job; status, cancel and events under /jobs. Scoped by X-User.
// Run: npx tsx examples/fastify.ts   (PORT, STORE, LEASE_MS, WEBHOOK_SECRET, WEBHOOK_ALLOW_ORIGINS, ADMIN_TOKEN)
import swagger from '@fastify/swagger';
import Fastify, { type FastifyRequest } from 'fastify';
import { respondAsync } from '../src/fastify.js';
import { adminFromEnv } from './admin.js';
import { fastifyExport } from './exports.js';
import { otelFromEnv } from './otel.js';
import {
  createDemo,
  NOT_FOUND,
  port,
  ReportBody,
  ReportResult,
  reportInput,
  shutdownOnSignal,
  userOf,
  webhooksFromEnv,
} from './report.js';

await otelFromEnv();

const { jobs, report } = await createDemo();
// forceCloseConnections: shutdown does not wait for event-stream clients.
const app = Fastify({ forceCloseConnections: true });
const ra = respondAsync(jobs, {
  basePath: '/jobs',
  owner: (req) => userOf(req.headers['x-user']),
  webhooks: webhooksFromEnv(),
});

// @fastify/swagger lists the wrapped route and the status endpoints from their route schemas (documentation only).
await app.register(swagger, {
  openapi: { openapi: '3.1.0', info: { title: 'respond-async example', version: '1.0.0' } },
});
app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
await app.register(ra.plugin);
// The operator dashboard at /admin, when ADMIN_TOKEN is set (examples/admin.ts).
const admin = adminFromEnv<FastifyRequest>((req) => req.headers.authorization);
if (admin) await app.register(ra.admin(admin), { prefix: '/admin' });
// The body is validated by its schema (400 problem+json with `errors`), then turned into the job input.
const schema = { body: ReportBody, result: ReportResult };
app.post('/reports', ra.route(report, { schema, input: (_req, snapshot) => reportInput(snapshot) }));
// An ordinary handler, wrapped unchanged: 202 here, run as job `export-fastify` (here or by examples/worker.ts).
app.post('/exports', ra.wrap(fastifyExport, { name: 'export-fastify' }));
// Anything no route answered: 404 problem+json.
app.setNotFoundHandler((_request, reply) => reply.code(404).type('application/problem+json').send(NOT_FOUND));

await app.listen({ port, host: '0.0.0.0' });
console.log(`fastify example on http://127.0.0.1:${port}`);
shutdownOnSignal(async () => {
  await app.close();
  await jobs.close({ timeoutMs: 5000 });
});
