// Where the benchmark's children load respond-async from: BENCH_SRC, which run.ts, ab.ts and profile.ts set to the
// build of the measured tree (bench/lib/build.ts), or `src/` of this checkout when a child is run by hand.
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT_DIR } from './child.js';

/** Read at the first load, not at import: bench/profile-drain.ts sets BENCH_SRC to the build after importing this. */
function dir(): string {
  const src = process.env.BENCH_SRC;
  if (!src) return join(ROOT_DIR, 'src');
  return isAbsolute(src) ? src : resolve(ROOT_DIR, src);
}

function load<T>(file: string): Promise<T> {
  return import(pathToFileURL(join(dir(), file)).href) as Promise<T>;
}

export const loadCore = () => load<typeof import('../../src/index.js')>('index.js');
export const loadSqlite = () => load<typeof import('../../src/sqlite.js')>('sqlite.js');
export const loadPostgres = () => load<typeof import('../../src/postgres.js')>('postgres.js');
export const loadExpress = () => load<typeof import('../../src/express.js')>('express.js');
export const loadFastify = () => load<typeof import('../../src/fastify.js')>('fastify.js');
export const loadKoa = () => load<typeof import('../../src/koa.js')>('koa.js');
