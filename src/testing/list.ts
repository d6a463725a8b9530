// Conformance cases for list and the per-owner count: an owner's jobs, newest first, in stable pages.
import assert from 'node:assert/strict';
import type { JobStore, ListPosition } from '../core/store.js';
import type { JobRecord } from '../core/types.js';
import { claimOptions, eventually, newJob, nextMillisecond, type TestCase } from './helpers.js';

/** Register the cases for list and countByOwner. */
export function registerList(test: TestCase): void {
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

  test('list orders jobs created in the same millisecond by id, descending', async ({ store }) => {
    // Created at once: many share a millisecond, and their order must still be one every store agrees on.
    await Promise.all(Array.from({ length: 30 }, () => store.create(newJob({ owner: 'alice' }))));
    const listed = await store.list({ owner: 'alice', limit: 100 });
    assert.equal(listed.length, 30);
    const sorted = [...listed].sort((a, b) => (listedAfter(a, b) ? 1 : -1));
    assert.deepEqual(
      listed.map((job) => job.id),
      sorted.map((job) => job.id),
    );
  });

  test('list pages after a position, and the pages stay stable while jobs are added', async ({ store }) => {
    const before: string[] = [];
    for (let i = 0; i < 7; i += 1) {
      before.push((await store.create(newJob({ owner: 'alice' }))).job.id);
      if (i % 2 === 0) await nextMillisecond(); // some share a millisecond, some do not
    }
    await store.create(newJob({ owner: 'bob' }));
    const everything = (await store.list({ owner: 'alice', limit: 100 })).map((job) => job.id);
    assert.deepEqual([...everything].sort(), [...before].sort());
    const paged: string[] = [];
    let position: ListPosition | undefined;
    for (let page = 0; page < 10; page += 1) {
      const jobs = await store.list({ owner: 'alice', limit: 3, ...(position ? { before: position } : {}) });
      assert.ok(jobs.length <= 3, 'a page holds at most `limit` jobs');
      assert.ok(
        jobs.every((job) => job.owner === 'alice'),
        'only the owner’s jobs',
      );
      paged.push(...jobs.map((job) => job.id));
      if (jobs.length < 3) break;
      position = { createdAt: jobs[2].createdAt, id: jobs[2].id };
      // New jobs between pages come before every page already read: the next pages neither repeat nor skip.
      await store.create(newJob({ owner: 'alice' }));
    }
    assert.deepEqual(paged, everything);
  });

  test('list pages after a position whose job is gone', async ({ store }) => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      ids.push((await store.create(newJob({ owner: 'alice' }))).job.id);
      await nextMillisecond();
    }
    const [newest, middle] = await store.list({ owner: 'alice', limit: 2 });
    // A position no job holds (the job was purged): the page starts with the first job listed after it.
    const gone: ListPosition = { createdAt: middle.createdAt, id: `${middle.id.slice(0, 21)}~` };
    assert.deepEqual(
      (await store.list({ owner: 'alice', limit: 10, before: gone })).map((job) => job.id),
      [middle.id, ids[0]],
    );
    assert.deepEqual(
      (await store.list({ owner: 'alice', limit: 10, before: { createdAt: newest.createdAt, id: newest.id } })).map(
        (job) => job.id,
      ),
      [middle.id, ids[0]],
    );
    // Another owner's job as the position lists nothing of that owner.
    assert.ok((await store.list({ owner: 'bob', limit: 10, before: newest })).length === 0);
  });

  registerOwnerLookups(test);
}

/** The per-owner quota's count and the idempotency lookup by key. */
function registerOwnerLookups(test: TestCase): void {
  test('countByOwner counts the owner’s unexpired jobs, finished ones too, up to the bound', async ({ store }) => {
    if (!store.countByOwner) return; // optional
    for (let i = 0; i < 5; i += 1) await store.create(newJob({ owner: 'alice' }));
    // Under another name: the claims below take alice's jobs only.
    await store.create(newJob({ owner: 'bob', name: 'other' }));
    await store.create(newJob({ owner: null, name: 'other' }));
    assert.equal(await store.countByOwner('alice', 100), 5);
    assert.equal(await store.countByOwner('alice', 3), 3, 'stops at the bound');
    assert.equal(await store.countByOwner('bob', 100), 1);
    assert.equal(await store.countByOwner('carol', 100), 0);
    // A finished job counts while retained, not once expired.
    const [claimed] = await claimAlice(store);
    await store.complete(claimed.id, 'w1', { result: 'ok', resultUrl: null, retentionMs: 60_000 });
    assert.equal(await store.countByOwner('alice', 100), 5);
    const [short] = await claimAlice(store);
    await store.complete(short.id, 'w1', { result: 'ok', resultUrl: null, retentionMs: 1 });
    await eventually('the job expires', async () => (await store.get(short.id)) === undefined);
    // At the bound the count is exact: 4 live of 5 held is under a bound of 5.
    assert.equal(await store.countByOwner('alice', 5), 4);
    assert.equal(await store.countByOwner('alice', 4), 4);
    await store.purgeExpired();
    assert.equal(await store.countByOwner('alice', 100), 4);
  });

  test('countByOwner stays right through finish, retry, expiry, purge and remove', async ({ store }) => {
    if (!store.countByOwner) return; // optional
    const count = (upTo: number) => store.countByOwner!('alice', upTo);
    for (let i = 0; i < 3; i += 1) await store.create(newJob({ owner: 'alice' }));
    await store.create(newJob({ owner: 'bob', name: 'other' }));
    assert.equal(await count(100), 3);
    assert.equal(await count(3), 3);
    // Failed for good: kept within retention, and counted; retried: counted once, as before.
    const [failed] = await claimAlice(store);
    await store.fail(failed.id, 'w1', { error: { message: 'x' }, retryAt: null, retentionMs: 60_000 });
    assert.equal(await count(3), 3);
    if (store.retry) {
      assert.equal((await store.retry(failed.id)).outcome, 'retried');
      assert.equal(await count(100), 3);
      assert.equal(await count(3), 3);
    }
    // Expired: no longer counted where the count reaches the bound, and not at all once purged.
    const [short] = await claimAlice(store);
    await store.complete(short.id, 'w1', { result: 'ok', resultUrl: null, retentionMs: 1 });
    await eventually('the job expires', async () => (await store.get(short.id)) === undefined);
    assert.equal(await count(3), 2);
    assert.equal(await count(2), 2);
    await store.purgeExpired();
    assert.equal(await count(100), 2);
    assert.equal(await count(2), 2);
    if (store.remove) {
      const held = await store.list({ owner: 'alice', limit: 10 });
      for (const [i, job] of held.entries()) {
        assert.equal(await store.remove(job.id), true);
        assert.equal(await count(100), held.length - i - 1);
      }
      // An owner counted down to none counts up again from none.
      await store.create(newJob({ owner: 'alice' }));
      assert.equal(await count(100), 1);
      assert.equal(await count(1), 1);
    }
    assert.equal(await store.countByOwner('bob', 100), 1);
  });

  test('getByKey finds the owner’s unexpired job bound to a key', async ({ store }) => {
    if (!store.getByKey) return; // optional
    const { job } = await store.create(newJob({ owner: 'alice', idempotencyKey: 'k' }));
    assert.equal((await store.getByKey('alice', 'k'))?.id, job.id);
    assert.equal(await store.getByKey('bob', 'k'), undefined);
    assert.equal(await store.getByKey('alice', 'other'), undefined);
    await store.claim(claimOptions('w1'));
    await store.complete(job.id, 'w1', { result: 'ok', resultUrl: null, retentionMs: 1 });
    await eventually('the job expires', async () => (await store.get(job.id)) === undefined);
    assert.equal(await store.getByKey('alice', 'k'), undefined);
  });
}

/** Claim one of alice's queued jobs (the conformance jobs share one name). */
async function claimAlice(store: JobStore): Promise<JobRecord[]> {
  const claimed = await store.claim({ ...claimOptions('w1'), limit: 1 });
  assert.equal(claimed.length, 1);
  return claimed;
}

/** Whether `a` comes after `b` in list order: `createdAt` descending, then id descending (bytewise). */
function listedAfter(a: ListPosition, b: ListPosition): boolean {
  return a.createdAt < b.createdAt || (a.createdAt === b.createdAt && a.id < b.id);
}
