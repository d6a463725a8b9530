// respond-async/postgres: the PostgreSQL JobStore. Needs the `pg` package (an optional peer dependency).
export { PostgresStore, type PostgresStoreOptions } from './stores/postgres.js';
