// An API-only process (`worker: false`) next to a worker process on one PostgreSQL schema: the API process hears
// the worker's changes through LISTEN/NOTIFY at once, not at its watchers' 5 s poll.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createJobs, type Jobs } from '../src/index.js';
import { PostgresStore } from '../src/postgres.js';
import { closeAdmin, pgUrl, schemas } from './helpers/postgres.js';

const fresh = schemas('split');
const runtimes: Jobs[] = [];
const quiet = { error: () => {}, warn: () => {} };

afterEach(async () => {
  for (const jobs of runtimes.splice(0)) await jobs.close();
});
afterAll(async () => {
  await fresh.dropAll();
  await closeAdmin();
});

/** An API process and a worker process (two runtimes, two pools) on one fresh schema, both ready. */
async function split(handler: (input: unknown, ctx: { progress(n: number): Promise<void> }) => Promise<unknown>) {
  const schema = fresh.next();
  const api = createJobs({
    store: new PostgresStore({ connectionString: pgUrl(), schema }),
    worker: false,
    logger: quiet,
  });
  const worker = createJobs({ store: new PostgresStore({ connectionString: pgUrl(), schema }), logger: quiet });
  runtimes.push(api, worker);
  api.define('quick', handler);
  worker.define('quick', handler);
  await api.ready();
  await worker.ready();
  return { api, worker };
}

describe('API-only process on PostgreSQL', () => {
  it('waitFor (what Prefer: wait uses) of a 10 ms job run by another process resolves well under the poll', async () => {
    const { api } = await split(async () => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      return { ok: true };
    });
    const { job } = await api.submit('quick', {});
    const started = performance.now();
    const done = await api.waitFor(job.id, 5000);
    const elapsed = performance.now() - started;
    expect(done).toMatchObject({ status: 'complete', result: { ok: true } });
    expect(elapsed).toBeLessThan(1000);
  });

  it('watch (what SSE uses) hears progress reported in the worker process at once', async () => {
    let finish!: () => void;
    const release = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const { api } = await split(async (_input, ctx) => {
      await ctx.progress(50);
      await release;
      return null;
    });
    const { job } = await api.submit('quick', {});
    const started = performance.now();
    const heard = await new Promise<number>((resolve) => {
      const stop = api.watch(job.id, (change) => {
        if (change && change.status === 'processing') {
          api.get(job.id).then(
            (latest) => {
              if (latest?.progress === 50) {
                stop();
                resolve(performance.now() - started);
              }
            },
            () => {},
          );
        }
      });
    });
    finish();
    expect(heard).toBeLessThan(1000);
  });
});
