// A Fastify 5 API as it exists before respond-async: helmet, cors, compress, an auth hook, its own `/jobs/:slug` route,
// and routes registered under the prefix `/api/v1`, where one route runs as a job and one existing handler is
// wrapped; the operator's dashboard at `/ops`.
import compress from '@fastify/compress';
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import Fastify from 'fastify';
import { respondAsync } from 'respond-async/fastify';
import { fastifyExport, opsOnly, wrapOf } from './handlers.mjs';
import { announce, createAppJobs, NOT_FOUND, UNAUTHORIZED, userOf } from './jobs.mjs';

const { jobs, report } = await createAppJobs();
const app = Fastify({ forceCloseConnections: true });
await app.register(helmet);
await app.register(cors, { exposedHeaders: ['Location', 'Retry-After'] });
await app.register(compress);
app.get('/jobs/:slug', async (request) => ({ page: request.params.slug }));

const ra = respondAsync(jobs, { owner: (request) => request.user, maxBodyBytes: 50_000 });
await app.register(
  async (api) => {
    api.addHook('onRequest', async (request, reply) => {
      request.user = userOf(request.headers['x-user']);
      if (request.user === null) return reply.code(401).type('application/problem+json').send(UNAUTHORIZED);
    });
    await api.register(ra.plugin);
    api.post('/reports', ra.route(report));
    api.post('/users/:id/exports', ra.wrap(...wrapOf.fastify));
    // The same handler, not wrapped: what it answers directly.
    api.post('/direct/users/:id/exports', fastifyExport);
  },
  { prefix: '/api/v1' },
);
await app.register(ra.admin({ authorize: (request) => opsOnly(userOf(request.headers['x-user'])) }), {
  prefix: '/ops',
});
app.setNotFoundHandler((_request, reply) => reply.code(404).type('application/problem+json').send(NOT_FOUND));

await app.listen({ port: 0, host: '127.0.0.1' });
announce(app.server.address().port, async () => {
  await app.close();
  await jobs.close({ timeoutMs: 2000 });
});
