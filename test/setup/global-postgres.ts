// Vitest globalSetup: one embedded PostgreSQL server for the whole run, shared by every test file through
// `inject('pgUrl')` (and RESPOND_ASYNC_TEST_PG_URL for child processes). With RESPOND_ASYNC_TEST_PG_URL already
// set, that server is used instead and nothing is started.
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../helpers/embedded-postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** postgres:// URL of the test server; '' when it could not start (the reason is in pgError). */
    pgUrl: string;
    pgError: string;
  }
}

const ENV = 'RESPOND_ASYNC_TEST_PG_URL';

// embedded-postgres registers async-exit-hook, which calls process.exit(0) on 'beforeExit': that would make a run
// whose tests failed (vitest sets process.exitCode = 1, then lets the loop drain) exit 0. Keep vitest's code.
let exitCode: typeof process.exitCode;
process.on('beforeExit', () => {
  exitCode ??= process.exitCode;
});
process.on('exit', () => {
  if (exitCode !== undefined && exitCode !== 0 && !process.exitCode) process.exitCode = exitCode;
});

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const existing = process.env[ENV];
  if (existing) {
    project.provide('pgUrl', existing);
    project.provide('pgError', '');
    return undefined;
  }
  let server: Awaited<ReturnType<typeof startEmbeddedPostgres>>;
  try {
    // Test data need not survive a power cut; many test files and worker processes connect at once.
    server = await startEmbeddedPostgres({
      flags: ['-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'max_connections=400'],
    });
  } catch (error) {
    // Do not fail the whole run (most test files do not need PostgreSQL): the PostgreSQL tests report this.
    const reason = error instanceof Error ? error.message : String(error);
    console.warn(`[global-postgres] ${reason}`);
    project.provide('pgUrl', '');
    project.provide('pgError', reason);
    return undefined;
  }
  const { url } = server;
  process.env[ENV] = url;
  project.provide('pgUrl', url);
  project.provide('pgError', '');
  return async () => {
    await server.destroy();
    if (process.env[ENV] === url) delete process.env[ENV];
  };
}
