// Conformance cases for claiming jobs and holding, renewing and losing their leases.
import assert from 'node:assert/strict';
import { newJobId } from '../core/ids.js';
import {
  assertTime,
  CLOCK_SLACK_MS,
  claimOptions,
  eventually,
  LONG_LEASE_MS,
  NAME,
  newJob,
  nextMillisecond,
  RETENTION_MS,
  type TestCase,
} from './helpers.js';

/** Register the cases for which jobs claim takes, and what it sets on them. */
export function registerClaim(test: TestCase): void {
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

  test('a claim of limit n returns n due jobs in one call', async ({ store }) => {
    for (let i = 0; i < 12; i += 1) await store.create(newJob({ input: { i } }));
    const batch = await store.claim({ ...claimOptions('w1'), limit: 10 });
    assert.equal(batch.length, 10);
    assert.equal(new Set(batch.map((job) => job.id)).size, 10);
    assert.ok(batch.every((job) => job.status === 'processing' && job.leaseOwner === 'w1'));
    assert.equal((await store.claim({ ...claimOptions('w1'), limit: 10 })).length, 2);
  });

  test('a batched claim takes the oldest due jobs across names: a backlog of one name does not starve another', async ({
    store,
  }) => {
    // Workers list their names in registration order; the older job must win whatever that order is.
    const older = await store.create(newJob({ name: 'beta' }));
    await nextMillisecond();
    const backlog: string[] = [];
    for (let i = 0; i < 30; i += 1) backlog.push((await store.create(newJob({ name: 'alpha', input: { i } }))).job.id);
    await nextMillisecond();
    const newer = await store.create(newJob({ name: 'beta' }));
    const first = await store.claim({ ...claimOptions('w1'), names: ['alpha', 'beta'], limit: 5 });
    assert.equal(first.length, 5);
    assert.equal(first[0]?.id, older.job.id, 'the older job of the other name comes first');
    assert.ok(
      first.slice(1).every((job) => job.name === 'alpha'),
      'then the backlog, oldest first',
    );
    // The newer beta job waits for the older alpha jobs, and no longer: it comes in the claim that reaches its age.
    const seen: string[] = [];
    for (;;) {
      const batch = await store.claim({ ...claimOptions('w1'), names: ['alpha', 'beta'], limit: 5 });
      if (batch.length === 0) break;
      seen.push(...batch.map((job) => job.id));
    }
    assert.equal(seen.length, 27);
    assert.equal(seen.at(-1), newer.job.id);
    assert.deepEqual(new Set(seen.slice(0, -1)), new Set(backlog.slice(4)));
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
}

/** Register the cases for claim under concurrency, and a retried job not claimed before it is due. */
export function registerClaimRaces(test: TestCase): void {
  test('claim is atomic under concurrency: 50 jobs, 10 claimers, every job claimed exactly once', async ({ store }) => {
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
}

/** Register the cases for the optional `createClaimed()`. */
export function registerCreateClaimed(test: TestCase): void {
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

/** Register the cases for lapsed leases, renew and progress. */
export function registerLeases(test: TestCase): void {
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
}
