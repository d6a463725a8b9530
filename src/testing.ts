// respond-async/testing: the JobStore conformance suite. The project runs it against every store it ships, and
// third-party store authors run it against theirs. It uses only `node:assert/strict`, so it runs under vitest,
// jest or node:test alike: pass the test runner's `describe` and `it`.
import assert from 'node:assert/strict';
import { newJobId } from './core/ids.js';
import type { JobStore } from './core/store.js';
import type { JobRecord, NewJob } from './core/types.js';

export interface StoreConformanceOptions {
  /** Fresh, initialised, empty store for each test. */
  createStore: () => JobStore | Promise<JobStore>;
  /** Optional capabilities */
  capabilities?: {
    /**
     * Reopen a store over the same data (SQLite file / PostgreSQL schema) to prove durability. Omitted for memory.
     * The suite has already closed `previous` when it calls this; the store returned is closed by the suite.
     */
    reopen?: (previous: JobStore) => Promise<JobStore>;
    /** The store implements the optional `createClaimed()`: its cases run too. */
    createClaimed?: boolean;
    /** The store implements the optional synchronous `createNow()`: its cases run too. */
    createNow?: boolean;
  };
}

/** The slice of a test runner the suite needs: vitest, jest and node:test all fit. */
export interface TestApi {
  describe(name: string, fn: () => void): void;
  it(name: string, fn: () => Promise<void> | void, timeout?: number): void;
  afterEach?(fn: () => Promise<void> | void): void;
}

/** Per-test budget. Each case takes well under a second; the margin is for loaded CI machines. */
const TEST_TIMEOUT_MS = 15_000;
/** How long a case waits for a time-based condition (a lease or a retention lapsing) before it fails. */
const WAIT_MS = 5_000;
/** Tolerance for timestamps taken by a store from a clock other than this process's (a database's). */
const CLOCK_SLACK_MS = 50;
/** A lease that cannot lapse during a test. */
const LONG_LEASE_MS = 60_000;
const RETENTION_MS = 60_000;
const NAME = 'conformance';

interface Context {
  /** The store of this test, from `createStore()`. */
  store: JobStore;
  /** Another fresh store from `createStore()`, closed with the test. */
  create(): Promise<JobStore>;
  /** Close `previous` and reopen its data with `capabilities.reopen`. */
  reopen(previous: JobStore): Promise<JobStore>;
}

/**
 * Register the JobStore conformance suite with a test runner.
 * @example
 * import { afterEach, describe, it } from 'vitest';
 * import { describeStoreConformance } from 'respond-async/testing';
 * describeStoreConformance('MyStore', { describe, it, afterEach }, { createStore: async () => {
 *   const store = new MyStore(); await store.init(); return store;
 * } });
 */
export function describeStoreConformance(name: string, api: TestApi, options: StoreConformanceOptions): void {
  const reopenStore = options.capabilities?.reopen;

  /** A case with its own store(s), each closed when the case ends, whether it passed or not. */
  const test = (title: string, body: (ctx: Context) => Promise<void>) => {
    api.it(
      title,
      async () => {
        const open: JobStore[] = [];
        const closed = new Set<JobStore>();
        const close = async (store: JobStore) => {
          if (closed.has(store)) return;
          closed.add(store);
          await store.close();
        };
        const create = async () => {
          const store = await options.createStore();
          open.push(store);
          return store;
        };
        let failed = false;
        let failure: unknown;
        try {
          const ctx: Context = {
            store: await create(),
            create,
            reopen: async (previous) => {
              assert.ok(reopenStore, 'capabilities.reopen is required');
              await close(previous);
              const next = await reopenStore(previous);
              open.push(next);
              return next;
            },
          };
          await body(ctx);
        } catch (error) {
          failed = true;
          failure = error;
        }
        for (const store of open.reverse()) {
          try {
            await close(store);
          } catch (error) {
            if (!failed) {
              failed = true;
              failure = error;
            }
          }
        }
        if (failed) throw failure;
      },
      TEST_TIMEOUT_MS,
    );
  };

  api.describe(`${name}: JobStore conformance`, () => {
    // ---------------------------------------------------------------------------------------------- basics

    test('has a kind and init() may be called again', async ({ store }) => {
      assert.equal(typeof store.kind, 'string');
      assert.ok(store.kind.length > 0, 'kind must be non-empty');
      await store.init();
      await store.init();
      const { job } = await store.create(newJob());
      assert.equal((await store.get(job.id))?.id, job.id);
    });

    test('create inserts a queued job with defaulted fields; get returns it with the input intact', async ({
      store,
    }) => {
      const input = sampleInput();
      const spec = newJob({
        input,
        owner: 'alice',
        idempotencyKey: 'key-1',
        requestHash: 'hash-1',
        maxAttempts: 5,
        callbackUrl: 'https://example.com/hook',
      });
      const before = Date.now();
      const { job, created } = await store.create(spec);
      const after = Date.now();
      assert.equal(created, true);
      for (const record of [job, await store.get(spec.id)]) {
        assert.ok(record, 'get must return the job just created');
        assert.equal(record.id, spec.id);
        assert.equal(record.name, NAME);
        assert.equal(record.status, 'queued');
        assert.deepEqual(record.input, sampleInput());
        assert.equal(record.owner, 'alice');
        assert.equal(record.idempotencyKey, 'key-1');
        assert.equal(record.requestHash, 'hash-1');
        assert.equal(record.progress, null);
        assert.equal(record.message, null);
        assert.ok(record.result === undefined || record.result === null, 'result must be empty');
        assert.equal(record.resultUrl, null);
        assert.equal(record.error, null);
        assert.equal(record.attempt, 0);
        assert.equal(record.maxAttempts, 5);
        assert.equal(record.leaseOwner, null);
        assert.equal(record.leaseUntil, null);
        assert.equal(record.cancelRequested, false);
        assert.equal(record.callbackUrl, 'https://example.com/hook');
        assert.equal(record.deliveryStatus, null);
        assert.equal(record.deliveryAttempts, 0);
        assert.equal(record.deliveryNextAt, null);
        assertTime(record.createdAt, before, after, 'createdAt');
        assertTime(record.updatedAt, before, after, 'updatedAt');
        assert.ok(record.runAt <= after + CLOCK_SLACK_MS, 'a new job is due at once');
        assert.equal(record.startedAt, null);
        assert.equal(record.finishedAt, null);
        assert.equal(record.expiresAt, null);
        assert.ok(Number.isInteger(record.seq), 'seq must be an integer');
      }
    });

    test('create with inputJson (the input as JSON text, in its own spelling) gives back the input it spells', async ({
      store,
    }) => {
      const input = { body: { value: 'é\n', n: [1.5, 100] }, params: { id: '7' }, query: {} };
      const inputJson = '{ "body" : {"value":"\\u00e9\\n", "n":[1.50, 1E2]},\n"params":{"id":"7"}, "query":{} }';
      const { job } = await store.create(newJob({ input, inputJson }));
      assert.deepEqual(job.input, input);
      assert.deepEqual((await store.get(job.id))?.input, input);
      const [claimed] = await store.claim(claimOptions('w1'));
      assert.deepEqual(claimed?.input, input);
    });

    test('get of an unknown or malformed id is undefined', async ({ store }) => {
      await store.create(newJob());
      assert.equal(await store.get(newJobId()), undefined);
      assert.equal(await store.get('not a job id'), undefined);
      assert.equal(await store.get(''), undefined);
    });

    test('returned records are snapshots: changing one (input and result included) does not change the store', async ({
      store,
    }) => {
      const input = sampleInput();
      const spec = newJob({ input });
      const { job } = await store.create(spec);
      input.body.nested.deep.deeper.push('changed by the caller after create');
      job.status = 'failed';
      (job.input as ReturnType<typeof sampleInput>).body.arr.push('changed through the returned record');
      const [claimed] = await store.claim(claimOptions('w1'));
      (claimed.input as ReturnType<typeof sampleInput>).body.text = 'changed by a handler';
      const result = { rows: [1, 2, 3] };
      const done = await store.complete(spec.id, 'w1', { result, resultUrl: null, retentionMs: RETENTION_MS });
      result.rows.push(4);
      assert.ok(done, 'the holder completes the job');
      (done.result as { rows: number[] }).rows.push(5);
      const stored = await store.get(spec.id);
      assert.equal(stored?.status, 'complete');
      assert.deepEqual(stored?.input, sampleInput());
      assert.deepEqual(stored?.result, { rows: [1, 2, 3] });
    });

    test('owner is recorded and kept through claim and completion', async ({ store }) => {
      const { job } = await store.create(newJob({ owner: 'tenant-1:user-9' }));
      const [claimed] = await store.claim(claimOptions('w1'));
      assert.equal(claimed.owner, 'tenant-1:user-9');
      const done = await store.complete(job.id, 'w1', { result: 1, resultUrl: null, retentionMs: RETENTION_MS });
      assert.equal(done?.owner, 'tenant-1:user-9');
      assert.equal((await store.get(job.id))?.owner, 'tenant-1:user-9');
    });

    // ----------------------------------------------------------------------------------------- idempotency

    test('idempotency: the same owner and key return the existing job with created:false', async ({ store }) => {
      const first = await store.create(newJob({ owner: 'alice', idempotencyKey: 'k', input: { n: 1 } }));
      await store.claim(claimOptions('w1'));
      const second = await store.create(newJob({ owner: 'alice', idempotencyKey: 'k', input: { n: 2 } }));
      assert.equal(first.created, true);
      assert.equal(second.created, false);
      assert.equal(second.job.id, first.job.id);
      assert.deepEqual(second.job.input, { n: 1 }, 'the existing job, not the new request');
      assert.equal(second.job.status, 'processing', 'the existing job as it is now');
      assert.equal((await store.list({ owner: 'alice', limit: 10 })).length, 1);
    });

    test('idempotency: the same key under another owner (or none) creates another job', async ({ store }) => {
      const alice = await store.create(newJob({ owner: 'alice', idempotencyKey: 'shared' }));
      const bob = await store.create(newJob({ owner: 'bob', idempotencyKey: 'shared' }));
      const anonymous = await store.create(newJob({ owner: null, idempotencyKey: 'shared' }));
      assert.deepEqual([alice.created, bob.created, anonymous.created], [true, true, true]);
      assert.equal(new Set([alice.job.id, bob.job.id, anonymous.job.id]).size, 3);
      const again = await store.create(newJob({ owner: null, idempotencyKey: 'shared' }));
      assert.equal(again.created, false);
      assert.equal(again.job.id, anonymous.job.id);
    });

    test('idempotency: jobs without a key are never merged', async ({ store }) => {
      const a = await store.create(newJob({ owner: 'alice' }));
      const b = await store.create(newJob({ owner: 'alice' }));
      assert.equal(a.created && b.created, true);
      assert.notEqual(a.job.id, b.job.id);
    });

    test('idempotency: 20 concurrent creates with one key create exactly one job', async ({ store }) => {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          store.create(newJob({ owner: 'alice', idempotencyKey: 'race', input: { i } })),
        ),
      );
      assert.equal(results.filter((r) => r.created).length, 1, 'exactly one create wins');
      assert.equal(new Set(results.map((r) => r.job.id)).size, 1, 'every caller gets the same job');
      const winner = results.find((r) => r.created);
      assert.deepEqual(results[0].job.input, winner?.job.input);
      assert.equal((await store.list({ owner: 'alice', limit: 100 })).length, 1);
      assert.equal((await store.claim({ ...claimOptions('w1'), limit: 100 })).length, 1);
    });

    test('idempotency: creates issued together (one batch) resolve keys per job, a repeated key included', async ({
      store,
    }) => {
      const [a, b, c, d, e] = await Promise.all([
        store.create(newJob({ owner: 'alice', idempotencyKey: 'same', input: { n: 1 } })),
        store.create(newJob({ owner: 'alice', input: sampleInput() })),
        store.create(newJob({ owner: 'alice', idempotencyKey: 'same', input: { n: 3 } })),
        store.create(newJob({ owner: 'alice', idempotencyKey: 'other', input: { n: 4 } })),
        store.create(newJob({ owner: 'bob', idempotencyKey: 'same', input: { n: 5 } })),
      ]);
      assert.deepEqual(
        [a, b, c, d, e].map((r) => r.created),
        [true, true, false, true, true],
      );
      assert.equal(c.job.id, a.job.id, 'the repeated key gets the job created for it first');
      assert.deepEqual(c.job.input, { n: 1 });
      assert.deepEqual(
        [a, b, d, e].map((r) => r.job.input),
        [{ n: 1 }, sampleInput(), { n: 4 }, { n: 5 }],
        'each caller gets its own job, its input intact',
      );
      assert.deepEqual((await store.get(b.job.id))?.input, sampleInput());
      assert.equal(new Set([a, b, d, e].map((r) => r.job.id)).size, 4);
      assert.equal((await store.list({ owner: 'alice', limit: 10 })).length, 3);
      for (const r of [a, b, d, e]) assert.equal((await store.get(r.job.id))?.id, r.job.id, 'stored');
    });

    test('completions issued together: each keeps its own lease check', async ({ store }) => {
      const { job: lost } = await store.create(newJob());
      await store.claim({ ...claimOptions('old'), leaseMs: 50 });
      await eventually('the lapsed job is claimed', () => store.claim(claimOptions('new')));
      const { job: mine } = await store.create(newJob());
      assert.equal((await store.claim(claimOptions('old')))[0]?.id, mine.id);
      const outcome = (result: string) => ({ result, resultUrl: null, retentionMs: RETENTION_MS });
      const [stale, fresh, other] = await Promise.all([
        store.complete(lost.id, 'old', outcome('stale')),
        store.complete(lost.id, 'new', outcome('fresh')),
        store.complete(mine.id, 'old', outcome('mine')),
      ]);
      assert.equal(stale, undefined, 'a lapsed lease completes nothing');
      assert.equal(fresh?.result, 'fresh');
      assert.equal(other?.result, 'mine');
      assert.equal((await store.get(lost.id))?.result, 'fresh');
      assert.equal((await store.get(mine.id))?.status, 'complete');
    });

    // ------------------------------------------------------------------------------------------------ list

    test('list returns the owner’s jobs, newest first, scoped to the owner and limited', async ({ store }) => {
      const ids: string[] = [];
      for (let i = 0; i < 4; i += 1) {
        ids.push((await store.create(newJob({ owner: 'alice', input: { i } }))).job.id);
        await nextMillisecond();
      }
      const bob = (await store.create(newJob({ owner: 'bob' }))).job.id;
      const nobody = (await store.create(newJob({ owner: null }))).job.id;
      const alice = await store.list({ owner: 'alice', limit: 10 });
      assert.deepEqual(
        alice.map((job) => job.id),
        [...ids].reverse(),
      );
      assert.deepEqual(
        (await store.list({ owner: 'alice', limit: 2 })).map((job) => job.id),
        [ids[3], ids[2]],
      );
      assert.deepEqual(
        (await store.list({ owner: 'bob', limit: 10 })).map((job) => job.id),
        [bob],
      );
      assert.deepEqual(
        (await store.list({ owner: null, limit: 10 })).map((job) => job.id),
        [nobody],
      );
      assert.deepEqual(await store.list({ owner: 'carol', limit: 10 }), []);
    });

    // ----------------------------------------------------------------------------------------------- claim

    test('claim takes only jobs registered under the given names', async ({ store }) => {
      const alpha = await store.create(newJob({ name: 'alpha' }));
      const beta = await store.create(newJob({ name: 'beta' }));
      assert.deepEqual(await store.claim({ ...claimOptions('w1'), names: ['gamma'], limit: 10 }), []);
      const claimed = await store.claim({ ...claimOptions('w1'), names: ['alpha'], limit: 10 });
      assert.deepEqual(
        claimed.map((job) => job.id),
        [alpha.job.id],
      );
      assert.equal((await store.get(beta.job.id))?.status, 'queued');
      const both = await store.claim({ ...claimOptions('w2'), names: ['alpha', 'beta'], limit: 10 });
      assert.deepEqual(
        both.map((job) => job.id),
        [beta.job.id],
      );
    });

    test('claim respects the limit and takes the oldest runAt first', async ({ store }) => {
      const jobs: string[] = [];
      for (let i = 0; i < 3; i += 1) jobs.push((await store.create(newJob({ input: { i } }))).job.id);
      assert.equal((await store.claim({ ...claimOptions('w1'), limit: 10 })).length, 3);
      // Put them back with runAt values in an order unlike their creation order.
      const now = Date.now();
      const runAt = [now - 1_000, now - 3_000, now - 2_000];
      for (const [i, id] of jobs.entries()) {
        const failed = await store.fail(id, 'w1', {
          error: { message: 'again' },
          retryAt: runAt[i],
          retentionMs: RETENTION_MS,
        });
        assert.equal(failed?.status, 'queued');
      }
      const first = await store.claim({ ...claimOptions('w2'), limit: 2 });
      assert.deepEqual(
        first.map((job) => job.id),
        [jobs[1], jobs[2]],
      );
      const rest = await store.claim({ ...claimOptions('w2'), limit: 2 });
      assert.deepEqual(
        rest.map((job) => job.id),
        [jobs[0]],
      );
      assert.deepEqual(await store.claim({ ...claimOptions('w2'), limit: 2 }), []);
    });

    test('claim sets processing, attempt + 1, the lease and startedAt', async ({ store }) => {
      const { job } = await store.create(newJob());
      const before = Date.now();
      const [claimed] = await store.claim({ ...claimOptions('worker-1'), leaseMs: 30_000 });
      const after = Date.now();
      const stored = await store.get(job.id);
      for (const record of [claimed, stored]) {
        assert.ok(record);
        assert.equal(record.id, job.id);
        assert.equal(record.status, 'processing');
        assert.equal(record.attempt, 1);
        assert.equal(record.leaseOwner, 'worker-1');
        assertTime(record.leaseUntil, before + 30_000, after + 30_000, 'leaseUntil');
        assertTime(record.startedAt, before, after, 'startedAt');
        assert.ok(record.seq > job.seq, 'claim must increase seq');
        assert.ok(record.updatedAt >= job.updatedAt);
      }
    });

    test('claim skips a job whose lease is held, and startedAt is kept on a later attempt', async ({ store }) => {
      const { job } = await store.create(newJob());
      const [first] = await store.claim(claimOptions('w1'));
      assert.deepEqual(await store.claim({ ...claimOptions('w2'), limit: 10 }), []);
      await store.fail(job.id, 'w1', { error: { message: 'x' }, retryAt: Date.now(), retentionMs: RETENTION_MS });
      await nextMillisecond();
      const [second] = await store.claim(claimOptions('w2'));
      assert.equal(second.attempt, 2);
      assert.equal(second.leaseOwner, 'w2');
      assert.equal(second.startedAt, first.startedAt, 'startedAt is set once');
    });

    test('claim is atomic under concurrency: 50 jobs, 10 claimers, every job claimed exactly once', async ({
      store,
    }) => {
      const ids = new Set<string>();
      for (let i = 0; i < 50; i += 1) ids.add((await store.create(newJob({ input: { i } }))).job.id);
      const claimedBy = new Map<string, string[]>();
      await Promise.all(
        Array.from({ length: 10 }, async (_, w) => {
          const workerId = `claimer-${w}`;
          for (;;) {
            const batch = await store.claim({ names: [NAME], workerId, limit: 5, leaseMs: LONG_LEASE_MS });
            assert.ok(batch.length <= 5, 'limit respected');
            if (batch.length === 0) return;
            for (const job of batch) {
              assert.equal(job.leaseOwner, workerId);
              assert.equal(job.attempt, 1);
              claimedBy.set(job.id, [...(claimedBy.get(job.id) ?? []), workerId]);
            }
          }
        }),
      );
      assert.equal(claimedBy.size, 50, 'every job claimed');
      for (const [id, workers] of claimedBy) {
        assert.ok(ids.has(id));
        assert.equal(workers.length, 1, `job ${id} claimed by ${workers.join(', ')}`);
        const stored = await store.get(id);
        assert.equal(stored?.leaseOwner, workers[0]);
        assert.equal(stored?.attempt, 1);
      }
    });

    test('a job failed with a future retryAt is not claimed before it is due', async ({ store }) => {
      const { job } = await store.create(newJob());
      await store.claim(claimOptions('w1'));
      const retryAt = Date.now() + 300;
      const failed = await store.fail(job.id, 'w1', {
        error: { message: 'try later' },
        retryAt,
        retentionMs: RETENTION_MS,
      });
      assert.equal(failed?.status, 'queued');
      assert.equal(failed?.runAt, retryAt);
      assert.deepEqual(await store.claim(claimOptions('w2')), [], 'not due yet');
      const [claimed] = await eventually('the retried job is claimed', () => store.claim(claimOptions('w2')));
      assert.ok(Date.now() >= retryAt - CLOCK_SLACK_MS, 'claimed only once due');
      assert.equal(claimed.id, job.id);
      assert.equal(claimed.attempt, 2);
    });

    if (options.capabilities?.createNow) {
      test('createNow creates as create does, before it returns; a bound key gives the job back', async ({ store }) => {
        assert.equal(typeof store.createNow, 'function', 'capabilities.createNow: the store has none');
        const spec = newJob({ idempotencyKey: 'k', owner: 'ann' });
        const { job, created } = store.createNow!(spec);
        assert.equal(created, true);
        assert.equal(job.id, spec.id);
        assert.equal(job.status, 'queued');
        assert.deepEqual(job.input, spec.input);
        assert.deepEqual((await store.get(spec.id))?.input, spec.input);
        const again = store.createNow!(newJob({ idempotencyKey: 'k', owner: 'ann' }));
        assert.deepEqual([again.created, again.job.id], [false, job.id]);
        const viaCreate = await store.create(newJob({ idempotencyKey: 'k', owner: 'ann' }));
        assert.deepEqual([viaCreate.created, viaCreate.job.id], [false, job.id]);
        const [claimed] = await store.claim(claimOptions('w1'));
        assert.equal(claimed?.id, job.id);
      });
    }

    if (options.capabilities?.createClaimed) {
      test('createClaimed inserts the job leased to the worker; a bound key returns the job untouched', async ({
        store,
      }) => {
        assert.equal(typeof store.createClaimed, 'function', 'capabilities.createClaimed: the store has none');
        const spec = newJob({ idempotencyKey: 'k', owner: 'ann' });
        const { job, created } = await store.createClaimed!(spec, { workerId: 'w1', leaseMs: 100 });
        assert.equal(created, true);
        assert.equal(job.status, 'processing');
        assert.equal(job.attempt, 1);
        assert.equal(job.leaseOwner, 'w1');
        assert.equal(job.startedAt, job.createdAt);
        assert.equal((job.leaseUntil ?? 0) - job.createdAt, 100);
        assert.deepEqual(job.input, spec.input);
        const again = await store.createClaimed!(newJob({ idempotencyKey: 'k', owner: 'ann' }), {
          workerId: 'w2',
          leaseMs: LONG_LEASE_MS,
        });
        assert.equal(again.created, false);
        assert.equal(again.job.id, job.id);
        assert.equal(again.job.leaseOwner, 'w1');
        assert.equal(again.job.attempt, 1);
        // Nobody else takes it while the lease holds; once it lapses (its creator died), another worker does.
        assert.deepEqual(await store.claim(claimOptions('w2')), []);
        const [taken] = await eventually('the lapsed job is claimed', () => store.claim(claimOptions('w2')));
        assert.equal(taken.id, job.id);
        assert.equal(taken.attempt, 2);
        const stale = await store.complete(job.id, 'w1', { result: 1, resultUrl: null, retentionMs: RETENTION_MS });
        assert.equal(stale, undefined, 'the lapsed lease completes nothing');
      });
    }

    test('a lapsed lease makes the job claimable by another worker; the old worker has lost it', async ({ store }) => {
      const { job } = await store.create(newJob());
      const [first] = await store.claim({ ...claimOptions('old'), leaseMs: 50 });
      assert.equal(first.attempt, 1);
      const [taken] = await eventually('the lapsed job is claimed', () => store.claim(claimOptions('new')));
      assert.equal(taken.id, job.id);
      assert.equal(taken.status, 'processing');
      assert.equal(taken.attempt, 2);
      assert.equal(taken.leaseOwner, 'new');

      assert.equal(await store.progress(job.id, 'old', 50, 'stale'), undefined);
      assert.equal(
        await store.complete(job.id, 'old', { result: 'stale', resultUrl: null, retentionMs: RETENTION_MS }),
        undefined,
      );
      assert.equal(
        await store.fail(job.id, 'old', { error: { message: 'stale' }, retryAt: null, retentionMs: RETENTION_MS }),
        undefined,
      );
      assert.equal(await store.markCanceled(job.id, 'old', { retentionMs: RETENTION_MS }), undefined);
      await store.release(job.id, 'old');
      const [lease] = await store.renew([job.id], 'old', LONG_LEASE_MS);
      assert.deepEqual(lease, { id: job.id, held: false, cancelRequested: false });

      const stored = await store.get(job.id);
      assert.equal(stored?.status, 'processing');
      assert.equal(stored?.leaseOwner, 'new');
      assert.equal(stored?.attempt, 2);
      assert.equal(stored?.progress, null);
      const done = await store.complete(job.id, 'new', { result: 'fresh', resultUrl: null, retentionMs: RETENTION_MS });
      assert.equal(done?.result, 'fresh');
    });

    // ------------------------------------------------------------------------------------------ held jobs

    test('renew extends the lease and reports cancelRequested; a non-holder gets held:false', async ({ store }) => {
      const a = (await store.create(newJob())).job.id;
      const b = (await store.create(newJob())).job.id;
      await store.claim({ ...claimOptions('w1'), limit: 2, leaseMs: 1_000 });
      const before = Date.now();
      const states = await store.renew([a, b], 'w1', LONG_LEASE_MS);
      assert.equal(states.length, 2);
      for (const id of [a, b]) {
        assert.deepEqual(
          states.find((state) => state.id === id),
          { id, held: true, cancelRequested: false },
        );
        const stored = await store.get(id);
        assert.ok(
          (stored?.leaseUntil ?? 0) >= before + LONG_LEASE_MS - CLOCK_SLACK_MS,
          `leaseUntil extended (got ${stored?.leaseUntil}, expected about ${before + LONG_LEASE_MS})`,
        );
      }
      assert.equal((await store.cancel(b, { retentionMs: RETENTION_MS })).outcome, 'requested');
      const after = await store.renew([a, b], 'w1', LONG_LEASE_MS);
      assert.deepEqual(
        after.find((state) => state.id === b),
        { id: b, held: true, cancelRequested: true },
      );
      assert.deepEqual(
        after.find((state) => state.id === a),
        { id: a, held: true, cancelRequested: false },
      );
      const other = await store.renew([a], 'w2', LONG_LEASE_MS);
      assert.deepEqual(other, [{ id: a, held: false, cancelRequested: false }]);
      const missing = newJobId();
      assert.deepEqual(await store.renew([missing], 'w1', LONG_LEASE_MS), [
        { id: missing, held: false, cancelRequested: false },
      ]);
    });

    test('progress records percent and message for the lease holder only', async ({ store }) => {
      const { job } = await store.create(newJob());
      const [claimed] = await store.claim(claimOptions('w1'));
      const first = await store.progress(job.id, 'w1', 40, 'reading');
      assert.equal(first?.progress, 40);
      assert.equal(first?.message, 'reading');
      assert.ok((first?.seq ?? 0) > claimed.seq, 'progress must increase seq');
      const second = await store.progress(job.id, 'w1', 60, null);
      assert.equal(second?.progress, 60);
      assert.equal(second?.message, null);
      assert.equal(await store.progress(job.id, 'w2', 99, 'not mine'), undefined);
      const stored = await store.get(job.id);
      assert.equal(stored?.progress, 60);
      assert.equal(stored?.message, null);
      assert.equal(stored?.status, 'processing');
      assert.equal(await store.progress(newJobId(), 'w1', 10, null), undefined);
    });

    test('complete stores the result and finishes the job', async ({ store }) => {
      const { job } = await store.create(newJob());
      const [claimed] = await store.claim(claimOptions('w1'));
      await store.progress(job.id, 'w1', 30, 'working');
      const result = { rows: [{ id: 1, name: 'één' }], total: 1, done: true, note: null };
      assert.equal(
        await store.complete(job.id, 'w2', { result, resultUrl: null, retentionMs: RETENTION_MS }),
        undefined,
        'a non-holder cannot complete',
      );
      const before = Date.now();
      const done = await store.complete(job.id, 'w1', {
        result,
        resultUrl: '/files/1',
        retentionMs: RETENTION_MS,
      });
      const after = Date.now();
      const stored = await store.get(job.id);
      for (const record of [done, stored]) {
        assert.ok(record);
        assert.equal(record.status, 'complete');
        assert.deepEqual(record.result, { rows: [{ id: 1, name: 'één' }], total: 1, done: true, note: null });
        assert.equal(record.resultUrl, '/files/1');
        assert.equal(record.progress, 100);
        assert.equal(record.error, null);
        assert.equal(record.attempt, 1);
        assert.equal(record.leaseOwner, null);
        assert.equal(record.leaseUntil, null);
        assert.equal(record.startedAt, claimed.startedAt);
        assertTime(record.finishedAt, before, after, 'finishedAt');
        assertTime(record.expiresAt, before + RETENTION_MS, after + RETENTION_MS, 'expiresAt');
        assert.ok(record.seq > claimed.seq);
        assert.equal(record.deliveryStatus, null, 'no callback URL, no delivery');
      }
      assert.equal(
        await store.complete(job.id, 'w1', { result: 'again', resultUrl: null, retentionMs: RETENTION_MS }),
        undefined,
        'a finished job cannot be completed again',
      );
      assert.deepEqual(await store.claim(claimOptions('w2')), [], 'a finished job is not claimed');
    });

    test('complete stores results of every JSON type', async ({ store }) => {
      const results: unknown[] = ['text', 42, 1.5, true, false, null, [1, 'a', { b: [] }], {}];
      for (const result of results) await store.create(newJob({ input: { result } }));
      const claimed = await store.claim({ ...claimOptions('w1'), limit: results.length });
      assert.equal(claimed.length, results.length);
      for (const job of claimed) {
        const { result } = job.input as { result: unknown };
        await store.complete(job.id, 'w1', { result, resultUrl: null, retentionMs: RETENTION_MS });
        assert.deepEqual((await store.get(job.id))?.result, result);
      }
    });

    test('seq increases on every change', async ({ store }) => {
      const seqs: number[] = [];
      const record = (job: JobRecord | undefined) => {
        assert.ok(job);
        seqs.push(job.seq);
      };
      const { job } = await store.create(newJob());
      record(job);
      record((await store.claim(claimOptions('w1')))[0]);
      record(await store.progress(job.id, 'w1', 10, null));
      record(await store.fail(job.id, 'w1', { error: { message: 'x' }, retryAt: 0, retentionMs: RETENTION_MS }));
      record((await store.claim(claimOptions('w1')))[0]);
      await store.release(job.id, 'w1');
      record(await store.get(job.id));
      record((await store.claim(claimOptions('w1')))[0]);
      record((await store.cancel(job.id, { retentionMs: RETENTION_MS })).job);
      record(await store.markCanceled(job.id, 'w1', { retentionMs: RETENTION_MS }));
      record(await store.get(job.id));
      for (let i = 1; i < seqs.length - 1; i += 1) {
        assert.ok(seqs[i] > seqs[i - 1], `seq must increase at every change: ${seqs.join(', ')}`);
      }
      assert.equal(seqs.at(-1), seqs.at(-2), 'a read does not change seq');
    });

    test('fail with retryAt puts the job back in the queue with the error kept', async ({ store }) => {
      const { job } = await store.create(newJob({ maxAttempts: 3 }));
      const [claimed] = await store.claim(claimOptions('w1'));
      assert.equal(
        await store.fail(job.id, 'w2', { error: { message: 'x' }, retryAt: null, retentionMs: RETENTION_MS }),
        undefined,
        'a non-holder cannot fail the job',
      );
      const retryAt = Date.now() + LONG_LEASE_MS;
      const failed = await store.fail(job.id, 'w1', {
        error: { message: 'upstream down', code: 'UPSTREAM' },
        retryAt,
        retentionMs: RETENTION_MS,
      });
      const stored = await store.get(job.id);
      for (const record of [failed, stored]) {
        assert.ok(record);
        assert.equal(record.status, 'queued');
        assert.deepEqual(record.error, { message: 'upstream down', code: 'UPSTREAM' });
        assert.equal(record.runAt, retryAt);
        assert.equal(record.attempt, 1);
        assert.equal(record.leaseOwner, null);
        assert.equal(record.leaseUntil, null);
        assert.equal(record.finishedAt, null);
        assert.equal(record.expiresAt, null);
        assert.ok(record.seq > claimed.seq);
      }
      assert.equal(await store.progress(job.id, 'w1', 5, null), undefined, 'the lease went with the failed attempt');
    });

    test('fail without retryAt ends the job failed', async ({ store }) => {
      const { job } = await store.create(newJob());
      await store.claim(claimOptions('w1'));
      const before = Date.now();
      const failed = await store.fail(job.id, 'w1', {
        error: { message: 'The job failed' },
        retryAt: null,
        retentionMs: RETENTION_MS,
      });
      const after = Date.now();
      for (const record of [failed, await store.get(job.id)]) {
        assert.ok(record);
        assert.equal(record.status, 'failed');
        assert.deepEqual(record.error, { message: 'The job failed' });
        assert.equal(record.leaseOwner, null);
        assert.equal(record.leaseUntil, null);
        assertTime(record.finishedAt, before, after, 'finishedAt');
        assertTime(record.expiresAt, before + RETENTION_MS, after + RETENTION_MS, 'expiresAt');
      }
      assert.deepEqual(await store.claim(claimOptions('w2')), [], 'a failed job is not claimed');
    });

    // ---------------------------------------------------------------------------------------------- cancel

    test('cancel of a queued job: canceled at once, never claimed', async ({ store }) => {
      const { job } = await store.create(newJob());
      const before = Date.now();
      const { outcome, job: canceled } = await store.cancel(job.id, { retentionMs: RETENTION_MS });
      const after = Date.now();
      assert.equal(outcome, 'canceled');
      for (const record of [canceled, await store.get(job.id)]) {
        assert.ok(record);
        assert.equal(record.status, 'canceled');
        assertTime(record.finishedAt, before, after, 'finishedAt');
        assertTime(record.expiresAt, before + RETENTION_MS, after + RETENTION_MS, 'expiresAt');
        assert.ok(record.seq > job.seq);
      }
      assert.deepEqual(await store.claim(claimOptions('w1')), []);
    });

    test('cancel of a processing job: requested, then markCanceled by the holder ends it canceled', async ({
      store,
    }) => {
      const { job } = await store.create(newJob());
      const [claimed] = await store.claim(claimOptions('w1'));
      const requested = await store.cancel(job.id, { retentionMs: RETENTION_MS });
      assert.equal(requested.outcome, 'requested');
      assert.equal(requested.job?.status, 'processing');
      assert.equal(requested.job?.cancelRequested, true);
      assert.ok((requested.job?.seq ?? 0) > claimed.seq);
      const stored = await store.get(job.id);
      assert.equal(stored?.status, 'processing');
      assert.equal(stored?.cancelRequested, true);
      assert.equal(stored?.leaseOwner, 'w1');
      assert.equal((await store.cancel(job.id, { retentionMs: RETENTION_MS })).outcome, 'requested');
      assert.equal(await store.markCanceled(job.id, 'w2', { retentionMs: RETENTION_MS }), undefined);
      const before = Date.now();
      const canceled = await store.markCanceled(job.id, 'w1', { retentionMs: RETENTION_MS });
      const after = Date.now();
      for (const record of [canceled, await store.get(job.id)]) {
        assert.ok(record);
        assert.equal(record.status, 'canceled');
        assert.equal(record.leaseOwner, null);
        assert.equal(record.leaseUntil, null);
        assertTime(record.finishedAt, before, after, 'finishedAt');
        assertTime(record.expiresAt, before + RETENTION_MS, after + RETENTION_MS, 'expiresAt');
      }
    });

    test('cancel of a finished job is "finished" and changes nothing; of an unknown job "missing"', async ({
      store,
    }) => {
      const { job } = await store.create(newJob());
      await store.claim(claimOptions('w1'));
      const done = await store.complete(job.id, 'w1', { result: 'ok', resultUrl: null, retentionMs: RETENTION_MS });
      const finished = await store.cancel(job.id, { retentionMs: RETENTION_MS });
      assert.equal(finished.outcome, 'finished');
      assert.equal(finished.job?.id, job.id);
      assert.equal(finished.job?.status, 'complete');
      const stored = await store.get(job.id);
      assert.equal(stored?.status, 'complete');
      assert.equal(stored?.seq, done?.seq);
      assert.equal(stored?.cancelRequested, false);
      const missing = await store.cancel(newJobId(), { retentionMs: RETENTION_MS });
      assert.equal(missing.outcome, 'missing');
      assert.equal(missing.job, undefined);
    });

    test('release hands the job back to the queue without counting the attempt', async ({ store }) => {
      const { job } = await store.create(newJob());
      await store.claim(claimOptions('w1'));
      await store.release(job.id, 'w2');
      assert.equal((await store.get(job.id))?.leaseOwner, 'w1', 'a non-holder cannot release');
      await store.release(job.id, 'w1');
      const released = await store.get(job.id);
      assert.equal(released?.status, 'queued');
      assert.equal(released?.attempt, 0);
      assert.equal(released?.leaseOwner, null);
      assert.equal(released?.leaseUntil, null);
      const [again] = await store.claim(claimOptions('w2'));
      assert.equal(again.id, job.id);
      assert.equal(again.attempt, 1);
    });

    // ------------------------------------------------------------------------------------------- retention

    test('an expired job is hidden before any purge and its idempotency key is free', async ({ store }) => {
      const { job } = await store.create(newJob({ owner: 'alice', idempotencyKey: 'k' }));
      await store.claim(claimOptions('w1'));
      await store.complete(job.id, 'w1', { result: 'ok', resultUrl: null, retentionMs: 1 });
      await eventually('the job expires', async () => (await store.get(job.id)) === undefined);
      assert.deepEqual(await store.list({ owner: 'alice', limit: 10 }), []);
      assert.equal((await store.cancel(job.id, { retentionMs: RETENTION_MS })).outcome, 'missing');
      const again = await store.create(newJob({ owner: 'alice', idempotencyKey: 'k' }));
      assert.equal(again.created, true);
      assert.notEqual(again.job.id, job.id);
      assert.equal(await store.purgeExpired(), 1);
      const third = await store.create(newJob({ owner: 'alice', idempotencyKey: 'k' }));
      assert.equal(third.created, false, 'purging the old job leaves the key bound to the new one');
      assert.equal(third.job.id, again.job.id);
    });

    test('purgeExpired deletes expired jobs only, returns how many, and frees their idempotency keys', async ({
      store,
    }) => {
      const short = (await store.create(newJob({ owner: 'alice', idempotencyKey: 'k1' }))).job.id;
      const failed = (await store.create(newJob({ owner: 'alice', idempotencyKey: 'k2' }))).job.id;
      const kept = (await store.create(newJob({ owner: 'alice', idempotencyKey: 'k3' }))).job.id;
      const queued = (await store.create(newJob({ owner: 'alice', idempotencyKey: 'k4' }))).job.id;
      const claimed = await store.claim({ ...claimOptions('w1'), limit: 3 });
      assert.deepEqual(claimed.map((job) => job.id).sort(), [short, failed, kept].sort());
      await store.complete(short, 'w1', { result: 1, resultUrl: null, retentionMs: 1 });
      await store.fail(failed, 'w1', { error: { message: 'x' }, retryAt: null, retentionMs: 1 });
      await store.complete(kept, 'w1', { result: 3, resultUrl: null, retentionMs: RETENTION_MS });
      await eventually(
        'both short-lived jobs expire',
        async () => (await store.get(short)) === undefined && (await store.get(failed)) === undefined,
      );
      assert.equal(await store.purgeExpired(), 2);
      assert.equal(await store.purgeExpired(), 0);
      assert.equal((await store.get(kept))?.status, 'complete');
      assert.equal((await store.get(queued))?.status, 'queued');
      const k1 = await store.create(newJob({ owner: 'alice', idempotencyKey: 'k1' }));
      assert.equal(k1.created, true);
      assert.notEqual(k1.job.id, short);
      const k3 = await store.create(newJob({ owner: 'alice', idempotencyKey: 'k3' }));
      assert.equal(k3.created, false);
      assert.equal(k3.job.id, kept);
      const k4 = await store.create(newJob({ owner: 'alice', idempotencyKey: 'k4' }));
      assert.equal(k4.created, false, 'an unfinished job keeps its key');
      assert.equal(k4.job.id, queued);
    });

    // ------------------------------------------------------------------------------------------ deliveries

    test('a completed job with a callback URL has a pending delivery, claimed once per lease', async ({ store }) => {
      const { job } = await store.create(newJob({ callbackUrl: 'https://example.com/hook' }));
      const plain = await store.create(newJob());
      assert.deepEqual(await store.claimDeliveries({ limit: 10, leaseMs: LONG_LEASE_MS }), [], 'nothing finished');
      await store.claim({ ...claimOptions('w1'), limit: 2 });
      assert.deepEqual(await store.claimDeliveries({ limit: 10, leaseMs: LONG_LEASE_MS }), [], 'nothing finished');
      await store.complete(job.id, 'w1', { result: { ok: true }, resultUrl: null, retentionMs: RETENTION_MS });
      await store.complete(plain.job.id, 'w1', { result: 1, resultUrl: null, retentionMs: RETENTION_MS });
      const stored = await store.get(job.id);
      assert.equal(stored?.deliveryStatus, 'pending');
      assert.equal(stored?.deliveryAttempts, 0);
      assert.ok(stored?.deliveryNextAt !== null && (stored?.deliveryNextAt ?? 0) <= Date.now() + CLOCK_SLACK_MS);
      assert.equal((await store.get(plain.job.id))?.deliveryStatus, null);
      const before = Date.now();
      const deliveries = await store.claimDeliveries({ limit: 10, leaseMs: LONG_LEASE_MS });
      assert.deepEqual(
        deliveries.map((d) => d.id),
        [job.id],
      );
      assert.equal(deliveries[0].status, 'complete');
      assert.deepEqual(deliveries[0].result, { ok: true });
      assert.equal(deliveries[0].callbackUrl, 'https://example.com/hook');
      assert.deepEqual(await store.claimDeliveries({ limit: 10, leaseMs: LONG_LEASE_MS }), [], 'not within the lease');
      const leased = await store.get(job.id);
      assert.ok((leased?.deliveryNextAt ?? 0) >= before + LONG_LEASE_MS - CLOCK_SLACK_MS, 'deliveryNextAt pushed');
    });

    test('recordDelivery: pending re-arms at nextAt; delivered and failed stop deliveries', async ({ store }) => {
      const a = (await store.create(newJob({ callbackUrl: 'https://example.com/a' }))).job.id;
      const b = (await store.create(newJob({ callbackUrl: 'https://example.com/b' }))).job.id;
      await store.claim({ ...claimOptions('w1'), limit: 2 });
      await store.complete(a, 'w1', { result: 'a', resultUrl: null, retentionMs: RETENTION_MS });
      await store.complete(b, 'w1', { result: 'b', resultUrl: null, retentionMs: RETENTION_MS });
      assert.equal((await store.claimDeliveries({ limit: 10, leaseMs: LONG_LEASE_MS })).length, 2);

      await store.recordDelivery(a, { status: 'pending', attempts: 1, nextAt: Date.now() + LONG_LEASE_MS });
      await store.recordDelivery(b, { status: 'pending', attempts: 1, nextAt: Date.now() - 1 });
      const stored = await store.get(a);
      assert.equal(stored?.deliveryStatus, 'pending');
      assert.equal(stored?.deliveryAttempts, 1);
      assert.deepEqual(
        (await store.claimDeliveries({ limit: 10, leaseMs: LONG_LEASE_MS })).map((d) => d.id),
        [b],
        'only the due one',
      );

      await store.recordDelivery(a, { status: 'delivered', attempts: 2, nextAt: null });
      await store.recordDelivery(b, { status: 'failed', attempts: 5, nextAt: null });
      const delivered = await store.get(a);
      assert.equal(delivered?.deliveryStatus, 'delivered');
      assert.equal(delivered?.deliveryAttempts, 2);
      assert.equal(delivered?.deliveryNextAt, null);
      const gaveUp = await store.get(b);
      assert.equal(gaveUp?.deliveryStatus, 'failed');
      assert.equal(gaveUp?.deliveryAttempts, 5);
      assert.deepEqual(await store.claimDeliveries({ limit: 10, leaseMs: 1 }), []);
      assert.equal(delivered?.status, 'complete', 'delivery does not change the job');
      assert.equal(delivered?.result, 'a');
    });

    test('claimDeliveries respects the limit, and a lapsed delivery lease hands it out again', async ({ store }) => {
      for (let i = 0; i < 3; i += 1) await store.create(newJob({ callbackUrl: `https://example.com/${i}` }));
      for (const job of await store.claim({ ...claimOptions('w1'), limit: 3 })) {
        await store.complete(job.id, 'w1', { result: null, resultUrl: null, retentionMs: RETENTION_MS });
      }
      const first = await store.claimDeliveries({ limit: 2, leaseMs: LONG_LEASE_MS });
      assert.equal(first.length, 2);
      const second = await store.claimDeliveries({ limit: 2, leaseMs: 50 });
      assert.equal(second.length, 1);
      assert.ok(!first.some((job) => job.id === second[0].id));
      const again = await eventually('the delivery lease lapses', () =>
        store.claimDeliveries({ limit: 10, leaseMs: LONG_LEASE_MS }),
      );
      assert.deepEqual(
        again.map((job) => job.id),
        [second[0].id],
      );
    });

    test('failed and canceled jobs with a callback URL have a pending delivery too', async ({ store }) => {
      const failed = (await store.create(newJob({ callbackUrl: 'https://example.com/f' }))).job.id;
      const canceled = (await store.create(newJob({ callbackUrl: 'https://example.com/c' }))).job.id;
      const retried = (await store.create(newJob({ callbackUrl: 'https://example.com/r' }))).job.id;
      await store.claim({ ...claimOptions('w1'), names: [NAME], limit: 10 });
      await store.fail(failed, 'w1', { error: { message: 'no' }, retryAt: null, retentionMs: RETENTION_MS });
      await store.fail(retried, 'w1', {
        error: { message: 'again' },
        retryAt: Date.now() + LONG_LEASE_MS,
        retentionMs: RETENTION_MS,
      });
      await store.cancel(canceled, { retentionMs: RETENTION_MS });
      await store.markCanceled(canceled, 'w1', { retentionMs: RETENTION_MS });
      assert.equal((await store.get(failed))?.deliveryStatus, 'pending');
      assert.equal((await store.get(canceled))?.status, 'canceled');
      assert.equal((await store.get(canceled))?.deliveryStatus, 'pending');
      assert.equal((await store.get(retried))?.deliveryStatus, null, 'not finished: nothing to deliver yet');
      const ids = (await store.claimDeliveries({ limit: 10, leaseMs: LONG_LEASE_MS })).map((job) => job.id);
      assert.deepEqual(ids.sort(), [failed, canceled].sort());
    });

    // ------------------------------------------------------------------------------------------ durability

    if (reopenStore) {
      test('durability: queued, processing and finished jobs survive reopening the store', async (ctx) => {
        const { store } = ctx;
        const queued = await store.create(newJob({ input: sampleInput(), owner: 'alice', idempotencyKey: 'q' }));
        const running = await store.create(newJob({ input: { step: 2 } }));
        const complete = await store.create(newJob({ input: { step: 3 }, callbackUrl: 'https://example.com/h' }));
        const failed = await store.create(newJob({ input: { step: 4 } }));
        // Claim all four, then hand the first back so that it is queued again.
        await store.claim({ ...claimOptions('w1'), limit: 4 });
        await store.release(queued.job.id, 'w1');
        await store.progress(running.job.id, 'w1', 42, 'halfway');
        await store.complete(complete.job.id, 'w1', {
          result: { value: [1, 2, 3] },
          resultUrl: '/files/3',
          retentionMs: RETENTION_MS,
        });
        await store.fail(failed.job.id, 'w1', {
          error: { message: 'broken', code: 'BROKEN' },
          retryAt: null,
          retentionMs: RETENTION_MS,
        });
        const before = new Map<string, JobRecord | undefined>();
        for (const { job } of [queued, running, complete, failed]) before.set(job.id, await store.get(job.id));

        const reopened = await ctx.reopen(store);
        for (const [id, record] of before) {
          assert.deepEqual(await reopened.get(id), record, `job ${record?.status} survives`);
        }
        const again = await reopened.create(newJob({ owner: 'alice', idempotencyKey: 'q' }));
        assert.equal(again.created, false, 'idempotency keys survive');
        assert.equal(again.job.id, queued.job.id);
        // The lease held before the reopen is still the worker's; the queued job is claimable.
        const [lease] = await reopened.renew([running.job.id], 'w1', LONG_LEASE_MS);
        assert.equal(lease.held, true);
        const [claimed] = await reopened.claim(claimOptions('w2'));
        assert.equal(claimed.id, queued.job.id);
        assert.equal(claimed.attempt, 1);
        const done = await reopened.complete(running.job.id, 'w1', {
          result: 'done',
          resultUrl: null,
          retentionMs: RETENTION_MS,
        });
        assert.equal(done?.status, 'complete');
        const deliveries = await reopened.claimDeliveries({ limit: 10, leaseMs: LONG_LEASE_MS });
        assert.deepEqual(
          deliveries.map((job) => job.id),
          [complete.job.id],
          'pending deliveries survive',
        );
      });
    }
  });
}

// -------------------------------------------------------------------------------------------------- helpers

function newJob(overrides: Partial<NewJob> = {}): NewJob {
  return {
    id: newJobId(),
    name: NAME,
    input: { body: {}, params: {}, query: {} },
    owner: null,
    idempotencyKey: null,
    requestHash: null,
    maxAttempts: 3,
    callbackUrl: null,
    ...overrides,
  };
}

function claimOptions(workerId: string) {
  return { names: [NAME], workerId, limit: 1, leaseMs: LONG_LEASE_MS };
}

/** A request snapshot exercising every JSON type, nesting, and non-ASCII text. */
function sampleInput() {
  return {
    body: {
      text: 'héllo ✓ 😀 "quoted" \\ back\nline',
      int: 42,
      float: 1.5,
      negative: -7,
      big: 9007199254740991,
      yes: true,
      no: false,
      nothing: null,
      arr: [1, 'two', { three: 3 }, [4]] as unknown[],
      nested: { deep: { deeper: ['x'] } },
      empty: {},
      emptyArr: [],
    },
    params: { id: 'p-1' },
    query: { q: 'a b', list: ['1', '2'] },
  };
}

/** `value` is a timestamp taken between `before` and `after` (give or take another clock's slack). */
function assertTime(value: number | null | undefined, before: number, after: number, what: string): void {
  assert.equal(typeof value, 'number', `${what} must be set`);
  const time = value as number;
  assert.ok(
    time >= before - CLOCK_SLACK_MS && time <= after + CLOCK_SLACK_MS,
    `${what} = ${time} must lie within [${before}, ${after}]`,
  );
}

/** Poll `probe` until it returns a truthy value (a non-empty array counts as truthy; an empty one does not). */
async function eventually<T>(what: string, probe: () => Promise<T>, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (Array.isArray(value) ? value.length > 0 : Boolean(value)) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(10);
  }
}

/** Wait until the clock has moved on, so that the next record gets a later timestamp. */
async function nextMillisecond(): Promise<void> {
  const start = Date.now();
  while (Date.now() <= start + 1) await sleep(2);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
