// Submit→start latency with the API and the worker in separate processes (the wake-up goes through LISTEN/NOTIFY),
// for one or more respond-async trees and graphile-worker, alternating for several rounds; with BENCH_HOPS=1 it
// also reports where the time goes between the two processes (read off each process's pg client).
//
//   npx tsx bench/latency-split.ts [tree …]      (default: src)
//
// BENCH_ROUNDS (default 5), BENCH_SAMPLES per round (default 200), BENCH_CONCURRENCY (default 10), BENCH_HOPS=1.
import { libraryDir } from './lib/build.js';
import { Child } from './lib/child.js';
import { type BenchPostgres, dropSchemas, startPostgres } from './lib/pg.js';
import { median, ms, percentile, ratio, rotate, table } from './lib/stats.js';

const trees = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['src'];
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const samples = Number(process.env.BENCH_SAMPLES ?? 200);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 10);
const WARMUP = 20;

interface Hops {
  t: number;
  notified: number;
  sent: number;
  returned: number;
  start: number;
  statement: string;
}
interface Submitted {
  t: number;
  sent: number;
  returned: number;
}
interface Contender {
  label: string;
  kind: string;
  lib?: string;
}
/** Per hop, the samples of one contender over all rounds. */
type HopSamples = Record<string, number[]>;

async function once(db: BenchPostgres, c: Contender, round: number, hopSamples: HopSamples): Promise<number[]> {
  const schema = `bench_split_${round}_${c.label.replace(/[^a-z0-9]/gi, '').toLowerCase()}`.slice(0, 50);
  const env: Record<string, string> = {
    BENCH_PG_URL: db.url,
    BENCH_SCHEMA: schema,
    BENCH_SAMPLES: String(samples),
    BENCH_CONCURRENCY: String(concurrency),
  };
  if (c.lib) env.BENCH_SRC = c.lib;
  const worker = new Child('children/latency.ts', ['worker', c.kind], { env });
  const submitter = new Child('children/latency.ts', ['submitter', c.kind], { env });
  try {
    await worker.next('ready', 60_000);
    await submitter.next('ready', 60_000);
    const latencies: number[] = [];
    for (let i = 0; i < WARMUP + samples; i++) {
      submitter.send({ type: 'submit' });
      const api = await submitter.next<{ type: string; hops?: Submitted }>('submitted');
      const { latency, hops } = await worker.next<{ type: string; latency: number; hops?: Hops }>('start', 10_000);
      if (i < WARMUP) continue;
      latencies.push(latency);
      if (hops && api.hops) {
        const add = (name: string, value: number) => {
          if (!Number.isFinite(value)) return;
          hopSamples[name] ??= [];
          hopSamples[name].push(value);
        };
        // Worker hops are measured from the job's own timestamps; a notification or query time before the
        // submit belongs to an earlier job (this job's wake-up made no such hop).
        const after = (time: number) => (time >= hops.t ? time : Number.NaN);
        add('API: submit → INSERT sent', api.hops.sent - api.hops.t);
        add('API: INSERT round trip', api.hops.returned - api.hops.sent);
        add('submit → notification in worker', after(hops.notified) - hops.t);
        add('notification → claim sent', after(hops.sent) - after(hops.notified));
        add('claim round trip', after(hops.returned) - after(hops.sent));
        add('claim returned → handler start', hops.start - after(hops.returned));
        add('submit → handler start', hops.start - hops.t);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return latencies;
  } finally {
    await Promise.all([submitter.stop(), worker.stop()]);
    await dropSchemas(db, schema);
  }
}

async function main(): Promise<void> {
  const contenders: Contender[] = [];
  for (const tree of trees) {
    contenders.push({ label: `respond-async ${tree}`, kind: 'respond-async:postgres', lib: await libraryDir(tree) });
  }
  contenders.push({ label: 'graphile-worker', kind: 'graphile-worker' });
  const db = await startPostgres();
  const p50s = new Map<string, number[]>(contenders.map((c) => [c.label, []]));
  const p99s = new Map<string, number[]>(contenders.map((c) => [c.label, []]));
  const hopSamples = new Map<string, HopSamples>(contenders.map((c) => [c.label, {}]));
  try {
    for (let round = 0; round < rounds; round++) {
      for (const c of rotate(contenders, round)) {
        const latencies = (await once(db, c, round, hopSamples.get(c.label) ?? {})).filter(Number.isFinite);
        p50s.get(c.label)?.push(percentile(latencies, 50));
        p99s.get(c.label)?.push(percentile(latencies, 99));
        console.error(`round ${round + 1} ${c.label}: p50 ${ms(percentile(latencies, 50))} ms`);
      }
    }
  } finally {
    await db.stop();
  }
  const graphile = median(p50s.get('graphile-worker') ?? []);
  const rows = contenders.map((c) => {
    const p50 = p50s.get(c.label) ?? [];
    return [
      c.label,
      ms(median(p50)),
      ms(median(p99s.get(c.label) ?? [])),
      ratio(median(p50) / graphile),
      p50.map((v, i) => ratio(v / (p50s.get('graphile-worker')?.[i] ?? Number.NaN))).join(' / '),
      p50.map(ms).join(' / '),
    ];
  });
  console.log(
    `\nsubmit → start, API and worker processes, ${rounds} rounds × ${samples} jobs, concurrency ${concurrency}\n`,
  );
  console.log(table(['contender', 'p50 ms', 'p99 ms', '÷ graphile', '÷ graphile per round', 'p50 per round'], rows));
  if (process.env.BENCH_HOPS === '1') {
    const names = Object.keys(hopSamples.get(contenders[0].label) ?? {});
    const hopRows = names.map((name) => [
      name,
      ...contenders.map((c) => {
        const values = hopSamples.get(c.label)?.[name] ?? [];
        return values.length > 0 ? `${ms(median(values))} (n ${values.length})` : '–';
      }),
    ]);
    console.log('\nper hop, median ms (n: samples where the hop was seen)\n');
    console.log(table(['hop', ...contenders.map((c) => c.label)], hopRows));
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
