// Conformance cases for idempotency keys, and for creates and completions issued together.
import assert from 'node:assert/strict';
import { claimOptions, eventually, newJob, RETENTION_MS, sampleInput, type TestCase } from './helpers.js';

/** Register the cases for idempotency keys, and creates and completions issued together. */
export function registerIdempotency(test: TestCase): void {
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
}
