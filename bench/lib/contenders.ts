// The queue contenders behind one interface: respond-async's runtime (memory, SQLite, PostgreSQL stores),
// graphile-worker and pg-boss. Each is opened either as a submitter only (no worker) or as a worker with a
// given concurrency whose handler calls `onRun(payload)` first thing and otherwise does nothing.
import { Logger as GraphileLogger, makeWorkerUtils, run as runGraphile } from 'graphile-worker';
import { PgBoss } from 'pg-boss';
import type { JobStore } from '../../src/index.js';
import { loadCore, loadPostgres, loadSqlite } from './src.js';

export type ContenderKind =
  | 'respond-async:memory'
  | 'respond-async:sqlite'
  | 'respond-async:postgres'
  | 'graphile-worker'
  | 'pg-boss'
  | 'pg-boss:batch';

export interface Payload {
  /** Monotonic ms at submit (latency section). */
  t?: number;
  i?: number;
}

export interface OpenOptions {
  /** PostgreSQL URL (PostgreSQL contenders). */
  url?: string;
  /** Schema of this run; a fresh one per run. */
  schema?: string;
  /** SQLite file (respond-async:sqlite). */
  sqlitePath?: string;
  /** Run jobs in this process with this concurrency; 0 = submit only. */
  concurrency: number;
  onRun?: (payload: Payload) => void;
}

export interface Contender {
  submit(payload: Payload): Promise<void>;
  /** SQL counting the jobs not yet finished, or undefined for a store that SQL cannot read. */
  readonly remainingSql?: string;
  /** Jobs not yet finished, asked in-process (memory). */
  remaining?(): Promise<number>;
  close(): Promise<void>;
}

/** graphile-worker logs every job at `info`; respond-async and pg-boss log nothing per job, so keep warnings only. */
const quietGraphileLogger = new GraphileLogger(() => (level, message) => {
  if (level === 'error' || level === 'warning') console.error(`[graphile-worker] ${message}`);
});

function need(value: string | undefined, name: string): string {
  if (!value) throw new Error(`${name} is required`);
  return value;
}

export async function openContender(kind: ContenderKind, options: OpenOptions): Promise<Contender> {
  const onRun = options.onRun ?? (() => {});
  switch (kind) {
    case 'respond-async:memory':
    case 'respond-async:sqlite':
    case 'respond-async:postgres': {
      const { createJobs, MemoryStore } = await loadCore();
      let store: JobStore;
      let remainingSql: string | undefined;
      if (kind === 'respond-async:memory') {
        store = new MemoryStore({ maxJobs: 10_000_000, maxBytes: Number.POSITIVE_INFINITY });
      } else if (kind === 'respond-async:sqlite') {
        const { SqliteStore } = await loadSqlite();
        store = new SqliteStore({ path: need(options.sqlitePath, 'sqlitePath') });
      } else {
        const { PostgresStore } = await loadPostgres();
        const schema = need(options.schema, 'schema');
        store = new PostgresStore({ connectionString: need(options.url, 'url'), schema });
        remainingSql = `SELECT count(*)::int AS n FROM "${schema}".jobs WHERE status IN ('queued', 'processing')`;
      }
      const worker = options.concurrency > 0;
      const jobs = createJobs({ store, worker, concurrency: worker ? options.concurrency : undefined });
      let unfinished = 0;
      const job = jobs.define('noop', async (payload: Payload) => {
        onRun(payload);
      });
      if (kind === 'respond-async:memory') {
        // The memory store cannot be read from outside: count completions as the store records them.
        const complete = store.complete.bind(store);
        store.complete = async (...args) => {
          const record = await complete(...args);
          if (record) unfinished -= 1;
          return record;
        };
      }
      await jobs.ready();
      return {
        remainingSql,
        remaining: kind === 'respond-async:memory' ? async () => unfinished : undefined,
        submit: async (payload) => {
          await jobs.submit(job, payload);
          unfinished += 1;
        },
        close: () => jobs.close({ timeoutMs: 5000 }),
      };
    }
    case 'graphile-worker': {
      const connectionString = need(options.url, 'url');
      const schema = need(options.schema, 'schema');
      const remainingSql = `SELECT count(*)::int AS n FROM "${schema}"._private_jobs`;
      if (options.concurrency > 0) {
        // Defaults otherwise: no local queue, no completion batching ("without batching").
        const runner = await runGraphile({
          connectionString,
          schema,
          concurrency: options.concurrency,
          noHandleSignals: true,
          logger: quietGraphileLogger,
          taskList: {
            noop: async (payload) => {
              onRun(payload as Payload);
            },
          },
        });
        return {
          remainingSql,
          submit: async (payload) => {
            await runner.addJob('noop', payload);
          },
          close: () => runner.stop(),
        };
      }
      const utils = await makeWorkerUtils({ connectionString, schema, logger: quietGraphileLogger });
      await utils.migrate();
      return {
        remainingSql,
        submit: async (payload) => {
          await utils.addJob('noop', payload);
        },
        close: async () => {
          await utils.release();
        },
      };
    }
    case 'pg-boss':
    case 'pg-boss:batch': {
      const schema = need(options.schema, 'schema');
      const boss = new PgBoss({ connectionString: need(options.url, 'url'), schema, useListenNotify: true });
      boss.on('error', (error) => console.error('[pg-boss]', error));
      await boss.start();
      if (!(await boss.getQueue('noop'))) {
        await boss.createQueue('noop', { notify: true }).catch(async (error: unknown) => {
          // Another process (the latency section's worker) may have created it meanwhile.
          if (!(await boss.getQueue('noop'))) throw error;
        });
      }
      if (options.concurrency > 0) {
        if (kind === 'pg-boss') {
          // One job per fetch, `concurrency` workers; NOTIFY wakes idle workers, 0.5 s is the shortest poll.
          await boss.work(
            'noop',
            { localConcurrency: options.concurrency, batchSize: 1, pollingIntervalSeconds: 0.5 },
            async ([job]) => {
              onRun(job.data as Payload);
            },
          );
        } else {
          // pg-boss's high-throughput shape: one worker fetching `concurrency` jobs at a time, completing
          // them in one statement, and fetching again at once while batches come back full.
          await boss.work(
            'noop',
            { batchSize: options.concurrency, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 },
            async (batch) => {
              await Promise.all(batch.map(async (job) => onRun(job.data as Payload)));
            },
          );
        }
      }
      return {
        remainingSql: `SELECT count(*)::int AS n FROM "${schema}".job WHERE state IN ('created', 'retry', 'active')`,
        submit: async (payload) => {
          await boss.send('noop', payload as object);
        },
        close: () => boss.stop({ graceful: true, timeout: 5000 }),
      };
    }
  }
}
