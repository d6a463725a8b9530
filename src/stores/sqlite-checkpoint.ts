// SqliteStore's background checkpointer: a worker thread with a connection of its own that copies the WAL into the
// database file, so that the writes and fsyncs of a checkpoint do not block the event loop of the store's process.
import { Worker } from 'node:worker_threads';

/**
 * The worker's code (CommonJS, run with `eval`, so that the package ships no extra entry point). A PASSIVE
 * checkpoint waits for no reader or writer: it copies what it can and returns, and the next one picks up the rest.
 * A failed round (the file busy with another process's checkpoint, a transient I/O error) is retried next round.
 *
 * Only a complete checkpoint lets the WAL start over, and under a steady stream of commits a pass never is (commits
 * land while it copies), so the WAL grows until a commit finds it at wal_autocheckpoint and checkpoints inline, on
 * the event loop, copying whatever this thread has not. Once the WAL holds `hurryFrames`, passes therefore follow
 * each other without the pause while commits keep coming: the commit at the limit then finds little left to copy,
 * or this thread holding the checkpoint lock, and SQLite skips its inline checkpoint (it never waits for that lock).
 * On a large file this is what keeps the inline checkpoint short: its pages lie scattered and each costs a write.
 */
const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { timeout: 0, fileMustExist: true });
let frames = -1;
const round = () => {
  try {
    for (let pass = 0; pass < 20; pass++) {
      const [{ busy, log }] = db.pragma('wal_checkpoint(PASSIVE)');
      const more = busy === 0 && log >= workerData.hurryFrames && log !== frames;
      frames = log;
      if (!more) return;
    }
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
 * Start checkpointing the WAL of the database at `path` every `intervalMs` on a worker thread, and pass after pass
 * while the WAL holds `hurryFrames` or more. `driver` is the resolved path of better-sqlite3 (the worker loads the
 * same build). Resolves once the worker's connection is open; rejects when it cannot start (the caller then leaves
 * checkpoints to SQLite, inline on commit).
 */
export function startCheckpointer(
  path: string,
  driver: string,
  intervalMs: number,
  hurryFrames: number,
): Promise<Checkpointer> {
  // No flags of this process (execArgv): `--input-type=module` would make the code above an ES module, and loaders
  // or hooks have nothing to do in a thread that only loads better-sqlite3.
  const worker = new Worker(WORKER_CODE, {
    eval: true,
    execArgv: [],
    workerData: { path, driver, intervalMs, hurryFrames },
  });
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
