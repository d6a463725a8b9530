// Conformance cases for webhook deliveries: pending after a finish, claimed under a lease, recorded.
import assert from 'node:assert/strict';
import {
  CLOCK_SLACK_MS,
  claimOptions,
  eventually,
  LONG_LEASE_MS,
  NAME,
  newJob,
  RETENTION_MS,
  type TestCase,
} from './helpers.js';

/** Register the cases for webhook deliveries. */
export function registerDeliveries(test: TestCase): void {
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
}
