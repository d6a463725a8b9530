// respond-async/sqlite: the SQLite JobStore (needs the optional peer dependency better-sqlite3).
export { SqliteStore, type SqliteStoreOptions } from './stores/sqlite.js';
