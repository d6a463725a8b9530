// Express example: POST /reports runs the `report` job; status, cancel and events under /jobs. Scoped by X-User.
// Run: npx tsx examples/express.ts   (PORT, STORE, LEASE_MS, WEBHOOK_SECRET, WEBHOOK_ALLOW_ORIGINS, ADMIN_TOKEN)
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import express from 'express';
import { respondAsync } from '../src/express.js';
import { adminFromEnv } from './admin.js';
import { expressExport } from './exports.js';
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
const app = express();
const ra = respondAsync(jobs, {
  basePath: '/jobs',
  owner: (req) => userOf(req.headers['x-user']),
  webhooks: webhooksFromEnv(),
});

// The body is validated by its schema (400 problem+json with `errors`), then turned into the job input.
app.post(
  '/reports',
  ra.route(report, { schema: { body: ReportBody }, input: (_req, snapshot) => reportInput(snapshot) }),
);
// An ordinary handler, wrapped unchanged: 202 here, run as job `export-express` (here or by examples/worker.ts).
app.post('/exports', ra.wrap(expressExport, { name: 'export-express' }));
app.use(ra.routes());
app.get('/openapi.json', (_req, res) => void res.json(reportOpenApi(report, 'export-express')));
// The operator dashboard at /admin, when ADMIN_TOKEN is set (examples/admin.ts).
const admin = adminFromEnv<express.Request>((req) => req.get('authorization'));
if (admin) app.use('/admin', ra.admin(admin));

// The demo page at / (examples/public) and the client library as an ES module, built once at startup.
const client = await build({
  entryPoints: [fileURLToPath(new URL('../src/client.ts', import.meta.url))],
  bundle: true,
  format: 'esm',
  write: false,
});
app.get('/client.js', (_req, res) => void res.type('text/javascript').send(client.outputFiles[0].text));
app.use(express.static(fileURLToPath(new URL('./public', import.meta.url))));
// Anything no route answered: 404 problem+json; body-parser errors before a wrapped route, as problem+json too.
app.use((_req, res) => void res.status(404).type('application/problem+json').send(JSON.stringify(NOT_FOUND)));
app.use(ra.errors());

const server = app.listen(port, () => console.log(`express example on http://127.0.0.1:${port}`));
shutdownOnSignal(async () => {
  server.close();
  await jobs.close({ timeoutMs: 5000 });
});
