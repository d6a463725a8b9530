// Worker-only example: runs the jobs of the three examples (`report` and `export-express|fastify|koa`) from the
// same STORE, serves no HTTP, and stays up until SIGTERM. Start the API processes with WORKER=false next to it.
// Run: STORE=sqlite:jobs.db npx tsx examples/worker.ts   (STORE, LEASE_MS)
import { respondAsync as expressAdapter } from '../src/express.js';
import { respondAsync as fastifyAdapter } from '../src/fastify.js';
import { respondAsync as koaAdapter } from '../src/koa.js';
import { expressExport, fastifyExport, koaExport } from './exports.js';
import { createDemo, shutdownOnSignal } from './report.js';

const { jobs } = await createDemo({ worker: true });
// The same handlers under the same names as the API processes wrap them: `wrap` registers each job; the route
// handlers it returns are not mounted anywhere here.
expressAdapter(jobs).wrap(expressExport, { name: 'export-express' });
fastifyAdapter(jobs).wrap(fastifyExport, { name: 'export-fastify' });
koaAdapter(jobs).wrap(koaExport, { name: 'export-koa' });

await jobs.start();
console.log(`worker ${process.pid} runs: ${['report', 'export-express', 'export-fastify', 'export-koa'].join(', ')}`);
shutdownOnSignal(() => jobs.close({ timeoutMs: 5000 }));
