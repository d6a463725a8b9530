// Several worker processes on one PostgreSQL schema: nothing lost, nothing run twice while leases hold, a
// SIGKILLed worker's jobs recovered by the others, and jobs surviving a worker's death.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createJobs, type Jobs } from '../src/index.js';
import { PostgresStore } from '../src/postgres.js';
import { adminQuery, closeAdmin, eventually, pgUrl, schemas } from './helpers/postgres.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fresh = schemas('pgmulti');

interface Worker {
  child: ChildProcess;
  pid: number;
  workerId: string;
  exited: Promise<void>;
}

const children: Worker[] = [];
const runtimes: Jobs[] = [];

function startWorker(schema: string, options: { leaseMs: number; concurrency?: number }): Promise<Worker> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'test/fixtures/pg-worker.ts',
      pgUrl(),
      schema,
      String(options.leaseMs),
      String(options.concurrency ?? 4),
      '200',
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    let stdout = '';
    const onData = (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /READY (\d+) (\S+)/.exec(stdout);
      if (match) {
        child.stdout!.off('data', onData);
        const worker = { child, pid: Number(match[1]), workerId: match[2], exited };
        children.push(worker);
        resolve(worker);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`worker exited (${code}) before ready: ${stderr}`)));
    setTimeout(() => reject(new Error(`worker not ready in 20 s: ${stderr}`)), 20_000).unref();
  });
}

async function kill(worker: Worker, signal: NodeJS.Signals): Promise<void> {
  worker.child.kill(signal);
  await worker.exited;
}

/** A fresh schema with its tables and the side table where workers record executions; an API-only runtime. */
async function setup() {
  const schema = fresh.next();
  const store = new PostgresStore({ connectionString: pgUrl(), schema, listen: false });
  const api = createJobs({ store, worker: false });
  runtimes.push(api);
  const work = api.define('work', async () => undefined);
  await api.ready();
  await adminQuery(
    `CREATE TABLE "${schema}".executions (job_id text NOT NULL, pid integer NOT NULL, attempt integer NOT NULL,
      at timestamptz NOT NULL DEFAULT clock_timestamp())`,
  );
  const submit = async (count: number, sleepMs: number): Promise<string[]> => {
    const ids: string[] = [];
    for (let i = 0; i < count; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, count - i) }, () => api.submit(work, { sleepMs })),
      );
      ids.push(...batch.map((r) => r.job.id));
    }
    return ids;
  };
  const statuses = async () => {
    const rows = await adminQuery<{ status: string; n: number }>(
      `SELECT status, count(*)::int AS n FROM "${schema}".jobs GROUP BY status`,
    );
    return Object.fromEntries(rows.map((r) => [r.status, r.n])) as Record<string, number>;
  };
  const executions = async () =>
    adminQuery<{ job_id: string; runs: number; pids: number[] }>(
      `SELECT job_id, count(*)::int AS runs, array_agg(pid ORDER BY at) AS pids
       FROM "${schema}".executions GROUP BY job_id`,
    );
  return { schema, store, submit, statuses, executions };
}

afterEach(async () => {
  await Promise.allSettled(children.splice(0).map((w) => kill(w, 'SIGKILL')));
  await Promise.allSettled(runtimes.splice(0).map((jobs) => jobs.close({ timeoutMs: 100 })));
});

afterAll(async () => {
  await fresh.dropAll();
  await closeAdmin();
});

describe('PostgresStore with several worker processes', () => {
  it('runs 1,000 jobs on three processes: none lost, none run twice', async () => {
    const { schema, submit, statuses, executions } = await setup();
    const workers = await Promise.all([1, 2, 3].map(() => startWorker(schema, { leaseMs: 30_000 })));
    const started = Date.now();
    const ids = await submit(1000, 2);
    await eventually(async () => (await statuses()).complete === 1000, 45_000, 100);
    const elapsed = Date.now() - started;
    const runs = await executions();
    const duplicates = runs.filter((r) => r.runs > 1).length;
    const perProcess = workers.map((w) => runs.filter((r) => r.pids[0] === w.pid).length);
    console.log(
      `1000 jobs on 3 processes in ${elapsed} ms; per process ${perProcess.join('/')}; duplicates ${duplicates}`,
    );
    expect(new Set(runs.map((r) => r.job_id))).toEqual(new Set(ids));
    expect(duplicates).toBe(0);
    expect(perProcess.every((n) => n > 0)).toBe(true);
    await Promise.all(workers.map((w) => kill(w, 'SIGTERM')));
  }, 60_000);

  it('recovers the jobs of a SIGKILLed process on the others', async () => {
    const { schema, store, submit, statuses, executions } = await setup();
    const workers = await Promise.all([1, 2, 3].map(() => startWorker(schema, { leaseMs: 1000 })));
    const ids = await submit(60, 200);
    const victim = workers[0];
    const holding = async () =>
      adminQuery<{ id: string }>(`SELECT id FROM "${schema}".jobs WHERE status = 'processing' AND lease_owner = $1`, [
        victim.workerId,
      ]);
    await eventually(async () => (await holding()).length >= 2, 10_000, 10);
    await kill(victim, 'SIGKILL');
    const killedAt = Date.now();
    const orphans = (await holding()).map((r) => r.id);
    expect(orphans.length).toBeGreaterThan(0);
    await eventually(async () => (await statuses()).complete === 60, 20_000, 50);
    const runs = await executions();
    const rerun = await adminQuery<{ at: number }>(
      `SELECT (extract(epoch FROM max(e.at)) * 1000)::float8 AS at FROM "${schema}".executions e
       WHERE e.job_id = ANY($1::text[]) AND e.pid <> $2`,
      [orphans, victim.pid],
    );
    const recoveryMs = Math.round(rerun[0].at - killedAt);
    const duplicated = runs.filter((r) => r.runs > 1).map((r) => r.job_id);
    console.log(
      `SIGKILL with ${orphans.length} jobs in flight (leaseMs 1000): all restarted elsewhere within ${recoveryMs} ms; duplicates ${duplicated.length}`,
    );
    expect(new Set(runs.map((r) => r.job_id))).toEqual(new Set(ids));
    // Only the killed process's unfinished jobs ran twice.
    for (const id of duplicated) expect(orphans).toContain(id);
    for (const id of orphans) {
      const job = await store.get(id);
      expect(job).toMatchObject({ status: 'complete', attempt: 2 });
      expect((job!.result as { pid: number }).pid).not.toBe(victim.pid);
    }
    expect(recoveryMs).toBeLessThan(5000);
  }, 60_000);

  it('keeps queued, running and finished jobs when the only worker dies; a new one finishes them', async () => {
    const { schema, store, submit, statuses, executions } = await setup();
    const first = await startWorker(schema, { leaseMs: 1000, concurrency: 4 });
    const ids = await submit(24, 300);
    await eventually(async () => {
      const s = await statuses();
      return (s.complete ?? 0) >= 4 && (s.processing ?? 0) > 0 && (s.queued ?? 0) > 0;
    }, 15_000);
    await kill(first, 'SIGKILL');
    const before = await Promise.all(ids.map((id) => store.get(id)));
    const finished = before.filter((job) => job?.status === 'complete');
    const running = before.filter((job) => job?.status === 'processing');
    const queued = before.filter((job) => job?.status === 'queued');
    console.log(
      `worker killed holding ${finished.length} finished, ${running.length} running, ${queued.length} queued jobs`,
    );
    expect(finished.length + running.length + queued.length).toBe(24);
    expect(running.length).toBeGreaterThan(0);
    expect(queued.length).toBeGreaterThan(0);

    const second = await startWorker(schema, { leaseMs: 1000, concurrency: 4 });
    await eventually(async () => (await statuses()).complete === 24, 20_000, 50);
    for (const job of finished) {
      const now = await store.get(job!.id);
      expect(now).toMatchObject({ status: 'complete', finishedAt: job!.finishedAt, result: { pid: first.pid } });
    }
    for (const job of [...running, ...queued]) {
      expect(((await store.get(job!.id))!.result as { pid: number }).pid).toBe(second.pid);
    }
    const runs = await executions();
    for (const job of finished) expect(runs.find((r) => r.job_id === job!.id)?.runs).toBe(1);
  }, 60_000);
});
