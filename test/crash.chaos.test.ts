// Crash chaos (long; `npm run test:chaos`): worker processes share one store while a controller SIGKILLs a random
// one every few hundred ms and restarts it at once, for a bounded time; then the survivors drain the queue.
// At the end every job is `complete`, none is lost, and each ran at most once per lapse of its lease: every
// execution but the last of a job belongs to a process that was killed (or that saw its lease lapse), and the next
// one was claimed only after that execution's lease had run out. Prints duplicates, recovery time and throughput.
//
// The workers (test/fixtures/chaos-worker.ts) log every claim, renewal, execution and completion to a file per
// process (one write(2) per line, so a SIGKILL loses nothing already written). They are bundled once with esbuild:
// a restart every few hundred ms costs ~0.1 s of CPU instead of ~0.4 s under tsx, which would starve the 2 cores.
//
// CHAOS_SEED=<n> replays the job lengths, kill intervals and victims (the interleaving still varies).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createJobs, type JobRecord, type Jobs } from '../src/index.js';
import { PostgresStore } from '../src/postgres.js';
import { SqliteStore } from '../src/sqlite.js';
import { adminQuery, closeAdmin, pgUrl, schemas } from './helpers/postgres.js';
import { sleep } from './helpers/time.js';

const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'respond-async-chaos-'));
const fresh = schemas('chaos');
const BASE_SEED = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
let workerScript = '';

const children = new Set<ChildProcess>();
const runtimes: Jobs[] = [];

beforeAll(async () => {
  // The bundle keeps packages external; a node_modules link beside it resolves them (pg, better-sqlite3).
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  workerScript = join(dir, 'chaos-worker.mjs');
  await build({
    entryPoints: [join(root, 'test/fixtures/chaos-worker.ts')],
    outfile: workerScript,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'warning',
  });
});

afterEach(async () => {
  await Promise.allSettled(
    [...children].map((child) => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      return exited;
    }),
  );
  children.clear();
  await Promise.allSettled(runtimes.splice(0).map((jobs) => jobs.close({ timeoutMs: 100 })));
});

afterAll(async () => {
  await fresh.dropAll();
  await closeAdmin();
  rmSync(dir, { recursive: true, force: true });
});

/** mulberry32: a small seeded PRNG, so that a failing run's job lengths and kill schedule can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Worker {
  child: ChildProcess;
  pid: number;
  workerId: string;
  isReady: boolean;
  /** True once READY; false when it exited (or stalled 30 s) first. */
  ready: Promise<boolean>;
  exited: Promise<void>;
  killed: boolean;
  stderr: () => string;
}

function spawnWorker(args: string[]): Worker {
  const child = spawn(process.execPath, [workerScript, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      children.delete(child);
      resolve();
    }),
  );
  const worker: Worker = {
    child,
    pid: child.pid ?? -1,
    workerId: '',
    isReady: false,
    ready: Promise.resolve(false),
    exited,
    killed: false,
    stderr: () => stderr,
  };
  worker.ready = new Promise<boolean>((resolve) => {
    let stdout = '';
    const timer = setTimeout(() => resolve(false), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /READY (\d+) (\S+)/.exec(stdout);
      if (match && !worker.isReady) {
        clearTimeout(timer);
        worker.workerId = match[2];
        worker.isReady = true;
        resolve(true);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      resolve(worker.isReady);
    });
  });
  return worker;
}

/** What one target store offers the chaos run. */
interface Target {
  label: string;
  /** chaos-worker.ts arguments before <logDir>: kind, connection, schema. */
  workerArgs: string[];
  api: Jobs;
  counts(): Promise<Record<string, number>>;
  rows(): Promise<number>;
  /** Jobs in `processing` whose lease `workerId` holds (read after it died: what it left behind). */
  heldBy(workerId: string): Promise<Array<{ id: string; attempt: number }>>;
}

interface Plan {
  jobs: number;
  workers: number;
  leaseMs: number;
  concurrency: number;
  pollIntervalMs: number;
  maxSleepMs: number;
  chaosMs: number;
  killGapMs: [number, number];
  deadlineMs: number;
  seed: number;
}

interface Kill {
  pid: number;
  workerId: string;
  at: number;
  orphans: Array<{ id: string; attempt: number }>;
}

interface Execution {
  pid: number;
  attempt: number;
  /** When claim() returned it to this process (K), when the handler started (S), returned (D). */
  claimedAt?: number;
  startedAt?: number;
  returnedAt?: number;
  /** Calls to claim() or renew() that (re)set the lease: it runs at least until the latest + leaseMs. */
  leaseFrom?: number;
  completed: boolean;
  refused: boolean;
  lost: boolean;
}

/** Every logged execution attempt, by job id, ordered by attempt. */
function readLogs(logDir: string): Map<string, Execution[]> {
  const byKey = new Map<string, Execution & { jobId: string }>();
  for (const file of readdirSync(logDir)) {
    const pid = Number(/^exec-(\d+)\.log$/.exec(file)?.[1]);
    if (!pid) continue;
    for (const line of readFileSync(join(logDir, file), 'utf8').split('\n')) {
      const [event, jobId, attemptText, atText, calledText] = line.split(' ');
      const attempt = Number(attemptText);
      const at = Number(atText);
      if (!event || !jobId || !Number.isFinite(at) || attempt < 0) continue;
      const key = `${jobId} ${pid} ${attempt}`;
      let execution = byKey.get(key);
      if (!execution) {
        execution = { jobId, pid, attempt, completed: false, refused: false, lost: false };
        byKey.set(key, execution);
      }
      const from = (t: number) => {
        execution.leaseFrom = Math.max(execution.leaseFrom ?? t, t);
      };
      if (event === 'K') {
        execution.claimedAt = at;
        from(Number(calledText));
      } else if (event === 'H') from(at);
      else if (event === 'L') execution.lost = true;
      else if (event === 'S') execution.startedAt = at;
      else if (event === 'D') execution.returnedAt = at;
      else if (event === 'C') execution.completed = true;
      else if (event === 'R') execution.refused = true;
    }
  }
  const byJob = new Map<string, Execution[]>();
  for (const { jobId, ...execution } of byKey.values()) {
    const list = byJob.get(jobId) ?? [];
    list.push(execution);
    byJob.set(jobId, list);
  }
  for (const list of byJob.values()) list.sort((a, b) => a.attempt - b.attempt);
  return byJob;
}

const median = (values: number[]) => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

async function chaosRun(target: Target, plan: Plan) {
  const random = prng(plan.seed);
  const logDir = join(dir, `logs-${target.label}-${plan.seed}`);
  mkdirSync(logDir);
  const args = [
    ...target.workerArgs,
    logDir,
    String(plan.leaseMs),
    String(plan.concurrency),
    String(plan.pollIntervalMs),
  ];

  // Submit everything first (random lengths from the seed), then start the workers.
  const sleeps = Array.from({ length: plan.jobs }, () => Math.floor(random() * (plan.maxSleepMs + 1)));
  const ids: string[] = [];
  for (let i = 0; i < plan.jobs; i += 50) {
    const batch = await Promise.all(sleeps.slice(i, i + 50).map((sleepMs) => target.api.submit('work', { sleepMs })));
    ids.push(...batch.map((r) => r.job.id));
  }
  expect(new Set(ids).size).toBe(plan.jobs);

  const startedAt = Date.now();
  const slots = Array.from({ length: plan.workers }, () => spawnWorker(args));
  const all: Worker[] = [...slots];
  const firstReady = await Promise.all(slots.map((w) => w.ready));
  expect(firstReady, slots.map((w) => w.stderr()).join('\n')).toEqual(slots.map(() => true));

  let complete = 0;
  const refresh = async () => {
    complete = (await target.counts()).complete ?? 0;
    return complete;
  };

  // The controller: SIGKILL a random ready worker every killGapMs, restart it at once, until the window closes.
  const kills: Kill[] = [];
  const snapshots: Array<Promise<unknown>> = [];
  const chaosStart = Date.now();
  const chaosEnd = chaosStart + plan.chaosMs;
  while (Date.now() < chaosEnd && (await refresh()) < plan.jobs) {
    const [min, max] = plan.killGapMs;
    await sleep(min + random() * (max - min));
    if (Date.now() >= chaosEnd) break;
    const candidates = slots.map((_, index) => index).filter((index) => slots[index].isReady);
    if (candidates.length === 0) continue;
    const index = candidates[Math.floor(random() * candidates.length)];
    const victim = slots[index];
    const at = Date.now();
    victim.killed = true;
    victim.child.kill('SIGKILL');
    await victim.exited;
    slots[index] = spawnWorker(args);
    all.push(slots[index]);
    // What the dead process left behind: read a moment later (still well inside the lease), so that the statements
    // it sent just before dying (on PostgreSQL a claim or a completion may commit after its exit) are in.
    const kill: Kill = { pid: victim.pid, workerId: victim.workerId, at, orphans: [] };
    kills.push(kill);
    snapshots.push(
      sleep(250)
        .then(() => target.heldBy(victim.workerId))
        .then((held) => {
          kill.orphans = held;
        }),
    );
  }
  const chaosMs = Date.now() - chaosStart;
  await Promise.all(snapshots);

  // Drain: the survivors (and the restarted) finish the rest, within a bounded time.
  const deadline = startedAt + plan.deadlineMs;
  while ((await refresh()) < plan.jobs) {
    if (Date.now() > deadline) {
      const unfinished: unknown[] = [];
      for (const id of ids) {
        const job = await target.api.get(id);
        if (job?.status === 'complete') continue;
        unfinished.push(
          job
            ? { id, status: job.status, attempt: job.attempt, lease: job.leaseOwner, until: job.leaseUntil }
            : { id, missing: true },
        );
        if (unfinished.length >= 5) break;
      }
      throw new Error(
        `[crash-chaos ${target.label}] seed ${plan.seed}: ${plan.jobs - complete} of ${plan.jobs} jobs unfinished after ` +
          `${plan.deadlineMs} ms: ${JSON.stringify(await target.counts())} (now ${Date.now()}); first: ${JSON.stringify(unfinished)}`,
      );
    }
    await sleep(100);
  }
  const finishedAt = Date.now();

  // Graceful stop (nothing is left to run). A worker restarted a moment ago gets its SIGTERM handler first.
  await Promise.all(
    slots.map(async (worker) => {
      await worker.ready;
      worker.child.kill('SIGTERM');
      const timer = setTimeout(() => worker.child.kill('SIGKILL'), 5000);
      await worker.exited;
      clearTimeout(timer);
    }),
  );

  // --- Accounting ---
  const records = new Map<string, JobRecord | undefined>();
  for (let i = 0; i < ids.length; i += 100) {
    const chunk = ids.slice(i, i + 100);
    const jobs = await Promise.all(chunk.map((id) => target.api.get(id)));
    for (const [k, id] of chunk.entries()) records.set(id, jobs[k]);
  }
  const rows = await target.rows();
  const executions = readLogs(logDir);
  const killedAt = new Map(kills.map((kill) => [kill.pid, kill.at]));
  const problems: string[] = [];
  let duplicated = 0;
  let ranToEndTwice = 0;
  let lapsesWithoutKill = 0;
  let unloggedClaims = 0;
  for (const id of ids) {
    const job = records.get(id);
    if (job?.status !== 'complete') {
      problems.push(`${id}: ${job ? `status ${job.status}` : 'missing'}`);
      continue;
    }
    const result = job.result as { pid: number; attempt: number };
    const list = (executions.get(id) ?? []).filter((e) => e.startedAt !== undefined || e.claimedAt !== undefined);
    const started = list.filter((e) => e.startedAt !== undefined);
    if (started.length > 1) duplicated += 1;
    if (list.filter((e) => e.returnedAt !== undefined).length > 1) ranToEndTwice += 1;
    unloggedClaims += job.attempt - list.length;
    const last = list.at(-1);
    if (!last) {
      problems.push(`${id}: complete but no execution logged`);
      continue;
    }
    // The last claim is the one that completed it, and it is the job's final attempt.
    // (Its `C` line is missing when the process was killed between the commit and the log write.)
    const completedUnlogged = !last.completed && killedAt.has(last.pid);
    if (
      last.attempt !== job.attempt ||
      last.pid !== result.pid ||
      result.attempt !== job.attempt ||
      !(last.completed || completedUnlogged)
    ) {
      problems.push(
        `${id}: completed by pid ${result.pid} attempt ${result.attempt}; job attempt ${job.attempt}; last logged ${JSON.stringify(last)}`,
      );
    }
    const completions = list.filter((e) => e.completed).length + (completedUnlogged ? 1 : 0);
    if (completions !== 1) problems.push(`${id}: completed ${completions} times`);
    // Attempts increase across re-executions, in time order too.
    for (let k = 1; k < list.length; k += 1) {
      const [before, after] = [list[k - 1], list[k]];
      if (after.attempt <= before.attempt) problems.push(`${id}: attempt ${after.attempt} after ${before.attempt}`);
      if ((after.claimedAt ?? after.startedAt!) < (before.claimedAt ?? before.startedAt!)) {
        problems.push(`${id}: attempt ${after.attempt} claimed before attempt ${before.attempt}`);
      }
    }
    // Every execution but the last is justified by a lapsed lease: its process was killed while holding it (or
    // saw the lease lapse), and the next claim came only once its lease had run out.
    for (let k = 0; k < list.length - 1; k += 1) {
      const [held, next] = [list[k], list[k + 1]];
      const kill = killedAt.get(held.pid);
      if (held.completed) problems.push(`${id}: completed by pid ${held.pid} attempt ${held.attempt}, then claimed`);
      if (kill === undefined) {
        if (held.lost || held.refused) lapsesWithoutKill += 1;
        else problems.push(`${id}: attempt ${held.attempt} in live pid ${held.pid} re-run without a lapsed lease`);
      }
      const nextClaimed = next.claimedAt ?? next.startedAt!;
      if (held.leaseFrom !== undefined && nextClaimed < held.leaseFrom + plan.leaseMs) {
        problems.push(
          `${id}: attempt ${next.attempt} claimed at ${nextClaimed} while attempt ${held.attempt} (pid ${held.pid}) ` +
            `held a lease until at least ${held.leaseFrom + plan.leaseMs}`,
        );
      }
    }
  }

  // Recovery: from a kill until every job the killed process held has been claimed again.
  // On PostgreSQL a statement the process sent just before it died may still commit after its exit (and after
  // the snapshot of what it held): such a job ends complete from the dead process's attempt, not claimed again.
  const recoveries: number[] = [];
  let orphaned = 0;
  let lateCommits = 0;
  for (const kill of kills) {
    let reclaimedAt = kill.at;
    let recovered = 0;
    for (const orphan of kill.orphans) {
      orphaned += 1;
      const again = (executions.get(orphan.id) ?? []).find((e) => e.attempt > orphan.attempt);
      const at = again?.claimedAt ?? again?.startedAt;
      const result = records.get(orphan.id)?.result as { pid?: number; attempt?: number } | undefined;
      if (at !== undefined) {
        reclaimedAt = Math.max(reclaimedAt, at);
        recovered += 1;
      } else if (result?.pid === kill.pid && result.attempt === orphan.attempt) lateCommits += 1;
      else problems.push(`${orphan.id}: held by killed pid ${kill.pid}, never claimed again`);
    }
    if (recovered > 0) recoveries.push(reclaimedAt - kill.at);
  }

  const unexpected = all.filter((w) => !w.killed && w.child.exitCode !== 0);
  for (const worker of unexpected) {
    const how = worker.child.exitCode ?? worker.child.signalCode;
    problems.push(`pid ${worker.pid} ended (${how}) without being killed: ${worker.stderr()}`);
  }
  const stderrLines = all.flatMap((w) => w.stderr().split('\n').filter(Boolean));

  const seconds = (finishedAt - startedAt) / 1000;
  const completeCount = [...records.values()].filter((job) => job?.status === 'complete').length;
  console.log(
    `[crash-chaos ${target.label}] seed ${plan.seed}: ${plan.jobs} submitted, ${completeCount} complete, ` +
      `${plan.jobs - completeCount} lost, ${duplicated} duplicated (${ranToEndTwice} ran to the end twice, ` +
      `${lapsesWithoutKill} lapses without a kill); ${kills.length} kills in ${(chaosMs / 1000).toFixed(1)} s ` +
      `(${recoveries.length} holding ${orphaned} jobs; ${unloggedClaims} claims died unlogged, ${lateCommits} completions ` +
      `committed after their process died), recovery median ` +
      `${median(recoveries)} ms max ${Math.max(0, ...recoveries)} ms (lease ${plan.leaseMs} ms); ` +
      `${plan.workers} processes x ${plan.concurrency}, all complete in ${seconds.toFixed(1)} s = ` +
      `${(plan.jobs / seconds).toFixed(1)} jobs/s; ${all.length} processes started, ${stderrLines.length} stderr lines`,
  );
  if (stderrLines.length > 0) console.log(stderrLines.slice(0, 10).join('\n'));

  expect(problems.slice(0, 20), `${problems.length} problems, seed ${plan.seed}`).toEqual([]);
  expect(rows).toBe(plan.jobs);
  expect(completeCount).toBe(plan.jobs);
  expect(await target.counts()).toEqual({ complete: plan.jobs });
  // The chaos happened: processes died holding jobs, and those jobs ran again elsewhere.
  expect(kills.length).toBeGreaterThanOrEqual(5);
  expect(orphaned).toBeGreaterThan(0);
  // A killed process's jobs are taken again soon after their leases lapse (lease + poll + a noisy machine).
  expect(Math.max(...recoveries)).toBeLessThan(plan.leaseMs + 10_000);
}

describe('crash chaos', () => {
  it('PostgreSQL: 4 processes, 2,000 jobs, a random process SIGKILLed and restarted every 200-600 ms', async () => {
    const schema = fresh.next();
    const store = new PostgresStore({ connectionString: pgUrl(), schema, listen: false });
    const api = createJobs({ store, worker: false });
    runtimes.push(api);
    api.define('work', async () => undefined, { attempts: 1000 });
    await api.ready();
    const jobsTable = `"${schema}".jobs`;
    await chaosRun(
      {
        label: 'postgres',
        workerArgs: ['pg', pgUrl(), schema],
        api,
        counts: async () => {
          const rows = await adminQuery<{ status: string; n: number }>(
            `SELECT status, count(*)::int AS n FROM ${jobsTable} GROUP BY status`,
          );
          return Object.fromEntries(rows.map((r) => [r.status, r.n]));
        },
        rows: async () => (await adminQuery<{ n: number }>(`SELECT count(*)::int AS n FROM ${jobsTable}`))[0].n,
        heldBy: (workerId) =>
          adminQuery<{ id: string; attempt: number }>(
            `SELECT id, attempt FROM ${jobsTable} WHERE status = 'processing' AND lease_owner = $1`,
            [workerId],
          ),
      },
      {
        jobs: 2000,
        workers: 4,
        leaseMs: 1500,
        concurrency: 4,
        pollIntervalMs: 100,
        maxSleepMs: 200,
        chaosMs: 15_000,
        killGapMs: [200, 600],
        deadlineMs: 120_000,
        seed: BASE_SEED,
      },
    );
  });

  it('SQLite: 2 processes on one file, 1,000 jobs, a random process SIGKILLed and restarted every 200-600 ms', async () => {
    const path = join(dir, `chaos-${BASE_SEED}.sqlite`);
    expect(existsSync(path)).toBe(false);
    const store = new SqliteStore({ path });
    const api = createJobs({ store, worker: false });
    runtimes.push(api);
    api.define('work', async () => undefined, { attempts: 1000 });
    await api.ready();
    const db = store.database;
    await chaosRun(
      {
        label: 'sqlite',
        workerArgs: ['sqlite', path, '-'],
        api,
        counts: async () => {
          const rows = db
            .prepare('SELECT status, count(*) AS n FROM respond_async_jobs GROUP BY status')
            .all() as Array<{
            status: string;
            n: number;
          }>;
          return Object.fromEntries(rows.map((r) => [r.status, r.n]));
        },
        rows: async () => (db.prepare('SELECT count(*) AS n FROM respond_async_jobs').get() as { n: number }).n,
        heldBy: async (workerId) =>
          db
            .prepare("SELECT id, attempt FROM respond_async_jobs WHERE status = 'processing' AND lease_owner = ?")
            .all(workerId) as Array<{ id: string; attempt: number }>,
      },
      {
        jobs: 1000,
        workers: 2,
        leaseMs: 1000,
        concurrency: 4,
        pollIntervalMs: 50,
        maxSleepMs: 200,
        chaosMs: 10_000,
        killGapMs: [200, 600],
        deadlineMs: 120_000,
        seed: BASE_SEED + 1,
      },
    );
  });
});
