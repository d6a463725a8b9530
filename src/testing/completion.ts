// Conformance cases for how the lease holder ends a job: complete, or fail (with or without a retry).
import assert from 'node:assert/strict';
import type { JobRecord } from '../core/types.js';
import { assertTime, claimOptions, LONG_LEASE_MS, newJob, RETENTION_MS, type TestCase } from './helpers.js';

/** Register the cases for complete, the JSON types of results, and seq. */
export function registerCompletion(test: TestCase): void {
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
}

/** Register the cases for fail, with and without a retry. */
export function registerFailure(test: TestCase): void {
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
}
