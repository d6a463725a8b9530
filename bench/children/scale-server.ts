// The scale benchmark's HTTP server (bench/scale.ts), in its own process: `POST /reports` wrapped by respond-async
// on a SQLite or PostgreSQL store, API-only (`worker: false`: no job runs here and nothing purges on its own), with
// the caller's `X-User` as the owner, so that `GET /jobs/{id}` and `GET /jobs` (the caller's list) are owner-scoped
// as in the examples. Asked to `purge`, it runs the store's purgeExpired() here, beside the accept path.
//
// argv: <sqlite|postgres>   env: BENCH_PG_URL, BENCH_SCHEMA, BENCH_SQLITE_PATH, BENCH_SCALE_QUOTA
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { JobStore } from '../../src/index.js';
import { main, send } from '../lib/ipc.js';
import { loadCore, loadExpress, loadPostgres, loadSqlite } from '../lib/src.js';

const [kind] = process.argv.slice(2);

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

async function makeStore(): Promise<JobStore> {
  if (kind === 'sqlite') {
    const { SqliteStore } = await loadSqlite();
    return new SqliteStore({ path: required('BENCH_SQLITE_PATH') });
  }
  const { PostgresStore } = await loadPostgres();
  return new PostgresStore({ connectionString: required('BENCH_PG_URL'), schema: required('BENCH_SCHEMA') });
}

main(
  async () => {
    const { createJobs } = await loadCore();
    const { respondAsync } = await loadExpress();
    const store = await makeStore();
    const jobs = createJobs({ store, worker: false });
    const job = jobs.define('bench', async () => ({ ok: true }));
    await jobs.ready();
    const app = express();
    app.use(express.json());
    // BENCH_SCALE_QUOTA=off: no per-owner quota, so no count of the owner's jobs on each submit.
    const limits = process.env.BENCH_SCALE_QUOTA === 'off' ? { perOwner: Number.POSITIVE_INFINITY } : undefined;
    const ra = respondAsync(jobs, { basePath: '/jobs', owner: (req) => req.get('x-user') ?? null, limits });
    app.post('/reports', ra.route(job));
    app.use(ra.routes());
    const server = await new Promise<Server>((resolve) => {
      const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
    });
    process.on('message', (message: { type: string }) => {
      if (message.type !== 'purge') return;
      const startedAt = Date.now();
      store.purgeExpired().then(
        (count) => send({ type: 'purged', count, startedAt, endedAt: Date.now() }),
        (error: unknown) => send({ type: 'error', message: String(error) }),
      );
    });
    process.once('SIGTERM', () => process.exit(0));
    send({ type: 'ready', port: (server.address() as AddressInfo).port });
  },
  { exit: false },
);
