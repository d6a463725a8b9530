// JSON that jsonb refuses ("\u0000" in a value or a key, a lone surrogate "\ud800") is stored faithfully on every
// store: the same request gets the same answer whatever the store. What PostgreSQL still refuses is the request's
// fault (400 / a failed job with a code), never a store outage.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { JobStore } from '../src/core/store.js';
import type { NewJob } from '../src/core/types.js';
import { createJobs, MemoryStore } from '../src/index.js';
import { PostgresStore } from '../src/postgres.js';
import { SqliteStore } from '../src/sqlite.js';
import { startApp } from './helpers/apps.js';
import { newJob as baseJob } from './helpers/jobs.js';
import { closeAdmin, eventually, pgUrl, schemaAtVersion, schemas } from './helpers/postgres.js';

const dir = mkdtempSync(join(tmpdir(), 'json-fidelity-'));
const fresh = schemas('jsonfid');
const opened: JobStore[] = [];
let files = 0;

afterAll(async () => {
  for (const store of opened) await store.close();
  await fresh.dropAll();
  await closeAdmin();
  rmSync(dir, { recursive: true, force: true });
});

/** What jsonb refuses: U+0000 in a value and in a key, and a lone surrogate. */
const INPUT = { body: { text: 'a\u0000b', 'k\u0000ey': 1, lone: '\ud800', nested: ['\u0000', { x: '\udfff' }] } };
const RESULT = { out: 'x\u0000y', lone: '\ud800z', 'r\u0000': null };

function newJob(overrides: Partial<NewJob> = {}): NewJob {
  return baseJob({ input: INPUT, ...overrides });
}

const WORKER = 'worker-1';

const cases: Array<[string, () => JobStore]> = [
  ['MemoryStore', () => new MemoryStore()],
  ['SqliteStore', () => new SqliteStore({ path: join(dir, `fidelity-${++files}.sqlite`) })],
  ['PostgresStore', () => new PostgresStore({ connectionString: pgUrl(), schema: fresh.next() })],
];

describe.each(cases)('%s keeps JSON that jsonb refuses', (_name, open) => {
  async function store(): Promise<JobStore> {
    const s = open();
    opened.push(s);
    await s.init();
    return s;
  }

  it('input (as a value and as JSON text) and result round-trip exactly', async () => {
    const s = await store();
    const fromValue = await s.create(newJob());
    // The HTTP submit hands over the body's own JSON text, escapes and all.
    const fromText = await s.create(newJob({ inputJson: JSON.stringify(INPUT) }));
    expect((await s.get(fromValue.job.id))?.input).toEqual(INPUT);
    expect((await s.get(fromText.job.id))?.input).toEqual(INPUT);

    const claimed = await s.claim({ names: ['task'], workerId: WORKER, limit: 10, leaseMs: 30_000 });
    expect(claimed.map((job) => job.input)).toEqual([INPUT, INPUT]);
    for (const job of claimed) {
      const done = await s.complete(job.id, WORKER, { result: RESULT, resultUrl: null, retentionMs: 60_000 });
      expect(done?.status).toBe('complete');
    }
    const job = await s.get(fromText.job.id);
    expect(job?.status).toBe('complete');
    expect(job?.result).toEqual(RESULT);
  });

  it('an error message holding U+0000 is kept too', async () => {
    const s = await store();
    const { job } = await s.create(newJob());
    await s.claim({ names: ['task'], workerId: WORKER, limit: 1, leaseMs: 30_000 });
    const error = { message: 'bad \u0000 byte \ud800', code: 'E_X' };
    await s.fail(job.id, WORKER, { error, retryAt: null, retentionMs: 60_000 });
    expect(await s.get(job.id)).toMatchObject({ status: 'failed', error });
  });
});

describe('PostgresStore: what the database still refuses is not an outage', () => {
  async function store(): Promise<PostgresStore> {
    const s = new PostgresStore({ connectionString: pgUrl(), schema: fresh.next() });
    opened.push(s);
    await s.init();
    return s;
  }

  it('an input whose JSON text PostgreSQL refuses (a raw U+0000) rejects with a 400 code, not a store error', async () => {
    const s = await store();
    const rejected = s.create(newJob({ input: { a: 1 }, inputJson: '{"a":"\u0000"}' }));
    await expect(rejected).rejects.toMatchObject({ code: 'ERR_RESPOND_ASYNC_BAD_INPUT', status: 400 });
    // The other creates of the same turn are not held back by it.
    const [ok, bad] = await Promise.allSettled([
      s.create(newJob({ input: { ok: true } })),
      s.create(newJob({ input: { a: 1 }, inputJson: '{"a":"\u0000"}' })),
    ]);
    expect(ok.status).toBe('fulfilled');
    expect(bad).toMatchObject({ status: 'rejected', reason: { code: 'ERR_RESPOND_ASYNC_BAD_INPUT' } });
  });

  it('a completion PostgreSQL refuses fails the job at once with a code', async () => {
    const s = await store();
    const { job } = await s.create(newJob());
    await s.claim({ names: ['task'], workerId: WORKER, limit: 1, leaseMs: 30_000 });
    // A result URL holding U+0000: the text column refuses it; trying again would fail the same way.
    const done = await s.complete(job.id, WORKER, { result: 1, resultUrl: '/files/a\u0000b', retentionMs: 60_000 });
    expect(done).toMatchObject({ status: 'failed', error: { code: 'ERR_RESPOND_ASYNC_RESULT_NOT_STORABLE' } });
    expect(await s.get(job.id)).toMatchObject({ status: 'failed', resultUrl: null });
  });

  it('a schema of the previous version keeps its jobs through the migration to JSON text', async () => {
    const schema = fresh.next();
    await schemaAtVersion(
      schema,
      2,
      `INSERT INTO jobs (id, name, status, input, result, error, max_attempts, run_at, created_at, updated_at)
         VALUES ('old-1', 'task', 'complete', '{"a":[1,"é"]}', 'null', NULL, 3, 0, 0, 0),
                ('old-2', 'task', 'failed', NULL, NULL, '{"message":"m","code":"E"}', 3, 0, 0, 0)`,
    );
    const s = new PostgresStore({ connectionString: pgUrl(), schema });
    opened.push(s);
    await s.init();
    expect(await s.get('old-1')).toMatchObject({ input: { a: [1, 'é'] }, result: null, error: null });
    expect(await s.get('old-2')).toMatchObject({ input: undefined, error: { message: 'm', code: 'E' } });
  });
});

describe('HTTP on PostgreSQL', () => {
  it('a body with U+0000 (value and key) and a lone surrogate answers 202, and the status document returns the same strings', async () => {
    const jobs = createJobs({ store: new PostgresStore({ connectionString: pgUrl(), schema: fresh.next() }) });
    const echo = jobs.define('echo', async (input: { body: unknown }) => ({ echo: input.body, extra: 'x\u0000y' }));
    const app = await startApp('express', { jobs, routes: [{ path: '/echo', job: echo }], anonymous: true });
    try {
      // The body as a client sends it: JSON escapes, in UTF-8.
      const body = '{"text":"a\\u0000b","k\\u0000ey":1,"lone":"\\ud800"}';
      const submitted = await fetch(`${app.url}/echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      expect(submitted.status).toBe(202);
      const statusUrl = new URL(submitted.headers.get('location') as string, app.url).href;
      const document = await eventually(async () => {
        const doc = (await (await fetch(statusUrl)).json()) as { status: string; result?: unknown };
        return doc.status === 'complete' ? doc : undefined;
      });
      expect(document?.result).toEqual({
        echo: { text: 'a\u0000b', 'k\u0000ey': 1, lone: '\ud800' },
        extra: 'x\u0000y',
      });
    } finally {
      await app.close();
      await jobs.close();
    }
  });
});
