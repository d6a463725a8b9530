// The accept path of two (or more) respond-async trees side by side against one bare server, in one run: the
// ratios to bare of each tree come from the same rounds, so a change's effect is not lost in the machine's drift.
//
//   BENCH_AB_TREES=before=/path/to/old/src,after=src npx tsx bench/accept-ab.ts
//
// Settings (environment): BENCH_AB_TREES (label=tree, …; default main=/work/main/src,this=src), BENCH_FRAMEWORKS
// (express,fastify,koa), BENCH_ACCEPT (the wrapped routes: memory,sqlite), BENCH_ACCEPT_ROUNDS (7), BENCH_DURATION
// (2 s per turn after BENCH_WARMUP 0.5 s), BENCH_CONNECTIONS (50), BENCH_PIN (0: no taskset). As in bench/run.ts,
// each route is its own server process, all started once; the routes take turns in every round (the order rotates),
// the servers pinned to CPU 0 and the load generator to CPU 1.
//
// Besides req/s, each turn measures the CPU time the server process spent (all its threads, from Linux's
// /proc/<pid>/task/*/schedstat) per answered request. On a machine shared with other work, req/s follows the share of
// the CPU the server got, while CPU time per request hardly moves: its ratio to bare's is the steadier yardstick.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { libraryDir } from './lib/build.js';
import { Child, processCpuNs } from './lib/child.js';
import { int, median, ratio, rotate, table } from './lib/stats.js';

const env = process.env;
const TREES = (env.BENCH_AB_TREES ?? 'main=/work/main/src,this=src').split(',').map((pair) => {
  const [label, tree] = pair.split('=');
  return { label, tree };
});
const FRAMEWORKS = (env.BENCH_FRAMEWORKS ?? 'express,fastify,koa').split(',');
const ROUTES = (env.BENCH_ACCEPT ?? 'memory,sqlite').split(',');
const ROUNDS = Number(env.BENCH_ACCEPT_ROUNDS ?? 7);
const DURATION = Number(env.BENCH_DURATION ?? 2);
const WARMUP = Number(env.BENCH_WARMUP ?? 0.5);
const CONNECTIONS = Number(env.BENCH_CONNECTIONS ?? 50);
let pinning = env.BENCH_PIN !== '0' && process.platform === 'linux' && cpus().length >= 2;

interface Contender {
  name: string;
  route: string;
  lib: string;
  child?: Child;
  url?: string;
  rps: number[];
  /** CPU µs of the server per answered request, per turn. */
  cpu: number[];
}

function pin(child: Child, list: string): void {
  if (!pinning || child.process.pid === undefined) return;
  try {
    execFileSync('taskset', ['-a', '-p', '-c', list, String(child.process.pid)], { stdio: 'ignore' });
  } catch {
    pinning = false;
  }
}

interface Turn {
  rps: number;
  /** The server's CPU µs per request over the turn, warm-up included. */
  cpu: number;
}

async function load(loader: Child, server: Child, url: string, duration: number, warmup: number): Promise<Turn> {
  const cpu0 = processCpuNs(server.process.pid);
  loader.send({ type: 'load', url, connections: CONNECTIONS, duration, warmup });
  const result = await loader.next<{
    requestsPerSecond: number;
    non2xx: number;
    errors: number;
    requests: number;
  }>('result', (duration + warmup) * 1000 + 60_000);
  const cpu = (processCpuNs(server.process.pid) - cpu0) / 1000 / result.requests;
  if (result.non2xx + result.errors > 0) throw new Error(`${url}: ${result.non2xx + result.errors} failures`);
  return { rps: result.requestsPerSecond, cpu };
}

async function main(): Promise<void> {
  const libs = await Promise.all(TREES.map(async ({ label, tree }) => ({ label, lib: await libraryDir(tree) })));
  const started = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const load0 = loadavg();
  const rows: string[][] = [];
  const loader = new Child('children/load.ts', []);
  await loader.next('ready', 60_000);
  pin(loader, '1');
  try {
    for (const framework of FRAMEWORKS) {
      const sqlite = (label: string) => join(tmpdir(), `respond-async-accept-ab-${process.pid}-${framework}-${label}`);
      const contenders: Contender[] = [{ name: 'bare', route: 'bare', lib: libs[0].lib, rps: [], cpu: [] }];
      for (const route of ROUTES) {
        for (const { label, lib } of libs)
          contenders.push({ name: `${route} (${label})`, route, lib, rps: [], cpu: [] });
      }
      try {
        for (const c of contenders) {
          const path = `${sqlite(c.name.replace(/\W+/g, '-'))}.sqlite`;
          c.child = new Child('children/accept-server.ts', [framework, c.route], {
            env: { BENCH_SRC: c.lib, BENCH_SQLITE_PATH: path },
          });
          const { port } = await c.child.next<{ port: number }>('ready', 60_000);
          c.url = `http://127.0.0.1:${port}/reports`;
          pin(c.child, '0');
          await load(loader, c.child, c.url, 1, 0);
        }
        for (let round = 0; round < ROUNDS; round++) {
          process.stderr.write(`  · ${framework} round ${round + 1}/${ROUNDS}\n`);
          for (const c of rotate(contenders, round)) {
            const turn = await load(loader, c.child!, c.url!, DURATION, WARMUP);
            c.rps.push(turn.rps);
            c.cpu.push(turn.cpu);
          }
        }
      } finally {
        await Promise.all(contenders.map((c) => c.child?.stop()));
        for (const c of contenders) {
          const path = `${sqlite(c.name.replace(/\W+/g, '-'))}.sqlite`;
          for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
        }
      }
      const bare = contenders[0];
      for (const c of contenders) {
        rows.push([
          framework,
          c.name,
          int(median(c.rps)),
          ratio(median(c.rps) / median(bare.rps)),
          median(c.cpu).toFixed(1),
          ratio(median(bare.cpu) / median(c.cpu)),
          c.cpu.map((cpu, i) => (bare.cpu[i] / cpu).toFixed(2)).join(' / '),
        ]);
      }
    }
  } finally {
    await loader.stop();
  }
  const fmt = (l: number[]) => l.map((n) => n.toFixed(2)).join(', ');
  console.log(
    `${started}, ${ROUNDS} rounds of ${DURATION} s per route, ${CONNECTIONS} connections, ` +
      `${pinning ? 'pinned' : 'not pinned'}; load average ${fmt(load0)} at start, ${fmt(loadavg())} at the end; ` +
      `trees: ${TREES.map((t) => `${t.label}=${t.tree}`).join(', ')}\n`,
  );
  console.log(
    table(
      [
        'framework',
        'route',
        'req/s (median)',
        'req/s vs bare',
        'CPU µs per request (median)',
        'vs bare by CPU per request',
        'by CPU, round by round',
      ],
      rows,
    ),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
