// Conformance cases for retention: expired jobs are hidden, purged, and free their idempotency keys.
import assert from 'node:assert/strict';
import { claimOptions, eventually, newJob, RETENTION_MS, type TestCase } from './helpers.js';

/** Register the cases for retention and purgeExpired. */
export function registerRetention(test: TestCase): void {
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
}
