// Several processes share one SQLite file: every job runs, none twice while its lease holds, and jobs held by a
// killed process finish elsewhere once the lease lapses. Real processes, real files, real SIGKILL.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createJobs, type JobRecord, type Jobs } from '../src/index.js';
import { SqliteStore } from '../src/sqlite.js';

const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'respond-async-sqlite-mp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Worker {
  child: ChildProcess;
  pid: number;
  workerId: string;
  log: string;
  exited: Promise<void>;
  stderr: () => string;
}

const children: Worker[] = [];
const parents: Jobs[] = [];
let seq = 0;

afterEach(async () => {
  for (const worker of children.splice(0)) {
    if (worker.child.exitCode === null && worker.child.signalCode === null) {
      worker.child.kill('SIGTERM');
      const timer = setTimeout(() => worker.child.kill('SIGKILL'), 5000);
      await worker.exited;
      clearTimeout(timer);
    }
  }
  for (const jobs of parents.splice(0)) await jobs.close({ timeoutMs: 100 });
});

function spawnWorker(path: string, leaseMs: number, concurrency = 4): Promise<Worker> {
  seq += 1;
  const log = join(dir, `log-${seq}.txt`);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/fixtures/sqlite-worker.ts', path, log, String(leaseMs), String(concurrency)],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise<Worker>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start in 45 s: ${stderr}`)), 45_000);
    child.stdout?.on('data', (chunk) => {
      stdout += chunk;
      const match = /^ready (\S+)$/m.exec(stdout);
      if (match) {
        clearTimeout(timer);
        const worker: Worker = {
          child,
          pid: child.pid as number,
          workerId: match[1],
          log,
          exited,
          stderr: () => stderr,
        };
        children.push(worker);
        resolve(worker);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`worker exited before ready (${code ?? signal}): ${stderr}`));
    });
  });
}

/** A submit-only runtime on the same file, as an API process would have. */
async function parentRuntime(path: string): Promise<{ jobs: Jobs; store: SqliteStore }> {
  const store = new SqliteStore({ path });
  const jobs = createJobs({ store, worker: false });
  jobs.define('task', async () => undefined);
  await jobs.ready();
  parents.push(jobs);
  return { jobs, store };
}

function counts(store: SqliteStore): Record<string, number> {
  const rows = store.database
    .prepare('SELECT status, count(*) AS n FROM respond_async_jobs GROUP BY status')
    .all() as Array<{ status: string; n: number }>;
  return Object.fromEntries(rows.map((row) => [row.status, row.n]));
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number, describeState: () => unknown) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(describeState())}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Executions per job id across the workers' logs: how many `done` lines (and `start` lines) each has. */
function executions(workers: Worker[]): { done: Map<string, number>; started: Map<string, number> } {
  const done = new Map<string, number>();
  const started = new Map<string, number>();
  for (const worker of workers) {
    if (!existsSync(worker.log)) continue;
    for (const line of readFileSync(worker.log, 'utf8').split('\n')) {
      const [kind, id] = line.split(' ');
      if (kind === 'done') done.set(id, (done.get(id) ?? 0) + 1);
      if (kind === 'start') started.set(id, (started.get(id) ?? 0) + 1);
    }
  }
  return { done, started };
}

const duplicates = (map: Map<string, number>) => [...map.values()].filter((n) => n > 1).length;

describe('SqliteStore shared by several processes', () => {
  it('runs 1,000 jobs submitted by an API process on three worker processes, each exactly once', async () => {
    const path = join(dir, 'thousand.sqlite');
    const { jobs, store } = await parentRuntime(path);
    const workers = await Promise.all([0, 1, 2].map(() => spawnWorker(path, 60_000)));
    const started = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < 1000; i += 1) ids.push((await jobs.submit('task', { sleepMs: 0 })).job.id);
    const submitted = Date.now();
    await waitUntil(
      '1000 complete',
      () => counts(store).complete === 1000,
      45_000,
      () => counts(store),
    );
    const finished = Date.now();

    const { done } = executions(workers);
    const perWorker = workers.map((worker) => executions([worker]).done.size);
    console.log(
      `[sqlite multiprocess] 1000 jobs: submitted in ${submitted - started} ms, all complete after ${finished - started} ms; ` +
        `executions per process ${perWorker.join('/')}; duplicates ${duplicates(done)}`,
    );
    expect(done.size).toBe(1000);
    expect(duplicates(done)).toBe(0);
    expect([...done.values()].reduce((a, b) => a + b, 0)).toBe(1000);
    const attempts = store.database
      .prepare('SELECT max(attempt) AS max, min(attempt) AS min FROM respond_async_jobs')
      .get() as { max: number; min: number };
    expect(attempts).toEqual({ max: 1, min: 1 });
    for (const id of ids) expect(done.get(id)).toBe(1);
    // Each process took part (they poll every 20 ms and all started before the jobs were submitted).
    expect(perWorker.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
  }, 120_000);

  it('finishes the jobs of a SIGKILLed process on the others once their leases lapse', async () => {
    const path = join(dir, 'sigkill.sqlite');
    const leaseMs = 1000;
    const { jobs, store } = await parentRuntime(path);
    const workers = await Promise.all([0, 1, 2].map(() => spawnWorker(path, leaseMs)));
    const victim = workers[0];
    const total = 90;
    for (let i = 0; i < total; i += 1) await jobs.submit('task', { sleepMs: 200 });

    const heldBy = (workerId: string) =>
      store.database
        .prepare("SELECT id FROM respond_async_jobs WHERE status = 'processing' AND lease_owner = ?")
        .all(workerId) as Array<{ id: string }>;
    await waitUntil(
      'the victim to hold jobs',
      () => heldBy(victim.workerId).length > 0,
      30_000,
      () => counts(store),
    );
    victim.child.kill('SIGKILL');
    const killedAt = Date.now();
    await victim.exited;
    // A dead process changes nothing: what it holds now is exactly what it held when killed.
    const orphans = heldBy(victim.workerId).map((row) => row.id);
    expect(orphans.length).toBeGreaterThan(0);

    let orphansDoneAt = 0;
    await waitUntil(
      'all complete',
      () => {
        if (!orphansDoneAt) {
          const left = store.database
            .prepare(
              `SELECT count(*) AS n FROM respond_async_jobs WHERE status != 'complete' AND id IN (SELECT value FROM json_each(?))`,
            )
            .get(JSON.stringify(orphans)) as { n: number };
          if (left.n === 0) orphansDoneAt = Date.now();
        }
        return counts(store).complete === total;
      },
      45_000,
      () => counts(store),
    );
    const allDoneAt = Date.now();
    const { done, started } = executions(workers);
    console.log(
      `[sqlite multiprocess] SIGKILL with ${orphans.length} jobs in flight (lease ${leaseMs} ms): ` +
        `orphaned jobs complete ${orphansDoneAt - killedAt} ms after the kill, all ${total} complete after ${allDoneAt - killedAt} ms; ` +
        `duplicate executions ${duplicates(done)} (re-started ${duplicates(started)})`,
    );
    expect(counts(store)).toEqual({ complete: total });
    for (const id of orphans) {
      const job = (await store.get(id)) as JobRecord;
      expect(job.status).toBe('complete');
      expect(job.attempt).toBeGreaterThanOrEqual(2);
      expect((job.result as { pid: number }).pid).not.toBe(victim.pid);
    }
    // Only a job whose lease lapsed may run twice.
    for (const [id, n] of done) if (n > 1) expect(orphans).toContain(id);
    expect(duplicates(done)).toBeLessThanOrEqual(orphans.length);
    // The leases had to lapse first.
    expect(orphansDoneAt - killedAt).toBeGreaterThanOrEqual(200);
  }, 120_000);

  it('keeps finished jobs and finishes queued and running ones after the only worker is killed and another opens the file', async () => {
    const path = join(dir, 'restart.sqlite');
    const leaseMs = 1000;
    const { jobs, store } = await parentRuntime(path);
    const first = await spawnWorker(path, leaseMs, 2);

    const finished: string[] = [];
    for (let i = 0; i < 3; i += 1) finished.push((await jobs.submit('task', { sleepMs: 0 })).job.id);
    await waitUntil(
      '3 complete',
      () => counts(store).complete === 3,
      30_000,
      () => counts(store),
    );
    const running: string[] = [];
    for (let i = 0; i < 2; i += 1)
      running.push((await jobs.submit('task', { firstSleepMs: 60_000, sleepMs: 20 })).job.id);
    await waitUntil(
      '2 processing',
      () => counts(store).processing === 2,
      30_000,
      () => counts(store),
    );
    const queued: string[] = [];
    for (let i = 0; i < 3; i += 1) queued.push((await jobs.submit('task', { sleepMs: 0 })).job.id);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(counts(store)).toEqual({ complete: 3, processing: 2, queued: 3 });

    first.child.kill('SIGKILL');
    await first.exited;

    // A new store on the file (as after a restart) reads the finished jobs.
    const reopened = new SqliteStore({ path });
    await reopened.init();
    const before = new Map<string, JobRecord>();
    for (const id of finished) {
      const job = (await reopened.get(id)) as JobRecord;
      expect(job.status).toBe('complete');
      expect(job.result).toEqual({ pid: first.pid, attempt: 1 });
      before.set(id, job);
    }
    for (const id of running) expect((await reopened.get(id))?.status).toBe('processing');
    for (const id of queued) expect((await reopened.get(id))?.status).toBe('queued');

    const killedAt = Date.now();
    const second = await spawnWorker(path, leaseMs, 2);
    await waitUntil(
      'all 8 complete',
      () => counts(store).complete === 8,
      45_000,
      () => counts(store),
    );
    console.log(`[sqlite multiprocess] restart: 8 jobs complete ${Date.now() - killedAt} ms after the kill`);

    for (const id of finished) expect(await reopened.get(id)).toEqual(before.get(id));
    for (const id of running) {
      const job = (await reopened.get(id)) as JobRecord;
      expect(job.status).toBe('complete');
      expect(job.result).toEqual({ pid: second.pid, attempt: 2 });
    }
    for (const id of queued) {
      const job = (await reopened.get(id)) as JobRecord;
      expect(job.result).toEqual({ pid: second.pid, attempt: 1 });
    }
    const { done } = executions([first, second]);
    expect(duplicates(done)).toBe(0);
    await reopened.close();
  }, 120_000);
});
