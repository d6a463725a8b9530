// Express example: POST /reports runs the `report` job; status, cancel and events under /jobs. Scoped by X-User.
// Run: npx tsx examples/express.ts   (PORT, STORE, WEBHOOK_SECRET, WEBHOOK_ALLOW_ORIGINS)
import express from 'express';
import { respondAsync } from '../src/express.js';
import { createDemo, port, reportInput, shutdownOnSignal, userOf, webhooksFromEnv } from './report.js';

const { jobs, report } = await createDemo();
const app = express();
const ra = respondAsync(jobs, {
  basePath: '/jobs',
  owner: (req) => userOf(req.headers['x-user']),
  webhooks: webhooksFromEnv(),
});

app.post('/reports', ra.route(report, { input: (_req, snapshot) => reportInput(snapshot) }));
app.use(ra.routes());

const server = app.listen(port, () => console.log(`express example on http://127.0.0.1:${port}`));
shutdownOnSignal(async () => {
  server.close();
  await jobs.close({ timeoutMs: 5000 });
});
