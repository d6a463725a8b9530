import { afterEach, describe, expect, it } from 'vitest';
import { newJobId, QueueFullError } from '../src/index.js';
import { MemoryStore } from '../src/stores/memory.js';
import { describeStoreConformance } from '../src/testing.js';

describeStoreConformance('MemoryStore', { describe, it, afterEach }, { createStore: () => new MemoryStore() });

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
