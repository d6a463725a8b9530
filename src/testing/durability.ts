// Conformance case for durability: what a store holds survives closing and reopening it.
import assert from 'node:assert/strict';
import type { JobRecord } from '../core/types.js';
import { claimOptions, LONG_LEASE_MS, newJob, RETENTION_MS, sampleInput, type TestCase } from './helpers.js';

/** Register the cases for durability (needs `capabilities.reopen`). */
export function registerDurability(test: TestCase): void {
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
