// Fastify example: POST /reports runs the `report` job; status, cancel and events under /jobs. Scoped by X-User.
// Run: npx tsx examples/fastify.ts   (PORT, STORE, LEASE_MS, WEBHOOK_SECRET, WEBHOOK_ALLOW_ORIGINS, ADMIN_TOKEN)
import Fastify, { type FastifyRequest } from 'fastify';
import { respondAsync } from '../src/fastify.js';
import { adminFromEnv } from './admin.js';
import { otelFromEnv } from './otel.js';
import { createDemo, NOT_FOUND, port, reportInput, shutdownOnSignal, userOf, webhooksFromEnv } from './report.js';

await otelFromEnv();

const { jobs, report } = await createDemo();
// forceCloseConnections: shutdown does not wait for event-stream clients.
const app = Fastify({ forceCloseConnections: true });
const ra = respondAsync(jobs, {
  basePath: '/jobs',
  owner: (req) => userOf(req.headers['x-user']),
  webhooks: webhooksFromEnv(),
});

await app.register(ra.plugin);
// The operator dashboard at /admin, when ADMIN_TOKEN is set (examples/admin.ts).
const admin = adminFromEnv<FastifyRequest>((req) => req.headers.authorization);
if (admin) await app.register(ra.admin(admin), { prefix: '/admin' });
app.post('/reports', ra.route(report, { input: (_req, snapshot) => reportInput(snapshot) }));
// Anything no route answered: 404 problem+json.
app.setNotFoundHandler((_request, reply) => reply.code(404).type('application/problem+json').send(NOT_FOUND));

await app.listen({ port, host: '0.0.0.0' });
console.log(`fastify example on http://127.0.0.1:${port}`);
shutdownOnSignal(async () => {
  await app.close();
  await jobs.close({ timeoutMs: 5000 });
});
