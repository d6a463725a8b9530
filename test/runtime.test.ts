import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  CanceledError,
  createJobs,
  JobError,
  type JobRecord,
  type JobStore,
  type Jobs,
  type JobsOptions,
  MemoryStore,
  ShutdownError,
  StoreUnavailableError,
  seeOther,
  TimeoutError,
  UnrecoverableError,
} from '../src/index.js';
import { sleep } from './helpers/time.js';

// Every Jobs made by a test is closed after it, whatever happened.
const opened: Jobs[] = [];

afterEach(async () => {
  await Promise.all(opened.splice(0).map((jobs) => jobs.close({ timeoutMs: 100 })));
});

function quietLogger() {
  return { error: vi.fn(), warn: vi.fn() };
}

/** A runtime over a MemoryStore the test keeps a handle on, polling fast. */
function setup(options: JobsOptions = {}) {
  const store = (options.store as MemoryStore | undefined) ?? new MemoryStore();
  const logger = quietLogger();
  const jobs = createJobs({ pollIntervalMs: 20, leaseMs: 2_000, logger, ...options, store });
  opened.push(jobs);
  return { jobs, store, logger };
}

/** Poll until `probe` returns something truthy; fail after `timeoutMs`. */
async function until<T>(what: string, probe: () => T | Promise<T>, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(5);
  }
}

function gate() {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Wait until the job is terminal in the store. */
async function settled(store: JobStore, id: string): Promise<JobRecord> {
  return until(`job ${id} is terminal`, async () => {
    const job = await store.get(id);
    return job && ['complete', 'failed', 'canceled'].includes(job.status) ? job : undefined;
  });
}

/** A handler that never settles and ignores its signal; it keeps the signal it got. */
function hangingHandler(signals: AbortSignal[]) {
  return (_input: unknown, ctx: { signal: AbortSignal }) => {
    signals.push(ctx.signal);
    return new Promise<never>(() => {});
  };
}

describe('handlers', () => {
  it('receive the input snapshot and a context; the return value is the result', async () => {
    const { jobs, store } = setup();
    const seen: Array<{ input: unknown; jobId: string; attempt: number; owner: string | null; aborted: boolean }> = [];
    const echo = jobs.define('echo', async (input: { body: { a: number } }, ctx) => {
      expect(ctx.signal).toBeInstanceOf(AbortSignal);
      expect(typeof ctx.progress).toBe('function');
      seen.push({ input, jobId: ctx.jobId, attempt: ctx.attempt, owner: ctx.owner, aborted: ctx.signal.aborted });
      return { echo: input.body.a * 2 };
    });
    const input = { body: { a: 21 }, params: { id: '7' }, query: { q: 'x' } };
    const { job, created } = await jobs.submit(echo, input, { owner: 'alice' });
    expect(created).toBe(true);
    expect(job.status).toBe('queued');
    const done = await settled(store, job.id);
    expect(done).toMatchObject({ status: 'complete', result: { echo: 42 }, attempt: 1, owner: 'alice' });
    expect(seen).toEqual([{ input, jobId: job.id, attempt: 1, owner: 'alice', aborted: false }]);
  });

  it('persist progress while running; completion sets 100', async () => {
    const { jobs, store } = setup();
    const release = gate();
    const def = jobs.define('progress', async (_input, ctx) => {
      await ctx.progress(25, 'a quarter');
      await release.promise;
      return 'ok';
    });
    const { job } = await jobs.submit(def, {});
    const running = await until('progress is stored', async () => {
      const current = await store.get(job.id);
      return current?.progress === 25 ? current : undefined;
    });
    expect(running).toMatchObject({ status: 'processing', progress: 25, message: 'a quarter' });
    release.open();
    expect(await settled(store, job.id)).toMatchObject({ status: 'complete', progress: 100, result: 'ok' });
  });

  it('seeOther(url, result) stores resultUrl and result', async () => {
    const { jobs, store } = setup();
    const withResult = jobs.define('export', async () => seeOther('/files/1', { size: 3 }));
    const withoutResult = jobs.define('export-bare', async () => seeOther('/files/2'));
    const a = await jobs.submit(withResult, {});
    const b = await jobs.submit(withoutResult, {});
    expect(await settled(store, a.job.id)).toMatchObject({
      status: 'complete',
      resultUrl: '/files/1',
      result: { size: 3 },
    });
    const bare = await settled(store, b.job.id);
    expect(bare).toMatchObject({ status: 'complete', resultUrl: '/files/2' });
    expect(bare.result ?? null).toBeNull();
  });
});

describe('retries and errors', () => {
  it('retry failed attempts after the backoff delays until the attempts run out', async () => {
    const { jobs, store } = setup();
    const starts: Array<{ attempt: number; at: number }> = [];
    const backoff = vi.fn((attempt: number) => (attempt === 1 ? 100 : 300));
    const def = jobs.define(
      'flaky',
      async (_input, ctx) => {
        starts.push({ attempt: ctx.attempt, at: Date.now() });
        throw new JobError(`attempt ${ctx.attempt} failed`);
      },
      { attempts: 3, backoff },
    );
    const { job } = await jobs.submit(def, {});
    const done = await settled(store, job.id);
    expect(done).toMatchObject({ status: 'failed', attempt: 3, error: { message: 'attempt 3 failed' } });
    expect(starts.map((s) => s.attempt)).toEqual([1, 2, 3]);
    expect(backoff.mock.calls.map(([attempt]) => attempt)).toEqual([1, 2]);
    // Each retry waits at least its backoff delay (without one, it would start within a poll interval).
    expect(starts[1].at - starts[0].at).toBeGreaterThanOrEqual(100);
    expect(starts[2].at - starts[1].at).toBeGreaterThanOrEqual(300);
  });

  it('grow exponential delays from delayMs and complete when a retry succeeds', async () => {
    const { jobs, store } = setup();
    const starts: number[] = [];
    const def = jobs.define(
      'eventually',
      async (_input, ctx) => {
        starts.push(Date.now());
        if (ctx.attempt < 3) throw new Error('transient');
        return { attempt: ctx.attempt };
      },
      { attempts: 5, backoff: { delayMs: 80, jitter: false } },
    );
    const { job } = await jobs.submit(def, {});
    const done = await settled(store, job.id);
    expect(done).toMatchObject({ status: 'complete', attempt: 3, result: { attempt: 3 } });
    expect(starts).toHaveLength(3);
    expect(starts[1] - starts[0]).toBeGreaterThanOrEqual(80);
    expect(starts[2] - starts[1]).toBeGreaterThanOrEqual(160);
  });

  it('a JobError with retry:false fails at once, keeping its public message and code', async () => {
    const { jobs, store } = setup();
    const calls = vi.fn();
    const def = jobs.define(
      'final',
      async () => {
        calls();
        throw new JobError('report failed', { code: 'REPORT_FAILED', retry: false });
      },
      { attempts: 5, backoff: { delayMs: 1 } },
    );
    const { job } = await jobs.submit(def, {});
    const done = await settled(store, job.id);
    expect(done).toMatchObject({
      status: 'failed',
      attempt: 1,
      error: { message: 'report failed', code: 'REPORT_FAILED' },
    });
    expect(calls).toHaveBeenCalledTimes(1);
  });

  it('an UnrecoverableError fails at once with the generic message', async () => {
    const { jobs, store } = setup();
    const calls = vi.fn();
    const def = jobs.define(
      'doomed',
      async () => {
        calls();
        throw new UnrecoverableError('the private reason');
      },
      { attempts: 5, backoff: { delayMs: 1 } },
    );
    const { job } = await jobs.submit(def, {});
    const done = await settled(store, job.id);
    expect(done).toMatchObject({ status: 'failed', attempt: 1 });
    expect(done.error).toEqual({ message: 'The job failed' });
    expect(JSON.stringify(done)).not.toContain('the private reason');
    expect(calls).toHaveBeenCalledTimes(1);
  });

  it('a non-public error is stored as "The job failed" without message or stack; the logger gets the error', async () => {
    const { jobs, store, logger } = setup();
    const secret = new Error('password=hunter2 at db.internal');
    const def = jobs.define(
      'leaky',
      async () => {
        throw secret;
      },
      { attempts: 1 },
    );
    const { job } = await jobs.submit(def, {});
    const done = await settled(store, job.id);
    expect(done.status).toBe('failed');
    expect(done.error).toEqual({ message: 'The job failed' });
    const stored = JSON.stringify(done);
    expect(stored).not.toContain('hunter2');
    expect(stored).not.toContain('at ');
    expect(stored).not.toContain('runtime.test');
    expect(logger.error).toHaveBeenCalledWith(expect.stringContaining(job.id), secret);
  });

  it('an error marked expose:true keeps its message and code', async () => {
    const { jobs, store } = setup();
    const def = jobs.define(
      'exposed',
      async () => {
        throw Object.assign(new Error('quota exceeded'), { expose: true, code: 'QUOTA' });
      },
      { attempts: 1 },
    );
    const { job } = await jobs.submit(def, {});
    expect((await settled(store, job.id)).error).toEqual({ message: 'quota exceeded', code: 'QUOTA' });
  });

  it('timeoutMs aborts the signal with a TimeoutError and fails the job as "The job timed out"', async () => {
    const { jobs, store } = setup();
    const signals: AbortSignal[] = [];
    const def = jobs.define('slow', hangingHandler(signals), { timeoutMs: 100, attempts: 1 });
    const started = Date.now();
    const { job } = await jobs.submit(def, {});
    const done = await settled(store, job.id);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    expect(done).toMatchObject({
      status: 'failed',
      attempt: 1,
      error: { message: 'The job timed out', code: 'ERR_RESPOND_ASYNC_TIMEOUT' },
    });
    expect(signals).toHaveLength(1);
    expect(signals[0].aborted).toBe(true);
    expect(signals[0].reason).toBeInstanceOf(TimeoutError);
  });

  it('timeoutMs also ends a handler that returns a thenable of another promise library, one that never settles', async () => {
    const { jobs, store } = setup();
    // A PromiseLike that is not a Promise (as another promise library returns), which never settles.
    // biome-ignore lint/suspicious/noThenProperty: a thenable is what this test is about
    const never = { then: (_resolve: (value: unknown) => void) => {} };
    const def = jobs.define('foreign', (() => never) as unknown as () => Promise<unknown>, {
      timeoutMs: 100,
      attempts: 1,
    });
    const { job } = await jobs.submit(def, {});
    expect(await settled(store, job.id)).toMatchObject({
      status: 'failed',
      error: { code: 'ERR_RESPOND_ASYNC_TIMEOUT' },
    });
  });

  it('a result over maxResultBytes fails at once with ERR_RESPOND_ASYNC_RESULT_TOO_LARGE; one at the limit completes', async () => {
    const { jobs, store } = setup({ maxResultBytes: 100 });
    const def = jobs.define('big', async (input: { length: number }) => 'x'.repeat(input.length), { attempts: 3 });
    const tooBig = await jobs.submit(def, { length: 99 }); // 101 bytes of JSON
    const atLimit = await jobs.submit(def, { length: 98 }); // 100 bytes of JSON
    expect(await settled(store, tooBig.job.id)).toMatchObject({
      status: 'failed',
      attempt: 1,
      error: { code: 'ERR_RESPOND_ASYNC_RESULT_TOO_LARGE' },
    });
    expect(await settled(store, atLimit.job.id)).toMatchObject({ status: 'complete', result: 'x'.repeat(98) });
  });
});

describe('snapshots', () => {
  it('a handler that changes its input does not change what its retry receives', async () => {
    const { jobs, store } = setup();
    const seen: unknown[] = [];
    const def = jobs.define(
      'mutating',
      async (input: { body: { items: string[] } }, ctx) => {
        seen.push(structuredClone(input));
        input.body.items.push(`added by attempt ${ctx.attempt}`);
        if (ctx.attempt === 1) throw new Error('again');
        return input.body.items.length;
      },
      { attempts: 2, backoff: { delayMs: 1 } },
    );
    const { job } = await jobs.submit(def, { body: { items: ['a'] } });
    expect(await settled(store, job.id)).toMatchObject({ status: 'complete', result: 2 });
    expect(seen).toEqual([{ body: { items: ['a'] } }, { body: { items: ['a'] } }]);
    expect((await store.get(job.id))?.input).toEqual({ body: { items: ['a'] } });
  });

  it('a result that is not JSON data fails the job at once with ERR_RESPOND_ASYNC_RESULT_NOT_JSON', async () => {
    const { jobs, store } = setup();
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const cyclic = jobs.define('cyclic', async () => circular, { attempts: 3 });
    const bigint = jobs.define('bigint', async () => ({ n: 10n }), { attempts: 3 });
    const a = await jobs.submit(cyclic, {});
    const map = jobs.define('map', async () => ({ rows: new Map([['a', 1]]) }), { attempts: 3 });
    const b = await jobs.submit(bigint, {});
    const c = await jobs.submit(map, {});
    for (const id of [a.job.id, b.job.id, c.job.id]) {
      expect(await settled(store, id)).toMatchObject({
        status: 'failed',
        attempt: 1,
        error: { code: 'ERR_RESPOND_ASYNC_RESULT_NOT_JSON' },
      });
    }
  });
});

describe('cancel', () => {
  it('a queued job is canceled at once and its handler never runs', async () => {
    const { jobs, store } = setup({ concurrency: 1 });
    const blocker = gate();
    const ran: string[] = [];
    const def = jobs.define('task', async (input: { name: string }) => {
      ran.push(input.name);
      if (input.name === 'blocker') await blocker.promise;
      return input.name;
    });
    const first = await jobs.submit(def, { name: 'blocker' });
    await until('the blocker runs', () => ran.includes('blocker'));
    const second = await jobs.submit(def, { name: 'victim' });
    expect((await store.get(second.job.id))?.status).toBe('queued');
    const result = await jobs.cancel(second.job.id);
    expect(result.outcome).toBe('canceled');
    expect(result.job?.status).toBe('canceled');
    blocker.open();
    expect((await settled(store, first.job.id)).status).toBe('complete');
    await sleep(200); // several poll intervals: the canceled job would have been claimed by now
    expect(ran).toEqual(['blocker']);
    expect(await store.get(second.job.id)).toMatchObject({ status: 'canceled', attempt: 0 });
  });

  it('a running job has its signal aborted with CanceledError and ends canceled', async () => {
    const { jobs, store } = setup();
    const reasons: unknown[] = [];
    const calls = vi.fn();
    const def = jobs.define(
      'long',
      (_input, ctx) => {
        calls();
        return new Promise((_resolve, reject) => {
          ctx.signal.addEventListener('abort', () => {
            reasons.push(ctx.signal.reason);
            reject(ctx.signal.reason);
          });
        });
      },
      { attempts: 3, backoff: { delayMs: 1 } },
    );
    const { job } = await jobs.submit(def, {});
    await until('the job runs', () => calls.mock.calls.length === 1);
    const result = await jobs.cancel(job.id);
    expect(result.outcome).toBe('requested');
    expect(await settled(store, job.id)).toMatchObject({ status: 'canceled', attempt: 1 });
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(CanceledError);
    expect(calls).toHaveBeenCalledTimes(1);
    expect((await jobs.cancel(job.id)).outcome).toBe('finished');
  });
});

describe('concurrency and shutdown', () => {
  it('never runs more handlers at once than `concurrency`', async () => {
    const { jobs, store } = setup({ concurrency: 3 });
    let running = 0;
    let max = 0;
    const def = jobs.define('busy', async () => {
      running += 1;
      max = Math.max(max, running);
      await sleep(30);
      running -= 1;
    });
    const ids: string[] = [];
    for (let i = 0; i < 20; i += 1) ids.push((await jobs.submit(def, { i })).job.id);
    for (const id of ids) expect((await settled(store, id)).status).toBe('complete');
    expect(max).toBe(3);
    expect(jobs.runningCount).toBe(0);
  });

  it('frees a slot when the handler returns, before its final write lands, and bounds those writes', async () => {
    const store = new MemoryStore();
    const writes = gate();
    let completesWaiting = 0;
    const complete = store.complete.bind(store);
    // A slow store: every completion waits until the test lets them through.
    store.complete = async (...args) => {
      completesWaiting += 1;
      await writes.promise;
      return complete(...args);
    };
    const { jobs } = setup({ store, concurrency: 2 });
    let started = 0;
    const def = jobs.define('quick', async () => {
      started += 1;
    });
    const ids: string[] = [];
    for (let i = 0; i < 10; i += 1) ids.push((await jobs.submit(def, { i })).job.id);
    // Two slots: the next two jobs start while the first two completions are still pending, then no more:
    // at most `concurrency` final writes wait besides the running handlers.
    await until('four handlers ran', () => started === 4);
    await sleep(100);
    expect(started).toBe(4);
    expect(completesWaiting).toBe(4);
    expect(jobs.runningCount).toBe(4);
    writes.open();
    for (const id of ids) expect((await settled(store, id)).status).toBe('complete');
    expect(started).toBe(10);
  });

  it('close() lets running jobs that finish within the deadline complete', async () => {
    const { jobs, store } = setup();
    const signals: AbortSignal[] = [];
    const def = jobs.define('finishing', async (_input, ctx) => {
      signals.push(ctx.signal);
      await sleep(150);
      return 'done';
    });
    const { job } = await jobs.submit(def, {});
    await until('the job runs', () => signals.length === 1);
    await jobs.close({ timeoutMs: 10_000 });
    expect(await store.get(job.id)).toMatchObject({ status: 'complete', result: 'done' });
    expect(signals[0].aborted).toBe(false);
    await expect(jobs.submit(def, {})).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('close() past its deadline aborts a handler that ignores its signal and hands the job back', async () => {
    const store = new MemoryStore();
    const { jobs } = setup({ store });
    const signals: AbortSignal[] = [];
    const def = jobs.define('stubborn', hangingHandler(signals));
    const { job } = await jobs.submit(def, { n: 1 });
    await until('the job runs', () => signals.length === 1);
    const started = Date.now();
    await jobs.close({ timeoutMs: 150 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(signals[0].aborted).toBe(true);
    expect(signals[0].reason).toBeInstanceOf(ShutdownError);
    expect(await store.get(job.id)).toMatchObject({ status: 'queued', attempt: 0, leaseOwner: null });
    // Another process picks it up as a first attempt.
    const other = setup({ store });
    const attempts: number[] = [];
    other.jobs.define('stubborn', async (input: { n: number }, ctx) => {
      attempts.push(ctx.attempt);
      return input.n;
    });
    expect(await settled(store, job.id)).toMatchObject({ status: 'complete', result: 1, attempt: 1 });
    expect(attempts).toEqual([1]);
  });
});

describe('leases across processes', () => {
  /**
   * The store as seen by a process that froze (a long GC pause, a blocked event loop) while `frozen` is set:
   * its heartbeat believes the leases are still held without renewing them, and it claims nothing.
   */
  function freezable(store: JobStore) {
    const state = { frozen: false };
    const proxy = new Proxy(store, {
      get(target, property) {
        if (property === 'renew' && state.frozen) {
          return async (ids: readonly string[]) => ids.map((id) => ({ id, held: true, cancelRequested: false }));
        }
        if (property === 'claim' && state.frozen) return async () => [];
        const value = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    return { proxy, state };
  }

  it('a lapsed lease hands the job to another instance (attempt 2); the first one then learns it lost it', async () => {
    const store = new MemoryStore();
    const frozen = freezable(store);
    const a = setup({ store: frozen.proxy, leaseMs: 100 });
    const signals: AbortSignal[] = [];
    const defA = a.jobs.define('shared', hangingHandler(signals));
    const { job } = await a.jobs.submit(defA, { n: 5 });
    await until('instance A runs the job', () => signals.length === 1);
    frozen.state.frozen = true;
    expect((await store.get(job.id))?.attempt).toBe(1);

    const b = setup({ store, leaseMs: 100 });
    const attemptsB: number[] = [];
    b.jobs.define('shared', async (input: { n: number }, ctx) => {
      attemptsB.push(ctx.attempt);
      return { by: 'B', n: input.n };
    });
    const done = await settled(store, job.id);
    expect(done).toMatchObject({ status: 'complete', attempt: 2, result: { by: 'B', n: 5 } });
    expect(attemptsB).toEqual([2]);
    expect(signals[0].aborted).toBe(false);

    // A's heartbeat comes back: the store says the lease is gone, so A abandons the attempt without writing.
    frozen.state.frozen = false;
    await until('instance A aborts its handler', () => signals[0].aborted);
    expect((signals[0].reason as { code?: string }).code).toBe('ERR_RESPOND_ASYNC_LEASE_LOST');
    await until('instance A stops running it', () => a.jobs.runningCount === 0);
    expect(await store.get(job.id)).toEqual(done);
  });

  /** `store` with some methods replaced while a test says so. */
  function patched(store: JobStore, overrides: () => Partial<JobStore>) {
    return new Proxy(store, {
      get(target, property) {
        const override = (overrides() as Record<PropertyKey, unknown>)[property];
        if (override) return override;
        const value = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  }

  it('a job this process claims back after renewals failed runs as a new attempt; the old run is abandoned', async () => {
    const store = new MemoryStore();
    let renewFails = false;
    const flaky = patched(store, () =>
      renewFails ? { renew: () => Promise.reject(new Error('connection reset')) } : {},
    );
    const { jobs, logger } = setup({ store: flaky, leaseMs: 100 });
    const release = gate();
    const runs: Array<{ attempt: number; signal: AbortSignal }> = [];
    const def = jobs.define('solo', async (_input, ctx) => {
      runs.push({ attempt: ctx.attempt, signal: ctx.signal });
      if (ctx.attempt === 1) await release.promise; // ignores its signal
      return ctx.attempt;
    });
    const { job } = await jobs.submit(def, {});
    await until('the job runs', () => runs.length === 1);
    renewFails = true;
    // The lease lapses unrenewed and this same process claims the job back.
    const done = await settled(store, job.id);
    renewFails = false;
    expect(done).toMatchObject({ status: 'complete', result: 2, attempt: 2 });
    expect(runs.map((run) => run.attempt)).toEqual([1, 2]);
    expect(runs[0].signal.aborted).toBe(true);
    expect((runs[0].signal.reason as { code?: string }).code).toBe('ERR_RESPOND_ASYNC_LEASE_LOST');
    expect(logger.error).toHaveBeenCalledWith('respond-async: renewing leases failed', expect.any(Error));
    await until('nothing runs', () => jobs.runningCount === 0);
    release.open();
    await sleep(50);
    expect(await store.get(job.id)).toEqual(done);
  });

  it('a retry claimed before its failed attempt is cleaned up keeps its lease renewed', async () => {
    const store = new MemoryStore();
    // Hold the failed attempt's `fail()` open past a poll interval, so that the retry is claimed meanwhile.
    const slowFail = patched(store, () => ({
      fail: async (...args: Parameters<JobStore['fail']>) => {
        const job = await store.fail(...args);
        await sleep(150);
        return job;
      },
    }));
    const { jobs } = setup({ store: slowFail, leaseMs: 250 });
    const attempts: number[] = [];
    const def = jobs.define(
      'retry',
      async (_input, ctx) => {
        attempts.push(ctx.attempt);
        if (ctx.attempt === 1) throw new JobError('once more');
        await sleep(700); // almost three leases: only the heartbeat keeps it
        return ctx.attempt;
      },
      { attempts: 2, backoff: { delayMs: 1, jitter: false } },
    );
    const { job } = await jobs.submit(def, {});
    expect(await settled(store, job.id)).toMatchObject({ status: 'complete', result: 2, attempt: 2 });
    expect(attempts).toEqual([1, 2]);
    await until('nothing runs', () => jobs.runningCount === 0);
  });

  it('the heartbeat keeps the lease of a job that runs longer than leaseMs', async () => {
    const store = new MemoryStore();
    const a = setup({ store, leaseMs: 250 });
    const attempts: number[] = [];
    const def = a.jobs.define('long', async (_input, ctx) => {
      attempts.push(ctx.attempt);
      await sleep(900);
      return 'A';
    });
    const { job } = await a.jobs.submit(def, {});
    await until('instance A runs the job', () => attempts.length === 1);
    const b = setup({ store, leaseMs: 250 });
    const stolen = vi.fn();
    b.jobs.define('long', async () => {
      stolen();
      return 'B';
    });
    expect(await settled(store, job.id)).toMatchObject({ status: 'complete', result: 'A', attempt: 1 });
    expect(stolen).not.toHaveBeenCalled();
    expect(attempts).toEqual([1]);
  });
});

describe('waitFor and watch', () => {
  it('waitFor resolves once the job is terminal', async () => {
    const { jobs } = setup();
    const release = gate();
    const def = jobs.define('wait', async () => {
      await release.promise;
      return 7;
    });
    const { job } = await jobs.submit(def, {});
    setTimeout(release.open, 50);
    const started = Date.now();
    const done = await jobs.waitFor(job.id, 10_000);
    expect(done).toMatchObject({ status: 'complete', result: 7 });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(jobs.watcherCount()).toBe(0);
    expect(await jobs.waitFor('unknown-id', 1_000)).toBeUndefined();
  });

  it('waitFor returns the latest state when it times out', async () => {
    const { jobs, store } = setup();
    const release = gate();
    const def = jobs.define('stuck', async (_input, ctx) => {
      await ctx.progress(30, 'working');
      await release.promise;
      return 'late';
    });
    const { job } = await jobs.submit(def, {});
    await until('progress is stored', async () => (await store.get(job.id))?.progress === 30);
    const started = Date.now();
    const latest = await jobs.waitFor(job.id, 150);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(latest).toMatchObject({ status: 'processing', progress: 30, message: 'working' });
    expect(jobs.watcherCount()).toBe(0);
    release.open();
    expect(await jobs.waitFor(job.id, 10_000)).toMatchObject({ status: 'complete', result: 'late' });
  });

  it('watch reports each change in seq order and unsubscribes cleanly', async () => {
    const { jobs } = setup();
    const release = gate();
    const def = jobs.define('watched', async (_input, ctx) => {
      await release.promise;
      await ctx.progress(50);
      return 'ok';
    });
    const { job } = await jobs.submit(def, {});
    expect(jobs.watcherCount()).toBe(0);
    const changes: Array<{ status: string; seq: number }> = [];
    let calls = 0;
    const stop = jobs.watch(job.id, (change) => {
      calls += 1;
      if (change) {
        expect(change.id).toBe(job.id);
        changes.push({ status: change.status, seq: change.seq });
      }
    });
    expect(jobs.watcherCount()).toBe(1);
    release.open();
    await until('the complete change arrives', () => changes.some((c) => c.status === 'complete'));
    expect(changes.map((c) => c.status)).toContain('processing');
    for (let i = 1; i < changes.length; i += 1) expect(changes[i].seq).toBeGreaterThan(changes[i - 1].seq);
    stop();
    expect(jobs.watcherCount()).toBe(0);
    const after = calls;
    await sleep(100); // five poll intervals
    expect(calls).toBe(after);
  });
});

describe('validation', () => {
  it('define rejects a duplicate name, a bad name, a non-function handler and bad options with TypeError', () => {
    const { jobs } = setup({ worker: false });
    jobs.define('once', async () => 1);
    expect(() => jobs.define('once', async () => 2)).toThrow(TypeError);
    expect(() => jobs.define('once', async () => 2)).toThrow(/already defined/);
    expect(() => jobs.define('', async () => 1)).toThrow(TypeError);
    expect(() => jobs.define('x'.repeat(201), async () => 1)).toThrow(TypeError);
    expect(() => jobs.define('no-handler', 'nope' as never)).toThrow(TypeError);
    expect(() => jobs.define('a0', async () => 1, { attempts: 0 })).toThrow(TypeError);
    expect(() => jobs.define('a1', async () => 1, { attempts: Number.NaN })).toThrow(TypeError);
    expect(() => jobs.define('t0', async () => 1, { timeoutMs: -1 })).toThrow(TypeError);
    expect(() => jobs.define('t1', async () => 1, { timeoutMs: 0 })).toThrow(TypeError);
    expect(jobs.definition('a0')).toBeUndefined();
    expect(jobs.definition('once')?.name).toBe('once');
  });

  it('createJobs rejects bad options and a store without the JobStore shape with TypeError', () => {
    const store = new MemoryStore();
    expect(() => createJobs({ store, concurrency: 0 })).toThrow(TypeError);
    expect(() => createJobs({ store, leaseMs: -1 })).toThrow(TypeError);
    expect(() => createJobs({ store, pollIntervalMs: Number.NaN })).toThrow(TypeError);
    expect(() => createJobs({ store, retentionMs: 0 })).toThrow(TypeError);
    expect(() => createJobs({ store, maxResultBytes: -5 })).toThrow(TypeError);
    expect(() => createJobs({ store: {} as JobStore })).toThrow(/missing the JobStore method/);
  });

  it('submit of a name not defined in this process is a TypeError', async () => {
    const { jobs } = setup();
    await expect(jobs.submit('nowhere', {})).rejects.toBeInstanceOf(TypeError);
  });
});
