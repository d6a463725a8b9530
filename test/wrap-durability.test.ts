// Wrapped handlers run durably: submitted by an API process, replayed in another process after a restart (SQLite
// file), or by a worker process next to an API process (PostgreSQL); the result is served byte for byte.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createJobs, type JobRecord, type JobStore, type Jobs } from '../src/index.js';
import { PostgresStore } from '../src/postgres.js';
import { SqliteStore } from '../src/sqlite.js';
import { closeAdmin, pgUrl, schemas } from './helpers/postgres.js';
import { FRAMEWORKS, type WrapFramework, type WrapTestApp, wrapApp } from './helpers/wrap-apps.js';

const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'respond-async-wrap-durable-'));
const fresh = schemas('wrap');
const children: ChildProcess[] = [];
const runtimes: Jobs[] = [];
const quiet = { error() {}, warn() {} };

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  for (const jobs of runtimes.splice(0)) await jobs.close({ timeoutMs: 200 });
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await fresh.dropAll();
  await closeAdmin();
});

/** Start test/fixtures/wrap-worker.ts; resolves once it runs jobs. */
function spawnWorker(framework: WrapFramework, ...args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/wrap-worker.ts', framework, ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start in 45 s: ${stderr}`)), 45_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      if (/^ready \d+$/m.test(chunk.toString())) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`worker exited before ready (${code ?? signal}): ${stderr}`));
    });
  });
}

/** An API process: a runtime that runs nothing, and the app with its wrapped routes on it. */
async function apiProcess(framework: WrapFramework, store: JobStore): Promise<{ jobs: Jobs; app: WrapTestApp }> {
  const jobs = createJobs({ store, worker: false, logger: quiet });
  runtimes.push(jobs);
  await jobs.ready();
  return { jobs, app: await wrapApp(framework, jobs) };
}

async function ended(jobs: Jobs, id: string): Promise<JobRecord> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const job = await jobs.get(id);
    if (job && ['complete', 'failed', 'canceled'].includes(job.status)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} did not end: ${JSON.stringify(job)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const BYTES = Buffer.from([0, 1, 2, 127, 128, 200, 255, 0xef, 0xbb, 0xbf]);
const ANN = { 'x-user': 'ann' };

/** Submit the three requests the durability tests replay elsewhere; returns their status URLs. */
async function submitAll(app: WrapTestApp) {
  const user = await app.call({
    method: 'POST',
    url: '/users/42/exports?format=csv',
    headers: { ...ANN, authorization: 'Bearer ann-token' },
  });
  const echo = await app.call({
    method: 'POST',
    url: '/echo',
    headers: { ...ANN, 'content-type': 'application/octet-stream' },
    payload: BYTES,
  });
  const created = await app.call({ method: 'POST', url: '/created', headers: ANN });
  const refuse = await app.call({ method: 'POST', url: '/refuse', headers: ANN });
  for (const res of [user, echo, created, refuse]) expect(res.statusCode).toBe(202);
  const url = (res: { json(): unknown }) => (res.json() as { statusUrl: string }).statusUrl;
  return { user: url(user), echo: url(echo), created: url(created), refuse: url(refuse) };
}

type Urls = Awaited<ReturnType<typeof submitAll>>;

/** The three results, served by `app` byte for byte as the handlers (in the other process) produced them. */
async function expectResults(app: WrapTestApp, urls: Urls): Promise<void> {
  const user = await app.call({ method: 'GET', url: `${urls.user}/result`, headers: ANN });
  expect(user.statusCode).toBe(200);
  expect(user.json()).toEqual({ user: { name: 'ann', role: 'admin' }, id: '42', format: 'csv' });
  const echo = await app.call({ method: 'GET', url: `${urls.echo}/result`, headers: ANN });
  expect(echo.statusCode).toBe(200);
  expect(echo.rawPayload.equals(BYTES)).toBe(true);
  const created = await app.call({ method: 'GET', url: `${urls.created}/result`, headers: ANN });
  expect(created.statusCode).toBe(201);
  expect(created.headers['x-report']).toBe('r1');
  expect(created.body).toBe('created r1');
  // The 4xx the handler answered in the other process failed the job at once, its status public.
  const refused = await app.call({ method: 'GET', url: urls.refuse, headers: ANN });
  expect(refused.json()).toMatchObject({ status: 'failed', attempt: 1, error: { status: 422 } });
  const noResult = await app.call({ method: 'GET', url: `${urls.refuse}/result`, headers: ANN });
  expect(noResult.statusCode).toBe(409);
}

describe.each(FRAMEWORKS)('%s: a wrapped handler, durably', (framework: WrapFramework) => {
  it('on a SQLite file: submitted, the API process restarted, replayed in a new worker process', async () => {
    const path = join(dir, `${framework}.db`);
    const first = await apiProcess(framework, new SqliteStore({ path }));
    const urls = await submitAll(first.app);
    // The process that accepted the requests goes away before anything ran.
    await first.jobs.close();
    runtimes.splice(runtimes.indexOf(first.jobs), 1);

    await spawnWorker(framework, `sqlite:${path}`);
    const second = await apiProcess(framework, new SqliteStore({ path }));
    for (const url of Object.values(urls)) await ended(second.jobs, url.split('/').pop() as string);
    await expectResults(second.app, urls);
  });

  it('on PostgreSQL: an API process and a worker process; Prefer: wait answers the handler response', async () => {
    const schema = fresh.next();
    await spawnWorker(framework, pgUrl(), schema);
    const { jobs, app } = await apiProcess(framework, new PostgresStore({ connectionString: pgUrl(), schema }));
    const waited = await app.call({ method: 'POST', url: '/created', headers: { ...ANN, prefer: 'wait=10' } });
    expect(waited.statusCode).toBe(201);
    expect(waited.headers['preference-applied']).toBe('wait=10');
    expect(waited.body).toBe('created r1');

    const urls = await submitAll(app);
    for (const url of Object.values(urls)) await ended(jobs, url.split('/').pop() as string);
    await expectResults(app, urls);
  });
});
