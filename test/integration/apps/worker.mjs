// The worker process of the integration apps: runs `report` jobs from STORE until SIGTERM.
import { createAppJobs } from './jobs.mjs';

const { jobs } = await createAppJobs();
await jobs.start();
process.stdout.write('worker started\n');
process.once('SIGTERM', () => void jobs.close({ timeoutMs: 2000 }));
