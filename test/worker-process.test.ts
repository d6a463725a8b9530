// A worker process started with jobs.start() stays alive, runs jobs another process submits later, and exits once
// closed; `worker: false` with a MemoryStore warns that nothing will run its jobs.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createJobs, type Jobs, MemoryStore } from '../src/index.js';
import { SqliteStore } from '../src/sqlite.js';
import { sleep } from './helpers/time.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Spawn the start-worker fixture on `path`; resolves once it printed `started`. */
function spawnWorker(
  path: string,
): Promise<{ child: ChildProcess; output: () => string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/start-worker.ts', path], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
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
    const timer = setTimeout(() => reject(new Error(`worker not started in 20 s: ${stderr}`)), 20_000);
    const check = () => {
      if (!stdout.includes('started')) return;
      clearTimeout(timer);
      resolve({ child, output: () => stdout, exited });
    };
    child.stdout!.on('data', check);
    void exited.then((code) => reject(new Error(`worker exited (${code}) before it started: ${stderr}`)));
  });
}

describe('a worker process', () => {
  it('stays alive after jobs.start() on SQLite, runs a job submitted later elsewhere, and exits on SIGTERM after close()', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ra-start-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'jobs.db');
    const worker = await spawnWorker(path);
    // Long enough for a process with nothing holding it open to have exited.
    await sleep(500);
    expect(worker.child.exitCode).toBeNull();

    const api: Jobs = createJobs({ store: new SqliteStore({ path }), worker: false });
    cleanups.push(() => api.close());
    api.define('task', async () => null);
    const { job } = await api.submit('task', { n: 21 });
    expect(await api.waitFor(job.id, 10_000)).toMatchObject({
      status: 'complete',
      result: { twice: 42, pid: worker.child.pid },
    });

    worker.child.kill('SIGTERM');
    const code = await Promise.race([worker.exited, sleep(10_000).then(() => 'still running')]);
    expect(code).toBe(0);
    expect(worker.output()).toContain('closed');
  });

  it('start() is refused on an API-only runtime', async () => {
    const jobs = createJobs({ store: new MemoryStore(), worker: false, logger: { error: () => {}, warn: () => {} } });
    cleanups.push(() => jobs.close());
    await expect(jobs.start()).rejects.toThrow(TypeError);
  });
});

describe('worker: false with a MemoryStore', () => {
  it('warns once that no process can run its jobs; a persistent store gives no warning', async () => {
    const warnings: string[] = [];
    const logger = { error: () => {}, warn: (message: string) => warnings.push(message) };
    const memory = createJobs({ store: new MemoryStore(), worker: false, logger });
    memory.define('task', async () => null);
    await memory.submit('task', {});
    await memory.submit('task', {});
    await memory.close();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/worker: false.*MemoryStore/);

    const dir = mkdtempSync(join(tmpdir(), 'ra-start-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const sqlite = createJobs({ store: new SqliteStore({ path: join(dir, 'jobs.db') }), worker: false, logger });
    await sqlite.close();
    expect(warnings).toHaveLength(1);
  });
});
