// The worker process of the integration apps: runs `report` jobs from STORE, and the jobs of the app's wrapped
// handler (FRAMEWORK), registered by wrapping the same handler under the same name, until SIGTERM.
import { wrapOf } from './handlers.mjs';
import { createAppJobs } from './jobs.mjs';

const { jobs } = await createAppJobs();
const framework = process.env.FRAMEWORK;
if (framework) {
  const { respondAsync } = await import(`respond-async/${framework}`);
  const [handler, options] = wrapOf[framework];
  respondAsync(jobs).wrap(handler, options); // the route handler it returns stays unmounted
}
await jobs.start();
process.stdout.write('worker started\n');
process.once('SIGTERM', () => void jobs.close({ timeoutMs: 2000 }));
