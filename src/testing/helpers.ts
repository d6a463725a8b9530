// The conformance suite's shared parts: the context of a case, its timing constants, and the helpers the cases use.
import assert from 'node:assert/strict';
import { newJobId } from '../core/ids.js';
import type { JobStore } from '../core/store.js';
import type { NewJob } from '../core/types.js';

/** How long a case waits for a time-based condition (a lease or a retention lapsing) before it fails. */
export const WAIT_MS = 5_000;
/** Tolerance for timestamps taken by a store from a clock other than this process's (a database's). */
export const CLOCK_SLACK_MS = 50;
/** A lease that cannot lapse during a test. */
export const LONG_LEASE_MS = 60_000;
export const RETENTION_MS = 60_000;
export const NAME = 'conformance';

export interface Context {
  /** The store of this test, from `createStore()`. */
  store: JobStore;
  /** Another fresh store from `createStore()`, closed with the test. */
  create(): Promise<JobStore>;
  /** Close `previous` and reopen its data with `capabilities.reopen`. */
  reopen(previous: JobStore): Promise<JobStore>;
}

/** Registers one case; the case gets its own store(s), each closed when it ends. */
export type TestCase = (title: string, body: (ctx: Context) => Promise<void>) => void;

export function newJob(overrides: Partial<NewJob> = {}): NewJob {
  return {
    id: newJobId(),
    name: NAME,
    input: { body: {}, params: {}, query: {} },
    owner: null,
    idempotencyKey: null,
    requestHash: null,
    maxAttempts: 3,
    callbackUrl: null,
    ...overrides,
  };
}

export function claimOptions(workerId: string) {
  return { names: [NAME], workerId, limit: 1, leaseMs: LONG_LEASE_MS };
}

/** A request snapshot exercising every JSON type, nesting, and non-ASCII text. */
export function sampleInput() {
  return {
    body: {
      text: 'héllo ✓ 😀 "quoted" \\ back\nline',
      int: 42,
      float: 1.5,
      negative: -7,
      big: 9007199254740991,
      yes: true,
      no: false,
      nothing: null,
      arr: [1, 'two', { three: 3 }, [4]] as unknown[],
      nested: { deep: { deeper: ['x'] } },
      empty: {},
      emptyArr: [],
    },
    params: { id: 'p-1' },
    query: { q: 'a b', list: ['1', '2'] },
  };
}

/** `value` is a timestamp taken between `before` and `after` (give or take another clock's slack). */
export function assertTime(value: number | null | undefined, before: number, after: number, what: string): void {
  assert.equal(typeof value, 'number', `${what} must be set`);
  const time = value as number;
  assert.ok(
    time >= before - CLOCK_SLACK_MS && time <= after + CLOCK_SLACK_MS,
    `${what} = ${time} must lie within [${before}, ${after}]`,
  );
}

/** Poll `probe` until it returns a truthy value (a non-empty array counts as truthy; an empty one does not). */
export async function eventually<T>(what: string, probe: () => Promise<T>, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (Array.isArray(value) ? value.length > 0 : Boolean(value)) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(10);
  }
}

/** Wait until the clock has moved on, so that the next record gets a later timestamp. */
export async function nextMillisecond(): Promise<void> {
  const start = Date.now();
  while (Date.now() <= start + 1) await sleep(2);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
