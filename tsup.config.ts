import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    express: 'src/express.ts',
    fastify: 'src/fastify.ts',
    koa: 'src/koa.ts',
    fetch: 'src/fetch.ts',
    sqlite: 'src/sqlite.ts',
    postgres: 'src/postgres.ts',
    client: 'src/client.ts',
    testing: 'src/testing/index.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: false,
  target: 'node20',
  splitting: true,
  treeshake: true,
  shims: true,
  external: ['express', 'fastify', 'koa', 'better-sqlite3', 'pg', 'fastify-plugin', 'light-my-request'],
});
