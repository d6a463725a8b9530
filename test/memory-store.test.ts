// MemoryStore: the conformance suite, and what only this store does: its bounds (jobs, bytes), eviction of
// finished jobs, the owner index and the order of its queues.
import { afterEach, describe, expect, it } from 'vitest';
import { newJobId, QueueFullError } from '../src/index.js';
import { MemoryStore } from '../src/stores/memory.js';
import { describeStoreConformance } from '../src/testing.js';

describeStoreConformance('MemoryStore', { describe, it, afterEach }, { createStore: () => new MemoryStore() });

const job = (
  overrides: { owner?: string | null; idempotencyKey?: string | null; input?: unknown; name?: string } = {},
) => ({
  id: newJobId(),
  name: 'bounded',
  input: {},
  owner: null,
  idempotencyKey: null,
  requestHash: null,
  maxAttempts: 1,
  callbackUrl: null,
  ...overrides,
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(probe: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(5);
  }
}

/** Claim the job `id` (the oldest queued) and complete it with `retentionMs`. */
async function finish(store: MemoryStore, id: string, retentionMs = 60_000, result: unknown = 1): Promise<void> {
  const [claimed] = await store.claim({ names: ['bounded'], workerId: 'w', limit: 1, leaseMs: 60_000 });
  expect(claimed?.id).toBe(id);
  await store.complete(id, 'w', { result, resultUrl: null, retentionMs });
}

describe('MemoryStore: options', () => {
  it('refuses a maxJobs or maxBytes below 1 and a negative evictAfterMs', () => {
    expect(() => new MemoryStore({ maxJobs: 0 })).toThrow(TypeError);
    expect(() => new MemoryStore({ maxJobs: Number.NaN })).toThrow(TypeError);
    expect(() => new MemoryStore({ maxBytes: 0 })).toThrow(TypeError);
    expect(() => new MemoryStore({ evictAfterMs: -1 })).toThrow(TypeError);
  });
});

describe('MemoryStore: maxJobs', () => {
  it('throws QueueFullError once it holds maxJobs jobs, finished ones included', async () => {
    const store = new MemoryStore({ maxJobs: 2 });
    await store.create(job());
    const second = await store.create(job());
    await store.claim({ names: ['bounded'], workerId: 'w', limit: 1, leaseMs: 60_000 });
    await store.complete(second.job.id, 'w', { result: 1, resultUrl: null, retentionMs: 60_000 });
    const error = await store.create(job()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueueFullError);
    expect((error as QueueFullError).code).toBe('ERR_RESPOND_ASYNC_QUEUE_FULL');
    expect(store.size).toBe(2);
  });

  it('still answers an idempotent resubmit when full', async () => {
    const store = new MemoryStore({ maxJobs: 1 });
    const first = await store.create(job({ owner: 'a', idempotencyKey: 'k' }));
    const again = await store.create(job({ owner: 'a', idempotencyKey: 'k' }));
    expect(again).toMatchObject({ created: false, job: { id: first.job.id } });
    await expect(store.create(job({ owner: 'a', idempotencyKey: 'other' }))).rejects.toBeInstanceOf(QueueFullError);
  });

  it('purges expired jobs before refusing a new one', async () => {
    const store = new MemoryStore({ maxJobs: 2 });
    const short = await store.create(job());
    const kept = await store.create(job());
    await finish(store, short.job.id, 1);
    await until(async () => (await store.get(short.job.id)) === undefined);
    expect(store.size).toBe(2);
    const third = await store.create(job());
    expect(third.created).toBe(true);
    expect(store.size).toBe(2);
    expect(await store.get(kept.job.id)).toBeDefined();
    await expect(store.create(job())).rejects.toBeInstanceOf(QueueFullError);
  });
});

describe('MemoryStore: maxBytes', () => {
  const kilobytes = (n: number) => ({ text: 'x'.repeat(n * 1024) });

  it('refuses a job that does not fit in maxBytes, and takes it once purging made room', async () => {
    const store = new MemoryStore({ maxBytes: 10 * 1024 });
    const error = await store.create(job({ input: kilobytes(11) })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueueFullError);
    expect((error as QueueFullError).message).toMatch(/bytes/);
    expect(store.size).toBe(0);

    const first = await store.create(job({ input: kilobytes(6) }));
    await expect(store.create(job({ input: kilobytes(6) }))).rejects.toBeInstanceOf(QueueFullError);
    // A small job still fits beside it.
    expect((await store.create(job({ input: kilobytes(1) }))).created).toBe(true);
    await finish(store, first.job.id, 1);
    await until(async () => (await store.get(first.job.id)) === undefined);
    expect((await store.create(job({ input: kilobytes(6) }))).created).toBe(true);
  });

  it('counts results: a finished job holding a large result makes room only once it is purged', async () => {
    const store = new MemoryStore({ maxBytes: 10 * 1024 });
    const first = await store.create(job());
    await finish(store, first.job.id, 100, kilobytes(8));
    await expect(store.create(job({ input: kilobytes(3) }))).rejects.toBeInstanceOf(QueueFullError);
    await sleep(110);
    expect(await store.purgeExpired()).toBe(1);
    // Every byte of the purged job was given back: a job of 9 KiB fits in the 10 KiB again.
    expect((await store.create(job({ input: kilobytes(9) }))).created).toBe(true);
  });
});

describe('MemoryStore: eviction of finished jobs', () => {
  it('evicts finished jobs past evictAfterMs, oldest finished first; never an unfinished one', async () => {
    const store = new MemoryStore({ maxJobs: 3, evictAfterMs: 50 });
    const a = (await store.create(job())).job.id;
    const b = (await store.create(job())).job.id;
    const c = (await store.create(job())).job.id;
    await store.claim({ names: ['bounded'], workerId: 'w', limit: 3, leaseMs: 60_000 });
    // b finishes first, then a; c is still processing. Their retention (an hour) is far from over.
    for (const id of [b, a]) await store.complete(id, 'w', { result: id, resultUrl: null, retentionMs: 3_600_000 });
    await expect(store.create(job()), 'finished too recently').rejects.toBeInstanceOf(QueueFullError);
    await sleep(60);

    const d = (await store.create(job())).job.id;
    expect(await store.get(b), 'the oldest finished job is evicted').toBeUndefined();
    expect((await store.get(a))?.result).toBe(a);
    const e = (await store.create(job())).job.id;
    expect(await store.get(a)).toBeUndefined();
    // Left: c (processing), d and e (queued): nothing can be evicted.
    await sleep(60);
    await expect(store.create(job())).rejects.toBeInstanceOf(QueueFullError);
    for (const id of [c, d, e]) expect(await store.get(id)).toBeDefined();
    expect(store.size).toBe(3);
  });

  it('evicts for bytes too, and forgets the evicted job’s idempotency key and owner entry', async () => {
    const store = new MemoryStore({ maxBytes: 10 * 1024, evictAfterMs: 0 });
    const old = await store.create(job({ owner: 'ann', idempotencyKey: 'k', input: { text: 'x'.repeat(6000) } }));
    await finish(store, old.job.id);
    const fresh = await store.create(job({ owner: 'ann', input: { text: 'y'.repeat(6000) } }));
    expect(await store.get(old.job.id)).toBeUndefined();
    expect((await store.list({ owner: 'ann', limit: 10 })).map((j) => j.id)).toEqual([fresh.job.id]);
    const rebound = await store.create(job({ owner: 'ann', idempotencyKey: 'k' }));
    expect(rebound.created).toBe(true);
  });
});

describe('MemoryStore: eviction and webhooks', () => {
  it('does not evict a finished job whose webhook is still to be delivered', async () => {
    const store = new MemoryStore({ maxJobs: 2, evictAfterMs: 0 });
    const hooked = (await store.create({ ...job(), callbackUrl: 'https://example.com/hook' })).job.id;
    const plain = (await store.create(job())).job.id;
    await store.claim({ names: ['bounded'], workerId: 'w', limit: 2, leaseMs: 60_000 });
    for (const id of [hooked, plain])
      await store.complete(id, 'w', { result: 1, resultUrl: null, retentionMs: 60_000 });
    await store.create(job());
    expect(await store.get(plain)).toBeUndefined();
    expect((await store.get(hooked))?.deliveryStatus).toBe('pending');
    await expect(store.create(job())).rejects.toBeInstanceOf(QueueFullError);
    await store.recordDelivery(hooked, { status: 'delivered', attempts: 1, nextAt: null });
    expect((await store.create(job())).created).toBe(true);
    expect(await store.get(hooked)).toBeUndefined();
  });
});

describe('MemoryStore: owner index', () => {
  it('lists only the owner’s jobs, newest first, up to the limit, across purges', async () => {
    const store = new MemoryStore();
    const ann: string[] = [];
    for (let i = 0; i < 6; i++) {
      ann.push((await store.create(job({ owner: 'ann', input: i }))).job.id);
      await store.create(job({ owner: 'bob' }));
      await store.create(job({ owner: null }));
      await sleep(2); // distinct creation times, as a listing in another store would order them
    }
    const listed = await store.list({ owner: 'ann', limit: 4 });
    expect(listed.map((j) => j.id)).toEqual([...ann].reverse().slice(0, 4));
    expect(listed.every((j) => j.owner === 'ann')).toBe(true);
    expect(await store.list({ owner: 'nobody', limit: 10 })).toEqual([]);
    expect(await store.list({ owner: 'ann', limit: 0 })).toEqual([]);

    // Purge ann's newest, oldest and one between: the list stays whole.
    const claimed = await store.claim({ names: ['bounded'], workerId: 'w', limit: 100, leaseMs: 60_000 });
    expect(claimed).toHaveLength(18);
    for (const id of [ann[5], ann[0], ann[2]]) {
      await store.complete(id, 'w', { result: null, resultUrl: null, retentionMs: 1 });
    }
    await sleep(5);
    expect(await store.purgeExpired()).toBe(3);
    expect((await store.list({ owner: 'ann', limit: 10 })).map((j) => j.id)).toEqual([ann[4], ann[3], ann[1]]);
    const newest = (await store.create(job({ owner: 'ann' }))).job.id;
    expect((await store.list({ owner: 'ann', limit: 2 })).map((j) => j.id)).toEqual([newest, ann[4]]);
    expect(await store.list({ owner: 'bob', limit: 100 })).toHaveLength(6);
  });
});

describe('MemoryStore: queues', () => {
  const claim = (store: MemoryStore, names: string[], limit = 10) =>
    store.claim({ names, workerId: 'w', limit, leaseMs: 60_000 });

  it('claims oldest runAt first across names, skipping jobs canceled while queued', async () => {
    const store = new MemoryStore();
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      ids.push((await store.create(job({ name: i % 2 ? 'odd' : 'even', input: i }))).job.id);
      await sleep(2);
    }
    await store.cancel(ids[0], { retentionMs: 60_000 });
    await store.cancel(ids[3], { retentionMs: 60_000 });
    expect((await claim(store, ['even', 'odd'], 2)).map((j) => j.id)).toEqual([ids[1], ids[2]]);
    expect((await claim(store, ['odd'])).map((j) => j.id)).toEqual([ids[5]]);
    expect((await claim(store, ['even', 'odd'])).map((j) => j.id)).toEqual([ids[4]]);
    expect(await claim(store, ['even', 'odd'])).toEqual([]);
  });

  it('puts a released job back in its place, and a retried job at its retry time', async () => {
    const store = new MemoryStore();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await store.create(job())).job.id);
      await sleep(2);
    }
    expect((await claim(store, ['bounded'], 2)).map((j) => j.id)).toEqual([ids[0], ids[1]]);
    await store.fail(ids[0], 'w', { error: { message: 'again' }, retryAt: Date.now() + 40, retentionMs: 60_000 });
    await store.release(ids[1], 'w');
    expect((await claim(store, ['bounded'])).map((j) => j.id)).toEqual([ids[1], ids[2]]);
    await sleep(50);
    expect((await claim(store, ['bounded'])).map((j) => j.id)).toEqual([ids[0]]);
  });
});

describe('MemoryStore: cancel', () => {
  it('ends a job canceled once cancel answered "requested", whatever the worker writes after', async () => {
    const store = new MemoryStore();
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await store.create(job())).job.id);
    await store.claim({ names: ['bounded'], workerId: 'w', limit: 3, leaseMs: 60_000 });
    for (const id of ids) expect((await store.cancel(id, { retentionMs: 60_000 })).outcome).toBe('requested');
    const completed = await store.complete(ids[0], 'w', { result: 'done', resultUrl: null, retentionMs: 60_000 });
    const failed = await store.fail(ids[1], 'w', { error: { message: 'x' }, retryAt: null, retentionMs: 60_000 });
    const retried = await store.fail(ids[2], 'w', { error: { message: 'x' }, retryAt: 0, retentionMs: 60_000 });
    for (const record of [completed, failed, retried]) {
      expect(record).toMatchObject({ status: 'canceled', result: undefined, error: null, cancelRequested: false });
    }
    for (const id of ids) expect((await store.get(id))?.status).toBe('canceled');
    expect(await store.claim({ names: ['bounded'], workerId: 'w', limit: 3, leaseMs: 60_000 })).toEqual([]);
  });
});

describe('MemoryStore: JSON values', () => {
  it('keeps input and result as JSON, as the durable stores do: a Map result reads back as {}', async () => {
    const store = new MemoryStore();
    const created = await store.create(job({ input: { when: new Date(0), skip: undefined } }));
    expect((await store.get(created.job.id))?.input).toEqual({ when: '1970-01-01T00:00:00.000Z' });
    await finish(store, created.job.id, 60_000, new Map([['a', 1]]));
    expect((await store.get(created.job.id))?.result).toEqual({});
  });
});

describe('MemoryStore: records handed out', () => {
  it('shares nothing with what it holds: changing a record from create, get or claim changes nothing stored', async () => {
    const store = new MemoryStore();
    const created = await store.create(job({ input: { n: 1 }, owner: 'a' }));
    const { input, ...fields } = created.job;
    expect(input).toEqual({ n: 1 });
    Object.assign(created.job, { status: 'failed', attempt: 9, name: 'other', runAt: 0 });
    (created.job.input as { n: number }).n = 2;
    const read = await store.get(created.job.id);
    expect(read).toEqual({ ...fields, input: { n: 1 } });
    Object.assign(read!, { status: 'complete', seq: 99 });
    const [claimed] = await store.claim({ names: ['bounded'], workerId: 'w', limit: 1, leaseMs: 60_000 });
    expect(claimed).toMatchObject({ id: created.job.id, status: 'processing', attempt: 1, seq: fields.seq + 1 });
    claimed.leaseOwner = 'someone else';
    expect(await store.renew([created.job.id], 'w', 60_000)).toEqual([
      { id: created.job.id, held: true, cancelRequested: false },
    ]);
  });
});
