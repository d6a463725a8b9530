// Memory (JS heap + ArrayBuffers) per retained finished job in the memory store, and after retention and purge.
// Run with --expose-gc. The runtime runs BENCH_MEMORY_JOBS no-op jobs (result `{ ok: true }`) in batches, then
// the heap is measured after full GCs; then the process waits for retention to pass and the runtime's own
// purge timer to empty the store, and measures again. Last, the same number of jobs submitted to an API-only runtime
// and left queued.
//
// env: BENCH_MEMORY_JOBS (default 100 000), BENCH_RETENTION_MS (default 10 000: longer than the fill takes here)
import { main, send, sleep } from '../lib/ipc.js';
import { loadCore } from '../lib/src.js';

const total = Number(process.env.BENCH_MEMORY_JOBS ?? 100_000);
const retentionMs = Number(process.env.BENCH_RETENTION_MS ?? 10_000);
const BATCH = 1000;

/**
 * The JavaScript heap used plus the ArrayBuffers allocated (where earlier MemoryStores kept their rows and texts, so
 * that runs of either design compare), after full GCs.
 */
function heapAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  for (let i = 0; i < 4; i++) gc();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

main(async () => {
  const { createJobs, MemoryStore } = await loadCore();
  const store = new MemoryStore({ maxJobs: total * 2 });
  let completed = 0;
  const complete = store.complete.bind(store);
  store.complete = async (...args) => {
    const record = await complete(...args);
    if (record) completed += 1;
    return record;
  };
  const jobs = createJobs({ store, concurrency: 50, retentionMs });
  const job = jobs.define('noop', async () => ({ ok: true }));
  await jobs.ready();

  const runBatch = async (n: number) => {
    const target = completed + n;
    await Promise.all(Array.from({ length: n }, () => jobs.submit(job, { body: { n: 1 }, params: {}, query: {} })));
    while (completed < target) await sleep(1);
  };

  // Warm-up (JIT, maps); these jobs stay in the store for both the baseline and the retained measurement.
  await runBatch(BATCH);
  const baseline = heapAfterGc();
  const baselineSize = store.size;

  const started = performance.now();
  for (let done = 0; done < total; done += BATCH) await runBatch(Math.min(BATCH, total - done));
  const fillMs = performance.now() - started;
  const retainedSize = store.size;
  const retained = heapAfterGc();
  if (retainedSize !== baselineSize + total) {
    throw new Error(
      `jobs were purged while filling (${retainedSize} of ${baselineSize + total} left): raise BENCH_RETENTION_MS`,
    );
  }

  // Retention passes; the runtime's purge timer (every min(60 s, retention)) empties the store.
  const deadline = Date.now() + retentionMs * 3 + 5000;
  while (store.size > 0 && Date.now() < deadline) await sleep(100);
  const purgedSize = store.size;
  const afterPurge = heapAfterGc();
  await jobs.close();

  // A backlog never claimed (an API-only process, as the accept benchmark's servers): jobs submitted with the JSON
  // text of their input, as a wrapped route submits them, and left queued.
  const backlog = createJobs({ store: new MemoryStore({ maxJobs: total * 2 }), worker: false });
  const queuedJob = backlog.define('noop', async () => ({ ok: true }));
  await backlog.ready();
  const submit = () => {
    // A text of its own per job, joined from pieces as the protocol joins it around the body it read.
    const inputJson = ['{"body":', '{"n":1}', ',"params":{},"query":{}}'].join('');
    return backlog.submit(queuedJob, JSON.parse(inputJson), { inputJson });
  };
  const submitQueued = async (n: number) => {
    for (let done = 0; done < n; done += BATCH) {
      await Promise.all(Array.from({ length: Math.min(BATCH, n - done) }, submit));
    }
  };
  await submitQueued(BATCH);
  const queuedBaseline = heapAfterGc();
  await submitQueued(total);
  const bytesPerQueuedJob = (heapAfterGc() - queuedBaseline) / total;
  await backlog.close();
  send({
    type: 'result',
    jobs: total,
    fillMs,
    baseline,
    retained,
    afterPurge,
    bytesPerJob: (retained - baseline) / total,
    bytesPerQueuedJob,
    retainedSize,
    purgedSize,
    retentionMs,
  });
});
