// An Express app that wraps a handler without `light-my-request` installed: prints the job's status document once it
// ends, and what the runtime logged, as one JSON line.
import express from 'express';
import { createJobs } from 'respond-async';
import { respondAsync } from 'respond-async/express';

const logged = [];
const log = (...args) => void logged.push(args.map((a) => `${a?.code ?? ''} ${a?.message ?? a}`).join(' '));
const jobs = createJobs({ pollIntervalMs: 50, logger: { error: log, warn: log } });
const ra = respondAsync(jobs);
const app = express();
app.post(
  '/exports',
  ra.wrap((_req, res) => void res.status(201).json({ ok: true }), { name: 'export' }),
);
app.use(ra.routes());
const server = app.listen(0, '127.0.0.1', async () => {
  const origin = `http://127.0.0.1:${server.address().port}`;
  const { statusUrl } = await (await fetch(`${origin}/exports`, { method: 'POST' })).json();
  let doc;
  for (let i = 0; i < 100; i++) {
    doc = await (await fetch(`${origin}${statusUrl}`)).json();
    if (doc.status === 'failed' || doc.status === 'complete') break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  process.stdout.write(`${JSON.stringify({ doc, logged })}\n`);
  server.close();
  await jobs.close({ timeoutMs: 500 });
});
