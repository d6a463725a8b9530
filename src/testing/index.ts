// respond-async/testing: the JobStore conformance suite. The project runs it against every store it ships, and
// third-party store authors run it against theirs. It uses only `node:assert/strict`, so it runs under vitest,
// jest or node:test alike: pass the test runner's `describe` and `it`. The cases live in one file per topic.
import assert from 'node:assert/strict';
import type { JobStore } from '../core/store.js';
import { registerAdmin } from './admin.js';
import { registerBasics, registerTraceContext } from './basics.js';
import { registerCancel, registerCancelWins } from './cancel.js';
import { registerClaim, registerClaimRaces, registerCreateClaimed, registerLeases } from './claim-and-leases.js';
import { registerCompletion, registerFailure } from './completion.js';
import { registerDeliveries } from './deliveries.js';
import { registerDurability } from './durability.js';
import type { Context, TestCase } from './helpers.js';
import { registerIdempotency } from './idempotency.js';
import { registerList } from './list.js';
import { registerRetention } from './retention.js';

export interface StoreConformanceOptions {
  /** Fresh, initialised, empty store for each test. */
  createStore: () => JobStore | Promise<JobStore>;
  /** Optional capabilities */
  capabilities?: {
    /**
     * Reopen a store over the same data (SQLite file / PostgreSQL schema) to prove durability. Omitted for memory.
     * The suite has already closed `previous` when it calls this; the store returned is closed by the suite.
     */
    reopen?: (previous: JobStore) => Promise<JobStore>;
    /** The store implements the optional `createClaimed()`: its cases run too. */
    createClaimed?: boolean;
  };
}

/** The slice of a test runner the suite needs: vitest, jest and node:test all fit. */
export interface TestApi {
  describe(name: string, fn: () => void): void;
  it(name: string, fn: () => Promise<void> | void, timeout?: number): void;
  afterEach?(fn: () => Promise<void> | void): void;
}

/** Per-test budget. Each case takes well under a second; the margin is for loaded CI machines. */
const TEST_TIMEOUT_MS = 15_000;

/**
 * Register the JobStore conformance suite with a test runner.
 * @example
 * import { afterEach, describe, it } from 'vitest';
 * import { describeStoreConformance } from 'respond-async/testing';
 * describeStoreConformance('MyStore', { describe, it, afterEach }, { createStore: async () => {
 *   const store = new MyStore(); await store.init(); return store;
 * } });
 */
export function describeStoreConformance(name: string, api: TestApi, options: StoreConformanceOptions): void {
  const reopenStore = options.capabilities?.reopen;

  /** A case with its own store(s), each closed when the case ends, whether it passed or not. */
  const test: TestCase = (title, body) => {
    api.it(
      title,
      async () => {
        const open: JobStore[] = [];
        const closed = new Set<JobStore>();
        const close = async (store: JobStore) => {
          if (closed.has(store)) return;
          closed.add(store);
          await store.close();
        };
        const create = async () => {
          const store = await options.createStore();
          open.push(store);
          return store;
        };
        let failed = false;
        let failure: unknown;
        try {
          const ctx: Context = {
            store: await create(),
            create,
            reopen: async (previous) => {
              assert.ok(reopenStore, 'capabilities.reopen is required');
              await close(previous);
              const next = await reopenStore(previous);
              open.push(next);
              return next;
            },
          };
          await body(ctx);
        } catch (error) {
          failed = true;
          failure = error;
        }
        for (const store of open.reverse()) {
          try {
            await close(store);
          } catch (error) {
            if (!failed) {
              failed = true;
              failure = error;
            }
          }
        }
        if (failed) throw failure;
      },
      TEST_TIMEOUT_MS,
    );
  };

  // The order of registration is the order the cases run in.
  api.describe(`${name}: JobStore conformance`, () => {
    registerBasics(test);
    registerTraceContext(test);
    registerIdempotency(test);
    registerList(test);
    registerClaim(test);
    registerClaimRaces(test);
    if (options.capabilities?.createClaimed) registerCreateClaimed(test);
    registerLeases(test);
    registerCompletion(test);
    registerFailure(test);
    registerCancel(test);
    registerCancelWins(test);
    registerRetention(test);
    registerDeliveries(test);
    registerAdmin(test);
    if (reopenStore) registerDurability(test);
  });
}
