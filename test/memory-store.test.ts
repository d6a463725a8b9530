import { afterEach, describe, expect, it } from 'vitest';
import { newJobId, QueueFullError } from '../src/index.js';
import { MemoryStore } from '../src/stores/memory.js';
import { TextArena } from '../src/stores/memory-arena.js';
import { describeStoreConformance } from '../src/testing.js';

describeStoreConformance(
  'MemoryStore',
  { describe, it, afterEach },
  { createStore: () => new MemoryStore(), capabilities: { createNow: true } },
);

const job = (overrides: { owner?: string | null; idempotencyKey?: string | null } = {}) => ({
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

async function until(probe: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

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
    await store.claim({ names: ['bounded'], workerId: 'w', limit: 1, leaseMs: 60_000 });
    await store.complete(short.job.id, 'w', { result: 1, resultUrl: null, retentionMs: 1 });
    await until(async () => (await store.get(short.job.id)) === undefined);
    expect(store.size).toBe(2);
    const third = await store.create(job());
    expect(third.created).toBe(true);
    expect(store.size).toBe(2);
    expect(await store.get(kept.job.id)).toBeDefined();
    await expect(store.create(job())).rejects.toBeInstanceOf(QueueFullError);
  });
});

describe('MemoryStore: rows, id index and text arena', () => {
  const run = async (store: MemoryStore, id: string, result: unknown, retentionMs: number) => {
    const [claimed] = await store.claim({ names: ['bounded'], workerId: 'w', limit: 1, leaseMs: 60_000 });
    expect(claimed?.id).toBe(id);
    await store.complete(id, 'w', { result, resultUrl: null, retentionMs });
  };

  it('refuses a maxJobs below 1', () => {
    expect(() => new MemoryStore({ maxJobs: 0 })).toThrow(TypeError);
    expect(() => new MemoryStore({ maxJobs: Number.NaN })).toThrow(TypeError);
  });

  it('holds jobs whose ids newJobId() did not make, and forgets them when purged', async () => {
    const store = new MemoryStore();
    // Not base64url (one with a character past ASCII in 22, one with '=' in 22); 21 and 23 characters; and 22
    // base64url characters that are not the canonical form of 16 bytes (last one 'B': the same bytes as all 'A').
    const ids = [
      'job-1',
      'ÿ-not-base64',
      'AAAAAAAAAAAAAAAAAAAAĀA',
      'AAAAAAAAAAAAAAAAAAAA=A',
      'AAAAAAAAAAAAAAAAAAAAA',
      'AAAAAAAAAAAAAAAAAAAAAAA',
      'AAAAAAAAAAAAAAAAAAAAAB',
      'AAAAAAAAAAAAAAAAAAAAAA',
    ];
    for (const id of ids) await store.create({ ...job(), id, input: { id } });
    for (const id of ids) expect(await store.get(id)).toMatchObject({ id, input: { id }, status: 'queued' });
    expect(await store.get('AAAAAAAAAAAAAAAAAAAAAC')).toBeUndefined();
    for (const id of ids) await run(store, id, id, 1);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await store.purgeExpired()).toBe(ids.length);
    for (const id of ids) expect(await store.get(id)).toBeUndefined();
    expect(store.size).toBe(0);
  });

  it('keeps every input and result intact while rows are purged and reused and the text is compacted', async () => {
    const store = new MemoryStore();
    const kept = new Map<string, { input: unknown; result: unknown }>();
    // Big texts fill the arena's chunks many times over (some larger than a quarter chunk get their own); three
    // jobs in four are purged at once, so rows are reused, the id index gets deleted entries, and the chunks end
    // up mostly dead, which makes the arena compact.
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 50; i++) {
        const size = i === 6 ? 300_000 : ((round * 50 + i) % 7) * 2000;
        const input = { round, i, text: `é€😀 ${'x'.repeat(size)}` };
        const { job: created } = await store.create({ ...job(), input });
        const result = { doubled: input.text + input.text, n: i };
        const short = i % 4 !== 3;
        await run(store, created.id, result, short ? 1 : 60_000);
        if (!short) kept.set(created.id, { input, result });
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
      await store.purgeExpired();
    }
    expect(store.size).toBe(kept.size);
    for (const [id, { input, result }] of kept) {
      expect(await store.get(id)).toMatchObject({ id, status: 'complete', input, result });
    }
  });

  it('finds every job among many (the id index grows and keeps deleted slots apart)', async () => {
    const store = new MemoryStore({ maxJobs: 1_000_000 });
    const ids: string[] = [];
    for (let i = 0; i < 5000; i++) ids.push((await store.create({ ...job(), input: i })).job.id);
    for (const [i, id] of ids.entries()) expect((await store.get(id))?.input).toBe(i);
    expect(await store.get(newJobId())).toBeUndefined();
  });

  it('finds jobs whose ids share their first bytes, through deletes, growth and reuse of freed rows', async () => {
    // The index hashes an id by its first 4 bytes: these ids all land on one probe chain.
    const prefix = 'Zm9vYmFy'; // 6 bytes
    const sameStart = () => `${prefix}${newJobId().slice(8)}`;
    const store = new MemoryStore({ maxJobs: 1_000_000 });
    const live = new Map<string, number>();
    const gone: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const { job: created } = await store.create({ ...job(), id: i % 3 ? sameStart() : newJobId(), input: i });
      live.set(created.id, i);
      if (i % 5 === 4) {
        // Finish and purge every fifth job as it goes: deleted slots sit among the live ones.
        const [claimed] = await store.claim({ names: ['bounded'], workerId: 'w', limit: 1, leaseMs: 60_000 });
        await store.complete(claimed.id, 'w', { result: null, resultUrl: null, retentionMs: 1 });
        live.delete(claimed.id);
        gone.push(claimed.id);
        await new Promise((resolve) => setTimeout(resolve, 2));
        await store.purgeExpired();
      }
    }
    expect(store.size).toBe(live.size);
    for (const [id, i] of live) expect((await store.get(id))?.input, id).toBe(i);
    for (const id of gone) expect(await store.get(id), id).toBeUndefined();
    expect(await store.get(sameStart())).toBeUndefined();
  });
});

describe('MemoryStore: jobs created in one turn of the event loop', () => {
  // createNow() writes a job that fits in memory already allocated after the turn's I/O; every read must see it.
  const sameTurn = (store: MemoryStore, n: number, make = () => job()) =>
    Array.from({ length: n }, () => store.createNow(make()).job.id);

  it('are claimed in the order they were created, by a claim in the same turn', async () => {
    const store = new MemoryStore();
    const ids = sameTurn(store, 50);
    const claimed = await store.claim({ names: ['bounded'], workerId: 'w', limit: 100, leaseMs: 60_000 });
    expect(claimed.map((j) => j.id)).toEqual(ids);
  });

  it('are found, listed and counted at once', async () => {
    const store = new MemoryStore();
    const ids = sameTurn(store, 20, () => job({ owner: 'ann' }));
    expect(store.size).toBe(20);
    expect((await store.get(ids[7]))?.status).toBe('queued');
    const listed = await store.list({ owner: 'ann', limit: 100 });
    expect(new Set(listed.map((j) => j.id))).toEqual(new Set(ids));
  });

  it('count against maxJobs before they are written', () => {
    const store = new MemoryStore({ maxJobs: 3 });
    sameTurn(store, 3);
    expect(() => store.createNow(job())).toThrow(QueueFullError);
  });

  it('bind their idempotency key for a resubmit in the same turn', () => {
    const store = new MemoryStore();
    store.createNow(job()); // the first job allocates the table's memory, and is written at once
    const first = store.createNow(job({ idempotencyKey: 'k' }));
    const again = store.createNow(job({ idempotencyKey: 'k' }));
    expect(again.created).toBe(false);
    expect(again.job.id).toBe(first.job.id);
  });

  it('keep their order and inputs across the writes that need new memory (rows, arena chunks, a larger index)', async () => {
    const store = new MemoryStore({ maxJobs: 1_000_000 });
    const big = 'x'.repeat(300_000); // more than a quarter of an arena chunk: a chunk of its own
    const made: { id: string; input: unknown }[] = [];
    for (let i = 0; i < 9_000; i++) {
      const input = i % 1000 === 999 ? { big, i } : { i, text: 'é'.repeat(i % 40) };
      made.push({ id: store.createNow({ ...job(), input }).job.id, input });
    }
    const claimed = await store.claim({ names: ['bounded'], workerId: 'w', limit: 10_000, leaseMs: 60_000 });
    expect(claimed.map((j) => j.id)).toEqual(made.map((m) => m.id));
    for (const { id, input } of made) expect((await store.get(id))?.input).toEqual(input);
  });
});

describe('TextArena', () => {
  it('reads back every live text while others are released, chunks are reused, and after copying', () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const arena = new TextArena();
    const live = new Map<number, { text: string; length: number }>();
    for (let step = 0; step < 6000; step++) {
      const big = random() < 0.01;
      const text = `${step} é€😀 ${'y'.repeat(big ? 300_000 : Math.floor(random() * 5000))}`;
      const address = arena.write(text);
      expect(arena.written).toBe(Buffer.byteLength(text));
      live.set(address, { text, length: arena.written });
      // Release about four texts in five, in no particular order.
      for (const [old, entry] of live) {
        if (random() < 0.2) continue;
        if (random() < 0.5) {
          arena.release(old, entry.length);
          live.delete(old);
        }
        break;
      }
    }
    for (const [address, { text, length }] of live) expect(arena.read(address, length)).toBe(text);
    const copy = new TextArena();
    for (const [address, { text, length }] of live)
      expect(copy.read(copy.copyFrom(arena, address, length), length)).toBe(text);
  });
});

describe('MemoryStore: giving rows back', () => {
  it('after most jobs are purged, the jobs left keep their ids, state, order, keys and owners', async () => {
    const store = new MemoryStore({ maxJobs: 1_000_000 });
    const ids: string[] = [];
    // More jobs than the rows made at first (65 536), so that the rows grew.
    for (let i = 0; i < 70_000; i++) {
      const extra = i % 10_000 === 1 ? { owner: `o${i}`, idempotencyKey: `k${i}` } : {};
      const id = i === 50_001 ? 'not-a-generated-id' : newJobId();
      ids.push((await store.create({ ...job(extra), id, input: { i } })).job.id);
    }
    // Claim all, then finish all but a few with a retention that lapses at once; of the few, some go back to
    // the queue (release), some stay processing.
    const claimed = await store.claim({ names: ['bounded'], workerId: 'w', limit: 70_000, leaseMs: 60_000 });
    expect(claimed).toHaveLength(70_000);
    const keep = new Set([3, 999, 50_001, 60_001, 69_999].map((i) => ids[i]));
    for (const id of ids) {
      if (!keep.has(id)) await store.complete(id, 'w', { result: null, resultUrl: null, retentionMs: 1 });
    }
    await store.release(ids[999], 'w');
    await store.release(ids[50_001], 'w');
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await store.purgeExpired()).toBe(70_000 - keep.size);
    expect(store.size).toBe(keep.size);

    for (const i of [3, 60_001, 69_999]) {
      expect(await store.get(ids[i])).toMatchObject({ id: ids[i], status: 'processing', input: { i } });
    }
    expect(await store.get(ids[4])).toBeUndefined();
    // The released jobs are claimed again, oldest first.
    const again = await store.claim({ names: ['bounded'], workerId: 'w2', limit: 10, leaseMs: 60_000 });
    expect(again.map((j) => j.id)).toEqual([ids[999], ids[50_001]]);
    // Owners and idempotency keys survived the move.
    expect((await store.list({ owner: 'o60001', limit: 5 })).map((j) => j.id)).toEqual([ids[60_001]]);
    const replay = await store.create({ ...job({ owner: 'o60001', idempotencyKey: 'k60001' }) });
    expect(replay).toMatchObject({ created: false, job: { id: ids[60_001] } });
    // New jobs go in after them, and every job is still found.
    const fresh = await store.create(job());
    for (const id of [...keep, fresh.job.id]) expect((await store.get(id))?.id).toBe(id);
    await store.complete(ids[3], 'w', { result: { done: 3 }, resultUrl: null, retentionMs: 60_000 });
    expect(await store.get(ids[3])).toMatchObject({ status: 'complete', result: { done: 3 }, input: { i: 3 } });
  });
});
