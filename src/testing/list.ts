// Conformance cases for list: an owner’s jobs, newest first.
import assert from 'node:assert/strict';
import { newJob, nextMillisecond, type TestCase } from './helpers.js';

/** Register the cases for list. */
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
}
