// Conformance cases for cancel (queued, processing, finished and unknown jobs) and release.
import assert from 'node:assert/strict';
import { newJobId } from '../core/ids.js';
import type { JobStore } from '../core/store.js';
import { assertTime, claimOptions, newJob, RETENTION_MS, type TestCase } from './helpers.js';

/** Register the cases for cancel and release. */
export function registerCancel(test: TestCase): void {
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

  test('cancel of a processing job: requested, then markCanceled by the holder ends it canceled', async ({ store }) => {
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

  test('cancel of a finished job is "finished" and changes nothing; of an unknown job "missing"', async ({ store }) => {
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
}

/**
 * Register the rule behind "DELETE answered 202 means the job ends canceled": once `cancel()` has answered
 * `requested`, the holder's final write (complete, fail, or a retry) ends the job `canceled`, in that same write.
 */
export function registerCancelWins(test: TestCase): void {
  /** A job claimed by `w1` whose cancel was then requested (the DELETE that answers 202). */
  const canceledWhileRunning = async (store: JobStore): Promise<string> => {
    const { job } = await store.create(newJob());
    const [claimed] = await store.claim(claimOptions('w1'));
    assert.equal(claimed?.id, job.id);
    assert.equal((await store.cancel(job.id, { retentionMs: RETENTION_MS })).outcome, 'requested');
    return job.id;
  };

  test('a requested cancel wins over complete(): the job ends canceled, without its result', async ({ store }) => {
    const id = await canceledWhileRunning(store);
    const written = await store.complete(id, 'w1', {
      result: { secret: 1 },
      resultUrl: '/x',
      retentionMs: RETENTION_MS,
    });
    assert.equal(written?.status, 'canceled');
    const job = await store.get(id);
    assert.equal(job?.status, 'canceled');
    assert.equal(job?.resultUrl, null);
    assert.equal(job?.cancelRequested, false);
    assert.equal(job?.result, undefined);
    assert.notEqual(job?.expiresAt, null);
    // A second cancel now finds it finished (409).
    assert.equal((await store.cancel(id, { retentionMs: RETENTION_MS })).outcome, 'finished');
  });

  test('a requested cancel wins over a final fail(): the job ends canceled, not failed', async ({ store }) => {
    const id = await canceledWhileRunning(store);
    await store.fail(id, 'w1', {
      error: { message: 'boom', code: 'E_BOOM' },
      retryAt: null,
      retentionMs: RETENTION_MS,
    });
    const job = await store.get(id);
    assert.equal(job?.status, 'canceled');
    assert.equal(job?.error, null);
  });

  test('a requested cancel wins over a retry: the job ends canceled, not queued again', async ({ store }) => {
    const id = await canceledWhileRunning(store);
    const error = { message: 'boom', code: 'E_BOOM' };
    await store.fail(id, 'w1', { error, retryAt: Date.now(), retentionMs: RETENTION_MS });
    const job = await store.get(id);
    assert.equal(job?.status, 'canceled');
    assert.equal(job?.leaseOwner, null);
    assert.notEqual(job?.finishedAt, null);
    assert.deepEqual(await store.claim(claimOptions('w2')), []);
  });
}
