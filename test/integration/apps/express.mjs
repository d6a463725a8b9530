// An Express 5 API as it exists before respond-async: helmet, cors, compression, a global JSON parser, an auth
// middleware, its own `/jobs/:slug` route, and an `/api/v1` router, where one route runs as a job and one existing
// handler is wrapped; the operator's dashboard at `/ops`.
import compression from 'compression';
import cors from 'cors';
import express from 'express';
import helmet from 'helmet';
import { respondAsync } from 'respond-async/express';
import { expressExport, opsOnly, wrapOf } from './handlers.mjs';
import { announce, createAppJobs, NOT_FOUND, UNAUTHORIZED, userOf } from './jobs.mjs';

const { jobs, report } = await createAppJobs();
const ra = respondAsync(jobs, { owner: (req) => req.user, maxBodyBytes: 50_000 });
const app = express();
app.use(helmet());
app.use(cors({ exposedHeaders: ['Location', 'Retry-After'] }));
app.use(compression());
app.use('/ops', ra.admin({ authorize: (req) => opsOnly(userOf(req.get('x-user'))) }));
app.use(express.json({ limit: '100kb' }));
// The app's own route under /jobs: respond-async does not take it.
app.get('/jobs/:slug', (req, res) => void res.json({ page: req.params.slug }));

const api = express.Router();
api.use((req, res, next) => {
  req.user = userOf(req.get('x-user'));
  if (req.user === null) return void res.status(401).type('application/problem+json').send(UNAUTHORIZED);
  next();
});
api.post('/reports', ra.route(report));
api.post('/users/:id/exports', ra.wrap(...wrapOf.express));
// The same handler, not wrapped: what it answers directly.
api.post('/direct/users/:id/exports', expressExport);
api.use(ra.routes());
app.use('/api/v1', api);

app.use((_req, res) => void res.status(404).type('application/problem+json').send(NOT_FOUND));
app.use(ra.errors());

const server = app.listen(0, '127.0.0.1', () => {
  announce(server.address().port, async () => {
    server.close();
    server.closeAllConnections();
    await jobs.close({ timeoutMs: 2000 });
  });
});
