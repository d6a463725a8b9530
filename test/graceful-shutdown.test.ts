// Graceful shutdown under load: worker process A runs 100 jobs at once and is told to close (SIGTERM →
// `close({ timeoutMs })`). Jobs shorter than the deadline finish on A; the long ones (one ignoring its signal) are
// aborted at the deadline and handed back at once, and worker process B completes them long before their lease
// would have lapsed. In the end all 100 are complete and none is left `processing`. On PostgreSQL and on a SQLite file.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createJobs, type JobRecord, type JobStore, type Jobs } from '../src/index.js';
import { PostgresStore } from '../src/postgres.js';
import { SqliteStore } from '../src/sqlite.js';
import { closeAdmin, pgUrl, schemas } from './helpers/postgres.js';
import { sleep } from './helpers/time.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fresh = schemas('pgshutdown');
const dir = mkdtempSync(join(tmpdir(), 'respond-async-shutdown-'));

const JOBS = 100;
const CLOSE_TIMEOUT_MS = 3000;
/** Slack over the deadline for close() to return: releasing leases, closing the store, a noisy machine. */
const CLOSE_SLACK_MS = 1500;
/** Far longer than the test: a job handed back must not wait for its lease to lapse. */
const LEASE_MS = 60_000;
const LONG_MS = 120_000;

interface Worker {
  child: ChildProcess;
  pid: number;
  workerId: string;
  exited: Promise<number | null>;
  stdout: () => string;
  stderr: () => string;
}

const children: Worker[] = [];
const runtimes: Jobs[] = [];

afterEach(async () => {
  for (const worker of children.splice(0)) {
    if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
    await worker.exited;
  }
  await Promise.allSettled(runtimes.splice(0).map((jobs) => jobs.close({ timeoutMs: 100 })));
});

afterAll(async () => {
  await fresh.dropAll();
  await closeAdmin();
  rmSync(dir, { recursive: true, force: true });
});

function spawnWorker(args: { kind: string; target: string; schema: string; role: 'A' | 'B' }): Promise<Worker> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'test/fixtures/shutdown-worker.ts',
      args.kind,
      args.target,
      args.schema,
      args.role,
      String(JOBS),
      String(LEASE_MS),
      String(CLOSE_TIMEOUT_MS),
    ],
    { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker ${args.role} not ready in 30 s: ${stderr}`)), 30_000);
    const onData = () => {
      const match = /READY (\d+) (\S+)/.exec(stdout);
      if (!match) return;
      child.stdout!.off('data', onData);
      clearTimeout(timer);
      const worker = {
        child,
        pid: Number(match[1]),
        workerId: match[2],
        exited,
        stdout: () => stdout,
        stderr: () => stderr,
      };
      children.push(worker);
      resolve(worker);
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker ${args.role} exited (${code}) before ready: ${stderr}`));
    });
  });
}

async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs: number,
  state: () => Promise<unknown>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out (${timeoutMs} ms) waiting for ${what}: ${JSON.stringify(await state())}`);
    }
    await sleep(25);
  }
}

async function scenario(label: string, kind: 'postgres' | 'sqlite', target: string, schema: string, store: JobStore) {
  // An API-only runtime on the same store: submits and reads, never runs a job.
  const api = createJobs({ store, worker: false });
  runtimes.push(api);
  const work = api.define('work', async () => undefined);
  await api.ready();

  const [a, b] = await Promise.all([
    spawnWorker({ kind, target, schema, role: 'A' }),
    spawnWorker({ kind, target, schema, role: 'B' }),
  ]);

  // 100 jobs: 40 shorter than the deadline (1000–2000 ms), 59 long ones honouring their signal, 1 long one ignoring it.
  const specs = Array.from({ length: JOBS }, (_, i) =>
    i < 40
      ? { ms: 1000 + Math.floor((1000 * i) / 39), kind: 'short' as const }
      : { ms: LONG_MS, kind: i === JOBS - 1 ? ('ignores' as const) : ('long' as const) },
  );
  const submitted = await Promise.all(
    specs.map((spec) => api.submit(work, { ms: spec.ms, ...(spec.kind === 'ignores' ? { ignoreSignal: true } : {}) })),
  );
  const ids = submitted.map((r) => r.job.id);
  const kindOf = new Map(ids.map((id, i) => [id, specs[i].kind]));
  // One query for all 100 (they are the only jobs of this store, and have no owner).
  const all = async (): Promise<JobRecord[]> => {
    const jobs = await api.list(null, JOBS + 10);
    expect(jobs.length).toBe(JOBS);
    return jobs;
  };
  const state = async () => {
    const tally: Record<string, number> = {};
    for (const job of await all()) {
      const key = `${job.status}:${job.leaseOwner === a.workerId ? 'A' : job.leaseOwner === b.workerId ? 'B' : job.leaseOwner}`;
      tally[key] = (tally[key] ?? 0) + 1;
    }
    return { tally, stderrA: a.stderr().slice(-2000), stderrB: b.stderr().slice(-2000) };
  };

  // A holds all 100 at once (concurrency 100).
  await waitFor(
    'A to hold all 100 jobs',
    async () => (await all()).every((job) => job.status === 'processing' && job.leaseOwner === a.workerId),
    15_000,
    state,
  );
  // B is up and looking for work; nothing is claimable while A's leases hold.
  b.child.stdin!.write('start\n');
  await sleep(200);
  expect((await all()).filter((job) => job.leaseOwner === b.workerId)).toEqual([]);

  const closeSentAt = Date.now();
  a.child.kill('SIGTERM');
  const code = await a.exited;
  const exitMs = Date.now() - closeSentAt;
  expect(code, a.stderr()).toBe(0);
  const closed = JSON.parse(/CLOSED (\{.*\})/.exec(a.stdout())![1]) as {
    closeMs: number;
    runningAtClose: number;
    started: number;
    finished: number;
    aborted: number;
  };

  // Right after A is gone, nothing of A's is left: every job is complete (on A), queued again, or already on B.
  const afterClose = await all();
  const stuckOnA = afterClose.filter((job) => job.status === 'processing' && job.leaseOwner === a.workerId);

  const final = await waitFor(
    'all 100 jobs complete',
    async () => {
      const jobs = await all();
      return jobs.every((job) => job.status === 'complete') && jobs;
    },
    15_000,
    state,
  );
  const doneAllMs = Date.now() - closeSentAt;
  const byA = final.filter((job) => (job.result as { pid: number }).pid === a.pid);
  const byB = final.filter((job) => (job.result as { pid: number }).pid === b.pid);
  const attemptsB: Record<number, number> = {};
  for (const job of byB) attemptsB[job.attempt] = (attemptsB[job.attempt] ?? 0) + 1;
  console.log(
    [
      `${label}: close({ timeoutMs: ${CLOSE_TIMEOUT_MS} }) with ${closed.runningAtClose} jobs running returned in ${closed.closeMs} ms (process exited ${exitMs} ms after SIGTERM)`,
      `  finished on A: ${byA.length} (handlers returned ${closed.finished}, aborted at the deadline ${closed.aborted}, ignoring the signal 1)`,
      `  handed over to B: ${byB.length}, left processing on A after close: ${stuckOnA.length}; all ${JOBS} complete ${doneAllMs} ms after SIGTERM (${doneAllMs - exitMs} ms after A exited; lease ${LEASE_MS} ms)`,
      `  attempts of the handed-over jobs ${JSON.stringify(attemptsB)}`,
    ].join('\n'),
  );

  // All 100 normally; at the very least every long one and some short ones (drained during close).
  expect(closed.runningAtClose).toBeGreaterThan(60);
  expect(closed.closeMs).toBeGreaterThanOrEqual(CLOSE_TIMEOUT_MS - 50);
  expect(closed.closeMs).toBeLessThan(CLOSE_TIMEOUT_MS + CLOSE_SLACK_MS);
  expect(stuckOnA).toEqual([]);
  // Short jobs finished on A during the drain; every long one (the one ignoring its signal too) went to B.
  expect(new Set(byA.map((job) => job.id))).toEqual(new Set(ids.filter((id) => kindOf.get(id) === 'short')));
  expect(new Set(byB.map((job) => job.id))).toEqual(new Set(ids.filter((id) => kindOf.get(id) !== 'short')));
  expect(closed.finished).toBe(40);
  expect(closed.aborted).toBe(59);
  expect(final.filter((job) => job.status === 'processing')).toEqual([]);
  // Handed back at once, not after the lease lapsed.
  expect(doneAllMs).toBeLessThan(LEASE_MS / 2);
}

describe('graceful shutdown under load', () => {
  it('PostgreSQL: close() while 100 jobs run; the short finish, the long are handed to another process', async () => {
    const schema = fresh.next();
    const store = new PostgresStore({ connectionString: pgUrl(), schema });
    await scenario('postgres', 'postgres', pgUrl(), schema, store);
  }, 60_000);

  it('SQLite file: close() while 100 jobs run; the short finish, the long are handed to another process', async () => {
    const path = join(dir, 'shutdown.sqlite');
    const store = new SqliteStore({ path });
    await scenario('sqlite', 'sqlite', path, '-', store);
  }, 60_000);
});
