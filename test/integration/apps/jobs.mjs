// The jobs of the integration apps and of their worker process: the store from STORE, the `report` job.
// Copied into a scratch project that installed the packed tarball, so it imports `respond-async` as a user does.
import { createJobs } from 'respond-async';

/** The store named by STORE: `memory` (one process), `sqlite:<file>`, or `postgres://…#<schema>`. */
export async function storeFromEnv() {
  const spec = process.env.STORE ?? '';
  if (spec === 'memory') return undefined;
  if (spec.startsWith('sqlite:')) {
    const { SqliteStore } = await import('respond-async/sqlite');
    return new SqliteStore({ path: spec.slice('sqlite:'.length) });
  }
  const [connectionString, schema] = spec.split('#');
  const { PostgresStore } = await import('respond-async/postgres');
  return new PostgresStore({ connectionString, schema });
}

/** The runtime: `worker: false` for the API process (WORKER=false), the `report` job defined in both. */
export async function createAppJobs() {
  const jobs = createJobs({
    store: await storeFromEnv(),
    worker: process.env.WORKER !== 'false',
    pollIntervalMs: 100,
  });
  const report = jobs.define('report', async (input, ctx) => {
    const { steps = 3, stepMs = 50 } = input.body;
    for (let i = 1; i <= steps; i++) {
      await new Promise((resolve) => setTimeout(resolve, stepMs));
      if (ctx.signal.aborted) return { canceled: true };
      await ctx.progress((100 * i) / steps);
    }
    return { user: ctx.owner, steps };
  });
  return { jobs, report };
}

/** The app's authentication: the user from `X-User`, or 401 problem+json without one. */
export function userOf(header) {
  return typeof header === 'string' && /^[\w-]{1,64}$/.test(header) ? header : null;
}

export const UNAUTHORIZED = { type: 'about:blank', title: 'Unauthorized', status: 401, code: 'APP_UNAUTHORIZED' };
export const NOT_FOUND = { type: 'about:blank', title: 'Not Found', status: 404, code: 'APP_NOT_FOUND' };

/** Tell the test which port the app listens on, and close on SIGTERM. */
export function announce(port, close) {
  process.stdout.write(`listening ${port}\n`);
  process.once('SIGTERM', () => void close().then(() => process.exit(0)));
}
