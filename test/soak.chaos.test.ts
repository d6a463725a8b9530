// Soak (long; `npm run test:chaos`): a steady mix of submits, polls, SSE connects (some dropped early) and cancels
// against an Express app, on each store (memory, SQLite file, PostgreSQL). Measures heap and active resources at
// start and end, watches for MaxListenersExceededWarning, and accounts for every job.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import { createJobs } from '../src/core/runtime.js';
import type { JobStore } from '../src/core/store.js';
import type { RequestSnapshot } from '../src/core/types.js';
import { MemoryStore } from '../src/stores/memory.js';
import { PostgresStore } from '../src/stores/postgres.js';
import { SqliteStore } from '../src/stores/sqlite.js';
import { startApp } from './helpers/apps.js';
import { closeAdmin, dropSchema, pgUrl, randomSchema } from './helpers/postgres.js';
import { sleep } from './helpers/time.js';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 20);
const TICK_MS = 20;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

async function settle(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 100));
  }
  return process.memoryUsage().heapUsed;
}

const warnings: Error[] = [];
const onWarning = (w: Error) => warnings.push(w);
process.on('warning', onWarning);
afterAll(async () => {
  process.off('warning', onWarning);
  await closeAdmin?.();
});

async function soak(label: string, makeStore: () => Promise<{ store: JobStore; cleanup: () => Promise<void> }>) {
  const handlesBefore = process.getActiveResourcesInfo().length;
  const { store, cleanup } = await makeStore();
  const jobs = createJobs({ store, pollIntervalMs: 50, concurrency: 20, logger: { error() {} } });
  const work = jobs.define('work', async (req: RequestSnapshot<{ ms: number }>, ctx) => {
    const steps = 4;
    for (let i = 1; i <= steps; i++) {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, req.body.ms / steps);
        ctx.signal.addEventListener(
          'abort',
          () => {
            clearTimeout(t);
            reject(ctx.signal.reason);
          },
          { once: true },
        );
      });
      await ctx.progress((i * 100) / steps);
    }
    return { ok: true };
  });
  const app = await startApp('express', {
    jobs,
    routes: [{ path: '/work', job: work }],
    options: { basePath: '/jobs', maxWaitSeconds: 1, heartbeatMs: 500 },
  });
  const headers = { 'content-type': 'application/json', 'x-user': 'soak' };
  const ids: string[] = [];
  const counts = { submits: 0, polls: 0, sse: 0, sseDropped: 0, cancels: 0, errors: 0, non2xx: 0 };
  const inflight = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    const q = p.catch(() => counts.errors++).finally(() => inflight.delete(q));
    inflight.add(q);
  };

  // Warm up once so lazy initialisation does not count as growth.
  await fetch(`${app.url}/work`, { method: 'POST', headers, body: JSON.stringify({ ms: 10 }) }).then((r) => r.text());
  const heapStart = await settle();
  const handlesStart = process.getActiveResourcesInfo().length;

  const end = Date.now() + SECONDS * 1000;
  let tick = 0;
  while (Date.now() < end) {
    tick++;
    const op = tick % 10;
    if (op < 4) {
      track(
        fetch(`${app.url}/work`, { method: 'POST', headers, body: JSON.stringify({ ms: 20 + (tick % 7) * 40 }) }).then(
          async (r) => {
            counts.submits++;
            const body = (await r.json()) as { jobId?: string };
            if (r.status !== 202 || !body.jobId) counts.non2xx++;
            else ids.push(body.jobId);
          },
        ),
      );
    } else if (op < 7 && ids.length > 0) {
      const id = ids[(tick * 7919) % ids.length];
      track(
        fetch(`${app.url}/jobs/${id}`, { headers }).then(async (r) => {
          counts.polls++;
          await r.text();
          if (r.status !== 200) counts.non2xx++;
        }),
      );
    } else if (op < 9 && ids.length > 0) {
      const id = ids[ids.length - 1 - (tick % Math.min(ids.length, 5))];
      const controller = new AbortController();
      const drop = tick % 3 === 0;
      if (drop) setTimeout(() => controller.abort(), 30);
      track(
        fetch(`${app.url}/jobs/${id}/events`, { headers, signal: controller.signal })
          .then(async (r) => {
            counts.sse++;
            await r.text();
          })
          .catch((e) => {
            if (drop) counts.sseDropped++;
            else throw e;
          }),
      );
    } else if (ids.length > 0) {
      const id = ids[ids.length - 1];
      track(
        fetch(`${app.url}/jobs/${id}`, { method: 'DELETE', headers }).then(async (r) => {
          counts.cancels++;
          await r.text();
        }),
      );
    }
    await sleep(TICK_MS);
  }
  await Promise.all(inflight);

  // Every job ends complete or canceled.
  const deadline = Date.now() + 15_000;
  const statuses = new Map<string, string>();
  for (;;) {
    statuses.clear();
    for (const id of ids) statuses.set(id, (await jobs.get(id))?.status ?? 'missing');
    const open = [...statuses.values()].filter((s) => s !== 'complete' && s !== 'canceled');
    if (open.length === 0 || Date.now() > deadline) break;
    await sleep(200);
  }
  const byStatus: Record<string, number> = {};
  for (const s of statuses.values()) byStatus[s] = (byStatus[s] ?? 0) + 1;

  await sleep(300);
  const watchers = jobs.watcherCount();
  const heapEnd = await settle();
  const handlesEnd = process.getActiveResourcesInfo().length;
  const figures = {
    store: label,
    seconds: SECONDS,
    ...counts,
    jobs: ids.length,
    byStatus,
    heapStartMB: +(heapStart / 2 ** 20).toFixed(1),
    heapEndMB: +(heapEnd / 2 ** 20).toFixed(1),
    heapGrowthMB: +((heapEnd - heapStart) / 2 ** 20).toFixed(1),
    handlesStart,
    handlesEnd,
    watchers,
    warnings: warnings.map((w) => w.name),
  };
  console.log(`[soak] ${JSON.stringify(figures)}`);

  await app.close();
  await jobs.close({ timeoutMs: 5000 });
  await cleanup();
  await sleep(500);
  const handlesAfterClose = process.getActiveResourcesInfo().length;
  console.log(`[soak] ${label}: active resources before store ${handlesBefore}, after close ${handlesAfterClose}`);

  expect(counts.errors, 'request errors').toBe(0);
  expect(counts.non2xx, 'unexpected statuses').toBe(0);
  expect(ids.length).toBeGreaterThan(SECONDS * 10);
  expect(byStatus.missing ?? 0, 'lost jobs').toBe(0);
  expect((byStatus.complete ?? 0) + (byStatus.canceled ?? 0), JSON.stringify(byStatus)).toBe(ids.length);
  expect(watchers).toBe(0);
  expect(heapEnd - heapStart).toBeLessThan(50 * 2 ** 20);
  // While running, a PostgreSQL pool may have opened more of its (max 10) connections than at the start: each is
  // a socket and, while idle, a timer. What must not grow is what is left once everything is closed (below).
  expect(handlesEnd).toBeLessThanOrEqual(handlesStart + (label === 'postgres' ? 2 * 10 + 5 : 5));
  expect(handlesAfterClose, process.getActiveResourcesInfo().join(',')).toBeLessThanOrEqual(handlesBefore + 2);
  expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
}

describe('soak', () => {
  const timeout = (SECONDS + 60) * 1000;
  it(
    'memory store',
    () => soak('memory', async () => ({ store: new MemoryStore(), cleanup: async () => {} })),
    timeout,
  );
  it(
    'SQLite file store',
    () =>
      soak('sqlite', async () => {
        const dir = mkdtempSync(join(tmpdir(), 'ra-soak-'));
        const store = new SqliteStore({ path: join(dir, 'jobs.db') });
        return {
          store,
          cleanup: async () => {
            await store.close();
            rmSync(dir, { recursive: true, force: true });
          },
        };
      }),
    timeout,
  );
  it(
    'PostgreSQL store',
    () =>
      soak('postgres', async () => {
        const schema = randomSchema('soak');
        const store = new PostgresStore({ connectionString: pgUrl(), schema });
        return {
          store,
          cleanup: async () => {
            await store.close();
            await dropSchema(schema);
          },
        };
      }),
    timeout,
  );
});
