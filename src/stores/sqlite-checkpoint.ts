// SqliteStore's background checkpointer: a worker thread with a connection of its own that copies the WAL into the
// database file, so that the writes and fsyncs of a checkpoint do not block the event loop of the store's process.
import { Worker } from 'node:worker_threads';

/**
 * The worker's code (CommonJS, run with `eval`, so that the package ships no extra entry point). A PASSIVE
 * checkpoint waits for no reader or writer: it copies what it can and returns, and the next one picks up the rest.
 * A failed round (the file busy with another process's checkpoint, a transient I/O error) is retried next round.
 */
const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { timeout: 0, fileMustExist: true });
const round = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {}
};
const timer = setInterval(round, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
parentPort.postMessage('ready');
`;

/** A running checkpointer; `stop()` closes its connection and ends the thread. */
export interface Checkpointer {
  stop(): Promise<void>;
}

/**
 * Start checkpointing the WAL of the database at `path` every `intervalMs` on a worker thread. `driver` is the
 * resolved path of better-sqlite3 (the worker loads the same build). Resolves once the worker's connection is open;
 * rejects when it cannot start (the caller then leaves checkpoints to SQLite, inline on commit).
 */
export function startCheckpointer(path: string, driver: string, intervalMs: number): Promise<Checkpointer> {
  // No flags of this process (execArgv): `--input-type=module` would make the code above an ES module, and loaders
  // or hooks have nothing to do in a thread that only loads better-sqlite3.
  const worker = new Worker(WORKER_CODE, { eval: true, execArgv: [], workerData: { path, driver, intervalMs } });
  // The thread never keeps the process alive: a process that ends without close() loses nothing (SQLite
  // checkpoints on the next open, and inline past wal_autocheckpoint meanwhile).
  worker.unref();
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', () => {
      worker.off('error', reject);
      // A later error (the thread crashed) ends its checkpoints; inline autocheckpoints carry on as the safety net.
      worker.on('error', () => {});
      resolve({
        async stop() {
          // Referenced again so that the process waits for the thread to close its connection.
          worker.ref();
          worker.postMessage('stop');
          await exited;
        },
      });
    });
    void exited.then(() => reject(new Error('the checkpoint worker ended before it was ready')));
  });
}
