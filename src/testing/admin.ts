// Conformance cases for the operator's operations (admin API, dashboard): the list across owners, counts, throughput
// and timings, retry, remove, redeliver and the attempt history. Each runs where the store has the operation.
import assert from 'node:assert/strict';
import { newJobId } from '../core/ids.js';
import type { AttemptRecord, DeliveryAttempt, JobStore, ListPosition } from '../core/store.js';
import type { JobRecord } from '../core/types.js';
import { claimOptions, LONG_LEASE_MS, newJob, nextMillisecond, RETENTION_MS, type TestCase } from './helpers.js';

/** Register the cases for the operator's operations. */
export function registerAdmin(test: TestCase): void {
  registerAdminViews(test);
  registerAdminActions(test);
  registerAdminHistory(test);
}

/** The operator's views: the list across owners, its paging, counts, throughput and timings. */
function registerAdminViews(test: TestCase): void {
  test('adminList lists every owner’s jobs newest first, filtered by status, name, owner and time', async ({
    store,
  }) => {
    if (!store.adminList) return; // optional
    const a = (await store.create(newJob({ owner: 'alice' }))).job;
    await nextMillisecond();
    const b = (await store.create(newJob({ owner: 'bob', name: 'other' }))).job;
    await nextMillisecond();
    const c = (await store.create(newJob({ owner: null }))).job;
    await nextMillisecond();
    const d = (await store.create(newJob({ owner: 'alice' }))).job;
    // a is claimed (the oldest due job) and fails for good.
    const [claimed] = await store.claim(claimOptions('w1'));
    assert.equal(claimed.id, a.id);
    await store.fail(a.id, 'w1', { error: { message: 'boom' }, retryAt: null, retentionMs: RETENTION_MS });
    const ids = async (options: Parameters<NonNullable<JobStore['adminList']>>[0]) =>
      (await store.adminList!(options)).map((job) => job.id);
    assert.deepEqual(await ids({ limit: 10 }), [d.id, c.id, b.id, a.id]);
    assert.deepEqual(await ids({ limit: 2 }), [d.id, c.id]);
    assert.deepEqual(await ids({ limit: 10, statuses: ['failed'] }), [a.id]);
    assert.deepEqual(await ids({ limit: 10, statuses: ['queued', 'failed'] }), [d.id, c.id, b.id, a.id]);
    assert.deepEqual(await ids({ limit: 10, statuses: ['complete'] }), []);
    assert.deepEqual(await ids({ limit: 10, name: 'other' }), [b.id]);
    assert.deepEqual(await ids({ limit: 10, owner: 'alice' }), [d.id, a.id]);
    assert.deepEqual(await ids({ limit: 10, owner: null }), [c.id]);
    assert.deepEqual(await ids({ limit: 10, owner: 'alice', statuses: ['queued'] }), [d.id]);
    assert.deepEqual(await ids({ limit: 10, from: b.createdAt }), [d.id, c.id, b.id]);
    assert.deepEqual(await ids({ limit: 10, to: c.createdAt }), [b.id, a.id]);
    assert.deepEqual(await ids({ limit: 10, from: b.createdAt, to: d.createdAt }), [c.id, b.id]);
    const listed = await store.adminList({ limit: 10, statuses: ['failed'] });
    assert.equal(listed[0].status, 'failed');
    assert.deepEqual(listed[0].error, { message: 'boom' });
    assert.deepEqual(listed[0].input, a.input);
  });

  test('adminList pages after a position, stable while jobs are added', async ({ store }) => {
    if (!store.adminList) return; // optional
    const owners = ['alice', 'bob', null];
    for (let i = 0; i < 8; i += 1) {
      await store.create(newJob({ owner: owners[i % 3] }));
      if (i % 2 === 0) await nextMillisecond(); // some share a millisecond, some do not
    }
    // Every owner's jobs, then one owner's (the stores may read another index for it).
    for (const filter of [{}, { owner: 'alice' }]) {
      const listed: JobRecord[] = await store.adminList({ limit: 100, ...filter });
      const everything = listed.map((job) => job.id);
      // 8 in all at first; alice's 3 and the 4 added for her while the first pass paged.
      assert.equal(everything.length, 'owner' in filter ? 7 : 8);
      assert.ok(listed.every((job) => !('owner' in filter) || job.owner === 'alice'));
      const paged: string[] = [];
      let position: ListPosition | undefined;
      for (let page = 0; page < 10; page += 1) {
        const jobs = await store.adminList({ limit: 2, ...filter, ...(position ? { before: position } : {}) });
        paged.push(...jobs.map((job) => job.id));
        if (jobs.length < 2) break;
        position = { createdAt: jobs[1].createdAt, id: jobs[1].id };
        // A job added between pages (later than any listed) comes before every page already read: the next pages
        // neither repeat nor skip.
        await nextMillisecond();
        await store.create(newJob({ owner: 'alice' }));
      }
      assert.deepEqual(paged, everything);
    }
  });

  test('countJobs counts unexpired jobs by name and status', async ({ store }) => {
    if (!store.countJobs) return; // optional
    for (let i = 0; i < 3; i += 1) await store.create(newJob());
    await store.create(newJob({ name: 'other' }));
    const [claimed] = await store.claim(claimOptions('w1'));
    await store.complete(claimed.id, 'w1', { result: 1, resultUrl: null, retentionMs: RETENTION_MS });
    const [short] = await store.claim(claimOptions('w1'));
    await store.complete(short.id, 'w1', { result: 1, resultUrl: null, retentionMs: 1 });
    await nextMillisecond();
    const counts = (await store.countJobs()).map((c) => `${c.name}/${c.status}=${c.count}`).sort();
    assert.deepEqual(counts, ['conformance/complete=1', 'conformance/queued=1', 'other/queued=1']);
  });

  test('throughput and timings describe the jobs finished in the window', async ({ store }) => {
    if (!store.throughput || !store.timings) return; // optional
    const finished: JobRecord[] = [];
    for (let i = 0; i < 3; i += 1) {
      const { job } = await store.create(newJob());
      await nextMillisecond();
      await store.claim(claimOptions('w1'));
      await nextMillisecond();
      const done =
        i < 2
          ? await store.complete(job.id, 'w1', { result: i, resultUrl: null, retentionMs: RETENTION_MS })
          : await store.fail(job.id, 'w1', { error: { message: 'x' }, retryAt: null, retentionMs: RETENTION_MS });
      assert.ok(done);
      finished.push(done);
    }
    await store.create(newJob({ name: 'other' })); // queued: in neither view
    const canceled = (await store.create(newJob())).job;
    await store.cancel(canceled.id, { retentionMs: RETENTION_MS }); // never started: counted, but not timed
    const buckets = await store.throughput({ windowMs: 60_000, bucketMs: 60_000 });
    const total = { complete: 0, failed: 0, canceled: 0 };
    for (const bucket of buckets) {
      assert.equal(bucket.name, 'conformance');
      assert.equal(bucket.at % 60_000, 0, 'a bucket starts at a multiple of its length');
      total.complete += bucket.complete;
      total.failed += bucket.failed;
      total.canceled += bucket.canceled;
    }
    assert.deepEqual(total, { complete: 2, failed: 1, canceled: 1 });
    const { waitMs, runMs } = await store.timings({ windowMs: 60_000 });
    const waits = finished.map((job) => (job.startedAt ?? 0) - job.createdAt).sort((x, y) => x - y);
    const runs = finished.map((job) => (job.finishedAt ?? 0) - (job.startedAt ?? 0)).sort((x, y) => x - y);
    assert.deepEqual(waitMs, { count: 3, p50: waits[1], p95: waits[2], p99: waits[2], max: waits[2] });
    assert.deepEqual(runMs, { count: 3, p50: runs[1], p95: runs[2], p99: runs[2], max: runs[2] });
  });
}

/** The operator's actions: retry, remove, redeliver. */
function registerAdminActions(test: TestCase): void {
  test('retry runs a failed job again: same id, fresh attempts, its outcome cleared, seq counting on', async ({
    store,
  }) => {
    if (!store.retry) return; // optional
    const { job } = await store.create(newJob({ callbackUrl: 'https://example.com/hook', maxAttempts: 1 }));
    await store.claim(claimOptions('w1'));
    const failed = await store.fail(job.id, 'w1', {
      error: { message: 'boom', code: 'E_BOOM' },
      retryAt: null,
      retentionMs: RETENTION_MS,
    });
    assert.equal(failed?.deliveryStatus, 'pending');
    await store.recordDelivery(job.id, { status: 'failed', attempts: 5, nextAt: null });
    const { outcome, job: retried } = await store.retry(job.id);
    assert.equal(outcome, 'retried');
    for (const record of [retried, await store.get(job.id)]) {
      assert.ok(record);
      assert.equal(record.id, job.id);
      assert.equal(record.status, 'queued');
      assert.equal(record.attempt, 0);
      assert.equal(record.error, null);
      assert.equal(record.result, undefined);
      assert.equal(record.progress, null);
      assert.equal(record.finishedAt, null);
      assert.equal(record.startedAt, null);
      assert.equal(record.expiresAt, null);
      assert.equal(record.deliveryStatus, null);
      assert.equal(record.deliveryAttempts, 0);
      assert.ok(record.seq > (failed?.seq ?? 0), 'seq keeps counting');
      assert.deepEqual(record.input, job.input);
    }
    // Claimable again, as attempt 1; when it ends, a new delivery is armed.
    const [again] = await store.claim(claimOptions('w2'));
    assert.equal(again?.id, job.id);
    assert.equal(again.attempt, 1);
    const done = await store.complete(job.id, 'w2', { result: 'ok', resultUrl: null, retentionMs: RETENTION_MS });
    assert.equal(done?.status, 'complete');
    assert.equal(done?.deliveryStatus, 'pending');
    assert.equal(done?.deliveryAttempts, 0);
    // A complete job is refused, as it is; an unknown one missing.
    const refused = await store.retry(job.id);
    assert.equal(refused.outcome, 'refused');
    assert.equal(refused.job?.status, 'complete');
    assert.equal((await store.retry(newJobId())).outcome, 'missing');
  });

  test('retry runs a canceled job again; a queued or processing one is refused', async ({ store }) => {
    if (!store.retry) return; // optional
    const { job } = await store.create(newJob());
    assert.equal((await store.retry(job.id)).outcome, 'refused');
    await store.cancel(job.id, { retentionMs: RETENTION_MS });
    const { outcome, job: retried } = await store.retry(job.id);
    assert.equal(outcome, 'retried');
    assert.equal(retried?.status, 'queued');
    const [claimed] = await store.claim(claimOptions('w1'));
    assert.equal(claimed?.id, job.id);
    assert.equal((await store.retry(job.id)).outcome, 'refused');
  });

  test('remove deletes a job whatever its status; its worker then finds it gone', async ({ store }) => {
    if (!store.remove) return; // optional
    const queued = (await store.create(newJob())).job;
    const running = (await store.create(newJob())).job;
    const other = (await store.create(newJob({ owner: 'alice' }))).job;
    assert.equal(await store.remove(queued.id), true);
    assert.equal(await store.get(queued.id), undefined);
    const [claimed] = await store.claim(claimOptions('w1'));
    assert.equal(claimed?.id, running.id, 'a removed job is never claimed');
    assert.equal(await store.remove(running.id), true);
    assert.equal(
      await store.complete(running.id, 'w1', { result: 1, resultUrl: null, retentionMs: RETENTION_MS }),
      undefined,
    );
    assert.equal(await store.get(running.id), undefined);
    assert.equal(await store.remove(queued.id), false);
    assert.equal(await store.remove(newJobId()), false);
    assert.deepEqual(
      (await store.list({ owner: null, limit: 10 })).map((job) => job.id),
      [],
    );
    assert.equal((await store.get(other.id))?.id, other.id);
  });

  test('redeliver arms a finished job’s webhook again; refused without a callback or while unfinished', async ({
    store,
  }) => {
    if (!store.redeliver) return; // optional
    const { job } = await store.create(newJob({ callbackUrl: 'https://example.com/hook' }));
    assert.equal((await store.redeliver(job.id)).outcome, 'refused', 'not finished yet');
    const plain = (await store.create(newJob())).job;
    await store.claim({ ...claimOptions('w1'), limit: 2 });
    await store.complete(job.id, 'w1', { result: 1, resultUrl: null, retentionMs: RETENTION_MS });
    await store.complete(plain.id, 'w1', { result: 1, resultUrl: null, retentionMs: RETENTION_MS });
    await store.claimDeliveries({ limit: 10, leaseMs: LONG_LEASE_MS });
    await store.recordDelivery(job.id, { status: 'failed', attempts: 8, nextAt: null });
    const before = (await store.get(job.id))?.seq;
    const { outcome, job: armed } = await store.redeliver(job.id);
    assert.equal(outcome, 'redelivering');
    assert.equal(armed?.deliveryStatus, 'pending');
    assert.equal(armed?.deliveryAttempts, 0);
    assert.equal(armed?.status, 'complete');
    assert.equal((await store.get(job.id))?.seq, before, 'the job itself did not change');
    assert.deepEqual(
      (await store.claimDeliveries({ limit: 10, leaseMs: LONG_LEASE_MS })).map((d) => d.id),
      [job.id],
    );
    const refused = await store.redeliver(plain.id);
    assert.equal(refused.outcome, 'refused');
    assert.equal(refused.job?.id, plain.id);
    assert.equal((await store.redeliver(newJobId())).outcome, 'missing');
  });
}

/** The attempt history: each failed attempt and each webhook delivery attempt, as the job view shows them. */
function registerAdminHistory(test: TestCase): void {
  test('history keeps each failed attempt, with its timings and the full error', async ({ store }) => {
    if (!store.history) return; // optional
    const { job } = await store.create(newJob());
    assert.deepEqual(await store.history(job.id), { attempts: [], deliveries: [] });
    const first: AttemptRecord = {
      attempt: 1,
      startedAt: 1000,
      finishedAt: 2000,
      error: { message: 'connect ECONNREFUSED 10.0.0.1:5432 "quoted" \\ ✓', code: 'ECONNREFUSED' },
      retried: true,
    };
    const second: AttemptRecord = {
      ...first,
      attempt: 2,
      error: { message: 'secret detail', stack: 'Error: secret detail\n    at handler (job.ts:1:1)' },
      retried: false,
    };
    await store.claim(claimOptions('w1'));
    await store.fail(job.id, 'w1', {
      error: { message: 'The job failed' },
      retryAt: Date.now(),
      retentionMs: RETENTION_MS,
      attempt: first,
    });
    await store.claim(claimOptions('w1'));
    await store.fail(job.id, 'w1', {
      error: { message: 'The job failed' },
      retryAt: null,
      retentionMs: RETENTION_MS,
      attempt: second,
    });
    assert.deepEqual((await store.history(job.id)).attempts, [first, second]);
    // The public error stays the public one.
    assert.deepEqual((await store.get(job.id))?.error, { message: 'The job failed' });
    // The history stays across a retry, and a fail without an attempt adds nothing.
    if (store.retry) {
      await store.retry(job.id);
      await store.claim(claimOptions('w1'));
      await store.fail(job.id, 'w1', { error: { message: 'x' }, retryAt: null, retentionMs: RETENTION_MS });
      assert.deepEqual((await store.history(job.id)).attempts, [first, second]);
    }
    assert.deepEqual(await store.history(newJobId()), { attempts: [], deliveries: [] });
  });

  test('history keeps each webhook delivery attempt, across a redeliver', async ({ store }) => {
    if (!store.history) return; // optional
    const { job } = await store.create(newJob({ callbackUrl: 'https://example.com/hook' }));
    await store.claim(claimOptions('w1'));
    await store.complete(job.id, 'w1', { result: 1, resultUrl: null, retentionMs: RETENTION_MS });
    const first: DeliveryAttempt = {
      attempt: 1,
      at: 1000,
      outcome: 'retrying',
      httpStatus: 503,
      reason: 'the receiver answered 503 "busy" ✓',
    };
    const second: DeliveryAttempt = { attempt: 2, at: 2000, outcome: 'delivered', httpStatus: 204, reason: null };
    await store.recordDelivery(job.id, { status: 'pending', attempts: 1, nextAt: Date.now(), attempt: first });
    // An update without an attempt (a claim handed back) adds nothing.
    await store.recordDelivery(job.id, { status: 'pending', attempts: 1, nextAt: Date.now() });
    await store.recordDelivery(job.id, { status: 'delivered', attempts: 2, nextAt: null, attempt: second });
    assert.deepEqual(await store.history(job.id), { attempts: [], deliveries: [first, second] });
    if (store.redeliver) {
      await store.redeliver(job.id);
      const third = { ...second, attempt: 1, at: 3000 };
      await store.recordDelivery(job.id, { status: 'delivered', attempts: 1, nextAt: null, attempt: third });
      assert.deepEqual((await store.history(job.id)).deliveries, [first, second, third]);
    }
  });
}
