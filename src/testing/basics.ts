// Conformance cases for the basics: kind and init, create and get, snapshots, owners.
import assert from 'node:assert/strict';
import { newJobId } from '../core/ids.js';
import {
  assertTime,
  CLOCK_SLACK_MS,
  claimOptions,
  NAME,
  newJob,
  RETENTION_MS,
  sampleInput,
  type TestCase,
} from './helpers.js';

/** Register the cases for create, get, snapshots and owners. */
export function registerBasics(test: TestCase): void {
  test('has a kind and init() may be called again', async ({ store }) => {
    assert.equal(typeof store.kind, 'string');
    assert.ok(store.kind.length > 0, 'kind must be non-empty');
    await store.init();
    await store.init();
    const { job } = await store.create(newJob());
    assert.equal((await store.get(job.id))?.id, job.id);
  });

  test('create inserts a queued job with defaulted fields; get returns it with the input intact', async ({ store }) => {
    const input = sampleInput();
    const spec = newJob({
      input,
      owner: 'alice',
      idempotencyKey: 'key-1',
      requestHash: 'hash-1',
      maxAttempts: 5,
      callbackUrl: 'https://example.com/hook',
    });
    const before = Date.now();
    const { job, created } = await store.create(spec);
    const after = Date.now();
    assert.equal(created, true);
    for (const record of [job, await store.get(spec.id)]) {
      assert.ok(record, 'get must return the job just created');
      assert.equal(record.id, spec.id);
      assert.equal(record.name, NAME);
      assert.equal(record.status, 'queued');
      assert.deepEqual(record.input, sampleInput());
      assert.equal(record.owner, 'alice');
      assert.equal(record.idempotencyKey, 'key-1');
      assert.equal(record.requestHash, 'hash-1');
      assert.equal(record.progress, null);
      assert.equal(record.message, null);
      assert.ok(record.result === undefined || record.result === null, 'result must be empty');
      assert.equal(record.resultUrl, null);
      assert.equal(record.error, null);
      assert.equal(record.attempt, 0);
      assert.equal(record.maxAttempts, 5);
      assert.equal(record.leaseOwner, null);
      assert.equal(record.leaseUntil, null);
      assert.equal(record.cancelRequested, false);
      assert.equal(record.callbackUrl, 'https://example.com/hook');
      assert.equal(record.deliveryStatus, null);
      assert.equal(record.deliveryAttempts, 0);
      assert.equal(record.deliveryNextAt, null);
      assertTime(record.createdAt, before, after, 'createdAt');
      assertTime(record.updatedAt, before, after, 'updatedAt');
      assert.ok(record.runAt <= after + CLOCK_SLACK_MS, 'a new job is due at once');
      assert.equal(record.startedAt, null);
      assert.equal(record.finishedAt, null);
      assert.equal(record.expiresAt, null);
      assert.ok(Number.isInteger(record.seq), 'seq must be an integer');
    }
  });

  test('create with inputJson (the input as JSON text, in its own spelling) gives back the input it spells', async ({
    store,
  }) => {
    const input = { body: { value: 'é\n', n: [1.5, 100] }, params: { id: '7' }, query: {} };
    const inputJson = '{ "body" : {"value":"\\u00e9\\n", "n":[1.50, 1E2]},\n"params":{"id":"7"}, "query":{} }';
    const { job } = await store.create(newJob({ input, inputJson }));
    assert.deepEqual(job.input, input);
    assert.deepEqual((await store.get(job.id))?.input, input);
    const [claimed] = await store.claim(claimOptions('w1'));
    assert.deepEqual(claimed?.input, input);
  });

  test('get of an unknown or malformed id is undefined', async ({ store }) => {
    await store.create(newJob());
    assert.equal(await store.get(newJobId()), undefined);
    assert.equal(await store.get('not a job id'), undefined);
    assert.equal(await store.get(''), undefined);
  });

  test('returned records are snapshots: changing one (input and result included) does not change the store', async ({
    store,
  }) => {
    const input = sampleInput();
    const spec = newJob({ input });
    const { job } = await store.create(spec);
    input.body.nested.deep.deeper.push('changed by the caller after create');
    job.status = 'failed';
    (job.input as ReturnType<typeof sampleInput>).body.arr.push('changed through the returned record');
    const [claimed] = await store.claim(claimOptions('w1'));
    (claimed.input as ReturnType<typeof sampleInput>).body.text = 'changed by a handler';
    const result = { rows: [1, 2, 3] };
    const done = await store.complete(spec.id, 'w1', { result, resultUrl: null, retentionMs: RETENTION_MS });
    result.rows.push(4);
    assert.ok(done, 'the holder completes the job');
    (done.result as { rows: number[] }).rows.push(5);
    const stored = await store.get(spec.id);
    assert.equal(stored?.status, 'complete');
    assert.deepEqual(stored?.input, sampleInput());
    assert.deepEqual(stored?.result, { rows: [1, 2, 3] });
  });

  test('owner is recorded and kept through claim and completion', async ({ store }) => {
    const { job } = await store.create(newJob({ owner: 'tenant-1:user-9' }));
    const [claimed] = await store.claim(claimOptions('w1'));
    assert.equal(claimed.owner, 'tenant-1:user-9');
    const done = await store.complete(job.id, 'w1', { result: 1, resultUrl: null, retentionMs: RETENTION_MS });
    assert.equal(done?.owner, 'tenant-1:user-9');
    assert.equal((await store.get(job.id))?.owner, 'tenant-1:user-9');
  });
}

/** Register the case for the stored trace context (the producer's W3C trace headers, kept as given). */
export function registerTraceContext(test: TestCase): void {
  test('create keeps the trace context given with the job, through claim and completion', async ({ store }) => {
    const traceContext = JSON.stringify({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    const { job } = await store.create(newJob({ traceContext }));
    assert.equal(job.traceContext, traceContext);
    const [claimed] = await store.claim(claimOptions('w1'));
    assert.equal(claimed?.traceContext, traceContext);
    await store.complete(job.id, 'w1', { result: 1, resultUrl: null, retentionMs: RETENTION_MS });
    assert.equal((await store.get(job.id))?.traceContext, traceContext);
    const plain = await store.create(newJob());
    assert.equal(plain.job.traceContext ?? null, null);
  });
}
