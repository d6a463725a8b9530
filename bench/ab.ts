// A/B one benchmark between two respond-async trees (e.g. src/ and a patched copy of it), alternating them
// for several rounds, to measure what a change buys before (or after) making it.
//
//   npx tsx bench/ab.ts <treeA> <treeB> accept <express|fastify|koa> <memory|sqlite|postgres|bare>
//   npx tsx bench/ab.ts <treeA> <treeB> queue [phases]        (respond-async:postgres; default submit,drain,e2e)
//   npx tsx bench/ab.ts <treeA> <treeB> latency <kind>        (one-process latency, e.g. respond-async:memory)
//
// A tree is a directory shaped like src/ inside this repository (so that it resolves this node_modules).
// Each tree is built first (bench/lib/build.ts); BENCH_TS=1 loads them through tsx instead.
// BENCH_ROUNDS (default 5), BENCH_DURATION (default 4).
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { libraryDir } from './lib/build.js';
import { Child, runChild } from './lib/child.js';
import { type BenchPostgres, dropSchemas, startPostgres } from './lib/pg.js';
import { int, median, ms, percentile, ratio } from './lib/stats.js';

const [treeA, treeB, what, ...args] = process.argv.slice(2);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const duration = Number(process.env.BENCH_DURATION ?? 4);

type Metrics = Record<string, number>;

async function once(db: BenchPostgres | undefined, tree: string, round: number): Promise<Metrics> {
  const schema = `bench_ab_${round}_${tree
    .replace(/[^a-z0-9]/gi, '')
    .slice(-20)
    .toLowerCase()}`;
  const env: Record<string, string> = {
    BENCH_SRC: tree,
    BENCH_SQLITE_PATH: join(tmpdir(), `respond-async-ab-${process.pid}-${round}.sqlite`),
  };
  if (db) Object.assign(env, { BENCH_PG_URL: db.url, BENCH_PG_SCHEMA: schema, BENCH_SCHEMA: schema });
  try {
    if (what === 'accept') {
      const server = new Child('children/accept-server.ts', args, { env });
      try {
        const { port } = await server.next<{ port: number }>('ready');
        const r = await runChild<{ requestsPerSecond: number; p99: number }>('children/load.ts', [
          `http://127.0.0.1:${port}/reports`,
          '50',
          String(duration),
          '1',
        ]);
        return { 'req/s': r.requestsPerSecond, 'p99 ms': r.p99 };
      } finally {
        await server.stop();
      }
    }
    if (what === 'queue') {
      const r = await runChild<Metrics>('children/queue.ts', ['respond-async:postgres'], {
        env: { ...env, BENCH_PHASES: args[0] ?? 'submit,drain,e2e' },
      });
      const out: Metrics = {};
      for (const key of ['sequentialPerSecond', 'parallelPerSecond', 'drainPerSecond', 'e2ePerSecond']) {
        if (typeof r[key] === 'number') out[key] = r[key];
      }
      return out;
    }
    if (what === 'latency') {
      const r = await runChild<{ latencies: number[] }>('children/latency.ts', ['inproc', args[0]], { env });
      return { 'p50 ms': percentile(r.latencies, 50), 'p99 ms': percentile(r.latencies, 99) };
    }
    throw new Error('usage: ab.ts <treeA> <treeB> accept|queue|latency …');
  } finally {
    if (db) await dropSchemas(db, schema);
  }
}

async function main(): Promise<void> {
  const needPg = what === 'queue' || args.includes('postgres') || args.some((a) => a.includes('postgres'));
  const db = needPg ? await startPostgres() : undefined;
  const libA = await libraryDir(treeA);
  const libB = await libraryDir(treeB);
  const results: Record<'A' | 'B', Metrics[]> = { A: [], B: [] };
  try {
    for (let round = 0; round < rounds; round++) {
      const order: Array<['A' | 'B', string]> = [
        ['A', libA],
        ['B', libB],
      ];
      if (round % 2 === 1) order.reverse();
      for (const [label, tree] of order) {
        const m = await once(db, tree, round);
        results[label].push(m);
        console.error(`round ${round + 1} ${label}: ${JSON.stringify(m)}`);
      }
    }
  } finally {
    await db?.stop();
  }
  const keys = Object.keys(results.A[0] ?? {});
  console.log(`\nA = ${treeA}\nB = ${treeB}\n${what} ${args.join(' ')}, ${rounds} rounds, medians:`);
  for (const key of keys) {
    const a = median(results.A.map((m) => m[key]));
    const b = median(results.B.map((m) => m[key]));
    const fmt = key.includes('ms') ? ms : int;
    // Each round's B/A (the two ran back to back), so that a change is told from the machine's drift.
    const perRound = results.A.map((m, i) => results.B[i][key] / m[key]).sort((x, y) => x - y);
    const spread = `rounds ${ratio(perRound[0])}–${ratio(perRound[perRound.length - 1])}`;
    console.log(
      `  ${key.padEnd(22)} A ${fmt(a).padStart(9)}   B ${fmt(b).padStart(9)}   B/A ${ratio(b / a)}   (${spread})`,
    );
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
